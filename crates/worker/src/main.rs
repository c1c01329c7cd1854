//! `cargo run -p worker`: runs jobs; health and metrics on `WORKER_ADDR` (127.0.0.1:8083).

use std::process::ExitCode;

use worker::Settings;

#[tokio::main]
async fn main() -> ExitCode {
    let settings = match Settings::load() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("worker: {error}");
            return ExitCode::from(2);
        }
    };
    service_kit::telemetry::init(&settings.log_format);
    match worker::run(settings).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("worker: {error}");
            match error {
                worker::StartError::Settings(_) => ExitCode::from(2),
                _ => ExitCode::FAILURE,
            }
        }
    }
}
