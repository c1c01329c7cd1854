//! The signed-in user.

use actix_web::{HttpRequest, HttpResponse, web};
use service_kit::Problem;

use super::UserResponse;
use crate::auth::authenticate;
use crate::error::ApiError;
use crate::services::{UserView, account};
use crate::state::AppState;

/// The signed-in user's account.
#[utoipa::path(
    get, path = "/api/auth/me", tag = "auth",
    security(("cookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The account", body = UserResponse),
        (status = 401, description = "`unauthorized`", body = Problem),
    )
)]
pub async fn me(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let claims = authenticate(&state, &req).await?;
    let user = account::me(&state, claims.sub).await?;
    Ok(HttpResponse::Ok().json(UserResponse {
        user: UserView::from(&user),
    }))
}
