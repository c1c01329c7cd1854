//! Group commit of single submits (`SUBMIT_GROUP_MAX`).
//!
//! One committed insert per job made PostgreSQL the bound of `POST /api/jobs/submit`: each
//! commit is a round trip and a WAL flush. Here each submit hands its checked row to a task of
//! its HTTP worker thread, which stores whatever has arrived while its previous insert was in
//! flight (up to `SUBMIT_GROUP_MAX` rows) with one multi-row statement, one commit
//! ([`persistence::job_batch::insert_each`]). Nothing waits on purpose: an idle service
//! stores the first submit at once, and groups form only under load, as in a database's group
//! commit.
//!
//! The guarantees of a lone submit hold for each row:
//!
//! - **committed before 201**: a waiter is answered only after the statement committed;
//! - **enqueued after commit, exactly once**: the task itself (not the request) puts the new
//!   rows in the dispatch index and publishes their events, in one Redis round trip, before
//!   answering; a client that disconnects meanwhile loses nothing (its row is already in the
//!   group) and duplicates nothing (the row was handed over once, with its id);
//! - **per-row outcome**: a row whose `Idempotency-Key` its user already used is skipped and
//!   answered 200 with the earlier job, the others go in; a statement that fails as a whole
//!   (a row the database refuses, such as one whose user was deleted meanwhile) is retried one
//!   row at a time, so each waiter gets what a lone submit would have got; when no connection
//!   can be had, every waiter gets the same 503 a lone submit would.
//!
//! A retried row whose id is found already stored (the first statement committed before its
//! connection broke) is answered as created, never inserted twice.

use persistence::PersistenceError;
use persistence::PgPool;
use persistence::job_batch::EachInserted;
use persistence::jobs::{Inserted, Job, NewJob};
use tokio::sync::{mpsc, oneshot};

use crate::error::ApiError;

/// What a waiter gets: its row as stored (or the earlier job with its idempotency key), or the
/// error a lone submit would have answered.
type Answer = Result<Inserted, ApiError>;

/// A row waiting for its group, with the way back to its request.
struct Waiting {
    job: NewJob,
    answer: oneshot::Sender<Answer>,
}

/// Hands single submits to the group-commit task of one HTTP worker thread (see the module
/// documentation). Cloned into every request of that thread.
#[derive(Clone)]
pub struct SubmitGroups {
    tx: mpsc::UnboundedSender<Waiting>,
}

impl SubmitGroups {
    /// Starts the task on the current runtime: it stores at most `max` rows per statement
    /// (at least one), and announces the new ones through `writes`. It ends when every clone
    /// of the handle is gone.
    pub fn start(
        pg: PgPool,
        queue: job_queue::Queue,
        writes: job_queue::Coalescer,
        max: usize,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(rx, pg, queue, writes, max.max(1)));
        Self { tx }
    }

    /// Stores `job` with whatever else is waiting, indexes it once committed, and returns it
    /// (or, for a repeated idempotency key, the user's earlier job).
    pub async fn submit(&self, job: NewJob) -> Result<Inserted, ApiError> {
        let (answer, wait) = oneshot::channel();
        let stopped = || ApiError::Unavailable("the submit group task stopped".to_owned());
        self.tx
            .send(Waiting { job, answer })
            .map_err(|_| stopped())?;
        wait.await.map_err(|_| stopped())?
    }
}

/// The group-commit loop: one group in flight at a time; what arrives meanwhile is the next
/// group. The Redis writes and answers of a committed group run beside the next insert.
async fn run(
    mut rx: mpsc::UnboundedReceiver<Waiting>,
    pg: PgPool,
    queue: job_queue::Queue,
    writes: job_queue::Coalescer,
    max: usize,
) {
    let mut waiting = Vec::with_capacity(max);
    while rx.recv_many(&mut waiting, max).await > 0 {
        let (jobs, answers): (Vec<NewJob>, Vec<oneshot::Sender<Answer>>) =
            waiting.drain(..).map(|w| (w.job, w.answer)).unzip();
        metrics::counter!("jobs_submit_groups_total").increment(1);
        metrics::counter!("jobs_submit_group_jobs_total").increment(jobs.len() as u64);
        let stored = store(&pg, jobs).await;
        let queue = queue.clone();
        let writes = writes.clone();
        tokio::spawn(async move {
            announce_and_answer(&queue, &writes, stored, answers).await;
        });
    }
}

