//! Outgoing email through SMTP (lettre), shared by the auth service's messages and the
//! worker's `send_email` jobs. Without `SMTP_URL` the message is written to the log instead.

use std::time::Duration;

use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Body, Mailbox};
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};
use sha2::{Digest as _, Sha256};

use crate::budget::{Budgets, Window};

/// What became of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The SMTP server accepted it.
    Sent,
    /// No `SMTP_URL` is configured: it was written to the log.
    Logged,
}

/// Why a mailer could not be built or a message not delivered. Messages never contain the
/// SMTP credentials or the email's body.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// `SMTP_URL` is not a usable SMTP URL.
    #[error("SMTP_URL: {0}")]
    Url(String),
    /// `MAIL_FROM` is not an address.
    #[error("MAIL_FROM: {0}")]
    From(String),
    /// The recipient is not an address.
    #[error("invalid recipient: {0}")]
    Recipient(String),
    /// The message could not be assembled.
    #[error("cannot build the email: {0}")]
    Build(String),
    /// The server refused, timed out or could not be reached.
    #[error("SMTP delivery failed: {0}")]
    Delivery(String),
    /// The recipient has had as many emails as the budget allows; nothing was sent.
    #[error("not sent: this recipient's email budget is spent; it renews in {retry_after_secs} s")]
    RecipientBudget {
        /// Seconds until the budget allows another email.
        retry_after_secs: u64,
    },
    /// The budget could not be checked (Redis), so nothing was sent.
    #[error("not sent: the recipient's email budget cannot be checked: {0}")]
    BudgetUnavailable(String),
}

/// The per-recipient budget of `EMAILS_PER_RECIPIENT_PER_10_MIN` and
/// `EMAILS_PER_RECIPIENT_PER_DAY` (a limit of 0 leaves that window out).
pub fn recipient_windows(per_10_min: u32, per_day: u32) -> Vec<Window> {
    [
        Window::new(per_10_min, Duration::from_secs(10 * 60)),
        Window::new(per_day, Duration::from_secs(24 * 60 * 60)),
    ]
    .into_iter()
    .filter(|w| w.limit > 0)
    .collect()
}

/// Sends plain-text email from one sender.
#[derive(Clone)]
pub struct Mailer {
    transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from: Mailbox,
    budget: Option<(Budgets, Vec<Window>)>,
}

impl Mailer {
    /// A mailer for `smtp_url` (unset or blank: log only; TLS when the URL asks for it:
    /// `smtps://` or `?tls=required`), sending as `from`; one delivery may take `timeout`.
    pub fn new(smtp_url: Option<&str>, from: &str, timeout: Duration) -> Result<Self, MailError> {
        let transport = smtp_url
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(|url| {
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map(|builder| builder.timeout(Some(timeout)).build())
                    .map_err(|e| MailError::Url(e.to_string()))
            })
            .transpose()?;
        let from = from
            .parse::<Mailbox>()
            .map_err(|e| MailError::From(e.to_string()))?;
        Ok(Self {
            transport,
            from,
            budget: None,
        })
    }

    /// Also limits how many emails one recipient gets (across every process sharing the
    /// Redis of `budgets`): past `windows`, [`Mailer::send`] sends nothing and answers
    /// [`MailError::RecipientBudget`]. Bounds what anyone can make the system send to an
    /// address that is not theirs.
    pub fn with_recipient_budget(mut self, budgets: Budgets, windows: Vec<Window>) -> Self {
        self.budget = (!windows.is_empty()).then_some((budgets, windows));
        self
    }

    /// Spends one email of `to`'s budget.
    async fn spend_budget(&self, to: &str) -> Result<(), MailError> {
        let Some((budgets, windows)) = &self.budget else {
            return Ok(());
        };
        // Keyed by a hash, so Redis holds no addresses.
        let digest = Sha256::digest(to.trim().to_lowercase().as_bytes());
        let name = format!("email:{}", hex::encode(digest));
        match budgets.spend(&name, windows).await {
            Ok(None) => Ok(()),
            Ok(Some(wait)) => Err(MailError::RecipientBudget {
                retry_after_secs: wait.as_secs().max(1),
            }),
            Err(error) => Err(MailError::BudgetUnavailable(error.to_string())),
        }
    }

