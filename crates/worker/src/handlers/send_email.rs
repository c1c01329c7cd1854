//! `send_email`: sends `data.subject` / `data.body` to `data.to` through SMTP (`SMTP_URL`), or
//! logs the message when no SMTP server is configured.

use domain::job::JobType;
use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use service_kit::mail::{Delivery, Mailer};

use super::{Handler, HandlerError, JobContext};

/// Sends email.
pub struct SendEmail {
    mailer: Mailer,
}

impl SendEmail {
    /// The handler over `mailer`.
    pub fn new(mailer: Mailer) -> Self {
        Self { mailer }
    }
}

fn field<'a>(data: &'a Value, name: &str) -> Result<&'a str, HandlerError> {
    data.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| HandlerError::new(format!("data.{name} is missing")))
}

impl Handler for SendEmail {
    fn job_type(&self) -> JobType {
        JobType::SendEmail
    }

    fn run<'a>(&'a self, ctx: &'a JobContext) -> BoxFuture<'a, Result<Value, HandlerError>> {
        Box::pin(async move {
            let to = field(&ctx.data, "to")?;
            let subject = field(&ctx.data, "subject")?;
            let body = field(&ctx.data, "body")?;
            let delivery = self
                .mailer
                .send(to, subject, body.to_owned())
                .await
                .map_err(|e| HandlerError::new(e.to_string()))?;
            Ok(match delivery {
                Delivery::Sent => json!({"sent": true, "to": to}),
                Delivery::Logged => json!({"sent": false, "logged": true, "to": to}),
            })
        })
    }
}
