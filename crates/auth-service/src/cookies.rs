//! The session cookies.

use actix_web::cookie::time::Duration as CookieDuration;
use actix_web::cookie::{Cookie, SameSite};

use crate::auth::{ACCESS_COOKIE, REFRESH_COOKIE};
use crate::settings::Settings;

/// Path of the refresh cookie: only the auth routes ever see it.
pub const REFRESH_COOKIE_PATH: &str = "/api/auth";

fn secs(value: u64) -> CookieDuration {
    CookieDuration::seconds(i64::try_from(value).unwrap_or(i64::MAX))
}

/// `access_token`: HttpOnly, SameSite=Lax, Path=/, lives as long as the token.
pub fn access(settings: &Settings, token: String) -> Cookie<'static> {
    Cookie::build(ACCESS_COOKIE, token)
        .http_only(true)
        .same_site(SameSite::Lax)
        .path("/")
        .secure(settings.cookie_secure)
        .max_age(secs(settings.access_token_ttl_secs))
        .finish()
}

/// `refresh_token`: HttpOnly, SameSite=Strict, Path=/api/auth, lives as long as the token.
pub fn refresh(settings: &Settings, token: String) -> Cookie<'static> {
    Cookie::build(REFRESH_COOKIE, token)
        .http_only(true)
        .same_site(SameSite::Strict)
        .path(REFRESH_COOKIE_PATH)
        .secure(settings.cookie_secure)
        .max_age(secs(settings.refresh_token_ttl_secs))
        .finish()
}

/// Both cookies, emptied and expired (same attributes, `Max-Age=0`).
pub fn cleared(settings: &Settings) -> [Cookie<'static>; 2] {
    let mut access = access(settings, String::new());
    access.set_max_age(secs(0));
    let mut refresh = refresh(settings, String::new());
    refresh.set_max_age(secs(0));
    [access, refresh]
}
