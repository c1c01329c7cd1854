//! The client's IP address, for per-IP limits.
//!
//! Addresses are normalised so that one client cannot pose as many: an IPv6 client is its
//! /64 network (one subscriber's allocation; every address in it is the same client), and an
//! IPv4-mapped IPv6 address (`::ffff:1.2.3.4`) is the IPv4 address.

use std::net::{IpAddr, Ipv6Addr};

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

    /// The client, normalised (see the module docs): the socket peer; or, when the peer is a
    /// trusted proxy, the rightmost `X-Forwarded-For` entry that is not itself trusted (entries
    /// further left are client-controlled).
    pub fn of(&self, req: &HttpRequest) -> IpAddr {
        normalise(self.address_of(req))
    }

    fn address_of(&self, req: &HttpRequest) -> IpAddr {
        let peer = req
            .peer_addr()
            .map_or(IpAddr::from([0, 0, 0, 0]), |a| a.ip().to_canonical());
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
            match entry.parse::<IpAddr>().map(|ip| ip.to_canonical()) {
                Ok(ip) if self.is_trusted(ip) => last_trusted = ip,
                Ok(ip) => return ip,
                // Garbage in the header: stop believing it.
                Err(_) => return last_trusted,
            }
        }
        last_trusted
    }
}

/// IPv4-mapped addresses as IPv4; IPv6 addresses as their /64 network.
pub fn normalise(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let network = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(network))
        }
        v4 => v4,
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

    #[test]
    fn ipv6_clients_are_their_64_and_mapped_ipv4_is_ipv4() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(normalise(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(
            normalise(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")),
            ip("2001:db8:1:2::")
        );
        assert_ne!(normalise(ip("2001:db8:1:3::1")), ip("2001:db8:1:2::"));
        assert_eq!(normalise(ip("::ffff:1.2.3.4")), ip("1.2.3.4"));
        assert_eq!(normalise(ip("1.2.3.4")), ip("1.2.3.4"));
    }

    #[test]
    fn forwarded_ipv6_clients_are_normalised() {
        let trusted = vec!["10.0.0.0/8".parse().unwrap()];
        let ip = ClientIp::new(trusted).of(&request("2001:db8::5, 10.0.0.7"));
        assert_eq!(ip.to_string(), "2001:db8::");
        let ip = ClientIp::new(vec!["10.0.0.0/8".parse().unwrap()]).of(&request("::ffff:9.9.9.9"));
        assert_eq!(ip.to_string(), "9.9.9.9");
    }
}
