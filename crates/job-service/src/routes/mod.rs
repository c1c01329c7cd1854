//! The routes of `/api/jobs`, one file each.

pub mod cancel;
pub mod get;
pub mod list;
pub mod retry;
pub mod stats;
pub mod submit;

use actix_web::{HttpResponse, web};
use job_queue::Entry;
use persistence::jobs::Job;
use serde_json::json;
use uuid::Uuid;

use crate::AppState;
use crate::error::ApiError;

/// Mounts every job route. Literal paths come before `/{id}`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/jobs")
            .route("/submit", web::post().to(submit::submit))
            .route("/all", web::get().to(list::list_own))
            .route("/stats", web::get().to(stats::stats))
            .route("/admin/all", web::get().to(list::list_all))
            .route("/{id}", web::get().to(get::get))
            .route("/{id}/cancel", web::post().to(cancel::cancel))
            .route("/{id}/retry", web::post().to(retry::retry)),
    );
}

/// A path id; anything that is not a UUID names no job (404, not 400).
pub(crate) fn parse_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::NotFound)
}

/// `{"job": {...}}` with `status`.
pub(crate) fn job_response(mut builder: actix_web::HttpResponseBuilder, job: &Job) -> HttpResponse {
    builder.json(json!({"job": job.to_json()}))
}

/// What the dispatch index must do for a job changed by this service.
pub(crate) enum IndexChange {
    /// Put it in the ready or scheduled set, as its status says.
    Enqueue,
    /// Take it out of the ready and scheduled sets.
    Dequeue,
    /// Nothing (only publish the event).
    None,
}

/// Updates the dispatch index and publishes the `jobUpdated` event in one round trip. The row
/// is already committed, so a Redis failure is logged, not reported: the reconciler repairs
/// the index from PostgreSQL.
pub(crate) async fn announce(
    state: &AppState,
    writes: &job_queue::Coalescer,
    job: &Job,
    change: IndexChange,
) {
    let entry = Entry {
        id: job.id,
        priority: job.priority,
        created_at: job.created_at,
    };
    let mut batch = state.queue.batch();
    match change {
        IndexChange::Enqueue => match (job.status.as_str(), job.run_at) {
            ("scheduled", Some(run_at)) => {
                batch.schedule(entry, run_at);
            }
            _ => {
                batch.enqueue(entry);
            }
        },
        IndexChange::Dequeue => {
            batch.dequeue(entry);
        }
        IndexChange::None => {}
    }
    batch.publish(job.user_id, &job.to_json());
    if let Err(error) = writes.send(batch).await {
        tracing::warn!(job = %job.id, %error, "Redis write failed after commit; the reconciler will repair the index");
    }
}
