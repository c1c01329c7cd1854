//! Slow clients cannot hurt others: a client that stops reading is closed with 1013 once its
//! bounded queue overflows while the others get every event; queued events of one job
//! collapse to the latest; a client that answers no ping is dropped.

use std::time::Duration;

use domain::Role;
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::helpers::{Stack, User, Ws};

/// A socket whose receive buffer is tiny, so that not reading fills the server's side fast.
async fn stalled(stack: &Stack, user: &User) -> Ws {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let addr = stack.replicas[0]
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let mut request = stack.ws_url(0).into_client_request().unwrap();
    request.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {}", user.token)).unwrap(),
    );
    let (stream, _) =
        tokio_tungstenite::client_async(request, tokio_tungstenite::MaybeTlsStream::Plain(stream))
            .await
            .unwrap();
    Ws { stream }
}

/// A `jobUpdated` payload for `owner`'s job `id` with `padding` bytes of data.
fn job_event(id: uuid::Uuid, owner: uuid::Uuid, progress: u32, padding: usize) -> String {
    job_queue::job_updated_event(&json!({
        "id": id, "user_id": owner, "status": "running", "progress": progress,
        "data": {"pad": "p".repeat(padding)},
        "updated_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
    }))
}

fn metric(page: &str, name: &str) -> f64 {
    page.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_client_is_closed_with_1013_while_the_fast_ones_get_every_event() {
    // The default message bound, 2 MiB of bytes: room for a fast reader that the loaded test
    // machine deschedules for a moment, far less than what the stalled reader is sent.
    let stack = Stack::start_with(1, None, |settings| {
        settings.ws_send_queue_bytes = 2 * 1024 * 1024;
    })
    .await;
    let owner = stack.user(Role::User).await;
    let mut fast = Vec::new();
    for _ in 0..3 {
        let admin = stack.user(Role::Admin).await;
        let mut ws = stack.connect(0, &admin).await;
        ws.join("admin:jobs").await;
        fast.push(ws);
    }
    let slow_admin = stack.user(Role::Admin).await;
    let mut slow = stalled(&stack, &slow_admin).await;
    slow.join("admin:jobs").await;

    // 500 distinct jobs' events of ~30 KB: 15 MB for the stalled socket to never read, more
    // than the kernel buffers of a loopback connection (4 MB at most here) and its bound hold.
    let events = 500;
    let readers: Vec<_> = fast
        .into_iter()
        .map(|mut ws| {
            tokio::spawn(async move {
                let mut got = 0;
                while got < events {
                    let frame = ws.next().await;
                    assert_eq!(frame["event"], "jobUpdated");
                    got += 1;
                }
                ws
            })
        })
        .collect();
    let started = tokio::time::Instant::now();
    for n in 0..events {
        if n % 25 == 0 {
            // Paced, as a worker publishes: the fast readers keep up.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let id = uuid::Uuid::now_v7();
        stack
            .publish(
                &format!("events:user:{}", owner.id),
                &job_event(id, owner.id, 1, 30_000),
            )
            .await;
    }
    for reader in readers {
        tokio::time::timeout(Duration::from_secs(30), reader)
            .await
            .expect("fast clients got every event in time")
            .unwrap();
    }
    let elapsed = started.elapsed();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let page = stack.metrics(0).await;
        if metric(&page, "ws_slow_consumers_dropped_total") == 1.0
            && metric(&page, "ws_closed_total{code=\"1013\"}") == 1.0
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stalled socket is still open:\n{page}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // When it finally reads: what was in flight, then the 1013 close (or the end).
    let code = slow.closed_within(Duration::from_secs(20)).await;
    assert!(matches!(code, Some(1013) | None), "{code:?}");
    assert!(elapsed < Duration::from_secs(30));
}

#[tokio::test(flavor = "multi_thread")]
async fn queued_events_of_one_job_collapse_to_the_latest() {
    let stack = Stack::start_with(1, None, |settings| {
        settings.ws_send_queue_messages = 64;
    })
    .await;
    let owner = stack.user(Role::User).await;
    let mut slow = stalled(&stack, &owner).await;
    slow.join("lobby").await;

    let job = uuid::Uuid::now_v7();
    let updates = 1500;
    for progress in 1..=updates {
        stack
            .publish(
                &format!("events:user:{}", owner.id),
                &job_event(job, owner.id, progress, 8000),
            )
            .await;
    }
    // Now read: far fewer frames than updates, the last one the latest, and the socket open.
    let mut frames = 0;
    let mut last = 0;
    while last < updates {
        let data = slow.expect("jobUpdated").await;
        assert_eq!(data["job"]["id"], job.to_string());
        let progress = data["job"]["progress"].as_u64().unwrap() as u32;
        assert!(progress > last, "{progress} after {last}");
        last = progress;
        frames += 1;
    }
    assert!(frames < updates, "{frames} frames for {updates} updates");
    slow.join("still-open").await;
    let page = stack.metrics(0).await;
    assert!(
        metric(&page, "ws_job_events_collapsed_total") >= 1.0,
        "{page}"
    );
    assert_eq!(metric(&page, "ws_slow_consumers_dropped_total"), 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_answers_no_ping_is_dropped_and_one_that_does_stays() {
    let stack = Stack::start_with(1, None, |settings| {
        settings.ws_ping_secs = 1;
    })
    .await;
    let user = stack.user(Role::User).await;
    let mut silent = stack.connect(0, &user).await;
    let mut alive = stack.connect(0, &user).await;
    // `alive` reads (and so answers pings) the whole time; `silent` does not read at all.
    let reader = tokio::spawn(async move {
        alive.quiet(Duration::from_millis(4500)).await;
        alive
    });
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let mut alive = reader.await.unwrap();
    alive.join("still-here").await;
    let page = stack.metrics(0).await;
    assert_eq!(
        metric(&page, "ws_closed_total{code=\"4008\"}"),
        1.0,
        "{page}"
    );
    assert_eq!(metric(&page, "ws_connected_sockets"), 1.0, "{page}");
    // What the silent client finds when it reads at last: pings, then the close (or, if its
    // pending pong answers hit the closed connection first, an error).
    let code = silent.closed_within(Duration::from_secs(2)).await;
    assert!(matches!(code, Some(4008) | None), "{code:?}");
}
