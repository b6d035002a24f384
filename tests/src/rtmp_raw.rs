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
