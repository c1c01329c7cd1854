//! The OpenAPI document served at `/api-docs/openapi.json`.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{self, jwks, me, password, registration, session};

/// The auth service's API.
#[derive(OpenApi)]
#[openapi(
    info(title = "Task Vault auth service", description = "Accounts, email verification and sessions. Errors are RFC 9457 problem documents with a stable `code`."),
    paths(
        registration::signup,
        registration::verify,
        registration::verify_otp,
        registration::resend_verification,
        session::login,
        session::refresh_token,
        session::logout,
        password::forgot_password,
        password::reset_password,
        password::change_password,
        me::me,
        jwks::jwks,
    ),
    components(schemas(
        service_kit::Problem,
        crate::services::UserView,
        routes::MessageResponse,
        routes::UserResponse,
        registration::SignupRequest,
        registration::VerifyOtpRequest,
        registration::EmailRequest,
        session::LoginRequest,
        session::RefreshRequest,
        session::TokenResponse,
        password::ResetPasswordRequest,
        password::ChangePasswordRequest,
    )),
    modifiers(&SecuritySchemes),
    tags((name = "auth", description = "Accounts and sessions"), (name = "keys", description = "Public verification keys"))
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("access_token"))),
        );
        components.add_security_scheme(
            "refresh_cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("refresh_token"))),
        );
    }
}
