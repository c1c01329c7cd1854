//! The events published on users' channels: channel names and `jobUpdated` texts.

use uuid::Uuid;

/// The channel on which a user's job events are published.
pub fn events_channel(prefix: &str, user_id: Uuid) -> String {
    format!("{prefix}events:user:{user_id}")
}

/// The `jobUpdated` event for a job object.
pub fn job_updated_event(job: &serde_json::Value) -> String {
    serde_json::json!({"event": "jobUpdated", "data": {"job": job}}).to_string()
}

/// [`job_updated_event`] for a job object already serialized (`job_json` must be one JSON
/// object): the same text, without parsing or serializing the job again.
pub fn job_updated_event_from_json(job_json: &str) -> String {
    format!(r#"{{"data":{{"job":{job_json}}},"event":"jobUpdated"}}"#)
}
