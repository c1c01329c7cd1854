//! Outgoing email: verification and password-reset messages, sent in the background so that a
//! slow or failing mail server never delays or fails a request.

use std::time::Duration;
use tracing::Instrument as _;

use domain::Email;
use service_kit::budget::{Budgets, Window};
use service_kit::mail::{self, Delivery, MailError};

/// Sends (or, without `SMTP_URL`, logs) the service's emails.
#[derive(Clone)]
pub struct Mailer {
    mail: mail::Mailer,
    frontend: String,
    runtime: tokio::runtime::Handle,
}

impl Mailer {
    /// A mailer for `smtp_url` (TLS when the URL asks for it: `smtps://` or `?tls=required`),
    /// sending from `from`, with links into `frontend`. Deliveries run on the current runtime.
    pub fn new(
        smtp_url: Option<&str>,
        from: &str,
        frontend: &str,
        timeout: Duration,
    ) -> Result<Self, MailError> {
        Ok(Self {
            mail: mail::Mailer::new(smtp_url, from, timeout)?,
            frontend: frontend.trim_end_matches('/').to_owned(),
            runtime: tokio::runtime::Handle::current(),
        })
    }

    /// Also limits the emails one address gets ([`mail::Mailer::with_recipient_budget`]):
    /// past the budget, messages are dropped (and counted), never queued.
    pub fn with_recipient_budget(mut self, budgets: Budgets, windows: Vec<Window>) -> Self {
        self.mail = self.mail.with_recipient_budget(budgets, windows);
        self
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

    fn send_in_background(
        &self,
        to: &Email,
        subject: &'static str,
        body: String,
        kind: &'static str,
    ) {
        let mail = self.mail.clone();
        let to = to.clone();
        self.runtime.spawn(
            async move {
                let outcome = match mail.send(to.as_str(), subject, body).await {
                    Ok(Delivery::Sent) => {
                        tracing::debug!(to = %to, kind, "email sent");
                        "sent"
                    }
                    Ok(Delivery::Logged) => "logged",
                    Err(MailError::RecipientBudget { .. }) => {
                        tracing::info!(to = %to, kind, "email not sent: the recipient's budget is spent");
                        "over_budget"
                    }
                    Err(error) => {
                        // The error names the server's answer, never the message (which holds tokens).
                        tracing::warn!(to = %to, kind, %error, "email not delivered");
                        "failed"
                    }
                };
                // No `kind` label: which emails go out (a reset link or none) tells known
                // addresses from unknown ones.
                metrics::counter!("auth_emails_total", "outcome" => outcome).increment(1);
            }
            // Its log lines carry the id of the request that asked for the email.
            .in_current_span(),
        );
    }
}
