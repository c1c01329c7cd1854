//! actix-web pieces every HTTP service mounts: CORS, CSRF, security headers, default
//! error bodies for unmatched routes and bad path/query parts, and the API docs.

use std::rc::Rc;
use std::sync::Arc;

use actix_cors::Cors;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode, header};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, web};
use domain::ValidationErrors;

use crate::Problem;

/// The browser origins allowed to call a service with credentials.
#[derive(Debug, Clone)]
pub struct AllowedOrigins(pub Arc<Vec<String>>);

impl AllowedOrigins {
    /// From the `CORS_ORIGINS` list (trailing slashes ignored).
    pub fn new(origins: Vec<String>) -> Self {
        Self(Arc::new(
            origins
                .into_iter()
                .map(|o| o.trim_end_matches('/').to_owned())
                .collect(),
        ))
    }

    /// True when `origin` is one of them.
    pub fn contains(&self, origin: &str) -> bool {
        self.0.iter().any(|allowed| allowed == origin)
    }
}

/// CORS for the allowed origins, with credentials (cookies) allowed.
///
/// Exposes one header only: actix-cors renders the list from a hash set built per worker, so a
/// longer list would differ in order between workers, and answers that must not be told apart
/// (sign-up with a taken or a new address) would stop being byte-identical.
pub fn cors(origins: &AllowedOrigins) -> Cors {
    let origins = origins.clone();
    Cors::default()
        .allowed_origin_fn(move |origin, _| origin.to_str().is_ok_and(|o| origins.contains(o)))
        .supports_credentials()
        .allowed_methods(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
        .allowed_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            header::ACCEPT,
            header::HeaderName::from_static("idempotency-key"),
        ])
        .expose_headers([header::RETRY_AFTER])
        .max_age(600)
}

/// Refuses a state-changing request that carries cookies and comes from a foreign `Origin`
/// (403 `csrf_rejected`). Cookie-less requests (bearer tokens) cannot be forged by a browser
/// and pass, as do requests from the service's own origin.
pub async fn csrf_guard<B: MessageBody>(
    origins: AllowedOrigins,
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe && req.headers().contains_key(header::COOKIE) {
        let origin = req
            .headers()
            .get(header::ORIGIN)
            .and_then(|o| o.to_str().ok());
        if let Some(origin) = origin {
            let own = {
                let info = req.connection_info();
                format!("{}://{}", info.scheme(), info.host())
            };
            if origin != own && !origins.contains(origin) {
                let problem = Problem::new(
                    StatusCode::FORBIDDEN,
                    "csrf_rejected",
                    format!(
                        "Requests with cookies from origin {origin} are not allowed; add it to CORS_ORIGINS."
                    ),
                );
                return Ok(req
                    .into_response(problem.to_response())
                    .map_into_right_body());
            }
        }
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

/// Name of the cookie that carries the access token (set by the auth service, read by both).
pub const ACCESS_COOKIE: &str = "access_token";

/// The access token a request carries, if any: `Authorization: Bearer <token>` (the scheme
/// in any case) first, else the [`ACCESS_COOKIE`] cookie.
pub fn presented_access_token(req: &HttpRequest) -> Option<String> {
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
    bearer.or_else(|| {
        req.cookie(ACCESS_COOKIE)
            .map(|c| c.value().to_owned())
            .filter(|t| !t.is_empty())
    })
}

/// Adds the security headers to every response, error answers included:
/// `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`, a
/// `Content-Security-Policy` of `frame-ancestors 'none'` (no page may frame ours), and, when
/// `hsts` (the service is reached over HTTPS: `COOKIE_SECURE`), `Strict-Transport-Security`.
/// Headers a handler set itself are kept.
pub async fn security_headers<B: MessageBody>(
    hsts: bool,
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<B>, actix_web::Error> {
    match next.call(req).await {
        Ok(mut response) => {
            add_security_headers(response.headers_mut(), hsts);
            Ok(response)
        }
        // An error raised by inner middleware becomes its response only after this one: give
        // that response the headers now.
        Err(error) => {
            let mut response = error.error_response();
            add_security_headers(response.headers_mut(), hsts);
            Err(actix_web::error::InternalError::from_response(error.to_string(), response).into())
        }
    }
}

fn add_security_headers(headers: &mut header::HeaderMap, hsts: bool) {
    let mut set = |name: header::HeaderName, value: &'static str| {
        if !headers.contains_key(&name) {
            headers.insert(name, header::HeaderValue::from_static(value));
        }
    };
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::REFERRER_POLICY, "no-referrer");
    set(header::CONTENT_SECURITY_POLICY, "frame-ancestors 'none'");
    if hsts {
        set(
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=31536000; includeSubDomains",
        );
    }
}

/// Registers the error bodies for unmatched routes and for path or query parts that do not
/// parse, so no client mistake gets a plain-text or empty answer.
pub fn configure_errors(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::PathConfig::default().error_handler(|_, _| {
        Problem::not_found("Nothing is here: check the identifier in the URL.").into()
    }))
    .app_data(web::QueryConfig::default().error_handler(|error, _| {
        let message = match &error {
            actix_web::error::QueryPayloadError::Deserialize(inner) => inner.to_string(),
            other => other.to_string(),
        };
        let (field, message) = crate::json::in_user_words(".", &message);
        let field = if field == "body" {
            "query".to_owned()
        } else {
            field
        };
        Problem::validation(ValidationErrors::field(field, message)).into()
    }))
    .app_data(web::PayloadConfig::new(crate::json::MAX_BODY_BYTES));
}

