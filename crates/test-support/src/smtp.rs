//! A small SMTP server that records what it receives, for tests of code that sends email.
//!
//! It speaks enough of RFC 5321 for lettre (EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT) over a
//! real socket, and can be told to be slow or to refuse mail, to test how senders cope.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// One message as received.
#[derive(Debug, Clone)]
pub struct Captured {
    /// The envelope sender.
    pub from: String,
    /// The envelope recipients.
    pub to: Vec<String>,
    /// The message (headers and body), dot-stuffing removed.
    pub data: String,
}

impl Captured {
    /// The message body: everything after the blank line that ends the headers.
    pub fn body(&self) -> &str {
        self.data
            .split_once("\r\n\r\n")
            .map_or("", |(_, body)| body)
    }

    /// The value of the first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let headers = self
            .data
            .split_once("\r\n\r\n")
            .map_or(self.data.as_str(), |(h, _)| h);
        headers.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

/// How the server behaves.
#[derive(Debug, Clone, Copy, Default)]
pub enum Behaviour {
    /// Accepts every message at once.
    #[default]
    Accept,
    /// Waits this long before greeting each connection.
    Slow(Duration),
    /// Refuses every message with a permanent error.
    Refuse,
}

/// A running capture server; it stops when dropped.
pub struct SmtpCapture {
    port: u16,
    messages: Arc<Mutex<Vec<Captured>>>,
    task: tokio::task::JoinHandle<()>,
}

impl SmtpCapture {
    /// Starts a server that accepts everything.
    pub async fn start() -> Self {
        Self::start_with(Behaviour::Accept).await
    }

    /// Starts a server with the given behaviour.
    pub async fn start_with(behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind smtp capture");
        let port = listener.local_addr().expect("local addr").port();
        let messages = Arc::new(Mutex::new(Vec::new()));
        let store = messages.clone();
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let store = store.clone();
                tokio::spawn(async move {
                    let _ = serve(socket, behaviour, store).await;
                });
            }
        });
        Self {
            port,
            messages,
            task,
        }
    }

    /// `smtp://127.0.0.1:<port>`, for `SMTP_URL`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received so far.
    pub fn messages(&self) -> Vec<Captured> {
        self.messages.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Messages received so far for `recipient`.
    pub fn messages_to(&self, recipient: &str) -> Vec<Captured> {
        self.messages()
            .into_iter()
            .filter(|m| m.to.iter().any(|t| t.eq_ignore_ascii_case(recipient)))
            .collect()
    }

    /// Waits (up to 10 s) until `count` messages for `recipient` arrived, and returns them.
    pub async fn wait_for(&self, recipient: &str, count: usize) -> Vec<Captured> {
        for _ in 0..500 {
            let found = self.messages_to(recipient);
            if found.len() >= count {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "expected {count} message(s) for {recipient}; got {:?}",
            self.messages_to(recipient)
        );
    }
}

impl Drop for SmtpCapture {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    socket: tokio::net::TcpStream,
    behaviour: Behaviour,
    store: Arc<Mutex<Vec<Captured>>>,
) -> std::io::Result<()> {
    if let Behaviour::Slow(delay) = behaviour {
        tokio::time::sleep(delay).await;
    }
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 capture ESMTP ready\r\n").await?;
    let (mut from, mut to) = (String::new(), Vec::new());
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_owned();
        let verb = command
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => b"250-capture\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n",
            "HELO" => b"250 capture\r\n",
            "MAIL" if matches!(behaviour, Behaviour::Refuse) => {
                b"554 5.7.1 refused by test server\r\n"
            }
            "MAIL" => {
                from = angle_address(&command);
                to.clear();
                b"250 OK\r\n"
            }
            "RCPT" => {
                to.push(angle_address(&command));
                b"250 OK\r\n"
            }
            "DATA" => {
                write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                let mut data = String::new();
                loop {
                    line.clear();
                    if lines.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" || line == ".\n" {
                        break;
                    }
                    data.push_str(line.strip_prefix('.').unwrap_or(&line));
                }
                if let Ok(mut messages) = store.lock() {
                    messages.push(Captured {
                        from: from.clone(),
                        to: to.clone(),
                        data,
                    });
                }
                b"250 OK queued\r\n"
            }
            "RSET" | "NOOP" => b"250 OK\r\n",
            "QUIT" => {
                write.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            _ => b"502 command not implemented\r\n",
        };
        write.write_all(reply).await?;
    }
}

fn angle_address(command: &str) -> String {
    command
        .split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map_or_else(String::new, |(address, _)| address.to_owned())
}
