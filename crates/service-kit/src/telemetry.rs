//! Log output for every process.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

/// Installs the global `tracing` subscriber: `json` for log collectors, anything else for
/// humans. `RUST_LOG` refines the level (default `info`). Calling it twice is harmless.
pub fn init(log_format: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only on a terminal: log files and collectors get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::stdout().is_terminal());
    let result = if log_format.eq_ignore_ascii_case("json") {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
    // A subscriber already installed (tests start several services in one process) is fine.
    drop(result);
}
