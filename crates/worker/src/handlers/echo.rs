//! `echo`: `result` = `data`.

use domain::job::JobType;
use futures_util::future::BoxFuture;
use serde_json::Value;

use super::{Handler, HandlerError, JobContext};

/// Returns its data.
pub struct Echo;

impl Handler for Echo {
    fn job_type(&self) -> JobType {
        JobType::Echo
    }

    fn run<'a>(&'a self, ctx: &'a JobContext) -> BoxFuture<'a, Result<Value, HandlerError>> {
        Box::pin(async move { Ok(ctx.data.clone()) })
    }
}
