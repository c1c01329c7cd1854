//! The sweep mark: whether Redis kept every index entry since the reconciler's last full
//! sweep ([`SweepMark`], [`Queue::sweep_mark`] and the methods that record or forget it).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{Queue, QueueError};

/// What [`Queue::sweep_mark`] found: whether Redis kept everything since the last full sweep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepMark {
    run_id: String,
    /// The key's value when the sweep began (a recorded mark, or the placeholder this sweep
    /// wrote): the sweep's own mark replaces exactly that value, or nothing.
    value: String,
    /// The time recorded by the last sweep of this Redis process (`None`: no sweep recorded,
    /// or Redis restarted or was flushed since, so the index may have lost anything).
    pub since: Option<DateTime<Utc>>,
}

impl Queue {
    /// Whether Redis may have lost index entries since the last sweep: `since` is `None` when
    /// no sweep is recorded under this prefix (a flush, an eviction, a new Redis) or the one
    /// recorded was made by another Redis process (a restart, which may lose the last writes,
    /// or a failover). Then a full sweep is due; otherwise a sweep of what changed since
    /// `since` is enough.
    pub async fn sweep_mark(&self) -> Result<SweepMark, QueueError> {
        let mut conn = self.conn(self.timeouts.command).await?;
        let (info, mark): (String, Option<String>) = redis::pipe()
            .cmd("INFO")
            .arg("server")
            .get(&self.keys.swept)
            .query_async(&mut conn)
            .await
            .map_err(|e| self.broken(e))?;
        let run_id = info
            .lines()
            .find_map(|line| line.strip_prefix("run_id:"))
            .unwrap_or_default()
            .trim()
            .to_owned();
        let since = mark.as_deref().and_then(|mark| {
            let (id, at) = mark.split_once(' ')?;
            if id != run_id {
                return None;
            }
            DateTime::parse_from_rfc3339(at)
                .ok()
                .map(|at| at.with_timezone(&Utc))
        });
        if let (Some(_), Some(value)) = (since, mark) {
            return Ok(SweepMark {
                run_id,
                value,
                since,
            });
        }
        // A full sweep begins: a placeholder (which reads as "no sweep recorded") marks it, so
        // that a flush during the sweep, which deletes the placeholder, keeps the sweep from
        // recording itself (see `set_sweep_mark`).
        let value = format!("{run_id} sweeping:{}", Uuid::new_v4().simple());
        redis::cmd("SET")
            .arg(&self.keys.swept)
            .arg(&value)
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| self.broken(e))?;
        Ok(SweepMark {
            run_id,
            value,
            since: None,
        })
    }

    /// Records a sweep of everything that changed before `at`, by the Redis process that
    /// `mark` was read from, if the mark is still the one the sweep began with: when Redis
    /// lost data during the sweep (a flush deletes the mark, a restart changes the process),
    /// entries the sweep restored may be gone again, so nothing is recorded and the next sweep
    /// is a full one. Returns whether the mark was recorded.
    pub async fn set_sweep_mark(
        &self,
        mark: &SweepMark,
        at: DateTime<Utc>,
    ) -> Result<bool, QueueError> {
        let mut conn = self.conn(self.timeouts.command).await?;
        let set: i64 = self
            .scripts
            .set_if_unchanged
            .key(&self.keys.swept)
            .arg(&mark.value)
            .arg(format!("{} {}", mark.run_id, at.to_rfc3339()))
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.broken(e))?;
        Ok(set == 1)
    }

    /// Forgets the last sweep, so that the next one reads every unfinished job (as after a
    /// loss of Redis data): for a writer that removed index entries it could not record.
    pub async fn forget_sweep_mark(&self) -> Result<(), QueueError> {
        let mut conn = self.conn(self.timeouts.command).await?;
        redis::cmd("DEL")
            .arg(&self.keys.swept)
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| self.broken(e))
    }
}
