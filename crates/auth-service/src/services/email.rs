//! Outgoing email: verification and password-reset messages, sent through SMTP in the
//! background so that a slow or failing mail server never delays or fails a request.

use std::time::Duration;

use domain::Email;
use lettre::message::header::ContentTransferEncoding;
use lettre::message::header::ContentType;
use lettre::message::{Body, Mailbox};
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};

/// Sends (or, without `SMTP_URL`, logs) the service's emails.
#[derive(Clone)]
pub struct Mailer {
    transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from: Mailbox,
    frontend: String,
    runtime: tokio::runtime::Handle,
}

/// Building the SMTP transport failed.
#[derive(Debug, thiserror::Error)]
#[error("SMTP_URL: {0}")]
pub struct MailerError(String);

impl Mailer {
    /// A mailer for `smtp_url` (TLS when the URL asks for it: `smtps://` or `?tls=required`),
    /// sending from `from`, with links into `frontend`. Deliveries run on the current runtime.
    pub fn new(
        smtp_url: Option<&str>,
        from: &str,
        frontend: &str,
        timeout: Duration,
    ) -> Result<Self, MailerError> {
        let transport = smtp_url
            .map(|url| {
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map(|builder| builder.timeout(Some(timeout)).build())
                    .map_err(|e| MailerError(e.to_string()))
            })
            .transpose()?;
        let from = from
            .parse::<Mailbox>()
            .map_err(|e| MailerError(format!("MAIL_FROM: {e}")))?;
        Ok(Self {
            transport,
            from,
            frontend: frontend.trim_end_matches('/').to_owned(),
            runtime: tokio::runtime::Handle::current(),
        })
    }

    /// The verification email: a link and a six-digit code.
    pub fn send_verification(&self, to: &Email, link_token: &str, code: &str) {
        let body = format!(
            "Welcome to Task Vault!\r\n\r\nConfirm your email address by opening this link:\r\n\r\n{}/verify-email?token={link_token}\r\n\r\nor enter this code in the app:\r\n\r\nVerification code: {code}\r\n\r\nThe code expires soon; if you did not sign up, ignore this email.\r\n",
            self.frontend
        );
        self.send_in_background(
            to,
            "Confirm your Task Vault email address",
            body,
            "verification",
        );
    }

    /// The password-reset email: a link.
    pub fn send_password_reset(&self, to: &Email, link_token: &str) {
        let body = format!(
            "Someone asked to reset the password of your Task Vault account.\r\n\r\nSet a new password by opening this link:\r\n\r\n{}/reset-password?token={link_token}\r\n\r\nIf it was not you, ignore this email: your password stays as it is.\r\n",
            self.frontend
        );
        self.send_in_background(to, "Reset your Task Vault password", body, "password_reset");
    }

    fn send_in_background(&self, to: &Email, subject: &str, body: String, kind: &'static str) {
        let Some(transport) = self.transport.clone() else {
            tracing::info!(to = %to, subject, body = %body, "SMTP_URL is not set: email not sent, logged instead");
            metrics::counter!("auth_emails_total", "kind" => kind, "outcome" => "logged")
                .increment(1);
            return;
        };
        let message = match self.message(to, subject, body) {
            Ok(message) => message,
            Err(error) => {
                tracing::error!(to = %to, kind, %error, "cannot build email");
                metrics::counter!("auth_emails_total", "kind" => kind, "outcome" => "failed")
                    .increment(1);
                return;
            }
        };
        let to = to.clone();
        self.runtime.spawn(async move {
            match transport.send(message).await {
                Ok(_) => {
                    tracing::debug!(to = %to, kind, "email sent");
                    metrics::counter!("auth_emails_total", "kind" => kind, "outcome" => "sent")
                        .increment(1);
                }
                Err(error) => {
                    // The error names the server's answer, never the message (which holds tokens).
                    tracing::warn!(to = %to, kind, %error, "email not delivered");
                    metrics::counter!("auth_emails_total", "kind" => kind, "outcome" => "failed")
                        .increment(1);
                }
            }
        });
    }

    fn message(&self, to: &Email, subject: &str, body: String) -> Result<Message, String> {
        let to = to.as_str().parse::<Mailbox>().map_err(|e| e.to_string())?;
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(plain_body(body))
            .map_err(|e| e.to_string())
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
            .all(|line| line.len() <= 998 && !line.contains('\r') && !line.contains('\n'));
    if seven_bit {
        Body::dangerous_pre_encoded(crlf.into_bytes(), ContentTransferEncoding::SevenBit)
    } else {
        Body::new(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How the transport built for `url` secures the connection, as lettre prints it.
    fn tls_of(url: &str) -> String {
        let mailer = Mailer::new(
            Some(url),
            "Task Vault <no-reply@localhost>",
            "http://localhost:5173",
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
            "http://localhost:5173",
            Duration::from_secs(1),
        )
        .err()
        .expect("an unknown scheme is refused");
        assert!(!error.to_string().contains("secret"), "{error}");
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