/// The documented routes (from the OpenAPI document) and their methods, so that a request
/// for a known path with another method gets 405 and an `Allow` header rather than 404.
#[derive(Debug, Clone, Default)]
pub struct KnownRoutes(Vec<(Vec<Segment>, Vec<Method>)>);

/// One segment of a path template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Parameter,
}

impl KnownRoutes {
    /// The routes of `doc`.
    pub fn from_openapi(doc: &utoipa::openapi::OpenApi) -> Self {
        let routes = doc
            .paths
            .paths
            .iter()
            .map(|(template, item)| {
                let segments = template
                    .split('/')
                    .map(|part| {
                        if part.starts_with('{') && part.ends_with('}') {
                            Segment::Parameter
                        } else {
                            Segment::Literal(part.to_owned())
                        }
                    })
                    .collect();
                let methods = [
                    (Method::GET, item.get.is_some()),
                    (Method::PUT, item.put.is_some()),
                    (Method::POST, item.post.is_some()),
                    (Method::DELETE, item.delete.is_some()),
                    (Method::PATCH, item.patch.is_some()),
                ]
                .into_iter()
                .filter_map(|(method, present)| present.then_some(method))
                .collect();
                (segments, methods)
            })
            .collect();
        Self(routes)
    }

    /// The methods of the most specific documented route that `path` matches (a literal
    /// segment beats a parameter), `None` when no route matches.
    pub fn allowed(&self, path: &str) -> Option<Vec<Method>> {
        let parts: Vec<&str> = path.split('/').collect();
        let mut best: Option<(usize, Vec<Method>)> = None;
        for (segments, methods) in &self.0 {
            if segments.len() != parts.len() {
                continue;
            }
            let matches = segments
                .iter()
                .zip(&parts)
                .all(|(segment, part)| match segment {
                    Segment::Literal(literal) => literal == part,
                    Segment::Parameter => !part.is_empty(),
                });
            if !matches {
                continue;
            }
            let parameters = segments
                .iter()
                .filter(|s| **s == Segment::Parameter)
                .count();
            match &mut best {
                Some((fewest, found)) if parameters == *fewest => {
                    for method in methods {
                        if !found.contains(method) {
                            found.push(method.clone());
                        }
                    }
                }
                Some((fewest, _)) if parameters > *fewest => {}
                _ => best = Some((parameters, methods.clone())),
            }
        }
        best.map(|(_, methods)| methods)
    }
}

/// The answer for any route that does not exist: 405 with `Allow` for a documented path
/// (see [`KnownRoutes`], registered by [`configure_docs`]) asked with another method, else 404.
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    let allowed = req
        .app_data::<web::Data<KnownRoutes>>()
        .and_then(|routes| routes.allowed(req.path()))
        .filter(|methods| !methods.is_empty() && !methods.contains(req.method()));
    if let Some(methods) = allowed {
        let allow = methods
            .iter()
            .map(Method::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        let mut response = Problem::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!(
                "{} is not allowed on {}; it takes {allow}.",
                req.method(),
                req.path()
            ),
        )
        .to_response();
        if let Ok(value) = header::HeaderValue::from_str(&allow) {
            response.headers_mut().insert(header::ALLOW, value);
        }
        return response;
    }
    Problem::not_found(format!(
        "No route for {} {}; see /docs for the API.",
        req.method(),
        req.path()
    ))
    .to_response()
}

/// Serves the OpenAPI document at `/api-docs/openapi.json` and Swagger UI at `/docs`
/// (bundled: it works offline), and registers the document's [`KnownRoutes`] for
/// [`not_found`].
pub fn configure_docs(cfg: &mut web::ServiceConfig, openapi: utoipa::openapi::OpenApi) {
    cfg.app_data(web::Data::new(KnownRoutes::from_openapi(&openapi)));
    let openapi = Rc::new(openapi);
    cfg.service(
        utoipa_swagger_ui::SwaggerUi::new("/docs/{_:.*}")
            .url("/api-docs/openapi.json", openapi.as_ref().clone()),
    )
    .route(
        "/docs",
        web::get().to(|| async {
            HttpResponse::PermanentRedirect()
                .insert_header((header::LOCATION, "/docs/"))
                .finish()
        }),
    );
}

#[cfg(test)]
mod tests {
    use utoipa::OpenApi as _;

    use super::*;

    #[utoipa::path(post, path = "/api/jobs/submit", responses((status = 201)))]
    #[expect(dead_code, reason = "documentation only")]
    fn submit() {}

    #[utoipa::path(get, path = "/api/jobs/{id}", responses((status = 200)))]
    #[expect(dead_code, reason = "documentation only")]
    fn get() {}

    #[utoipa::path(delete, path = "/api/jobs/{id}", responses((status = 204)))]
    #[expect(dead_code, reason = "documentation only")]
    fn delete() {}

    #[derive(utoipa::OpenApi)]
    #[openapi(paths(submit, get, delete))]
    struct Doc;

    #[test]
    fn known_routes_name_the_methods_of_the_most_specific_path() {
        let routes = KnownRoutes::from_openapi(&Doc::openapi());
        assert_eq!(routes.allowed("/api/jobs/submit"), Some(vec![Method::POST]));
        assert_eq!(
            routes.allowed("/api/jobs/0193a1c2"),
            Some(vec![Method::GET, Method::DELETE])
        );
        assert_eq!(routes.allowed("/api/jobs/"), None);
        assert_eq!(routes.allowed("/api/jobs/a/b"), None);
        assert_eq!(routes.allowed("/elsewhere"), None);
    }
}
