//! Hand-made RTMP bytes, only for malformed input no real client sends.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect to RTMP port");
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    s
}

/// A plain (non-digest) RTMP handshake as a client.
pub fn handshake(s: &mut TcpStream) {
    let mut c0c1 = vec![3u8];
    c0c1.extend_from_slice(&[0u8; 8]);
    c0c1.extend((0..1528).map(|i| (i * 7 % 251) as u8));
    s.write_all(&c0c1).unwrap();
    let mut s0s1s2 = vec![0u8; 1 + 1536 * 2];
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut got = 0;
    while got < s0s1s2.len() {
        assert!(
            Instant::now() < deadline,
            "server handshake reply timed out"
        );
        match s.read(&mut s0s1s2[got..]) {
            Ok(0) => panic!("server closed during handshake"),
            Ok(n) => got += n,
            Err(_) => {}
        }
    }
    // C2 echoes S1.
    s.write_all(&s0s1s2[1..1537]).unwrap();
}

/// An RTMP chunk on chunk stream 2 (protocol control) with a full (type 0) header.
pub fn control_message(type_id: u8, payload: &[u8]) -> Vec<u8> {
    let mut m = vec![0x02, 0, 0, 0];
    m.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    m.push(type_id);
    m.extend_from_slice(&[0, 0, 0, 0]);
    m.extend_from_slice(payload);
    m
}

/// Waits until the server closes the connection; true if it did within `timeout`.
pub fn closed_within(s: &mut TcpStream, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return true, // reset
        }
    }
    false
}

/// A whole message in one chunk with a type 0 header (send [`set_chunk_size`] first
/// when the payload is over 128 bytes).
pub fn message(csid: u8, stream_id: u32, type_id: u8, payload: &[u8]) -> Vec<u8> {
    let mut m = vec![csid, 0, 0, 0];
    m.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    m.push(type_id);
    m.extend_from_slice(&stream_id.to_le_bytes());
    m.extend_from_slice(payload);
    m
}

/// Set Chunk Size: the client's chunks may be up to `size` bytes from now on.
pub fn set_chunk_size(size: u32) -> Vec<u8> {
    control_message(1, &size.to_be_bytes())
}

/// AMF0 values, just enough to write commands by hand.
pub mod amf {
    pub fn string(s: &str) -> Vec<u8> {
        let mut v = vec![0x02];
        v.extend_from_slice(&(s.len() as u16).to_be_bytes());
        v.extend_from_slice(s.as_bytes());
        v
    }

    pub fn number(n: f64) -> Vec<u8> {
        let mut v = vec![0x00];
        v.extend_from_slice(&n.to_be_bytes());
        v
    }

    pub fn null() -> Vec<u8> {
        vec![0x05]
    }

    pub fn object(properties: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut v = vec![0x03];
        for (name, value) in properties {
            v.extend_from_slice(&(name.len() as u16).to_be_bytes());
            v.extend_from_slice(name.as_bytes());
            v.extend_from_slice(value);
        }
        v.extend_from_slice(&[0, 0, 0x09]);
        v
    }
}

/// An AMF0 command message (type 20): name, transaction id, then `values`.
pub fn command(stream_id: u32, name: &str, transaction: f64, values: &[Vec<u8>]) -> Vec<u8> {
    let mut payload = amf::string(name);
    payload.extend(amf::number(transaction));
    for v in values {
        payload.extend_from_slice(v);
    }
    message(3, stream_id, 20, &payload)
}

/// Reads until the server has sent `needle` (within `timeout`); returns all it sent.
pub fn read_until(s: &mut TcpStream, needle: &str, timeout: Duration) -> Vec<u8> {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !contains(&got, needle) {
        assert!(
            Instant::now() < deadline,
            "the server did not send {needle:?}"
        );
        match s.read(&mut buf) {
            Ok(0) => panic!("the server closed before sending {needle:?}"),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    got
}

/// What ffmpeg sends to publish: a large chunk size and `connect` to `app`; once
/// connected, `createStream` and `publish` of `key` on the stream the server creates
/// first (id 1). Returns before the answer to `publish`.
pub fn connect_and_publish(s: &mut TcpStream, app: &str, key: &str) {
    let mut out = set_chunk_size(1 << 24);
    out.extend(command(
        0,
        "connect",
        1.0,
        &[amf::object(&[("app", amf::string(app))])],
    ));
    s.write_all(&out).unwrap();
    read_until(s, "NetConnection.Connect.Success", Duration::from_secs(5));
    let mut out = command(0, "createStream", 2.0, &[amf::null()]);
    out.extend(command(
        1,
        "publish",
        3.0,
        &[amf::null(), amf::string(key), amf::string("live")],
    ));
    s.write_all(&out).unwrap();
}

/// Reads until the server closes the connection or `timeout` passes; returns whether
/// it closed and every byte it sent.
pub fn read_until_closed(s: &mut TcpStream, timeout: Duration) -> (bool, Vec<u8>) {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return (true, got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return (true, got),
        }
    }
    (false, got)
}

/// Whether `haystack` contains `needle` (for text inside RTMP answers).
pub fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}
