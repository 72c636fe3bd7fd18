//! Every Redis key name rqw reads or writes for RQ, in one place.
//!
//! RQ 2.x hard-codes the prefix `rq:`; the Lua scripts in `store/scripts/` build the per-job
//! keys from the same prefix (passed as their first argument) with the same templates.

/// The key prefix RQ uses.
pub const RQ_PREFIX: &str = "rq:";

/// Key names for one prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Default for Keys {
    fn default() -> Self {
        Self {
            prefix: RQ_PREFIX.to_string(),
        }
    }
}

impl Keys {
    /// The prefix (`rq:`), as passed to the Lua scripts.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `rq:queue:<q>`: the queue's LIST of job ids.
    pub fn queue(&self, queue: &str) -> String {
        format!("{}queue:{queue}", self.prefix)
    }

    /// `rq:queue:<q>:intermediate`: ids taken by a worker, not yet started.
    pub fn intermediate(&self, queue: &str) -> String {
        format!("{}queue:{queue}:intermediate", self.prefix)
    }

    /// `rq:queues`: SET of queue keys.
    pub fn queues(&self) -> String {
        format!("{}queues", self.prefix)
    }

    /// `rq:job:<id>`: the job hash.
    pub fn job(&self, id: &str) -> String {
        format!("{}job:{id}", self.prefix)
    }

    /// `rq:results:<id>`: the results stream.
    pub fn results(&self, id: &str) -> String {
        format!("{}results:{id}", self.prefix)
    }

    /// `rq:worker:<name>`: the worker hash.
    pub fn worker(&self, name: &str) -> String {
        format!("{}worker:{name}", self.prefix)
    }

    /// `rq:worker:<name>:executions`: SET of `<job id>:<execution id>` (read by rq 3.0).
    pub fn worker_executions(&self, name: &str) -> String {
        format!("{}worker:{name}:executions", self.prefix)
    }

    /// `rq:pubsub:<name>`: the channel `rq.command.send_*` publishes a worker's commands on.
    pub fn pubsub(&self, name: &str) -> String {
        format!("{}pubsub:{name}", self.prefix)
    }

    /// `rq:workers`: SET of all worker keys.
    pub fn workers(&self) -> String {
        format!("{}workers", self.prefix)
    }

    /// `rq:workers:<q>`: SET of the keys of workers listening on a queue.
    pub fn queue_workers(&self, queue: &str) -> String {
        format!("{}workers:{queue}", self.prefix)
    }

    /// `rq:suspended`: present while workers are suspended (`rq suspend`).
    pub fn suspended(&self) -> String {
        format!("{}suspended", self.prefix)
    }

    /// `rq:finished:<q>`: FinishedJobRegistry.
    pub fn finished(&self, queue: &str) -> String {
        format!("{}finished:{queue}", self.prefix)
    }

    /// `rq:failed:<q>`: FailedJobRegistry.
    pub fn failed(&self, queue: &str) -> String {
        format!("{}failed:{queue}", self.prefix)
    }

    /// `rq:wip:<q>`: StartedJobRegistry (members `<id>:<execution id>`).
    pub fn started(&self, queue: &str) -> String {
        format!("{}wip:{queue}", self.prefix)
    }

    /// `rq:scheduled:<q>`: ScheduledJobRegistry.
    pub fn scheduled(&self, queue: &str) -> String {
        format!("{}scheduled:{queue}", self.prefix)
    }

    /// `rq:deferred:<q>`: DeferredJobRegistry.
    pub fn deferred(&self, queue: &str) -> String {
        format!("{}deferred:{queue}", self.prefix)
    }

    /// `rq:ready:<q>`: rq 3.0's ReadyJobRegistry (dependents about to be enqueued).
    pub fn ready(&self, queue: &str) -> String {
        format!("{}ready:{queue}", self.prefix)
    }

    /// `rq:scheduler-lock:<q>`: who runs the scheduler for a queue.
    pub fn scheduler_lock(&self, queue: &str) -> String {
        format!("{}scheduler-lock:{queue}", self.prefix)
    }

    /// `rq:scheduler:<name>`: a scheduler's hash (rq 2.12+).
    pub fn scheduler(&self, name: &str) -> String {
        format!("{}scheduler:{name}", self.prefix)
    }

    /// `rq:clean_registries:<q>`: the maintenance lock of a queue.
    pub fn clean_registries(&self, queue: &str) -> String {
        format!("{}clean_registries:{queue}", self.prefix)
    }

    /// `rq:rqw:cleaned:<q>`: rqw's own marker that a queue was cleaned less than an interval
    /// ago (Python workers do not read it; RQ's lock above stays as RQ has it).
    pub fn cleaned_marker(&self, queue: &str) -> String {
        format!("{}rqw:cleaned:{queue}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_rq_templates() {
        let k = Keys::default();
        assert_eq!(k.queue("default"), "rq:queue:default");
        assert_eq!(k.intermediate("default"), "rq:queue:default:intermediate");
        assert_eq!(k.job("a"), "rq:job:a");
        assert_eq!(k.results("a"), "rq:results:a");
        assert_eq!(k.worker("w"), "rq:worker:w");
        assert_eq!(k.worker_executions("w"), "rq:worker:w:executions");
        assert_eq!(k.pubsub("w"), "rq:pubsub:w");
        assert_eq!(k.queue_workers("q"), "rq:workers:q");
        assert_eq!(k.started("q"), "rq:wip:q");
        assert_eq!(k.finished("q"), "rq:finished:q");
        assert_eq!(k.failed("q"), "rq:failed:q");
        assert_eq!(k.ready("q"), "rq:ready:q");
        assert_eq!(k.scheduler_lock("q"), "rq:scheduler-lock:q");
        assert_eq!(k.scheduler("s"), "rq:scheduler:s");
        assert_eq!(k.clean_registries("q"), "rq:clean_registries:q");
    }
}
