//! Listening sockets with an accept backlog fit for connection bursts.
//!
//! `std::net::TcpListener::bind` listens with a backlog of 128, and actix-web's
//! `HttpServer::backlog` applies only to the sockets it binds itself, not to a listener passed
//! to `listen`. A burst of connections (every WebSocket client of a replica that went away,
//! reconnecting at once) overflowed 128 pending connections: the kernel dropped the SYNs and
//! the clients waited a full second to retry. Measured with `bench --ws`: 467 dropped SYNs while
//! opening 20,000 sockets, and the rate of opening them halved.

use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};

use socket2::{Domain, Protocol, Socket, Type};

/// Pending connections the kernel keeps for a listener (capped by `net.core.somaxconn`).
pub const BACKLOG: i32 = 4096;

/// Binds the first address of `addr` that can be bound (with `SO_REUSEADDR`, as std does) and
/// listens on it with [`BACKLOG`].
pub fn bind(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
    let mut last = None;
    for addr in addr.to_socket_addrs()? {
        match bind_one(addr) {
            Ok(listener) => return Ok(listener),
            Err(error) => last = Some(error),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "the address resolves to nothing",
        )
    }))
}

fn bind_one(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// 600 connections wait in the queue while nothing accepts them; each completes its
    /// handshake at once (with std's backlog of 128, the 130th SYN is dropped and its connect
    /// times out here).
    #[test]
    fn a_burst_of_connections_waits_in_the_queue() -> io::Result<()> {
        let listener = bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let mut held = Vec::new();
        for i in 0..600 {
            let stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500))
                .map_err(|e| io::Error::other(format!("connection {i} was not queued: {e}")))?;
            held.push(stream);
        }
        Ok(())
    }
}
