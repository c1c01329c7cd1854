//! `send_email`: sends `data.subject` / `data.body` to `data.to` through SMTP (`SMTP_URL`), or
//! logs the message when no SMTP server is configured.

use domain::job::JobType;
use futures_util::future::BoxFuture;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::{Value, json};

use super::{Handler, HandlerError, JobContext};

/// Where emails go.
#[derive(Clone)]
pub struct Mailer {
    transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from: Mailbox,
}

impl Mailer {
    /// A mailer for `smtp_url` (None or empty: log only) sending as `from`.
    pub fn new(smtp_url: Option<&str>, from: &str) -> Result<Self, String> {
        let from: Mailbox = from.parse().map_err(|e| format!("MAIL_FROM: {e}"))?;
        let transport = match smtp_url.map(str::trim).filter(|u| !u.is_empty()) {
            Some(url) => Some(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|e| format!("SMTP_URL: {e}"))?
                    .build(),
            ),
            None => None,
        };
        Ok(Self { transport, from })
    }
}

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
            let Some(transport) = &self.mailer.transport else {
                tracing::info!(job = %ctx.id, %to, %subject, %body, "SMTP_URL is unset: email logged instead of sent");
                return Ok(json!({"sent": false, "logged": true, "to": to}));
            };
            let recipient: Mailbox = to
                .parse()
                .map_err(|e| HandlerError::new(format!("invalid recipient: {e}")))?;
            let message = Message::builder()
                .from(self.mailer.from.clone())
                .to(recipient)
                .subject(subject)
                .body(body.to_owned())
                .map_err(|e| HandlerError::new(format!("cannot build the email: {e}")))?;
            transport
                .send(message)
                .await
                .map_err(|e| HandlerError::new(format!("SMTP delivery failed: {e}")))?;
            Ok(json!({"sent": true, "to": to}))
        })
    }
}
