//! The client's real address behind a reverse proxy, CDN or TCP load balancer, for
//! per-address limits and viewer counting: from `Forwarded` / `X-Forwarded-For`
//! (HTTP) or a PROXY protocol header (RTMP), and only when the connection comes from a
//! configured trusted proxy. Anyone else could write those headers, so from anyone
//! else they are ignored (HTTP) or not expected (RTMP: a stranger's PROXY line is just
//! a bad handshake).
//!
//! The two HTTP headers are parsed here by hand: a few lines of splitting on `,` `;`
//! `=`, where the work that matters (which hop to believe) is ours either way. The
//! PROXY protocol, binary v2 included, is parsed by the `ppp` crate.

use std::net::{IpAddr, SocketAddr};

use axum::http::{self, HeaderMap};
use ipnet::IpNet;
use ppp::PartialResult as _;

/// Addresses or CIDR ranges (`["10.0.0.0/8", "192.0.2.7"]` in the config): the
/// proxies whose word on the client's address is taken, the networks restreaming may
/// reach despite being internal.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct Networks(Vec<IpNet>);

/// An entry that is neither an address nor a CIDR range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an address or CIDR range")]
pub struct NotAnAddress(String);

impl TryFrom<Vec<String>> for Networks {
    type Error = NotAnAddress;

    fn try_from(list: Vec<String>) -> Result<Self, NotAnAddress> {
        list.iter()
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| NotAnAddress(s.clone()))
            })
            .collect::<Result<_, _>>()
            .map(Networks)
    }
}

/// A comma-separated list, as a flag or environment variable gives it.
impl std::str::FromStr for Networks {
    type Err = NotAnAddress;

    fn from_str(list: &str) -> Result<Self, NotAnAddress> {
        let items = list.split(',').map(str::trim).filter(|s| !s.is_empty());
        Self::try_from(items.map(String::from).collect::<Vec<_>>())
    }
}

impl From<Networks> for Vec<String> {
    fn from(p: Networks) -> Self {
        p.0.iter().map(IpNet::to_string).collect()
    }
}

/// Hops of a forwarding header looked at, nearest first: a longer chain is a client
/// padding it, and what lies beyond is not believed anyway.
const MAX_HOPS: usize = 32;

impl Networks {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The address of the client whose HTTP request arrived from `peer`: `peer` itself
    /// unless it is a trusted proxy; then, walking the forwarded hops from the
    /// nearest, the first address that is not a trusted proxy (one a client wrote
    /// further left is not believed). `Forwarded` wins over `X-Forwarded-For`.
    pub fn http_client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.contains(peer) {
            return peer;
        }
        let hops = forwarded_hops(headers);
        let mut client = peer;
        for hop in hops.iter().rev().take(MAX_HOPS) {
            // An obfuscated or unparsable hop ends what can be known.
            let Some(ip) = hop else { break };
            client = *ip;
            if !self.contains(*ip) {
                break;
            }
        }
        client
    }
}

/// IPv4-mapped IPv6 (`::ffff:a.b.c.d`, what a dual-stack listener reports) as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The hops a request went through, farthest first, from `Forwarded` (RFC 7239 `for=`)
/// if present, else `X-Forwarded-For`. `None`: a hop whose address is hidden or
/// unreadable.
pub fn forwarded_hops(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let forwarded: Vec<_> = headers.get_all(http::header::FORWARDED).iter().collect();
    if !forwarded.is_empty() {
        return forwarded
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|element| {
                element
                    .split(';')
                    .filter_map(|pair| pair.split_once('='))
                    .find(|(key, _)| key.trim().eq_ignore_ascii_case("for"))
                    .and_then(|(_, value)| node_address(value.trim().trim_matches('"')))
            })
            .collect();
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|hop| node_address(hop.trim()))
        .collect()
}

/// An address as forwarding headers write it: `192.0.2.1`, `192.0.2.1:4711`,
/// `2001:db8::1`, `[2001:db8::1]`, `[2001:db8::1]:4711`.
fn node_address(text: &str) -> Option<IpAddr> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(canonical(addr.ip()));
    }
    let bracketed = text.strip_prefix('[')?.split(']').next()?;
    bracketed.parse::<IpAddr>().ok().map(canonical)
}

/// Longest PROXY header read: v1 is at most 107 bytes, v2 is 16 plus addresses and
/// the proxy's TLVs, which HAProxy keeps within a few hundred bytes.
pub const MAX_PROXY_HEADER: usize = 4096;

/// What the first bytes from a trusted proxy say.
#[derive(Debug, PartialEq, Eq)]
pub enum ProxyHeader {
    /// Not all of the header has arrived.
    Incomplete,
    /// The header is `len` bytes; `client` is the address it names (`None`: the proxy
    /// speaks for itself, e.g. a health check, or names no IP address).
    Done {
        len: usize,
        client: Option<SocketAddr>,
    },
    Invalid(String),
}

