//! Frames the server refuses with `error` while the socket stays open: malformed JSON,
//! unknown events, bad room names, oversized messages and frames, too many frames or rooms.

use domain::Role;
use serde_json::json;

use crate::helpers::Stack;

#[tokio::test(flavor = "multi_thread")]
async fn malformed_unknown_and_oversized_frames_get_errors_and_the_socket_stays_usable() {
    let stack = Stack::start(1).await;
    let user = stack.user(Role::User).await;
    let mut ws = stack.connect(0, &user).await;
    ws.join("lobby").await;

    let big = "x".repeat(4097);
    let just_fits = "é".repeat(2048); // 4096 bytes of UTF-8
    let cases = [
        ("{not json".to_owned(), "bad_frame"),
        ("[1, 2]".to_owned(), "bad_frame"),
        (json!({"data": {}}).to_string(), "bad_frame"),
        (
            json!({"event": "joinRoom", "data": {}}).to_string(),
            "bad_frame",
        ),
        (json!({"event": "joinRoom"}).to_string(), "bad_frame"),
        (
            json!({"event": "fly", "data": {}}).to_string(),
            "unknown_event",
        ),
        (
            json!({"event": "joinRoom", "data": {"room": "no spaces"}}).to_string(),
            "invalid_room",
        ),
        (
            json!({"event": "joinRoom", "data": {"room": "x".repeat(65)}}).to_string(),
            "invalid_room",
        ),
        (
            json!({"event": "sendMessage", "data": {"room": "lobby", "message": big}}).to_string(),
            "message_too_large",
        ),
        ("y".repeat(20_000), "frame_too_large"),
    ];
    for (text, code) in cases {
        ws.send_text(&text).await;
        let error = ws.expect("error").await;
        assert_eq!(error["code"], code, "{}", &text[..text.len().min(80)]);
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    ws.send_binary(vec![1, 2, 3]).await;
    assert_eq!(ws.expect("error").await["code"], "bad_frame");

    // Still open and working.
    ws.send(
        "sendMessage",
        json!({"room": "lobby", "message": just_fits}),
    )
    .await;
    assert_eq!(ws.expect("receiveMessage").await["message"], just_fits);
}

#[tokio::test(flavor = "multi_thread")]
async fn too_many_frames_or_rooms_get_errors_and_the_socket_stays_open() {
    let stack = Stack::start_with(1, None, |settings| {
        settings.ws_messages_per_sec = 5;
        settings.ws_max_rooms = 3;
    })
    .await;
    let user = stack.user(Role::User).await;
    let mut ws = stack.connect(0, &user).await;
    for room in ["a", "b", "c"] {
        ws.join(room).await;
    }
    ws.send("joinRoom", json!({"room": "d"})).await;
    let error = ws.expect("error").await;
    assert_eq!(error["code"], "too_many_rooms");
    assert_eq!(error["room"], "d");

    // A burst over twice the rate: the excess is refused with rate_limited.
    for _ in 0..20 {
        ws.send("leaveRoom", json!({"room": "zz"})).await;
    }
    let mut limited = 0;
    for _ in 0..20 {
        let frame = ws.next().await;
        if frame["event"] == "error" {
            assert_eq!(frame["data"]["code"], "rate_limited");
            limited += 1;
        } else {
            assert_eq!(frame["event"], "left");
        }
    }
    assert!(limited >= 10, "{limited} of 20 refused");

    // After a pause the budget is back.
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    ws.send("leaveRoom", json!({"room": "a"})).await;
    assert_eq!(ws.expect("left").await["room"], "a");
    ws.join("d").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fragmented_messages_are_joined_pings_answered_and_over_64_kib_closes_with_1009() {
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

    let stack = Stack::start(1).await;
    let user = stack.user(Role::User).await;
    let mut ws = stack.connect(0, &user).await;

    // One joinRoom text in three fragments, a ping between two of them.
    let text = json!({"event": "joinRoom", "data": {"room": "pieces"}}).to_string();
    let (a, rest) = text.split_at(10);
    let (b, c) = rest.split_at(10);
    let frames = [
        Frame::message(a.as_bytes().to_vec(), OpCode::Data(Data::Text), false),
        Frame::message(b.as_bytes().to_vec(), OpCode::Data(Data::Continue), false),
        Frame::ping(b"are you there".to_vec()),
        Frame::message(c.as_bytes().to_vec(), OpCode::Data(Data::Continue), true),
    ];
    for frame in frames {
        ws.stream.send(Message::Frame(frame)).await.unwrap();
    }
    let mut pong = false;
    let mut joined = false;
    while !(pong && joined) {
        match tokio::time::timeout(crate::helpers::WAIT, ws.stream.next())
            .await
            .unwrap()
        {
            Some(Ok(Message::Pong(payload))) => {
                assert_eq!(&payload[..], b"are you there");
                pong = true;
            }
            Some(Ok(Message::Text(frame))) => {
                let frame: serde_json::Value = serde_json::from_str(&frame).unwrap();
                assert_eq!(frame["event"], "joined", "{frame}");
                assert_eq!(frame["data"]["room"], "pieces");
                joined = true;
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    // A message whose fragments add up to more than the hard limit closes with 1009.
    let chunk = vec![b'x'; 40 * 1024];
    let frames = [
        Frame::message(chunk.clone(), OpCode::Data(Data::Text), false),
        Frame::message(chunk, OpCode::Data(Data::Continue), true),
    ];
    for frame in frames {
        ws.stream.send(Message::Frame(frame)).await.unwrap();
    }
    assert_eq!(
        ws.closed_within(std::time::Duration::from_secs(5)).await,
        Some(1009)
    );
}
