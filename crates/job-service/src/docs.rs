//! The OpenAPI document (`/api-docs/openapi.json`, browsable at `/docs`).

use domain::job_view::JobView;
use utoipa::OpenApi;

/// `{"job": {...}}`.
#[derive(utoipa::ToSchema)]
#[expect(dead_code, reason = "documentation only")]
pub struct JobEnvelope {
    job: JobView<'static>,
}

/// `{"jobs": [...]}`: the jobs of a batch, in the order given.
#[derive(utoipa::ToSchema)]
#[expect(dead_code, reason = "documentation only")]
pub struct JobList {
    jobs: Vec<JobView<'static>>,
}

/// A page of jobs.
#[derive(utoipa::ToSchema)]
#[expect(dead_code, reason = "documentation only")]
pub struct JobPage {
    items: Vec<JobView<'static>>,
    next_cursor: Option<String>,
}

/// The level of a job log line.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum JobLogLevel {
    /// Detail.
    Debug,
    /// Normal progress.
    Info,
    /// Something odd, not fatal.
    Warn,
    /// A failure.
    Error,
}

/// One line of a job's log.
#[derive(utoipa::ToSchema)]
#[expect(dead_code, reason = "documentation only")]
pub struct JobLogLine {
    /// When the handler wrote it (the worker's clock).
    at: chrono::DateTime<chrono::Utc>,
    /// The attempt that wrote it (1 for the first).
    attempt: i32,
    level: JobLogLevel,
    message: String,
}

/// `{"lines": [...]}`: a job's newest 1,000 log lines, oldest first.
#[derive(utoipa::ToSchema)]
#[expect(dead_code, reason = "documentation only")]
pub struct JobLogs {
    lines: Vec<JobLogLine>,
}

/// The job a schedule creates at each due time.
#[derive(utoipa::ToSchema)]
#[expect(dead_code, reason = "documentation only")]
pub struct ScheduleJob {
    #[schema(rename = "type")]
    job_type: domain::job::JobType,
    #[schema(value_type = Object)]
    data: serde_json::Value,
    priority: i16,
    max_attempts: i32,
}

/// A schedule as the API returns it.
#[derive(utoipa::ToSchema)]
#[expect(
    dead_code,
    reason = "documentation only: the API renders persistence::schedules::Schedule::to_json"
)]
pub struct Schedule {
    id: uuid::Uuid,
    /// The owner (the jobs it creates are theirs).
    user_id: uuid::Uuid,
    name: String,
    /// Normalised (single spaces).
    cron: String,
    /// IANA zone name.
    timezone: String,
    job: ScheduleJob,
    paused: bool,
    /// The next due time; `null` while paused.
    next_run_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The due time of the last job created.
    last_run_at: Option<chrono::DateTime<chrono::Utc>>,
    created_at: chrono::DateTime<chrono::Utc>,
}

/// `{"schedule": {...}}`.
#[derive(utoipa::ToSchema)]
#[expect(dead_code, reason = "documentation only")]
pub struct ScheduleEnvelope {
    schedule: Schedule,
}

/// A page of schedules.
#[derive(utoipa::ToSchema)]
#[expect(dead_code, reason = "documentation only")]
pub struct SchedulePage {
    items: Vec<Schedule>,
    next_cursor: Option<String>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Task Vault job service",
        description = "Sections 4 and 6 of the Task Vault contract."
    ),
    paths(
        crate::routes::submit::submit,
        crate::routes::submit_batch::submit_batch,
        crate::routes::list::list_own,
        crate::routes::list::list_all,
        crate::routes::get::get,
        crate::routes::logs::logs,
        crate::routes::cancel::cancel,
        crate::routes::retry::retry,
        crate::routes::stats::stats,
        crate::routes::pause::pause,
        crate::routes::pause::resume,
        crate::routes::schedules::create::create,
        crate::routes::schedules::list::list,
        crate::routes::schedules::manage::get,
        crate::routes::schedules::manage::delete,
        crate::routes::schedules::manage::pause,
        crate::routes::schedules::manage::resume,
    ),
    components(schemas(
        JobView,
        JobEnvelope,
        JobPage,
        JobLogs,
        JobLogLine,
        JobLogLevel,
        JobList,
        Schedule,
        ScheduleJob,
        ScheduleEnvelope,
        SchedulePage,
        crate::routes::schedules::create::CreateSchedule,
        crate::routes::schedules::create::ScheduledJob,
        service_kit::Problem,
        crate::routes::submit::SubmitJob,
        crate::routes::submit_batch::SubmitBatch,
        crate::routes::pause::PauseRequest,
        crate::routes::pause::PausedTypes
    ))
)]
struct ApiDoc;

/// The document, every answer described ([`service_kit::openapi::finish`]). Every route needs
/// an access token: the auth service's `Authorization: Bearer` header or its `access_token`
/// cookie (the document's top-level security).
pub fn openapi() -> utoipa::openapi::OpenApi {
    use utoipa::openapi::security::{
        ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
    };
    let mut doc = ApiDoc::openapi();
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .build(),
        ),
    );
    components.add_security_scheme(
        "cookie",
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("access_token"))),
    );
    doc.security = Some(vec![
        SecurityRequirement::new("bearer", Vec::<String>::new()),
        SecurityRequirement::new("cookie", Vec::<String>::new()),
    ]);
    service_kit::openapi::finish(&mut doc);
    doc
}
