//! Conventions shared by every route: body handling, errors, CSRF/CORS, health and docs.

use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread")]
async fn bodies_are_strict_json() {
    let app = spawn_app().await;
    let post = |content_type: &'static str, body: Vec<u8>| {
        let app = &app;
        async move {
            app.client
                .post(app.url("/api/auth/signup"))
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };
    assert_problem(
        post("text/plain", b"{}".to_vec()).await,
        415,
        "unsupported_media_type",
    )
    .await;
    let huge = format!("{{\"email\": \"{}\"}}", "a".repeat(1024 * 1024 + 10)).into_bytes();
    assert_problem(
        post("application/json", huge).await,
        413,
        "payload_too_large",
    )
    .await;
    assert_problem(
        post("application/json", b"{\"email\": ".to_vec()).await,
        400,
        "malformed_json",
    )
    .await;
    let body = assert_problem(
        post(
            "application/json",
            br#"{"email": 5, "password": "x"}"#.to_vec(),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    assert!(body["errors"]["email"].is_array(), "{body}");
    // No body at all where one is required.
    let empty = app
        .client
        .post(app.url("/api/auth/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(empty.status(), 415);
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_routes_are_problem_documents() {
    let app = spawn_app().await;
    let body = assert_problem(
        app.client
            .get(app.url("/api/auth/nope"))
            .send()
            .await
            .unwrap(),
        404,
        "not_found",
    )
    .await;
    assert!(body["detail"].as_str().unwrap().contains("/api/auth/nope"));
    // A documented route asked with another method: 405 naming the methods it takes.
    for method in [
        reqwest::Method::GET,
        reqwest::Method::TRACE,
        reqwest::Method::PUT,
    ] {
        let response = app
            .client
            .request(method.clone(), app.url("/api/auth/login"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.headers().get("allow").map(|v| v.to_str().unwrap()),
            Some("POST"),
            "{method}"
        );
        let body = assert_problem(response, 405, "method_not_allowed").await;
        assert!(body["detail"].as_str().unwrap().contains("POST"), "{body}");
    }
    let response = app
        .client
        .delete(app.url("/api/auth/verify/some-token"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["allow"], "POST");
    assert_problem(response, 405, "method_not_allowed").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cookies_from_foreign_origins_are_refused() {
    let app = spawn_app().await;
    let session = app.signed_in("csrf@example.com").await;
    let with_cookie = |origin: &'static str| {
        let app = &app;
        let session = session.clone();
        async move {
            app.client
                .post(app.url("/api/auth/logout"))
                .header("cookie", format!("access_token={}", session.access))
                .header("origin", origin)
                .send()
                .await
                .unwrap()
        }
    };
    let refused = with_cookie("https://evil.example").await;
    assert_problem(refused, 403, "csrf_rejected").await;
    assert_eq!(
        app.me_bearer(&session.access).await.status(),
        200,
        "the session survived"
    );

    // Without cookies a foreign origin cannot ride on a session: passes through.
    let no_cookie = app
        .client
        .post(app.url("/api/auth/refresh-token"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_problem(no_cookie, 401, "invalid_token").await;

    // The frontend's origin is allowed, with CORS headers.
    let allowed = with_cookie(FRONTEND).await;
    assert_eq!(allowed.status(), 204);
    assert_eq!(
        allowed
            .headers()
            .get("access-control-allow-origin")
            .unwrap(),
        FRONTEND
    );
    assert_eq!(
        allowed
            .headers()
            .get("access-control-allow-credentials")
            .unwrap(),
        "true"
    );
    assert_eq!(app.me_bearer(&session.access).await.status(), 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn cors_preflight_allows_the_configured_origins() {
    let app =
        spawn_app_with(|s| s.cors_origins = Some(format!("{FRONTEND}, https://admin.test"))).await;
    let preflight = |origin: &'static str| {
        let app = &app;
        async move {
            app.client
                .request(reqwest::Method::OPTIONS, app.url("/api/auth/login"))
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .header("access-control-request-headers", "content-type")
                .send()
                .await
                .unwrap()
        }
    };
    let ok = preflight("https://admin.test").await;
    assert!(ok.status().is_success());
    assert_eq!(
        ok.headers().get("access-control-allow-origin").unwrap(),
        "https://admin.test"
    );
    assert_eq!(
        ok.headers()
            .get("access-control-allow-credentials")
            .unwrap(),
        "true"
    );
    let foreign = preflight("https://evil.example").await;
    assert!(
        foreign
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn health_readiness_and_metrics() {
    let app = spawn_app().await;
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["checks"], json!({"postgres": "ok", "redis": "ok"}));

    app.verified_user("metrics@example.com").await;
    app.login("metrics@example.com", PASSWORD).await;
    app.login("metrics@example.com", "wrong password").await;
    // Without METRICS_ADDR, /metrics is on the main port (local use).
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains("auth_logins_total{outcome=\"success\"}"),
        "{text}"
    );
    assert!(
        text.contains("auth_logins_total{outcome=\"invalid_credentials\"}"),
        "{text}"
    );
    assert!(text.contains("http_requests_total"), "{text}");
}

/// Series of `metric` in a Prometheus text page.
fn series<'a>(text: &'a str, metric: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| l.starts_with(metric) && l[metric.len()..].starts_with(['{', ' ']))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn with_metrics_addr_metrics_are_private_and_tell_no_accounts_apart() {
    let app = spawn_app_with(|s| s.metrics_addr = Some("127.0.0.1:0".to_owned())).await;
    let metrics_base = app.metrics_base.clone().expect("a metrics listener");
    // The main port, which the ingress routes, does not serve them.
    let public = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_problem(public, 404, "not_found").await;

    // A new and a taken address; a known and an unknown one asking for a reset or guessing codes.
    app.verified_user("known@example.com").await;
    assert_eq!(
        app.signup("known@example.com", PASSWORD).await.status(),
        202
    );
    for email in ["known@example.com", "ghost@example.com"] {
        let forgot = app
            .post_json("/api/auth/forgot-password", &json!({"email": email}))
            .await;
        assert_eq!(forgot.status(), 202);
        let otp = app
            .post_json(
                "/api/auth/verify-otp",
                &json!({"email": email, "otp": "000000"}),
            )
            .await;
        assert_eq!(otp.status(), 400);
    }

    let private = app
        .client
        .get(format!("{metrics_base}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(private.status(), 200);
    let text = private.text().await.unwrap();
    // One signup series, whatever the outcome: no label tells taken addresses from new ones.
    assert_eq!(
        series(&text, "auth_signups_total"),
        vec!["auth_signups_total 2"],
        "{text}"
    );
    assert_eq!(
        series(&text, "auth_otp_checks_total"),
        vec!["auth_otp_checks_total{outcome=\"refused\"} 2"],
        "{text}"
    );
    assert!(!text.contains("kind=\"password_reset\""), "{text}");
    assert!(text.contains("http_requests_total"), "{text}");
    // The metrics listener serves nothing else.
    let other = app
        .client
        .get(format!("{metrics_base}/api/auth/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn made_up_methods_and_paths_create_no_metric_series() {
    use futures_util::StreamExt as _;
    let app = spawn_app().await;
    let requests = futures_util::stream::iter(0..3000).map(|i| {
        let app = &app;
        async move {
            let request = if i % 2 == 0 {
                let method = reqwest::Method::from_bytes(format!("MADEUP{i}").as_bytes()).unwrap();
                app.client.request(method, app.url("/api/auth/login"))
            } else {
                app.client.get(app.url(&format!("/unknown/path{i}")))
            };
            let expected = if i % 2 == 0 { 405 } else { 404 };
            (request.send().await.unwrap().status().as_u16(), expected)
        }
    });
    let statuses: Vec<(u16, u16)> = requests.buffer_unordered(16).collect().await;
    // A made-up method on a real route: 405; an unknown path: 404.
    assert!(
        statuses.iter().all(|(got, want)| got == want),
        "{statuses:?}"
    );

    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!text.contains("MADEUP") && !text.contains("/unknown/path"));
    // Each metric keeps a handful of series: methods come from a closed set (others are
    // `other`) and routes from matched patterns (`unmatched` otherwise).
    let requests = series(&text, "http_requests_total");
    assert!(requests.len() < 20, "{}", requests.join("\n"));
    for label in ["method=\"other\"", "route=\"unmatched\""] {
        assert!(
            requests.iter().any(|l| l.contains(label)),
            "{label}: {}",
            requests.join("\n")
        );
    }
    let durations = series(&text, "http_request_duration_seconds_count");
    assert!(durations.len() < 20, "{}", durations.join("\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn every_response_carries_the_security_headers() {
    let app = spawn_app().await;
    let client = &app.client;
    let responses = vec![
        client.get(app.url("/healthz")).send().await.unwrap(),
        client.get(app.url("/docs")).send().await.unwrap(),
        client.get(app.url("/docs/")).send().await.unwrap(),
        client
            .get(app.url("/api-docs/openapi.json"))
            .send()
            .await
            .unwrap(),
        client.get(app.url("/nope")).send().await.unwrap(),
        client.get(app.url("/api/auth/me")).send().await.unwrap(),
        client
            .post(app.url("/api/auth/login"))
            .header("content-type", "text/plain")
            .body("x")
            .send()
            .await
            .unwrap(),
        client
            .request(reqwest::Method::OPTIONS, app.url("/api/auth/login"))
            .header("origin", "https://evil.example")
            .header("access-control-request-method", "POST")
            .send()
            .await
            .unwrap(),
    ];
    for response in responses {
        let url = response.url().to_string();
        let headers = response.headers();
        let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(
            header("x-content-type-options").as_deref(),
            Some("nosniff"),
            "{url}"
        );
        assert_eq!(
            header("referrer-policy").as_deref(),
            Some("no-referrer"),
            "{url}"
        );
        assert!(
            header("content-security-policy")
                .is_some_and(|csp| csp.contains("frame-ancestors 'none'")),
            "{url}: {headers:?}"
        );
        assert_eq!(
            header("strict-transport-security"),
            None,
            "{url}: HTTP only"
        );
    }

    let secure = spawn_app_with(|s| s.cookie_secure = true).await;
    for path in ["/healthz", "/docs/", "/nope"] {
        let response = secure.client.get(secure.url(path)).send().await.unwrap();
        let hsts = response
            .headers()
            .get("strict-transport-security")
            .map(|v| v.to_str().unwrap().to_owned());
        assert!(
            hsts.as_deref().is_some_and(|v| v.starts_with("max-age=")),
            "{path}: {hsts:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn dependencies_down_mean_503_without_internals() {
    let app = spawn_app_with(|s| s.redis_url = "redis://127.0.0.1:1".to_owned()).await;
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let response = app.signup("down@example.com", PASSWORD).await;
    let body = assert_problem(response, 503, "unavailable").await;
    let text = body.to_string();
    assert!(
        !text.contains("127.0.0.1") && !text.to_lowercase().contains("redis"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn openapi_lists_every_route_and_docs_are_served() {
    let app = spawn_app().await;
    let doc: Value = app
        .client
        .get(app.url("/api-docs/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/api/auth/signup",
        "/api/auth/verify/{token}",
        "/api/auth/verify-otp",
        "/api/auth/resend-verification",
        "/api/auth/login",
        "/api/auth/refresh-token",
        "/api/auth/logout",
        "/api/auth/forgot-password",
        "/api/auth/reset/{token}",
        "/api/auth/change-password",
        "/api/auth/me",
        "/.well-known/jwks.json",
    ] {
        assert!(
            paths.contains_key(path),
            "{path} missing from {:?}",
            paths.keys().collect::<Vec<_>>()
        );
    }
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    assert!(schemes.contains_key("bearer") && schemes.contains_key("cookie"));
    test_support::check_openapi(&doc, "auth-service");

    let docs = app.client.get(app.url("/docs")).send().await.unwrap();
    assert!(docs.status().is_redirection());
    let page = app.client.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.text()
            .await
            .unwrap()
            .to_lowercase()
            .contains("swagger")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_answer_carries_a_request_id_and_problems_repeat_it() {
    let app = spawn_app().await;
    let me = |id: Option<&'static str>| {
        let mut request = app.client.get(app.url("/api/auth/me"));
        if let Some(id) = id {
            request = request.header("x-request-id", id);
        }
        request.send()
    };
    let header = |response: &reqwest::Response| {
        response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned()
    };

    // A valid incoming id is kept, in the header and in the problem document.
    let response = me(Some("edge-7f3a:42")).await.unwrap();
    assert_eq!(header(&response), "edge-7f3a:42");
    let problem = assert_problem(response, 401, "unauthorized").await;
    assert_eq!(problem["request_id"], "edge-7f3a:42");

    // None, or one unsafe to echo: a fresh id each time, the same in header and body.
    let mut seen = Vec::new();
    for id in [None, Some("two words"), Some("")] {
        let response = me(id).await.unwrap();
        let generated = header(&response);
        assert!(uuid::Uuid::parse_str(&generated).is_ok(), "{generated}");
        let problem = assert_problem(response, 401, "unauthorized").await;
        assert_eq!(problem["request_id"], generated.as_str());
        seen.push(generated);
    }
    seen.dedup();
    assert_eq!(seen.len(), 3, "{seen:?}");

    // Successful answers and unknown routes carry it too.
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert!(health.headers().contains_key("x-request-id"));
    let missing = app
        .client
        .get(app.url("/nowhere"))
        .header("x-request-id", "r1")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&missing), "r1");
    assert_eq!(
        assert_problem(missing, 404, "not_found").await["request_id"],
        "r1"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn misspelt_fields_are_refused_by_name_in_plain_words() {
    let app = spawn_app().await;
    let response = app
        .post_json(
            "/api/auth/signup",
            &json!({"email": "typo@example.com", "pasword": "correct horse battery"}),
        )
        .await;
    let problem = assert_problem(response, 422, "validation_failed").await;
    let message = problem["errors"]["pasword"][0].as_str().unwrap();
    assert!(message.starts_with("is not a known field"), "{problem}");
    assert!(message.contains("password"), "{problem}");

    let response = app
        .post_json("/api/auth/login", &json!({"email": 42, "password": "x"}))
        .await;
    let problem = assert_problem(response, 422, "validation_failed").await;
    assert_eq!(
        problem["errors"]["email"],
        json!(["must be text"]),
        "{problem}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_that_stops_arriving_gets_408_in_time() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let app = spawn_app().await;
    let address = app.url("").trim_start_matches("http://").to_owned();
    let mut socket = tokio::net::TcpStream::connect(&address).await.unwrap();
    // Promises 100 bytes, sends 10, then waits.
    let request = format!(
        "POST /api/auth/login HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"email\":"
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    let started = std::time::Instant::now();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        let mut buf = [0u8; 4096];
        loop {
            let n = socket.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
            if answer.windows(15).any(|w| w == b"request_timeout") {
                break;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer within 20 s: the request hangs");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"code\":\"request_timeout\""), "{answer}");
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
}
