//! RTMP aggregate messages (type 22).
//!
//! rml_rtmp hands these over unparsed. An aggregate body is a run of FLV tags,
//! each followed by its 4-byte back-pointer; scuffle-flv reads the tags. The
//! timestamps inside are rebased so the first sub-message carries the
//! aggregate message's own timestamp (RTMP spec, 6.1.3 / 7.1.6).

use std::io::Cursor;

use bytes::{Buf, Bytes};

/// RTMP message type id of an aggregate message.
pub const MESSAGE_TYPE: u8 = 22;

/// One message unpacked from an aggregate.
#[derive(Debug, Clone, PartialEq)]
pub struct SubMessage {
    /// FLV tag type: 8 audio, 9 video, 18 script data.
    pub tag_type: u8,
    pub timestamp_ms: u32,
    pub body: Bytes,
}

/// Why an aggregate message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AggregateError {
    #[error("aggregate message of more than {0} tags")]
    TooManyTags(usize),
    #[error("aggregate message ends inside a tag header ({0} bytes left)")]
    CutShort(usize),
    #[error("aggregate sub-message of {0} bytes overruns the message")]
    Overrun(usize),
}

/// Splits an aggregate body of at most `max_tags` tags (a 16 MiB body of empty tags
/// would otherwise become a million messages). Stops at the first malformed tag and
/// reports it.
pub fn split(
    aggregate_ms: u32,
    body: Bytes,
    max_tags: usize,
) -> Result<Vec<SubMessage>, AggregateError> {
    const TAG_HEADER: usize = 11;
    let mut out = Vec::new();
    let mut cursor = Cursor::new(body);
    let mut first_ts: Option<u32> = None;
    while cursor.has_remaining() {
        if out.len() == max_tags {
            return Err(AggregateError::TooManyTags(max_tags));
        }
        if cursor.remaining() < TAG_HEADER {
            return Err(AggregateError::CutShort(cursor.remaining()));
        }
        let start = cursor.position() as usize;
        let whole = cursor.get_ref().clone();
        let tag_type = whole[start] & 0x1F;
        let size =
            u32::from_be_bytes([0, whole[start + 1], whole[start + 2], whole[start + 3]]) as usize;
        let ts = u32::from_be_bytes([
            whole[start + 7],
            whole[start + 4],
            whole[start + 5],
            whole[start + 6],
        ]);
        let end = start + TAG_HEADER + size;
        if end > whole.len() {
            return Err(AggregateError::Overrun(size));
        }
        let first = *first_ts.get_or_insert(ts);
        out.push(SubMessage {
            tag_type,
            timestamp_ms: aggregate_ms.wrapping_add(ts.wrapping_sub(first)),
            body: whole.slice(start + TAG_HEADER..end),
        });
        // Skip the tag and its back-pointer (absent after the last tag in some encoders).
        cursor.set_position((end + 4).min(whole.len()) as u64);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(tag_type: u8, ts: u32, body: &[u8]) -> Vec<u8> {
        let mut v = vec![tag_type];
        v.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        v.extend_from_slice(&ts.to_be_bytes()[1..]);
        v.push((ts >> 24) as u8);
        v.extend_from_slice(&[0, 0, 0]);
        v.extend_from_slice(body);
        v.extend_from_slice(&((11 + body.len()) as u32).to_be_bytes());
        v
    }

    #[test]
    fn splits_and_rebases_timestamps() {
        let mut body = tag(9, 5000, &[0x17, 1, 0, 0, 0, 9]);
        body.extend(tag(8, 5023, &[0xAF, 1, 7]));
        let subs = split(100, Bytes::from(body.clone()), 2).unwrap();
        assert_eq!(subs.len(), 2);
        assert_eq!((subs[0].tag_type, subs[0].timestamp_ms), (9, 100));
        assert_eq!((subs[1].tag_type, subs[1].timestamp_ms), (8, 123));
        assert_eq!(&subs[1].body[..], &[0xAF, 1, 7]);
        assert_eq!(
            split(100, Bytes::from(body), 1),
            Err(AggregateError::TooManyTags(1))
        );
    }

    #[test]
    fn overrun_is_an_error() {
        let mut body = tag(9, 0, &[1, 2, 3]);
        body[3] = 200; // claims 200 bytes
        assert_eq!(
            split(0, Bytes::from(body), 8),
            Err(AggregateError::Overrun(200))
        );
        assert_eq!(
            split(0, Bytes::from_static(&[9, 0, 0]), 8),
            Err(AggregateError::CutShort(3))
        );
    }
}
