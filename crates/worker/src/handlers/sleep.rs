//! `sleep`: waits `data.ms` milliseconds, reporting progress (and logging each step), stopping
//! early when cancelled.

use std::time::Duration;

use domain::job::JobType;
use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::{Handler, HandlerError, JobContext, LogLevel};

/// How often progress is reported.
const TICK: Duration = Duration::from_millis(250);

/// Sleeps.
pub struct Sleep;

impl Handler for Sleep {
    fn job_type(&self) -> JobType {
        JobType::Sleep
    }

    fn run<'a>(&'a self, ctx: &'a JobContext) -> BoxFuture<'a, Result<Value, HandlerError>> {
        Box::pin(async move {
            let ms = ctx.data.get("ms").and_then(Value::as_u64).unwrap_or(0);
            let total = Duration::from_millis(ms);
            let started = Instant::now();
            let end = started + total;
            ctx.log(LogLevel::Info, format!("sleeping {ms} ms"));
            loop {
                let now = Instant::now();
                if now >= end {
                    break;
                }
                tokio::select! {
                    () = ctx.cancel.cancelled() => {
                        let slept = started.elapsed().as_millis();
                        ctx.log(LogLevel::Warn, format!("stopped after {slept} of {ms} ms"));
                        return Err(HandlerError::new("stopped"));
                    }
                    () = tokio::time::sleep((end - now).min(TICK)) => {}
                }
                let slept = started.elapsed().as_millis().min(u128::from(ms));
                let done = slept.saturating_mul(100) / total.as_millis().max(1);
                if done < 100 {
                    ctx.log(
                        LogLevel::Info,
                        format!("progress {done}%: slept {slept} of {ms} ms"),
                    );
                    ctx.report_progress(u8::try_from(done).unwrap_or(99)).await;
                }
            }
            ctx.log(LogLevel::Info, format!("done: slept {ms} ms"));
            Ok(json!({"slept_ms": ms}))
        })
    }
}
