//! `noop`: completes at once.

use domain::job::JobType;
use futures_util::future::BoxFuture;
use serde_json::Value;

use super::{Handler, HandlerError, JobContext};

/// Does nothing.
pub struct Noop;

impl Handler for Noop {
    fn job_type(&self) -> JobType {
        JobType::Noop
    }

    fn run<'a>(&'a self, _ctx: &'a JobContext) -> BoxFuture<'a, Result<Value, HandlerError>> {
        Box::pin(async { Ok(Value::Null) })
    }
}
