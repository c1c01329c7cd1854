//! Redis key names and the scores and members stored under them: [`ready_score`],
//! [`scheduled_member`] and the key names of one prefix.

use uuid::Uuid;

use crate::JobType;

/// Priorities span −1000..=1000; `(MAX_PRIORITY - priority)` puts the highest first.
const MAX_PRIORITY: i64 = 1000;
/// Rounds fit in 42 bits (4.4 · 10^12 jobs per priority).
const ROUND_BITS: u32 = 42;

/// The ready-set score of a job in round `round` of its user: `(1000 - priority) · 2^42 +
/// round`. Lower pops first. The largest score (2000 · 2^42 + 2^42 ≈ 8.8 · 10^15) stays below
/// 2^53, so Redis's doubles hold it exactly. (The scripts compute it; this is its definition.)
pub fn ready_score(priority: i16, round: i64) -> i64 {
    (MAX_PRIORITY - i64::from(priority)) * (1_i64 << ROUND_BITS)
        + round.clamp(0, (1_i64 << ROUND_BITS) - 1)
}

/// The scheduled-set member of a job: `"<id>|<user id>|<priority>|<type>"` (its round is
/// assigned when it becomes due).
pub fn scheduled_member(id: Uuid, user_id: Uuid, priority: i16, job_type: JobType) -> String {
    format!("{id}|{user_id}|{priority}|{}", job_type.as_str())
}

/// The Redis key names under one prefix.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    /// `{prefix}q:`: the scripts name the per-type keys after it.
    pub(crate) stem: String,
    pub(crate) scheduled: String,
    pub(crate) lease: String,
    pub(crate) leased: String,
    pub(crate) paused: String,
    pub(crate) swept: String,
    pub(crate) rounds: String,
    pub(crate) served: String,
}

impl Keys {
    /// The ready set of `job_type`.
    pub(crate) fn ready(&self, job_type: JobType) -> String {
        format!("{}ready:{}", self.stem, job_type.as_str())
    }

    /// The key names under `prefix`.
    pub(crate) fn new(prefix: &str) -> Self {
        Self {
            stem: format!("{prefix}q:"),
            scheduled: format!("{prefix}q:scheduled"),
            lease: format!("{prefix}q:lease"),
            leased: format!("{prefix}q:leased"),
            paused: format!("{prefix}q:paused"),
            // Renamed when the index's layout changed (per-type ready sets), so that the
            // first sweep after an upgrade is a full one and re-indexes every queued job.
            swept: format!("{prefix}q:swept:v2"),
            rounds: format!("{prefix}q:rounds"),
            served: format!("{prefix}q:served"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ready_score;

    #[test]
    fn scores_order_by_priority_then_round_and_stay_exact_in_a_double() {
        assert!(ready_score(0, 1) < ready_score(0, 2));
        // A higher priority in a much later round still comes first.
        assert!(ready_score(1, 1 << 41) < ready_score(0, 0));
        // The largest score a job can get is exact in an f64 (Redis scores are doubles).
        let largest = ready_score(-1000, i64::MAX);
        assert!(largest < (1_i64 << 53));
        assert_eq!(largest as f64 as i64, largest);
    }
}
