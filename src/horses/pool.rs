//! The pool of horses: at most `--python-processes` at once, each running one job at a time.
//! A job leases a horse ([`HorsePool::checkout`]) and returns it healthy
//! ([`HorsePool::checkin`]) or discarded ([`HorsePool::discard`]); a discarded or recycled
//! horse is replaced in the background. Horses that cannot start are reported once per
//! streak of failures and retried with backoff; a job waits for a horse at most
//! [`START_WAIT`] of failed starts.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::horse::{Horse, StartError};
use super::HorseConfig;

/// How long a Python job waits for a horse while horses fail to start; then it fails with
/// the start error (retries apply, `rq requeue` puts it back).
pub const START_WAIT: Duration = Duration::from_secs(10);
/// First pause after a failed start; doubles per failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Longest pause between start attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long an idle horse may take to exit after its stdin closes at shutdown.
const RETIRE_GRACE: Duration = Duration::from_secs(2);

/// Why a horse is thrown away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discard {
    /// Killed at its job's timeout.
    Timeout,
    /// Killed by `kill-horse`, a stop command or a forced shutdown.
    Killed,
    /// Died by itself (segfault, OOM kill, `os._exit`).
    Died,
    /// Answered something that is not the protocol.
    Garbage,
    /// Recycled after `--python-max-jobs` jobs.
    MaxJobs,
    /// Recycled over `--python-max-memory`.
    MaxMemory,
}

impl Discard {
    /// The metrics label of this cause.
    pub fn label(self) -> &'static str {
        match self {
            Discard::Timeout => "timeout",
            Discard::Killed => "killed",
            Discard::Died => "died",
            Discard::Garbage => "garbage",
            Discard::MaxJobs => "max_jobs",
            Discard::MaxMemory => "max_memory",
        }
    }
}

/// A horse leased to one job, with its pool slot.
#[derive(Debug)]
pub struct Lease {
    /// The horse.
    pub horse: Horse,
    permit: OwnedSemaphorePermit,
}

#[derive(Debug, Default)]
struct StartGate {
    failures: u32,
    retry_at: Option<Instant>,
    last_error: Option<StartError>,
}

/// Called with each discard cause and each horse's RSS (bytes) after a job: the metrics feed.
pub type PoolObserver = Arc<dyn Fn(PoolEvent) + Send + Sync>;

/// What the pool tells its observer.
#[derive(Debug, Clone, Copy)]
pub enum PoolEvent {
    /// A horse was replaced for this cause.
    Replaced(Discard),
    /// A horse's RSS after a job.
    Rss {
        /// Process id.
        pid: u32,
        /// Bytes.
        bytes: u64,
    },
    /// A horse exited (its RSS series can go).
    Gone {
        /// Process id.
        pid: u32,
    },
}

/// The horses of one worker.
pub struct HorsePool {
    config: HorseConfig,
    slots: Arc<Semaphore>,
    idle: Mutex<Vec<Horse>>,
    gate: Mutex<StartGate>,
    tasks: TaskTracker,
    stop: CancellationToken,
    observer: Option<PoolObserver>,
}

impl HorsePool {
    /// A pool; its first horses start in the background now.
    pub fn start(config: HorseConfig, observer: Option<PoolObserver>) -> Arc<Self> {
        let pool = Arc::new(Self {
            slots: Arc::new(Semaphore::new(config.processes)),
            config,
            idle: Mutex::new(Vec::new()),
            gate: Mutex::new(StartGate::default()),
            tasks: TaskTracker::new(),
            stop: CancellationToken::new(),
            observer,
        });
        for _ in 0..pool.config.processes {
            if let Ok(permit) = pool.slots.clone().try_acquire_owned() {
                pool.clone().spawn_replacement(permit);
            }
        }
        pool
    }

    /// The configuration.
    pub fn config(&self) -> &HorseConfig {
        &self.config
    }

    /// Waits for a free slot, then takes an idle horse or starts one. `Err` when horses
    /// failed to start for [`START_WAIT`] (or are backing off beyond it).
    pub async fn checkout(&self) -> Result<Lease, StartError> {
        let permit = match self.slots.clone().acquire_owned().await {
            Ok(p) => p,
            Err(_) => return Err(StartError::Protocol("the pool is closed".into())),
        };
        if let Some(horse) = self.take_idle() {
            return Ok(Lease { horse, permit });
        }
        let deadline = Instant::now() + START_WAIT;
        loop {
            let retry_at = lock(&self.gate).retry_at;
            if let Some(at) = retry_at {
                if at > deadline {
                    return Err(self.last_error());
                }
                tokio::time::sleep_until(at).await;
            }
            // A replacement may have become idle meanwhile.
            if let Some(horse) = self.take_idle() {
                return Ok(Lease { horse, permit });
            }
            match self.start_one().await {
                Ok(horse) => return Ok(Lease { horse, permit }),
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => {}
            }
        }
    }

    /// An idle horse that is still alive; one that died while idle is dropped (counted as
    /// `died`), so no job is failed for a death it had no part in.
    fn take_idle(&self) -> Option<Horse> {
        loop {
            let mut horse = lock(&self.idle).pop()?;
            if horse.is_alive() {
                return Some(horse);
            }
            tracing::warn!(
                pid = horse.pid(),
                "a Python horse died while idle; starting another"
            );
            if let Some(observer) = &self.observer {
                observer(PoolEvent::Replaced(Discard::Died));
                observer(PoolEvent::Gone { pid: horse.pid() });
            }
        }
    }

