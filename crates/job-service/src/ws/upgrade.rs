//! `GET /api/ws`: who is connecting, and the WebSocket handshake.
//!
//! The access token is taken from the `Authorization: Bearer` header, else the `access_token`
//! query parameter (browsers cannot set headers on a WebSocket), else the `access_token`
//! cookie. Without a valid one the answer is 401 before any upgrade. A cookie-authenticated
//! upgrade from an `Origin` outside `CORS_ORIGINS` (and not the service's own) is refused with
//! 403 `csrf_rejected`: a page elsewhere cannot ride the user's cookie.
//!
//! The query string is never logged (the request middleware logs the route pattern only), so
//! a token in it does not reach the logs.

use std::collections::HashMap;

use actix_http::body::MessageBody as _;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use service_kit::Problem;

use super::Gateway;
use super::session::{Identity, Socket};
use crate::AppState;

/// Name of the query parameter that may carry the access token.
pub const TOKEN_PARAM: &str = "access_token";

/// Where the token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Header,
    Query,
    Cookie,
}

fn presented_token(req: &HttpRequest) -> Option<(String, Source)> {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_owned())
        })
        .filter(|t| !t.is_empty());
    if let Some(token) = bearer {
        return Some((token, Source::Header));
    }
    let query = web::Query::<HashMap<String, String>>::from_query(req.query_string())
        .ok()
        .and_then(|q| q.into_inner().remove(TOKEN_PARAM))
        .filter(|t| !t.is_empty());
    if let Some(token) = query {
        return Some((token, Source::Query));
    }
    req.cookie(service_kit::http::ACCESS_COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|t| !t.is_empty())
        .map(|t| (t, Source::Cookie))
}

/// The handler of `GET /api/ws`.
pub async fn upgrade(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
    gateway: web::Data<Gateway>,
) -> HttpResponse {
    let Some((token, source)) = presented_token(&req) else {
        return unauthorized();
    };
    if source == Source::Cookie
        && let Some(origin) = req.headers().get(header::ORIGIN)
    {
        let origin = origin.to_str().unwrap_or("");
        let own = {
            let info = req.connection_info();
            format!("{}://{}", info.scheme(), info.host())
        };
        if origin != own && !gateway.origins.contains(origin) {
            return Problem::new(
                StatusCode::FORBIDDEN,
                "csrf_rejected",
                format!(
                    "WebSocket connections with cookies from origin {origin} are not allowed; add it to CORS_ORIGINS, or send the token in an Authorization header or the access_token query parameter."
                ),
            )
            .to_response();
        }
    }
    let claims = match state.verifier.verify(&token).await {
        Ok(claims) => claims,
        Err(error) if error.is_unavailable() => {
            tracing::warn!(%error, "real-time gateway: cannot verify tokens");
            return Problem::unavailable().to_response();
        }
        Err(error) => {
            tracing::debug!(%error, "real-time gateway: token refused");
            return unauthorized();
        }
    };
    if gateway.hub.is_closed() {
        return shutting_down();
    }
    let mut response = match actix_http::ws::handshake(req.head()) {
        Ok(response) => response,
        Err(_) => {
            return Problem::new(
                StatusCode::UPGRADE_REQUIRED,
                "upgrade_required",
                "GET /api/ws is a WebSocket: send the Upgrade: websocket handshake headers.",
            )
            .to_response();
        }
    };
    let identity = Identity::from_claims(&claims);
    let Some(socket) = Socket::open(
        gateway.clone().into_inner(),
        state.into_inner(),
        identity,
        body,
    )
    .await
    else {
        return shutting_down();
    };
    let outbound = socket.outbound();
    actix_web::rt::spawn(socket.run());
    // The body is boxed once, in the response; the connection polls it for the socket's frames.
    // (Dropping it on an error ends the socket's task.)
    match response.message_body(outbound.boxed()) {
        Ok(response) => HttpResponse::from(response),
        Err(error) => {
            tracing::error!(%error, "real-time gateway: cannot build the 101 answer");
            Problem::internal().to_response()
        }
    }
}

fn unauthorized() -> HttpResponse {
    Problem::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "Sign in first: send the access token in an `Authorization: Bearer` header, the access_token query parameter or the access_token cookie.",
    )
    .to_response()
}

fn shutting_down() -> HttpResponse {
    let mut problem = Problem::unavailable();
    problem.detail = "This replica is shutting down; connect again (to another one).".to_owned();
    problem.retry_after_secs = Some(1);
    problem.to_response()
}
