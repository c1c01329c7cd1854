//! Helpers shared by the unit tests.

use std::error::Error;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use deadpool_redis::Pool;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The test Redis: `REDIS_URL`, else `redis://127.0.0.1:6379`.
pub(crate) fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

pub(crate) fn test_pool() -> Result<Pool, Box<dyn Error>> {
    Ok(deadpool_redis::Config::from_url(redis_url())
        .create_pool(Some(deadpool_redis::Runtime::Tokio1))?)
}

/// A key prefix no other test uses.
pub(crate) fn test_prefix() -> String {
    format!("test:{}:", uuid::Uuid::new_v4())
}

/// A tiny HTTP server on 127.0.0.1 answering every request with `200` and a JSON body that the
/// test can change, counting the requests. Stops when dropped.
pub(crate) struct JwksServer {
    pub(crate) url: String,
    hits: Arc<AtomicUsize>,
    body: Arc<Mutex<Vec<u8>>>,
    task: JoinHandle<()>,
}

impl JwksServer {
    pub(crate) async fn start(body: Vec<u8>) -> std::io::Result<Self> {
        Self::start_with(String::new(), body).await
    }

    /// Answers every request with a `302` to `location`.
    pub(crate) async fn redirecting(location: &str) -> std::io::Result<Self> {
        Self::start_with(location.to_owned(), Vec::new()).await
    }

    /// With a non-empty `location`, answers `302 Found` there instead of `200` with `body`.
    async fn start_with(location: String, body: Vec<u8>) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/.well-known/jwks.json", listener.local_addr()?);
        let hits = Arc::new(AtomicUsize::new(0));
        let body = Arc::new(Mutex::new(body));
        let task = tokio::spawn({
            let hits = hits.clone();
            let body = body.clone();
            async move {
                while let Ok((mut socket, _)) = listener.accept().await {
                    let hits = hits.clone();
                    let body = body.clone();
                    let location = location.clone();
                    tokio::spawn(async move {
                        // Read the request head (no body is expected).
                        let mut request = Vec::new();
                        let mut buf = [0u8; 1024];
                        while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16384
                        {
                            match socket.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => request.extend_from_slice(&buf[..n]),
                            }
                        }
                        hits.fetch_add(1, Ordering::SeqCst);
                        let body = body.lock().unwrap_or_else(PoisonError::into_inner).clone();
                        let status = if location.is_empty() {
                            "200 OK".to_owned()
                        } else {
                            format!("302 Found\r\nLocation: {location}")
                        };
                        let head = format!(
                            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        );
                        let _ = socket.write_all(head.as_bytes()).await;
                        let _ = socket.write_all(&body).await;
                        let _ = socket.shutdown().await;
                    });
                }
            }
        });
        Ok(Self {
            url,
            hits,
            body,
            task,
        })
    }

    /// How many requests were answered.
    pub(crate) fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Serves `body` from now on.
    pub(crate) fn set_body(&self, body: Vec<u8>) {
        *self.body.lock().unwrap_or_else(PoisonError::into_inner) = body;
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
