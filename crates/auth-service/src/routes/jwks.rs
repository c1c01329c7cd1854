//! The public verification keys.

use actix_web::http::header;
use actix_web::{HttpResponse, web};

use crate::state::AppState;

/// The JWK set of the keys access tokens are signed with (Ed25519, `alg` EdDSA).
#[utoipa::path(
    get, path = "/.well-known/jwks.json", tag = "keys",
    responses((status = 200, description = "`{\"keys\": [{\"kty\": \"OKP\", \"crv\": \"Ed25519\", \"x\", \"kid\", \"alg\": \"EdDSA\", \"use\": \"sig\"}]}`", body = Object))
)]
pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .json(state.signing_key.jwks())
}
