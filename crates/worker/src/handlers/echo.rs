//! `echo`: `result` = `data`; for a job with parents, `{"data": data, "parents": [{"id",
//! "type", "result"}]}`, so that a flow can see what its parents produced.

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
        Box::pin(async move {
            if ctx.parents.is_empty() {
                return Ok(ctx.data.clone());
            }
            let parents: Vec<Value> = ctx
                .parents
                .iter()
                .map(|p| serde_json::json!({"id": p.id, "type": p.job_type, "result": p.result}))
                .collect();
            Ok(serde_json::json!({"data": ctx.data, "parents": parents}))
        })
    }
}
