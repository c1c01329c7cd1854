//! Accounts: sign-up, email verification (link or code), password reset and change.

use diesel_async::{AsyncConnection as _, AsyncPgConnection};
use domain::{Email, Password, SessionId, UserId, ValidationErrors};
use persistence::email_tokens::{self, Purpose};
use persistence::otp_codes::GuessLimits;
use persistence::users::UserRecord;
use persistence::{PersistenceError, otp_codes, sessions, users};

use crate::error::ApiError;
use crate::secrets;
use crate::services::expires_after;
use crate::state::AppState;

/// Wrong guesses after which a verification code is void, and after which an account (across
/// all its codes: a resend does not reset this) accepts no code for a day, only the link.
pub const OTP_LIMITS: GuessLimits = GuessLimits {
    per_code: 5,
    per_account: 10,
    account_window: chrono::Duration::hours(24),
};

/// Creates an account unless the address is taken, and sends the verification email. Hashes
/// first in both cases, so a taken address costs the same time as a new one.
pub async fn signup(state: &AppState, email: &str, password: String) -> Result<(), ApiError> {
    let mut errors = ValidationErrors::new();
    let email = errors.check(Email::parse(email, "email"));
    let password = errors.check(Password::parse(password, "password"));
    let (Some(email), Some(password)) = (email, password) else {
        return Err(errors.into());
    };
    let hash = state.hasher.hash(password.expose()).await?;
    let mut conn = state.conn().await?;
    if let Some(user) = users::insert_if_absent(&mut conn, UserId::new(), &email, &hash).await? {
        start_verification(state, &mut conn, &user).await?;
    }
    // One counter for taken and new addresses alike: metrics must not tell accounts apart.
    metrics::counter!("auth_signups_total").increment(1);
    Ok(())
}

/// Issues a fresh link and code (older unused links and the old code stop working) and emails
/// them.
async fn start_verification(
    state: &AppState,
    conn: &mut AsyncPgConnection,
    user: &UserRecord,
) -> Result<(), ApiError> {
    let token = secrets::new_token();
    let code = secrets::new_otp();
    email_tokens::delete_unused(conn, user.id, Purpose::VerifyEmail).await?;
    email_tokens::insert(
        conn,
        &secrets::token_hash(&token),
        user.id,
        Purpose::VerifyEmail,
        expires_after(state.settings.verification_ttl_secs),
    )
    .await?;
    otp_codes::replace(
        conn,
        user.id,
        &secrets::otp_hash(user.id, &code),
        expires_after(state.settings.otp_ttl_secs),
    )
    .await?;
    state.mailer.send_verification(&user.email, &token, &code);
    Ok(())
}

/// Sends a new verification email to an unverified account; does nothing (visibly the same)
/// for unknown or verified addresses. Each address may ask a few times an hour and a day
/// (429 beyond), counted alike whether or not it has an account.
pub async fn resend_verification(state: &AppState, email: &str) -> Result<(), ApiError> {
    let email = Email::parse(email, "email")?;
    state.limiter.check_resend(email.as_str()).await?;
    let mut conn = state.conn().await?;
    if let Some(user) = users::find_by_email(&mut conn, &email).await?
        && !user.email_verified
    {
        start_verification(state, &mut conn, &user).await?;
    }
    Ok(())
}

/// Spends a verification link token and marks the address proven.
pub async fn verify_link(state: &AppState, token: &str) -> Result<UserRecord, ApiError> {
    let mut conn = state.conn().await?;
    let user_id =
        email_tokens::consume(&mut conn, &secrets::token_hash(token), Purpose::VerifyEmail)
            .await?
            .ok_or(ApiError::InvalidLinkToken)?;
    let user = users::mark_verified(&mut conn, user_id).await?;
    otp_codes::delete(&mut conn, user_id).await?;
    Ok(user)
}

/// Checks a verification code and marks the address proven.
pub async fn verify_otp(state: &AppState, email: &str, otp: &str) -> Result<UserRecord, ApiError> {
    let mut errors = ValidationErrors::new();
    let email = errors.check(Email::parse(email, "email"));
    let otp = otp.trim();
    if otp.len() != 6 || !otp.bytes().all(|b| b.is_ascii_digit()) {
        errors.add("otp", "must be the six digits from the email");
    }
    let Some(email) = email.filter(|_| errors.is_empty()) else {
        return Err(errors.into());
    };
    let mut conn = state.conn().await?;
    let user = users::find_by_email(&mut conn, &email).await?;
    let accepted = match &user {
        Some(user) => {
            otp_codes::check(
                &mut conn,
                user.id,
                secrets::otp_hash(user.id, otp),
                OTP_LIMITS,
            )
            .await?
        }
        None => false,
    };
    let Some(user) = user.filter(|_| accepted) else {
        // Counted alike for unknown addresses, so metrics do not tell accounts apart.
        metrics::counter!("auth_otp_checks_total", "outcome" => "refused").increment(1);
        return Err(ApiError::InvalidOtp);
    };
    metrics::counter!("auth_otp_checks_total", "outcome" => "accepted").increment(1);
    let user = users::mark_verified(&mut conn, user.id).await?;
    email_tokens::delete_unused(&mut conn, user.id, Purpose::VerifyEmail).await?;
    Ok(user)
}

