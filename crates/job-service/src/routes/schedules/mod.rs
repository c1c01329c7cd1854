//! The routes of `/api/schedules`: periodic jobs (contract section 6).
//!
//! A schedule belongs to the user who created it; admins see and manage everyone's, anyone
//! else gets 404 for a schedule that is not theirs. The job service only records schedules;
//! the workers fire them (see `worker::schedules`). Creating or resuming one publishes a
//! wake-up, so that sleeping schedulers look at its first due time.

pub mod create;
pub mod list;
pub mod manage;

use actix_web::{HttpResponse, web};
use persistence::schedules::Schedule;
use serde_json::json;

use crate::AppState;
use crate::error::ApiError;

/// Mounts every schedule route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/schedules")
            .route("", web::post().to(create::create))
            .route("", web::get().to(list::list))
            .route("/{id}", web::get().to(manage::get))
            .route("/{id}", web::delete().to(manage::delete))
            .route("/{id}/pause", web::post().to(manage::pause))
            .route("/{id}/resume", web::post().to(manage::resume)),
    );
}

/// A path id; anything that is not a UUID names no schedule (404, not 400).
fn parse_id(raw: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(raw).map_err(|_| ApiError::NoSuchSchedule)
}

/// `{"schedule": {...}}` with `status`.
fn schedule_response(
    mut builder: actix_web::HttpResponseBuilder,
    schedule: &Schedule,
) -> HttpResponse {
    builder.json(json!({"schedule": schedule.to_json()}))
}

/// Wakes the workers' schedulers. The row is committed: a failed publish is logged, and the
/// schedulers still look again within `SCHEDULE_MAX_SLEEP_SECS`.
async fn wake_schedulers(state: &AppState) {
    let mut batch = state.queue.batch();
    batch.wake_schedulers();
    if let Err(error) = state.queue.send(batch).await {
        tracing::warn!(%error, "waking the schedulers failed; they look again within SCHEDULE_MAX_SLEEP_SECS");
    }
}
