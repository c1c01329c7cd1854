//! The client's IP address, for per-IP limits.

use std::net::IpAddr;

use actix_web::HttpRequest;
use ipnet::IpNet;

/// Works out client addresses given the proxies in front of the service.
#[derive(Debug, Clone, Default)]
pub struct ClientIp {
    trusted: Vec<IpNet>,
}

impl ClientIp {
    /// With no trusted proxy, the client is the socket peer.
    pub fn new(trusted: Vec<IpNet>) -> Self {
        Self { trusted }
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|net| net.contains(&ip))
    }

    /// The socket peer; or, when the peer is a trusted proxy, the rightmost `X-Forwarded-For`
    /// entry that is not itself trusted (entries further left are client-controlled).
    pub fn of(&self, req: &HttpRequest) -> IpAddr {
        let peer = req
            .peer_addr()
            .map_or(IpAddr::from([0, 0, 0, 0]), |a| a.ip());
        if !self.is_trusted(peer) {
            return peer;
        }
        let forwarded = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        let mut last_trusted = peer;
        for entry in forwarded.iter().rev() {
            match entry.parse::<IpAddr>() {
                Ok(ip) if self.is_trusted(ip) => last_trusted = ip,
                Ok(ip) => return ip,
                // Garbage in the header: stop believing it.
                Err(_) => return last_trusted,
            }
        }
        last_trusted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn request(xff: &str) -> HttpRequest {
        TestRequest::default()
            .peer_addr("10.0.0.1:1234".parse().unwrap())
            .insert_header(("x-forwarded-for", xff))
            .to_http_request()
    }

    #[test]
    fn untrusted_peers_are_the_client() {
        let ip = ClientIp::default().of(&request("1.2.3.4"));
        assert_eq!(ip.to_string(), "10.0.0.1");
    }

    #[test]
    fn trusted_peers_forward_the_rightmost_untrusted_entry() {
        let trusted = vec!["10.0.0.0/8".parse().unwrap()];
        let ip = ClientIp::new(trusted).of(&request("6.6.6.6, 1.2.3.4, 10.0.0.7"));
        assert_eq!(ip.to_string(), "1.2.3.4");
    }
}