/// Emails a password-reset link to a known address; does nothing (visibly the same) for
/// unknown ones.
pub async fn forgot_password(state: &AppState, email: &str) -> Result<(), ApiError> {
    let email = Email::parse(email, "email")?;
    let mut conn = state.conn().await?;
    if let Some(user) = users::find_by_email(&mut conn, &email).await? {
        let token = secrets::new_token();
        email_tokens::delete_unused(&mut conn, user.id, Purpose::ResetPassword).await?;
        email_tokens::insert(
            &mut conn,
            &secrets::token_hash(&token),
            user.id,
            Purpose::ResetPassword,
            expires_after(state.settings.reset_ttl_secs),
        )
        .await?;
        state.mailer.send_password_reset(&user.email, &token);
    }
    Ok(())
}

/// Sets a new password with a reset link token, revokes every session of the user and lifts
/// the failed-login lock. The link proves the holder reads the mailbox, so the address counts as
/// verified too.
pub async fn reset_password(
    state: &AppState,
    token: &str,
    password: String,
) -> Result<(), ApiError> {
    let password = Password::parse(password, "password")?;
    let hash = state.hasher.hash(password.expose()).await?;
    let token_hash = secrets::token_hash(token);
    let mut conn = state.conn().await?;
    let (user, revoked) = conn
        .transaction(async |conn| {
            let Some(user_id) =
                email_tokens::consume(conn, &token_hash, Purpose::ResetPassword).await?
            else {
                return Ok(None);
            };
            users::set_password(conn, user_id, &hash).await?;
            let user = users::mark_verified(conn, user_id).await?;
            email_tokens::delete_unused(conn, user_id, Purpose::ResetPassword).await?;
            let revoked = sessions::revoke_all_for_user(conn, user_id, None).await?;
            Ok::<_, PersistenceError>(Some((user, revoked)))
        })
        .await?
        .ok_or(ApiError::InvalidLinkToken)?;
    state.revocations.revoke_or_retry(&revoked).await;
    // Whoever locked the account by guessing must not keep its owner out after a reset.
    state.limiter.forget_account(user.email.as_str()).await?;
    Ok(())
}

/// Changes the password of the signed-in user and revokes their other sessions. Wrong current
/// passwords from `ip` count as failed logins from that client (429 while it must wait).
pub async fn change_password(
    state: &AppState,
    ip: std::net::IpAddr,
    user_id: UserId,
    current_session: SessionId,
    current_password: &str,
    new_password: String,
) -> Result<(), ApiError> {
    let new_password = Password::parse(new_password, "new_password")?;
    let mut conn = state.conn().await?;
    let user = users::find(&mut conn, user_id)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    drop(conn);
    // Wrong current passwords count as failed logins: a stolen access token must not allow
    // guessing the password at bcrypt speed.
    let account = user.email.as_str();
    let earlier_failures = state.limiter.check_login(ip, account, false).await?;
    if !state
        .hasher
        .verify(current_password, &user.password_hash)
        .await?
    {
        state.limiter.record_login_failure(ip, account).await?;
        return Err(ApiError::WrongCurrentPassword);
    }
    if earlier_failures > 0 {
        state
            .limiter
            .clear_login_failures(ip, account, earlier_failures)
            .await?;
    }
    let hash = state.hasher.hash(new_password.expose()).await?;
    let mut conn = state.conn().await?;
    let revoked = conn
        .transaction(async |conn| {
            users::set_password(conn, user_id, &hash).await?;
            sessions::revoke_all_for_user(conn, user_id, Some(current_session)).await
        })
        .await?;
    state.revocations.revoke_or_retry(&revoked).await;
    Ok(())
}

/// The signed-in user's account (401 if it no longer exists).
pub async fn me(state: &AppState, user_id: UserId) -> Result<UserRecord, ApiError> {
    let mut conn = state.conn().await?;
    users::find(&mut conn, user_id)
        .await?
        .ok_or(ApiError::Unauthorized)
}
