//! A TCP proxy in front of Redis that counts the commands a service sends through it, so a
//! test can tell how many commands one request cost on the service's own connections (Redis
//! 7.0 keeps no per-connection command count, and `INFO commandstats` is shared by every test
//! using the server).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// The proxy: point the service's `REDIS_URL` at [`CountingProxy::url`].
pub struct CountingProxy {
    url: String,
    commands: Arc<AtomicU64>,
}

impl CountingProxy {
    /// Listens on a free loopback port and forwards every connection to `redis_url`'s server.
    pub async fn start(redis_url: &str) -> Self {
        let target = redis_url
            .trim_start_matches("redis://")
            .trim_end_matches('/')
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("redis://{}", listener.local_addr().unwrap());
        let commands = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&commands);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&target).await else {
                    continue;
                };
                tokio::spawn(forward(client, server, Arc::clone(&counter)));
            }
        });
        Self { url, commands }
    }

    /// The URL to give the service.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Commands sent through the proxy so far, by every connection.
    pub fn commands(&self) -> u64 {
        self.commands.load(Ordering::SeqCst)
    }
}

/// Copies both ways, counting the commands the client sends.
async fn forward(client: TcpStream, server: TcpStream, commands: Arc<AtomicU64>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let upstream = async move {
        let mut parser = CommandCounter::default();
        let mut buf = vec![0_u8; 64 * 1024];
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            // Counted before forwarding: the answer cannot come back before the count.
            commands.fetch_add(parser.feed(&buf[..n]), Ordering::SeqCst);
            if server_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = server_write.shutdown().await;
    };
    let downstream = async move {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
        let _ = client_write.shutdown().await;
    };
    tokio::join!(upstream, downstream);
}

/// Counts complete RESP commands (arrays of bulk strings, as clients send them) in a byte
/// stream that arrives in arbitrary pieces.
#[derive(Default)]
struct CommandCounter {
    pending: Vec<u8>,
}

impl CommandCounter {
    /// Takes the next bytes; returns how many commands they completed.
    fn feed(&mut self, bytes: &[u8]) -> u64 {
        self.pending.extend_from_slice(bytes);
        let mut count = 0;
        let mut start = 0;
        while let Some(len) = command_len(&self.pending[start..]) {
            start += len;
            count += 1;
        }
        self.pending.drain(..start);
        count
    }
}

/// The length of the complete command at the start of `bytes`, if it is all there.
fn command_len(bytes: &[u8]) -> Option<usize> {
    let (elements, mut at) = header(bytes, b'*')?;
    for _ in 0..elements {
        let (len, after) = header(&bytes[at..], b'$')?;
        at += after + len + 2;
        if bytes.len() < at {
            return None;
        }
    }
    Some(at)
}

/// Parses `<kind><number>\r\n` at the start of `bytes`: the number and the header's length.
fn header(bytes: &[u8], kind: u8) -> Option<(usize, usize)> {
    if bytes.first() != Some(&kind) {
        return None;
    }
    let end = bytes.windows(2).position(|w| w == b"\r\n")?;
    let number = std::str::from_utf8(&bytes[1..end]).ok()?.parse().ok()?;
    Some((number, end + 2))
}

#[test]
fn commands_are_counted_across_pieces() {
    let mut counter = CommandCounter::default();
    let two = b"*1\r\n$4\r\nPING\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nv\r\nxy\r\n";
    assert_eq!(counter.feed(&two[..10]), 0);
    assert_eq!(counter.feed(&two[10..20]), 1);
    assert_eq!(counter.feed(&two[20..]), 1);
    assert_eq!(counter.feed(b"*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n"), 2);
}