/// Indexes and announces the group's new rows (one Redis round trip, after the commit), then
/// answers every waiter.
async fn announce_and_answer(
    queue: &job_queue::Queue,
    writes: &job_queue::Coalescer,
    stored: Vec<Answer>,
    answers: Vec<oneshot::Sender<Answer>>,
) {
    let created: Vec<&Job> = stored
        .iter()
        .filter_map(|answer| match answer {
            Ok(Inserted::Created(job)) => Some(job),
            _ => None,
        })
        .collect();
    if !created.is_empty() {
        let rendered: Vec<String> = created.iter().map(|job| job.to_json_string()).collect();
        let batch = crate::routes::index_and_events(queue, created.iter().copied(), &rendered);
        if let Err(error) = writes.send(batch).await {
            tracing::warn!(jobs = created.len(), %error, "Redis write failed after commit; the reconciler will repair the index");
        }
    }
    for (answer, waiter) in stored.into_iter().zip(answers) {
        // A waiter that is gone (its client disconnected) still has its job stored and indexed.
        let _ = waiter.send(answer);
    }
}

/// Stores one group: one statement for every row; if it fails as a whole, one row at a time.
async fn store(pg: &PgPool, jobs: Vec<NewJob>) -> Vec<Answer> {
    let n = jobs.len();
    let mut conn = match pg.get().await {
        Ok(conn) => conn,
        Err(error) => {
            let error = ApiError::from(PersistenceError::from(error));
            return (0..n).map(|_| Err(same_error(&error))).collect();
        }
    };
    let error = match persistence::job_batch::insert_each(&mut conn, &jobs).await {
        Ok(each) => {
            return jobs
                .into_iter()
                .zip(each)
                .map(|(job, row)| match row {
                    EachInserted::Created => Ok(Inserted::Created(job.into_stored())),
                    EachInserted::Existing(earlier) => Ok(Inserted::Existing(*earlier)),
                    EachInserted::Conflict(error) => Err(error.into()),
                })
                .collect();
        }
        Err(error) => error,
    };
    drop(conn);
    if n == 1 {
        return vec![Err(error.into())];
    }
    tracing::info!(jobs = n, %error, "a grouped insert failed; storing its rows one at a time");
    metrics::counter!("jobs_submit_group_fallbacks_total").increment(1);
    let mut answers = Vec::with_capacity(n);
    for job in jobs {
        answers.push(store_one(pg, job).await);
    }
    answers
}

/// One row on its own, as a lone submit stores it; a row found already stored under its id
/// (the group's statement committed before its connection broke) is answered as created.
async fn store_one(pg: &PgPool, job: NewJob) -> Answer {
    let mut conn = pg.get().await.map_err(PersistenceError::from)?;
    match persistence::jobs::insert(&mut conn, &job).await {
        // Its own row, stored by the group's statement after all.
        Ok(Inserted::Existing(stored)) if stored.id == job.id => Ok(Inserted::Created(stored)),
        Ok(inserted) => Ok(inserted),
        Err(PersistenceError::Conflict { constraint }) if constraint == "jobs_pkey" => {
            match persistence::jobs::find(&mut conn, job.id, Some(job.user_id)).await? {
                Some(stored) => Ok(Inserted::Created(stored)),
                None => Err(PersistenceError::Conflict { constraint }.into()),
            }
        }
        Err(error) => Err(error.into()),
    }
}

/// The same problem for another waiter (database errors carry only text).
fn same_error(error: &ApiError) -> ApiError {
    match error {
        ApiError::Unavailable(cause) => ApiError::Unavailable(cause.clone()),
        ApiError::Internal(cause) => ApiError::Internal(cause.clone()),
        other => ApiError::Internal(other.to_string()),
    }
}
