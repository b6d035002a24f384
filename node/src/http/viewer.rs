//! Who is a viewer, without a per-viewer id in media URLs.
//!
//! A session is the `castmesh_viewer` cookie when the client returns it, else a
//! salted hash of client address and User-Agent. The cookie embeds that hash,
//! so a client's first cookie-less requests merge into its cookie session
//! instead of counting twice. Clients that never return cookies and share an
//! address and User-Agent count once (documented limitation).

use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::IpAddr;

use axum::http::HeaderMap;
use axum::http::header::{COOKIE, USER_AGENT};

use crate::stream::viewer_sessions::Sighting;

pub const COOKIE_NAME: &str = "castmesh_viewer";

pub struct Identified {
    pub seen: Sighting,
    /// A `Set-Cookie` value to send when the client has no session cookie yet.
    pub set_cookie: Option<String>,
}

fn hash(parts: impl Hash) -> u64 {
    let mut h = DefaultHasher::new();
    parts.hash(&mut h);
    h.finish()
}

fn cookie_value(headers: &HeaderMap) -> Option<(u64, u64)> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE_NAME)
        .and_then(|(_, v)| {
            if v.len() != 32 {
                return None;
            }
            let anon = u64::from_str_radix(&v[..16], 16).ok()?;
            let nonce = u64::from_str_radix(&v[16..], 16).ok()?;
            Some((anon, nonce))
        })
}

/// `nonce` is only drawn for a client that has no session cookie yet.
pub fn identify(
    headers: &HeaderMap,
    client: IpAddr,
    salt: u64,
    nonce: impl FnOnce() -> u64,
) -> Identified {
    let agent = headers
        .get(USER_AGENT)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    let anonymous = hash((salt, client, agent));
    let address = hash((salt, client));
    match cookie_value(headers) {
        Some((anon, cookie_nonce)) => Identified {
            seen: Sighting {
                session: hash((salt, anon, cookie_nonce)),
                replaces: Some(anon),
                address,
            },
            set_cookie: None,
        },
        None => Identified {
            seen: Sighting {
                session: anonymous,
                replaces: None,
                address,
            },
            set_cookie: Some(format!(
                "{COOKIE_NAME}={anonymous:016x}{:016x}; Path=/hls; Max-Age=86400; HttpOnly; SameSite=Lax",
                nonce()
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn seen(i: &Identified) -> (u64, Option<u64>) {
        (i.seen.session, i.seen.replaces)
    }

    #[test]
    fn cookie_session_replaces_the_anonymous_one() {
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(USER_AGENT, HeaderValue::from_static("player/1"));
        let first = identify(&headers, peer, 7, || 99);
        let (anon, _) = seen(&first);
        let cookie = first.set_cookie.unwrap();
        let pair = cookie.split(';').next().unwrap().to_string();
        headers.insert(COOKIE, HeaderValue::from_str(&pair).unwrap());
        let second = identify(&headers, peer, 7, || 100);
        let (session, replaces) = seen(&second);
        assert_eq!(replaces, Some(anon));
        assert_ne!(session, anon);
        assert!(second.set_cookie.is_none());
        // Same cookie again: the same session.
        assert_eq!(seen(&identify(&headers, peer, 7, || 101)).0, session);
    }

    #[test]
    fn different_agents_are_different_viewers() {
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        let mut a = HeaderMap::new();
        a.insert(USER_AGENT, HeaderValue::from_static("a"));
        let mut b = HeaderMap::new();
        b.insert(USER_AGENT, HeaderValue::from_static("b"));
        assert_ne!(
            seen(&identify(&a, peer, 1, || 0)).0,
            seen(&identify(&b, peer, 1, || 0)).0
        );
    }
}