    /// Sends `body` to `to`, or logs it when no SMTP server is configured; with a recipient
    /// budget, only while `to`'s budget lasts.
    pub async fn send(&self, to: &str, subject: &str, body: String) -> Result<Delivery, MailError> {
        self.spend_budget(to).await?;
        let Some(transport) = &self.transport else {
            tracing::info!(to, subject, body = %body, "SMTP_URL is not set: email not sent, logged instead");
            return Ok(Delivery::Logged);
        };
        let recipient = to
            .parse::<Mailbox>()
            .map_err(|e| MailError::Recipient(e.to_string()))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(recipient)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(plain_body(body))
            .map_err(|e| MailError::Build(e.to_string()))?;
        transport
            .send(message)
            .await
            .map_err(|e| MailError::Delivery(e.to_string()))?;
        Ok(Delivery::Sent)
    }
}

/// The body as 7bit when it is plain ASCII with lines within the SMTP limit, so that links and
/// codes arrive verbatim: lettre on its own switches to quoted-printable past 76 characters,
/// which would break a long link over two lines.
fn plain_body(body: String) -> Body {
    let crlf = body.replace("\r\n", "\n").replace('\n', "\r\n");
    let seven_bit = crlf.is_ascii()
        && !crlf.bytes().any(|b| b == 0)
        && crlf
            .split("\r\n")
            .all(|line| line.len() <= 998 && !line.contains('\r'));
    if seven_bit {
        Body::dangerous_pre_encoded(crlf.into_bytes(), ContentTransferEncoding::SevenBit)
    } else {
        Body::new(body)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// How the transport built for `url` secures the connection, as lettre prints it.
    fn tls_of(url: &str) -> String {
        let mailer = Mailer::new(
            Some(url),
            "Task Vault <no-reply@localhost>",
            Duration::from_secs(1),
        )
        .unwrap();
        let debug = format!("{:?}", mailer.transport.unwrap());
        let start = debug
            .find("tls: ")
            .expect("the transport prints its TLS mode");
        debug[start + 5..]
            .split(['(', ',', ' '])
            .next()
            .unwrap()
            .to_owned()
    }

    #[tokio::test]
    async fn smtp_urls_that_ask_for_tls_get_it() {
        assert_eq!(tls_of("smtps://mail.example.com"), "Wrapper");
        assert_eq!(
            tls_of("smtp://mail.example.com:587?tls=required"),
            "Required"
        );
        assert_eq!(
            tls_of("smtps://user:secret@mail.example.com:465"),
            "Wrapper"
        );
        assert_eq!(tls_of("smtp://127.0.0.1:2525"), "None");
    }

    #[tokio::test]
    async fn smtp_errors_do_not_echo_credentials() {
        let error = Mailer::new(
            Some("ftp://user:secret@mail.example.com"),
            "Task Vault <no-reply@localhost>",
            Duration::from_secs(1),
        )
        .err()
        .expect("an unknown scheme is refused");
        assert!(!error.to_string().contains("secret"), "{error}");
    }

    #[tokio::test]
    async fn without_a_server_the_message_is_logged() {
        let mailer = Mailer::new(
            Some("  "),
            "Task Vault <no-reply@localhost>",
            Duration::from_secs(1),
        )
        .unwrap();
        let delivery = mailer
            .send("a@example.com", "Hi", "Body".to_owned())
            .await
            .unwrap();
        assert_eq!(delivery, Delivery::Logged);
    }

    #[test]
    fn long_ascii_lines_stay_seven_bit() {
        let link = format!(
            "http://localhost:5173/verify-email?token={}",
            "A".repeat(43)
        );
        let body = plain_body(format!("Open:\r\n{link}\r\n"));
        assert_eq!(body.encoding(), ContentTransferEncoding::SevenBit);
        assert!(String::from_utf8_lossy(body.as_ref()).contains(&link));
        assert_ne!(
            plain_body("caf\u{e9}".to_owned()).encoding(),
            ContentTransferEncoding::SevenBit
        );
    }
}
