//! `cargo run -p job-service`: the job API on `JOBS_ADDR` (default 127.0.0.1:8082).

use std::process::ExitCode;

use job_service::{Application, Settings};

#[tokio::main]
async fn main() -> ExitCode {
    let settings = match Settings::load() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("job-service: {error}");
            return ExitCode::from(2);
        }
    };
    service_kit::telemetry::init(&settings.log_format);
    let app = match Application::build(settings).await {
        Ok(app) => app,
        Err(error) => {
            eprintln!("job-service: {error}");
            return match error {
                job_service::StartError::Settings(_) => ExitCode::from(2),
                _ => ExitCode::FAILURE,
            };
        }
    };
    tracing::info!(port = app.port(), "job service listening");
    match app.run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("job-service: {error}");
            ExitCode::FAILURE
        }
    }
}
