//! Every route of section 4, success and failure.

use std::collections::HashSet;

use domain::Role;
use serde_json::{Value, json};

use crate::helpers::{TestApp, read};

#[tokio::test(flavor = "multi_thread")]
async fn submit_creates_a_pending_job_enqueues_it_and_publishes_an_event() {
    let app = TestApp::spawn().await;
    let user = app.user(Role::User, true).await;
    let client = redis::Client::open(app.redis.url()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub
        .subscribe(job_queue::events_channel(app.redis.prefix(), user.id))
        .await
        .unwrap();

    let (status, body) = app
        .submit(
            &user,
            json!({"type": "echo", "data": {"a": 1}, "priority": 5}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let job = &body["job"];
    assert_eq!(job["type"], "echo");
    assert_eq!(job["status"], "pending");
    assert_eq!(job["priority"], 5);
    assert_eq!(job["attempts"], 0);
    assert_eq!(job["max_attempts"], 3);
    assert_eq!(job["progress"], 0);
    assert_eq!(job["data"], json!({"a": 1}));
    assert_eq!(job["user_id"], json!(user.id));
    for field in [
        "result",
        "last_error",
        "run_at",
        "started_at",
        "finished_at",
    ] {
        assert!(job[field].is_null(), "{field}");
    }
    let created = job["created_at"].as_str().unwrap();
    assert!(created.ends_with('Z') && created.contains('.'), "{created}");
    let id = job["id"].as_str().unwrap();
    assert!(app.zscore("ready:echo", id).await.is_some());

    let message = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        use futures_util::StreamExt as _;
        pubsub.on_message().next().await
    })
    .await
    .unwrap()
    .unwrap();
    let event: Value = serde_json::from_str(&message.get_payload::<String>().unwrap()).unwrap();
    assert_eq!(event["event"], "jobUpdated");
    assert_eq!(event["data"]["job"]["id"], id);
}

#[tokio::test(flavor = "multi_thread")]
async fn submit_refuses_bad_input_with_the_contract_codes() {
    let app = TestApp::spawn().await;
    let user = app.user(Role::User, true).await;
    let code = |body: &Value| body["code"].as_str().unwrap_or_default().to_owned();

    let (status, body) = app.submit(&user, json!({"type": "teleport"})).await;
    assert_eq!((status, code(&body).as_str()), (422, "validation_failed"));
    assert!(
        body["detail"].as_str().unwrap().contains("send_email"),
        "{body}"
    );
    assert!(body["errors"]["type"].is_array());
    // An unknown type does not hide the other fields at fault.
    let (status, body) = app
        .submit(&user, json!({"type": "teleport", "max_attempts": 0}))
        .await;
    assert_eq!(status, 422);
    assert!(
        body["detail"].as_str().unwrap().contains("send_email"),
        "{body}"
    );
    assert!(
        body["errors"]["type"].is_array() && body["errors"]["max_attempts"].is_array(),
        "{body}"
    );

    for (bad, field) in [
        (json!({"type": "noop", "priority": 1001}), "priority"),
        (json!({"type": "noop", "priority": -1001}), "priority"),
        (json!({"type": "noop", "max_attempts": 0}), "max_attempts"),
        (json!({"type": "noop", "max_attempts": 26}), "max_attempts"),
        (json!({"type": "sleep", "data": {"ms": 600001}}), "data.ms"),
        (json!({"type": "hash", "data": {}}), "data.text"),
        (json!({"type": "noop", "run_at": "tomorrow"}), "run_at"),
        (
            json!({"type": "noop", "data": {"shouldFail": "yes"}}),
            "data.shouldFail",
        ),
    ] {
        let (status, body) = app.submit(&user, bad.clone()).await;
        assert_eq!(status, 422, "{bad} -> {body}");
        assert!(body["errors"][field].is_array(), "{bad} -> {body}");
    }
    let (status, _) = app
        .submit(
            &user,
            json!({"type": "sleep", "data": {"ms": 600000}, "priority": 1000, "max_attempts": 25}),
        )
        .await;
    assert_eq!(status, 201);

    // `data` may serialize to exactly 64 KiB; one byte more is refused.
    for (len, expected) in [(64 * 1024, 201), (64 * 1024 + 1, 413)] {
        let pad = "x".repeat(len - r#"{"pad":""}"#.len());
        let (status, body) = app
            .submit(&user, json!({"type": "noop", "data": {"pad": pad}}))
            .await;
        assert_eq!(status, expected, "data of {len} bytes: {body}");
    }
    let big = "x".repeat(64 * 1024);
    let (status, body) = app
        .submit(&user, json!({"type": "echo", "data": {"text": big}}))
        .await;
    assert_eq!((status, code(&body).as_str()), (413, "payload_too_large"));

    let response = app
        .client
        .post(app.url("/api/jobs/submit"))
        .bearer_auth(&user.token)
        .body("{\"type\":")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    let (status, body) = read(response).await;
    assert_eq!((status, code(&body).as_str()), (400, "malformed_json"));
    let response = app
        .client
        .post(app.url("/api/jobs/submit"))
        .bearer_auth(&user.token)
        .body("type=noop")
        .send()
        .await
        .unwrap();
    let (status, body) = read(response).await;
    assert_eq!(
        (status, code(&body).as_str()),
        (415, "unsupported_media_type")
    );
    let (status, body) = app.submit(&user, json!({"data": {}})).await;
    assert_eq!((status, code(&body).as_str()), (422, "validation_failed"));
}

#[tokio::test(flavor = "multi_thread")]
async fn authentication_is_required_and_revoked_sessions_are_refused() {
    let app = TestApp::spawn().await;
    let user = app.user(Role::User, true).await;
    let response = app
        .client
        .get(app.url("/api/jobs/all"))
        .send()
        .await
        .unwrap();
    let (status, body) = read(response).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("unauthorized")));
    let response = app
        .client
        .get(app.url("/api/jobs/all"))
        .bearer_auth("not.a.token")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    // A token whose signature was tampered with.
    let mut forged = user.token.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    let response = app
        .client
        .get(app.url("/api/jobs/all"))
        .bearer_auth(forged)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    // The access_token cookie works as well as the header.
    let response = app
        .client
        .get(app.url("/api/jobs/all"))
        .header("cookie", format!("access_token={}", user.token))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // A cookie-carrying POST from a foreign origin is a CSRF attempt.
    let response = app
        .client
        .post(app.url("/api/jobs/submit"))
        .header("cookie", format!("access_token={}", user.token))
        .header("origin", "https://evil.example")
        .json(&json!({"type": "noop"}))
        .send()
        .await
        .unwrap();
    let (status, body) = read(response).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("csrf_rejected"))
    );

    let (status, _) = app.get(&user, "/api/jobs/all").await;
    assert_eq!(status, 200);
    let pool = service_kit::redis_pool::build(&app.redis.url(), 2).unwrap();
    access_token::RevocationList::new(
        pool,
        app.redis.prefix().to_owned(),
        std::time::Duration::from_secs(900),
    )
    .revoke(&[user.sid])
    .await
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let (status, _) = app.get(&user, "/api/jobs/all").await;
        if status == 401 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "revoked token still accepted"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn send_email_only_to_own_verified_address_unless_admin() {
    let app = TestApp::spawn().await;
    let user = app.user(Role::User, true).await;
    let unverified = app.user(Role::User, false).await;
    let admin = app.user(Role::Admin, true).await;
    let email =
        |to: &str| json!({"type": "send_email", "data": {"to": to, "subject": "s", "body": "b"}});

    let (status, body) = app.submit(&user, email("someone@else.com")).await;
    assert_eq!(status, 422, "{body}");
    assert!(body["errors"]["data.to"].is_array());
    let (status, _) = app.submit(&user, email(&user.email.to_uppercase())).await;
    assert_eq!(status, 201);
    let (status, _) = app.submit(&unverified, email(&unverified.email)).await;
    assert_eq!(status, 422);
    let (status, _) = app.submit(&admin, email("someone@else.com")).await;
    assert_eq!(status, 201);
}

