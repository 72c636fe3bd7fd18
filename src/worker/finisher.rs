//! Records outcomes in batches, the way jobs are started (issue 15): the outcomes that are
//! ready while the previous call is under way go together in the next `finish.lua` call, so
//! every per-worker and per-registry write is made once per batch. One batch is in flight at
//! a time; nothing waits to fill a batch (a lone outcome is written at once).
//!
//! Owned by the worker loop ([`super::work`]): the task ends once every job task and the
//! loop have dropped their [`Finisher`], after writing what it was given.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::context::WorkerContext;
use crate::error::StoreError;
use crate::store::finish::{FinishRequest, MAX_FINISH_BATCH};
use crate::store::reconcile::{finish_until_known, FinishReport};

/// One outcome waiting for its batch, and where its report goes.
struct Pending {
    request: FinishRequest,
    reply: oneshot::Sender<Result<FinishReport, StoreError>>,
}

/// Hands outcomes to the batching task (cheap to clone; one per job task).
#[derive(Clone)]
pub struct Finisher {
    tx: mpsc::UnboundedSender<Pending>,
    ctx: Arc<WorkerContext>,
}

impl Finisher {
    /// Starts the batching task of this worker.
    pub fn start(ctx: Arc<WorkerContext>) -> (Finisher, JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(ctx.clone(), rx));
        (Finisher { tx, ctx }, task)
    }

    /// Records one outcome (in the next batch) and returns what is known of it
    /// ([`finish_until_known`]).
    pub async fn record(&self, request: FinishRequest) -> Result<FinishReport, StoreError> {
        let (reply, report) = oneshot::channel();
        if let Err(mpsc::error::SendError(pending)) = self.tx.send(Pending { request, reply }) {
            // The task has ended (it cannot while a Finisher lives, but a panic could end
            // it): record this one alone.
            return record_alone(&self.ctx, &pending.request).await;
        }
        report.await.unwrap_or_else(|_| {
            Err(StoreError::UnexpectedReply {
                what: "finish.lua",
                detail: "the batching task ended before the outcome was known".into(),
            })
        })
    }
}

async fn record_alone(
    ctx: &WorkerContext,
    request: &FinishRequest,
) -> Result<FinishReport, StoreError> {
    finish_until_known(
        &ctx.conn,
        ctx.keys.prefix(),
        &ctx.identity.name,
        &[request],
        ctx.shutdown.force(),
    )
    .await
    .pop()
    .unwrap_or_else(|| {
        Err(StoreError::UnexpectedReply {
            what: "finish.lua",
            detail: "no report".into(),
        })
    })
}

/// Takes every outcome that is waiting (at most [`MAX_FINISH_BATCH`]), records them in one
/// call, answers each, and again, until the channel closes.
async fn run(ctx: Arc<WorkerContext>, mut rx: mpsc::UnboundedReceiver<Pending>) {
    let mut batch = Vec::with_capacity(MAX_FINISH_BATCH);
    while rx.recv_many(&mut batch, MAX_FINISH_BATCH).await > 0 {
        let requests: Vec<&FinishRequest> = batch.iter().map(|p| &p.request).collect();
        let reports = finish_until_known(
            &ctx.conn,
            ctx.keys.prefix(),
            &ctx.identity.name,
            &requests,
            ctx.shutdown.force(),
        )
        .await;
        tracing::debug!(jobs = batch.len(), "outcomes recorded in one call");
        for (pending, report) in batch.drain(..).zip(reports) {
            // A job task that is gone does not need its report.
            let _ = pending.reply.send(report);
        }
    }
}