    fn last_error(&self) -> StartError {
        lock(&self.gate)
            .last_error
            .clone()
            .unwrap_or(StartError::Timeout)
    }

    async fn start_one(&self) -> Result<Horse, StartError> {
        match Horse::start(&self.config, &self.tasks).await {
            Ok(horse) => {
                let mut gate = lock(&self.gate);
                if gate.failures > 0 {
                    tracing::info!(failures = gate.failures, "Python horses start again");
                }
                *gate = StartGate::default();
                Ok(horse)
            }
            Err(e) => {
                let mut gate = lock(&self.gate);
                gate.failures += 1;
                let backoff = FIRST_BACKOFF
                    .saturating_mul(1 << gate.failures.min(16).saturating_sub(1))
                    .min(MAX_BACKOFF);
                gate.retry_at = Some(Instant::now() + backoff);
                if gate.failures == 1 {
                    tracing::error!(
                        "{e}\nPython horses cannot start: Python jobs wait up to {START_WAIT:?} for one, then fail (retries apply, `rq requeue` puts them back); native jobs continue; retrying with backoff up to {MAX_BACKOFF:?}"
                    );
                } else {
                    tracing::debug!(failures = gate.failures, retry_in = ?backoff, "Python horse start failed again");
                }
                gate.last_error = Some(e.clone());
                Err(e)
            }
        }
    }

    /// Gives a healthy horse back after a job; recycles it past `--python-max-jobs` or
    /// `--python-max-memory`.
    pub fn checkin(self: &Arc<Self>, lease: Lease) {
        let Lease { horse, permit } = lease;
        let rss = horse.rss_bytes();
        if let (Some(bytes), Some(observer)) = (rss, &self.observer) {
            observer(PoolEvent::Rss {
                pid: horse.pid(),
                bytes,
            });
        }
        let recycle = if self
            .config
            .max_jobs
            .is_some_and(|max| horse.jobs_done >= max)
        {
            Some(Discard::MaxJobs)
        } else if let (Some(max), Some(rss)) = (self.config.max_memory_bytes, rss) {
            (rss > max).then_some(Discard::MaxMemory)
        } else {
            None
        };
        match recycle {
            Some(cause) => {
                tracing::info!(
                    pid = horse.pid(),
                    jobs = horse.jobs_done,
                    rss_bytes = rss,
                    cause = cause.label(),
                    "recycling a Python horse"
                );
                self.replace(horse, cause, permit, false);
            }
            None if self.stop.is_cancelled() => {
                self.tasks.spawn(horse.retire(RETIRE_GRACE));
            }
            None => {
                horse.attach_span(tracing::info_span!(parent: None, "horse", pid = horse.pid()));
                lock(&self.idle).push(horse);
            }
        }
    }

    /// Throws a horse away (killing it if needed) and starts a replacement.
    pub fn discard(self: &Arc<Self>, lease: Lease, cause: Discard) {
        let Lease { horse, permit } = lease;
        tracing::info!(
            pid = horse.pid(),
            cause = cause.label(),
            "replacing a Python horse"
        );
        self.replace(horse, cause, permit, true);
    }

    fn replace(
        self: &Arc<Self>,
        horse: Horse,
        cause: Discard,
        permit: OwnedSemaphorePermit,
        kill: bool,
    ) {
        if let Some(observer) = &self.observer {
            observer(PoolEvent::Replaced(cause));
            observer(PoolEvent::Gone { pid: horse.pid() });
        }
        let pool = self.clone();
        self.tasks.spawn(async move {
            if kill {
                horse.kill().await;
            } else {
                horse.retire(RETIRE_GRACE).await;
            }
            pool.spawn_replacement(permit);
        });
    }

    /// Starts a horse into the idle list, holding `permit` meanwhile (so the pool never
    /// exceeds its size). One attempt, after the gate's backoff: when it fails the slot is
    /// free again and the next job that needs a horse tries (and fails visibly) itself.
    fn spawn_replacement(self: Arc<Self>, permit: OwnedSemaphorePermit) {
        let pool = self.clone();
        self.tasks.spawn(async move {
            let retry_at = lock(&pool.gate).retry_at;
            if let Some(at) = retry_at {
                tokio::select! {
                    _ = pool.stop.cancelled() => return,
                    _ = tokio::time::sleep_until(at) => {}
                }
            }
            let started = tokio::select! {
                _ = pool.stop.cancelled() => return,
                s = pool.start_one() => s,
            };
            if let Ok(horse) = started {
                if pool.stop.is_cancelled() {
                    horse.retire(RETIRE_GRACE).await;
                } else {
                    lock(&pool.idle).push(horse);
                }
            }
            drop(permit);
        });
    }

    /// Stops the pool: no more starts, idle horses exit; waits for every pool task. Horses
    /// still leased are ended by their jobs.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        let idle: Vec<Horse> = std::mem::take(&mut *lock(&self.idle));
        for horse in idle {
            self.tasks.spawn(horse.retire(RETIRE_GRACE));
        }
        self.tasks.close();
        self.tasks.wait().await;
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