#[tokio::test(flavor = "multi_thread")]
async fn owners_see_their_jobs_others_get_404_and_admins_see_all() {
    let app = TestApp::spawn().await;
    let alice = app.user(Role::User, true).await;
    let bob = app.user(Role::User, true).await;
    let admin = app.user(Role::Admin, true).await;
    let (_, body) = app.submit(&alice, json!({"type": "noop"})).await;
    let id = body["job"]["id"].as_str().unwrap().to_owned();
    app.submit(&bob, json!({"type": "noop"})).await;

    let (status, body) = app.get(&alice, &format!("/api/jobs/{id}")).await;
    assert_eq!(
        (status, body["job"]["id"].as_str()),
        (200, Some(id.as_str()))
    );
    let (status, body) = app.get(&bob, &format!("/api/jobs/{id}")).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
    let (status, _) = app.get(&admin, &format!("/api/jobs/{id}")).await;
    assert_eq!(status, 200);
    let (status, body) = app.get(&alice, "/api/jobs/not-a-uuid").await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
    let (status, _) = app
        .get(&alice, &format!("/api/jobs/{}", uuid::Uuid::now_v7()))
        .await;
    assert_eq!(status, 404);
    for path in ["cancel", "retry"] {
        let (status, _) = app.post(&bob, &format!("/api/jobs/{id}/{path}")).await;
        assert_eq!(status, 404, "{path}");
    }

    let (_, page) = app.get(&alice, "/api/jobs/all").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert!(page["next_cursor"].is_null());
    let (_, page) = app.get(&admin, "/api/jobs/all").await;
    assert_eq!(
        page["items"].as_array().unwrap().len(),
        0,
        "/all is the caller's own jobs"
    );

    let (status, body) = app.get(&alice, "/api/jobs/admin/all").await;
    assert_eq!((status, body["code"].as_str()), (403, Some("forbidden")));
    let (status, page) = app.get(&admin, "/api/jobs/admin/all").await;
    assert_eq!((status, page["items"].as_array().unwrap().len()), (200, 2));
    let (_, page) = app
        .get(&admin, &format!("/api/jobs/admin/all?user_id={}", bob.id))
        .await;
    assert_eq!(page["items"][0]["user_id"], json!(bob.id));
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let (status, _) = app.get(&admin, "/api/jobs/admin/all?user_id=nope").await;
    assert_eq!(status, 422);

    let (_, stats) = app.get(&alice, "/api/jobs/stats").await;
    assert_eq!(
        stats["counts"],
        json!({"waiting": 0, "pending": 1, "scheduled": 0, "running": 0, "completed": 0, "failed": 0, "cancelled": 0})
    );
    assert_eq!(stats["queue_depth"], json!({"0": 1}));
    let (_, stats) = app.get(&admin, "/api/jobs/stats").await;
    assert_eq!(stats["counts"]["pending"], 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn list_filters_and_rejects_bad_parameters() {
    let app = TestApp::spawn().await;
    let user = app.user(Role::User, true).await;
    app.submit(&user, json!({"type": "noop"})).await;
    app.submit(&user, json!({"type": "echo"})).await;
    let (_, sched) = app
        .submit(
            &user,
            json!({"type": "noop", "run_at": "2099-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(sched["job"]["status"], "scheduled");
    assert!(
        sched["job"]["run_at"]
            .as_str()
            .unwrap()
            .starts_with("2099-01-01T00:00:00")
    );

    let (_, page) = app.get(&user, "/api/jobs/all?type=echo").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let (_, page) = app.get(&user, "/api/jobs/all?status=scheduled").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let (_, page) = app
        .get(&user, "/api/jobs/all?status=pending&type=noop")
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    for bad in [
        "status=nope",
        "type=nope",
        "limit=0",
        "limit=101",
        "limit=x",
        "cursor=garbage",
        "limit=1&limit=2",
        // A well-formed cursor whose time PostgreSQL cannot represent (4713 BC is its floor).
        "cursor=LTgwMDAwMDAwMDAwMDAwMDAwMDAuMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDA",
    ] {
        let (status, body) = app.get(&user, &format!("/api/jobs/all?{bad}")).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (422, Some("validation_failed")),
            "{bad}"
        );
    }
    let (_, page) = app.get(&user, "/api/jobs/all").await;
    let times: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["created_at"].as_str().unwrap())
        .collect();
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(times, sorted, "newest first");
}

#[tokio::test(flavor = "multi_thread")]
async fn pagination_over_250_jobs_returns_each_exactly_once() {
    let app = TestApp::spawn().await;
    let user = app.user(Role::User, true).await;
    let mut submitted = HashSet::new();
    for chunk in 0..10 {
        let futures = (0..25).map(|i| {
            app.submit(
                &user,
                json!({"type": "noop", "data": {"n": chunk * 25 + i}}),
            )
        });
        for (status, body) in futures_util::future::join_all(futures).await {
            assert_eq!(status, 201);
            submitted.insert(body["job"]["id"].as_str().unwrap().to_owned());
        }
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/jobs/all?limit=30&cursor={c}"),
            None => "/api/jobs/all?limit=30".to_owned(),
        };
        let (status, page) = app.get(&user, &path).await;
        assert_eq!(status, 200);
        pages += 1;
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|j| j["id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 9);
    assert_eq!(seen.len(), 250);
    assert_eq!(seen.iter().cloned().collect::<HashSet<_>>(), submitted);
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_and_retry_follow_the_status_machine() {
    let app = TestApp::spawn().await;
    let user = app.user(Role::User, true).await;
    let (_, pending) = app.submit(&user, json!({"type": "noop"})).await;
    let id = pending["job"]["id"].as_str().unwrap().to_owned();
    let (_, scheduled) = app
        .submit(
            &user,
            json!({"type": "noop", "run_at": "2099-01-01T00:00:00Z"}),
        )
        .await;
    let sid = scheduled["job"]["id"].as_str().unwrap().to_owned();
    assert_eq!(app.zcard("scheduled").await, 1);

    let (status, body) = app.post(&user, &format!("/api/jobs/{id}/retry")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("not_retryable"))
    );

    let (status, body) = app.post(&user, &format!("/api/jobs/{id}/cancel")).await;
    assert_eq!(
        (status, body["job"]["status"].as_str()),
        (200, Some("cancelled"))
    );
    assert!(body["job"]["finished_at"].is_string());
    assert!(
        app.zscore("ready:noop", &id).await.is_none(),
        "cancelled job left the queue"
    );
    let (status, body) = app.post(&user, &format!("/api/jobs/{id}/cancel")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("already_finished"))
    );

    let (status, body) = app.post(&user, &format!("/api/jobs/{sid}/cancel")).await;
    assert_eq!(
        (status, body["job"]["status"].as_str()),
        (200, Some("cancelled"))
    );
    assert_eq!(app.zcard("scheduled").await, 0);

    let (status, body) = app.post(&user, &format!("/api/jobs/{id}/retry")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["job"]["status"], "pending");
    assert_eq!(body["job"]["attempts"], 0);
    assert!(body["job"]["finished_at"].is_null());
    assert!(
        app.zscore("ready:noop", &id).await.is_some(),
        "retried job is queued again"
    );
    let (status, _) = app.post(&user, "/api/jobs/nope/cancel").await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_concurrent_identical_submits_create_one_job() {
    let app = TestApp::spawn().await;
    let user = app.user(Role::User, true).await;
    let other = app.user(Role::User, true).await;
    let send = |token: String| {
        let request = app
            .client
            .post(app.url("/api/jobs/submit"))
            .bearer_auth(token)
            .header("Idempotency-Key", "same-key")
            .json(&json!({"type": "noop"}));
        async move { read(request.send().await.unwrap()).await }
    };
    let results = futures_util::future::join_all((0..20).map(|_| send(user.token.clone()))).await;
    let created = results.iter().filter(|(s, _)| *s == 201).count();
    let replayed = results.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!((created, replayed), (1, 19));
    let ids: HashSet<&str> = results
        .iter()
        .map(|(_, b)| b["job"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 1);
    let (_, page) = app.get(&user, "/api/jobs/all").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(app.zcard("ready:noop").await, 1);
    // The key is per user.
    let (status, body) = send(other.token.clone()).await;
    assert_eq!(status, 201);
    assert!(!ids.contains(body["job"]["id"].as_str().unwrap()));
}

#[tokio::test(flavor = "multi_thread")]
async fn health_metrics_and_docs_answer() {
    let app = TestApp::spawn().await;
    for (path, status) in [
        ("/healthz", 200),
        ("/readyz", 200),
        ("/metrics", 200),
        ("/api-docs/openapi.json", 200),
        ("/docs/", 200),
        ("/api/jobs/all", 401),
        ("/nope", 404),
    ] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{path}");
        let headers = response.headers();
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(
            headers["content-security-policy"], "frame-ancestors 'none'",
            "{path}"
        );
    }
    let doc: Value = app
        .client
        .get(app.url("/api-docs/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["paths"]["/api/jobs/submit"].is_object());
    test_support::check_openapi(&doc, "job-service");
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_and_retry_answer_in_every_state() {
    let app = TestApp::spawn().await;
    let user = app.user(Role::User, true).await;
    let expected = [
        ("pending", 200, 409),
        ("scheduled", 200, 409),
        ("running", 200, 409),
        ("completed", 409, 409),
        ("failed", 409, 200),
        ("cancelled", 409, 200),
    ];
    for (state, cancel, retry) in expected {
        for (action, code) in [("cancel", cancel), ("retry", retry)] {
            let (_, job) = app.submit(&user, json!({"type": "noop"})).await;
            let id = job["job"]["id"].as_str().unwrap().to_owned();
            app.set_status(&id, state).await;
            let (status, body) = app.post(&user, &format!("/api/jobs/{id}/{action}")).await;
            assert_eq!(status, code, "{action} a {state} job: {body}");
            let want = match (action, code) {
                ("cancel", 200) => Some("cancelled"),
                ("retry", 200) => Some("pending"),
                _ => None,
            };
            match want {
                Some(now) => assert_eq!(body["job"]["status"], now, "{action} {state}"),
                None => assert_eq!(
                    body["code"],
                    if action == "cancel" {
                        "already_finished"
                    } else {
                        "not_retryable"
                    },
                    "{action} {state}"
                ),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn stats_count_every_status_and_pending_jobs_by_priority() {
    let app = TestApp::spawn().await;
    let user = app.user(Role::User, true).await;
    for priority in [5, 5, -3] {
        app.submit(&user, json!({"type": "noop", "priority": priority}))
            .await;
    }
    app.submit(
        &user,
        json!({"type": "noop", "priority": 5, "run_at": "2099-01-01T00:00:00Z"}),
    )
    .await;
    let (_, doomed) = app
        .submit(&user, json!({"type": "noop", "priority": 7}))
        .await;
    let id = doomed["job"]["id"].as_str().unwrap().to_owned();
    app.post(&user, &format!("/api/jobs/{id}/cancel")).await;

    let (status, stats) = app.get(&user, "/api/jobs/stats").await;
    assert_eq!(status, 200);
    assert_eq!(
        stats["counts"],
        json!({"waiting": 0, "pending": 3, "scheduled": 1, "running": 0, "completed": 0, "failed": 0, "cancelled": 1})
    );
    assert_eq!(stats["queue_depth"], json!({"5": 2, "-3": 1}));
}

#[tokio::test(flavor = "multi_thread")]
async fn answers_carry_the_request_id_and_problems_repeat_it() {
    let app = TestApp::spawn().await;
    let user = app.user(Role::User, true).await;
    let response = app
        .client
        .get(app.url("/api/jobs/00000000-0000-0000-0000-000000000000"))
        .bearer_auth(&user.token)
        .header("x-request-id", "lb-1234")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "lb-1234");
    let (status, body) = read(response).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
    assert_eq!(body["request_id"], "lb-1234");

    let response = app
        .client
        .get(app.url("/api/jobs/all"))
        .send()
        .await
        .unwrap();
    let generated = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(uuid::Uuid::parse_str(&generated).is_ok(), "{generated}");
    let (status, body) = read(response).await;
    assert_eq!(status, 401);
    assert_eq!(body["request_id"], generated.as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn misspelt_fields_and_wrong_types_are_named_in_plain_words() {
    let app = TestApp::spawn().await;
    let user = app.user(Role::User, true).await;
    let (status, body) = app
        .submit(&user, json!({"type": "noop", "prority": 5}))
        .await;
    assert_eq!(status, 422, "{body}");
    let message = body["errors"]["prority"][0].as_str().unwrap();
    assert!(message.starts_with("is not a known field"), "{body}");
    assert!(message.contains("priority"), "{body}");

    let (status, body) = app
        .submit(&user, json!({"type": "noop", "priority": "high"}))
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        body["errors"]["priority"],
        json!(["must be a whole number"])
    );

    let (status, body) = app.get(&user, "/api/jobs/all?stauts=pending").await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["errors"]["stauts"][0]
            .as_str()
            .unwrap()
            .contains("status"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_role_takes_effect_without_a_new_token() {
    let app = TestApp::spawn().await;
    let user = app.user(Role::User, true).await;
    let admin = app.user(Role::Admin, true).await;
    let status = |who: &'static str| {
        let token = if who == "user" {
            user.token.clone()
        } else {
            admin.token.clone()
        };
        let app = &app;
        async move {
            app.client
                .get(app.url("/api/jobs/admin/all"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(status("user").await, 403);
    assert_eq!(status("admin").await, 200);

    // grant-admin for one, the role taken away from the other; the tokens stay the same.
    let mut conn = app.pool.get().await.unwrap();
    for (email, role) in [(&user.email, Role::Admin), (&admin.email, Role::User)] {
        let email = domain::Email::from_trusted(email.clone());
        persistence::users::set_role(&mut conn, &email, role)
            .await
            .unwrap();
    }
    let deadline = std::time::Instant::now() + job_service::roles::ROLE_TTL * 2;
    while (status("user").await, status("admin").await) != (200, 403) {
        assert!(
            std::time::Instant::now() < deadline,
            "roles not applied in time"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_issued_after_a_change_of_role_is_served_with_the_new_role_at_once() {
    let app = TestApp::spawn().await;
    let user = app.user(Role::User, true).await;
    let status = |token: String| {
        let app = &app;
        async move {
            app.client
                .get(app.url("/api/jobs/admin/all"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    // The job service now remembers this user as a plain user for ROLE_TTL.
    assert_eq!(status(user.token.clone()).await, 403);
    let mut conn = app.pool.get().await.unwrap();
    let email = domain::Email::from_trusted(user.email.clone());
    persistence::users::set_role(&mut conn, &email, Role::Admin)
        .await
        .unwrap();
    // Signing in again gives a new token: the remembered role predates it.
    let claims = access_token::Claims::new_access(
        domain::UserId(user.id),
        Role::Admin,
        user.sid,
        &access_token::TokenSettings::default(),
        std::time::Duration::from_secs(900),
    );
    assert_eq!(status(app.key.sign(&claims).unwrap()).await, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn queue_depth_counts_ready_scheduled_and_running_per_priority() {
    let app = TestApp::spawn().await;
    let user = app.user(Role::User, true).await;
    for priority in [5, 5, 0] {
        let (status, _) = app
            .submit(&user, json!({"type": "noop", "priority": priority}))
            .await;
        assert_eq!(status, 201);
    }
    let later = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let (status, _) = app
        .submit(
            &user,
            json!({"type": "noop", "priority": 5, "run_at": later}),
        )
        .await;
    assert_eq!(status, 201);

    let depth: Value = app
        .client
        .get(app.url("/queue-depth"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        depth,
        json!({
            "ready": 3, "scheduled": 1, "running": 0,
            "by_priority": {"ready": {"0": 1, "5": 2}, "scheduled": {"5": 1}}
        })
    );
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let gauge = |state: &str, priority: &str| {
        metrics
            .lines()
            .find(|l| {
                l.starts_with("queue_jobs{")
                    && l.contains(&format!("state=\"{state}\""))
                    && l.contains(&format!("priority=\"{priority}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .map(str::to_owned)
    };
    assert_eq!(gauge("ready", "5").as_deref(), Some("2"), "{metrics}");
    assert_eq!(gauge("scheduled", "5").as_deref(), Some("1"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_metrics_addr_queue_depth_is_only_on_the_internal_listener() {
    let db = test_support::TestDb::create().await;
    let redis = test_support::TestRedis::new();
    let key = access_token::SigningKey::development();
    let internal = test_support::free_port();
    let base = job_service::testing::spawn_with(
        job_service::testing::TestBackends {
            database_url: db.url().to_owned(),
            redis_url: redis.url(),
            redis_prefix: redis.prefix().to_owned(),
            public_key_pem: key.public_pem(),
        },
        |settings| settings.metrics_addr = Some(format!("127.0.0.1:{internal}")),
    )
    .await
    .unwrap();
    let client = reqwest::Client::new();
    let public = client
        .get(format!("{base}/queue-depth"))
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), 404);
    let depth: Value = client
        .get(format!("http://127.0.0.1:{internal}/queue-depth"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(depth["ready"], 0);
    let metrics = client
        .get(format!("http://127.0.0.1:{internal}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
}
