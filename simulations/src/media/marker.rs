//! Which publish session a piece of media came from, and when it was sent, readable
//! from any part a viewer downloads: the simulated publisher puts an H.264 SEI
//! message (user data unregistered) carrying its session number and the simulated
//! time it sent the frame in front of every video frame. The node
//! passes NAL units through untouched, so the marker reaches the fMP4 parts as sent.
//!
//! Each publish session has its own origin (a publish takes the origin lease), so a
//! change of session between two parts is a change of origin, which must show as a
//! discontinuity.

use bytes::{BufMut, Bytes, BytesMut};

/// The SEI's UUID: 16 ASCII bytes, so the payload never needs emulation prevention.
const UUID: &[u8; 16] = b"castmesh-sim-mrk";

/// An AVC video tag body with the marker NAL unit inserted before its frame's NAL
/// units. Other tags (sequence headers, audio) are returned as they are.
pub fn mark(body: &Bytes, mark: Mark) -> Bytes {
    // FLV AVC video tag: frame type/codec, AVCPacketType (1 = NAL units), composition
    // time (3 bytes), then 4-byte length-prefixed NAL units.
    if body.len() < 5 || body[0] & 0x0f != 7 || body[1] != 1 {
        return body.clone();
    }
    let text = format!("s{}.t{}.", mark.session, mark.sent_ms);
    let payload_size = UUID.len() + text.len();
    let nal_size = 1 + 1 + 1 + payload_size + 1;
    let mut out = BytesMut::with_capacity(body.len() + 4 + nal_size);
    out.put_slice(&body[..5]);
    out.put_u32(nal_size as u32);
    out.put_u8(0x06); // nal_unit_type 6: SEI
    out.put_u8(5); // payloadType 5: user data unregistered
    out.put_u8(payload_size as u8);
    out.put_slice(UUID);
    out.put_slice(text.as_bytes());
    out.put_u8(0x80); // rbsp trailing bits
    out.put_slice(&body[5..]);
    out.freeze()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    pub session: u32,
    /// Simulated time the frame was sent, in ms.
    pub sent_ms: u64,
}

/// The markers `data` (a downloaded part) carries, in order.
pub fn marks(data: &[u8]) -> Vec<Mark> {
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(i) = find(&data[at..], UUID) {
        let start = at + i + UUID.len();
        if let Some(m) = parse(&data[start..]) {
            found.push(m);
        }
        at = start;
    }
    found
}

/// The sessions of `marks`, in order, without repeats.
pub fn sessions(marks: &[Mark]) -> Vec<u32> {
    let mut out: Vec<u32> = Vec::new();
    for m in marks {
        if out.last() != Some(&m.session) {
            out.push(m.session);
        }
    }
    out
}

/// `s{session}.t{sent_ms}.`
fn parse(text: &[u8]) -> Option<Mark> {
    let mut fields = text.split(|b| *b == b'.');
    let mut number = |prefix: u8| -> Option<u64> {
        let field = fields.next()?.strip_prefix(&[prefix])?;
        std::str::from_utf8(field).ok()?.parse().ok()
    };
    Some(Mark {
        session: u32::try_from(number(b's')?).ok()?,
        sent_ms: number(b't')?,
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marked_frame_names_its_session_and_keeps_its_nal_units() {
        let frame = Bytes::from_static(&[0x27, 1, 0, 0, 0, 0, 0, 0, 2, 0x41, 0x9a]);
        let at = |session, sent_ms| Mark { session, sent_ms };
        let marked = mark(&frame, at(42, 1000));
        assert_eq!(&marked[..5], &frame[..5]);
        assert!(marked.ends_with(&frame[5..]));
        let mut part = b"mdat".to_vec();
        part.extend_from_slice(&marked);
        part.extend_from_slice(&mark(&frame, at(42, 1066)));
        part.extend_from_slice(&mark(&frame, at(43, 1133)));
        let found = marks(&part);
        assert_eq!(found, vec![at(42, 1000), at(42, 1066), at(43, 1133)]);
        assert_eq!(sessions(&found), vec![42, 43]);
    }

    #[test]
    fn sequence_headers_and_audio_are_not_marked() {
        let header = Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 2, 3]);
        let m = Mark {
            session: 1,
            sent_ms: 0,
        };
        assert_eq!(mark(&header, m), header);
        let audio = Bytes::from_static(&[0xaf, 1, 0x21]);
        assert_eq!(mark(&audio, m), audio);
    }
}
