//! The finishing pass both services apply to their OpenAPI documents, so that the documents
//! describe every answer the services really give:
//!
//! - every error answer (4xx, 5xx) is `application/problem+json` with the [`Problem`] schema;
//! - answers every route can give are listed on every route: 500 and 503, 429 where a limit
//!   applies is left to the route; with a request body also 400 (`malformed_json`), 408
//!   (`request_timeout`), 413, 415 and 422;
//! - every answer has a description (the route's own, else the status's reason).
//!
//! [`Problem`]: crate::Problem

use actix_web::http::StatusCode;
use utoipa::openapi::path::Operation;
use utoipa::openapi::{Content, OpenApi, Ref, RefOr, Response};

use crate::problem::CONTENT_TYPE;

/// Answers of the shared plumbing, on routes that take a JSON body.
const BODY_ANSWERS: [(u16, &str); 5] = [
    (400, "`malformed_json`: the body is not valid JSON"),
    (408, "`request_timeout`: the body did not arrive within 5 s"),
    (413, "`payload_too_large`: the body is over 1 MiB"),
    (
        415,
        "`unsupported_media_type`: the body is not `application/json`",
    ),
    (
        422,
        "`validation_failed`: fields are invalid or unknown; `errors` names them",
    ),
];

/// Answers any route can give.
const ANY_ANSWERS: [(u16, &str); 2] = [
    (
        500,
        "`internal_error`: a bug; the request id finds its log lines",
    ),
    (
        503,
        "`unavailable`: PostgreSQL or Redis does not answer; try again shortly",
    ),
];

/// Applies the pass to `doc` (see the module documentation).
pub fn finish(doc: &mut OpenApi) {
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            finish_operation(operation);
        }
    }
}

fn problem_content() -> Content {
    Content::new(Some(Ref::from_schema_name("Problem")))
}

fn finish_operation(operation: &mut Operation) {
    let takes_body = operation.request_body.is_some();
    let responses = &mut operation.responses.responses;
    let shared = ANY_ANSWERS
        .iter()
        .chain(BODY_ANSWERS.iter().filter(|_| takes_body));
    for (status, description) in shared {
        responses
            .entry(status.to_string())
            .or_insert_with(|| RefOr::T(Response::new(*description)));
    }
    for (status, response) in responses.iter_mut() {
        let RefOr::T(response) = response else {
            continue;
        };
        let code = status.parse::<u16>().ok();
        if response.description.trim().is_empty() {
            response.description = code
                .and_then(|c| StatusCode::from_u16(c).ok())
                .and_then(|c| c.canonical_reason())
                .unwrap_or("Answer")
                .to_owned();
        }
        if code.is_some_and(|c| c >= 400) {
            // Whatever the route declared (usually application/json), errors are problems.
            response.content.clear();
            response
                .content
                .insert(CONTENT_TYPE.to_owned(), RefOr::T(problem_content()));
        }
    }
}

#[cfg(test)]
mod tests {
    use utoipa::OpenApi as _;

    use super::*;

    #[derive(serde::Deserialize, utoipa::ToSchema)]
    #[expect(dead_code, reason = "documentation only")]
    struct Body {
        name: String,
    }

    #[utoipa::path(post, path = "/things", request_body = Body,
        responses((status = 201, description = "made"), (status = 404, body = crate::Problem)))]
    #[expect(dead_code, reason = "documentation only")]
    fn make() {}

    #[utoipa::path(get, path = "/things", responses((status = 200, description = "")))]
    #[expect(dead_code, reason = "documentation only")]
    fn list() {}

    #[derive(utoipa::OpenApi)]
    #[openapi(paths(make, list), components(schemas(crate::Problem, Body)))]
    struct Doc;

    #[test]
    fn errors_are_problems_and_every_answer_is_described() {
        let mut doc = Doc::openapi();
        finish(&mut doc);
        let json = serde_json::to_value(&doc).unwrap_or_default();
        let post = &json["paths"]["/things"]["post"]["responses"];
        for status in ["400", "404", "408", "413", "415", "422", "500", "503"] {
            assert!(
                post[status]["content"][CONTENT_TYPE]["schema"]["$ref"]
                    .as_str()
                    .is_some_and(|r| r.ends_with("/Problem")),
                "{status}: {post}"
            );
            assert!(
                post[status]["description"]
                    .as_str()
                    .is_some_and(|d| !d.is_empty())
            );
        }
        assert!(post["201"]["content"].get(CONTENT_TYPE).is_none());
        let get = &json["paths"]["/things"]["get"]["responses"];
        assert_eq!(get["200"]["description"], "OK");
        assert!(get.get("415").is_none(), "no body, no 415: {get}");
        assert!(get.get("503").is_some());
    }
}