/// Parses a PROXY protocol header (v1 text or v2 binary) at the start of `input`.
pub fn proxy_header(input: &[u8]) -> ProxyHeader {
    let parsed = ppp::HeaderResult::parse(input);
    if parsed.is_incomplete() {
        return if input.len() >= MAX_PROXY_HEADER {
            ProxyHeader::Invalid(format!("no PROXY header within {MAX_PROXY_HEADER} bytes"))
        } else {
            ProxyHeader::Incomplete
        };
    }
    match parsed {
        ppp::HeaderResult::V1(Ok(h)) => {
            let client = match h.addresses {
                ppp::v1::Addresses::Tcp4(a) => {
                    Some(SocketAddr::from((a.source_address, a.source_port)))
                }
                ppp::v1::Addresses::Tcp6(a) => {
                    Some(SocketAddr::from((a.source_address, a.source_port)))
                }
                ppp::v1::Addresses::Unknown => None,
            };
            ProxyHeader::Done {
                len: h.header.len(),
                client,
            }
        }
        ppp::HeaderResult::V2(Ok(h)) => {
            let client = match (h.command, h.addresses) {
                (ppp::v2::Command::Local, _) => None,
                (_, ppp::v2::Addresses::IPv4(a)) => {
                    Some(SocketAddr::from((a.source_address, a.source_port)))
                }
                (_, ppp::v2::Addresses::IPv6(a)) => {
                    Some(SocketAddr::from((a.source_address, a.source_port)))
                }
                _ => None,
            };
            ProxyHeader::Done {
                len: h.len(),
                client,
            }
        }
        ppp::HeaderResult::V1(Err(e)) => ProxyHeader::Invalid(format!("bad PROXY v1 header: {e}")),
        ppp::HeaderResult::V2(Err(e)) => ProxyHeader::Invalid(format!("bad PROXY v2 header: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(list: &[&str]) -> Networks {
        Networks::try_from(list.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_a_trusted_proxy_is_believed_and_only_up_to_the_first_stranger() {
        let p = proxies(&["10.0.0.0/8", "192.0.2.7"]);
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.5, 10.1.1.1")]);
        // A stranger's header is ignored.
        assert_eq!(p.http_client(ip("198.51.100.1"), &h), ip("198.51.100.1"));
        // From the proxy: 10.1.1.1 is another trusted hop, 203.0.113.5 the client;
        // 6.6.6.6 is what the client wrote itself.
        assert_eq!(p.http_client(ip("192.0.2.7"), &h), ip("203.0.113.5"));
        // No header: the proxy's own address.
        assert_eq!(
            p.http_client(ip("192.0.2.7"), &HeaderMap::new()),
            ip("192.0.2.7")
        );
    }

    #[test]
    fn forwarded_wins_and_its_address_forms_are_read() {
        let p = proxies(&["127.0.0.1"]);
        let h = headers(&[
            ("x-forwarded-for", "1.1.1.1"),
            ("forwarded", "for=192.0.2.60;proto=http;by=203.0.113.43"),
            ("forwarded", "For=\"[2001:db8:cafe::17]:4711\""),
        ]);
        assert_eq!(p.http_client(ip("127.0.0.1"), &h), ip("2001:db8:cafe::17"));
        let hidden = headers(&[("forwarded", "for=192.0.2.60, for=_hidden")]);
        assert_eq!(p.http_client(ip("127.0.0.1"), &hidden), ip("127.0.0.1"));
        let with_port = headers(&[("forwarded", "for=\"192.0.2.43:47011\"")]);
        assert_eq!(p.http_client(ip("127.0.0.1"), &with_port), ip("192.0.2.43"));
        let mapped = proxies(&["10.0.0.1"]);
        assert!(mapped.contains(ip("::ffff:10.0.0.1")));
    }

    #[test]
    fn config_lists_take_addresses_and_ranges() {
        assert_eq!(
            Vec::<String>::from(proxies(&["10.0.0.0/8", "::1"])),
            ["10.0.0.0/8", "::1/128"]
        );
        assert!(Networks::try_from(vec!["nope".to_string()]).is_err());
    }

    #[test]
    fn proxy_headers_v1_and_v2() {
        let v1 = b"PROXY TCP4 203.0.113.9 10.0.0.1 51234 1935\r\n\x03rest";
        assert_eq!(
            proxy_header(v1),
            ProxyHeader::Done {
                len: v1.len() - 5,
                client: Some("203.0.113.9:51234".parse().unwrap())
            }
        );
        assert_eq!(proxy_header(&v1[..20]), ProxyHeader::Incomplete);
        assert_eq!(
            proxy_header(b"PROXY UNKNOWN\r\n"),
            ProxyHeader::Done {
                len: 15,
                client: None
            }
        );
        let mut v2 = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
        v2.extend([
            0x21, 0x11, 0, 12, 198, 51, 100, 7, 10, 0, 0, 1, 0x1f, 0x90, 0x07, 0x8f,
        ]);
        v2.extend(b"\x03");
        assert_eq!(
            proxy_header(&v2),
            ProxyHeader::Done {
                len: 28,
                client: Some("198.51.100.7:8080".parse().unwrap())
            }
        );
        assert!(matches!(
            proxy_header(b"\x03\x00\x00\x00"),
            ProxyHeader::Invalid(_)
        ));
        assert!(matches!(
            proxy_header(&[b'P'; 5000]),
            ProxyHeader::Invalid(_)
        ));
    }
}
