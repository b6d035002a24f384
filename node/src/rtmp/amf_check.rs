//! A bounded walk over AMF0 values, run before rml_amf0 decodes them.
//!
//! Written here because the decoder castmesh uses (rml_amf0 0.3, through rml_rtmp)
//! recurses once per nested array or object with no limit: a 2 MB message of nested
//! strict arrays (5 bytes a level) overflows the thread's stack, and a stack
//! overflow aborts the whole process. This walk follows the same grammar as that
//! decoder without recursing deeper than a configured limit and without keeping
//! any value, and reports only what the session checks need: how many top-level
//! values there are and the first one if it is a string.

/// What the command and data checks need to know about a message's values.
#[derive(Debug, PartialEq, Eq)]
pub struct Summary {
    /// Top-level values, counted as rml_amf0 counts them (it stops at a top-level
    /// object-end marker).
    pub values: usize,
    /// The first value, when it is a string.
    pub first_string: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AmfError {
    #[error("AMF0 values nested deeper than {0} levels")]
    TooDeep(usize),
    #[error("AMF0 value cut short")]
    Truncated,
    #[error("unknown AMF0 marker 0x{0:02x}")]
    UnknownMarker(u8),
    #[error("AMF0 object property without a value")]
    PropertyWithoutValue,
    #[error("AMF0 object with an empty property name not followed by the end marker")]
    BadObjectEnd,
}

const NUMBER: u8 = 0x00;
const BOOLEAN: u8 = 0x01;
const STRING: u8 = 0x02;
const OBJECT: u8 = 0x03;
const NULL: u8 = 0x05;
const UNDEFINED: u8 = 0x06;
const ECMA_ARRAY: u8 = 0x08;
const OBJECT_END: u8 = 0x09;
const STRICT_ARRAY: u8 = 0x0a;

/// Checks every value in `data`; nesting beyond `max_depth` containers is an error.
pub fn summarize(data: &[u8], max_depth: usize) -> Result<Summary, AmfError> {
    let mut walk = Walk {
        data,
        at: 0,
        max_depth,
    };
    let mut summary = Summary {
        values: 0,
        first_string: None,
    };
    loop {
        let start = walk.at;
        match walk.value(0)? {
            None => return Ok(summary),
            Some(marker) => {
                if summary.values == 0 && marker == STRING {
                    // The string's bytes follow its marker and 2-byte length.
                    let text = &data[start + 3..walk.at];
                    summary.first_string = Some(String::from_utf8_lossy(text).into_owned());
                }
                summary.values += 1;
            }
        }
    }
}

struct Walk<'a> {
    data: &'a [u8],
    at: usize,
    max_depth: usize,
}

impl Walk<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], AmfError> {
        let end = self.at.checked_add(n).ok_or(AmfError::Truncated)?;
        let bytes = self.data.get(self.at..end).ok_or(AmfError::Truncated)?;
        self.at = end;
        Ok(bytes)
    }

    fn u16(&mut self) -> Result<usize, AmfError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]) as usize)
    }

    fn u32(&mut self) -> Result<u32, AmfError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// One value; `None` at the end of input or at an object-end marker, as the
    /// decoder does. Returns the value's marker.
    fn value(&mut self, depth: usize) -> Result<Option<u8>, AmfError> {
        let Some(&marker) = self.data.get(self.at) else {
            return Ok(None);
        };
        self.at += 1;
        match marker {
            OBJECT_END => return Ok(None),
            NUMBER => {
                self.take(8)?;
            }
            BOOLEAN => {
                self.take(1)?;
            }
            NULL | UNDEFINED => {}
            STRING => {
                let n = self.u16()?;
                self.take(n)?;
            }
            OBJECT => self.object(depth + 1)?,
            ECMA_ARRAY => {
                self.u32()?; // the decoder ignores the count and reads an object
                self.object(depth + 1)?;
            }
            STRICT_ARRAY => {
                let count = self.u32()?;
                self.enter(depth + 1)?;
                // Every element takes at least one byte, so this ends with the input.
                for _ in 0..count {
                    if self.value(depth + 1)?.is_none() {
                        break;
                    }
                }
            }
            other => return Err(AmfError::UnknownMarker(other)),
        }
        Ok(Some(marker))
    }

    fn enter(&self, depth: usize) -> Result<(), AmfError> {
        if depth > self.max_depth {
            Err(AmfError::TooDeep(self.max_depth))
        } else {
            Ok(())
        }
    }

    fn object(&mut self, depth: usize) -> Result<(), AmfError> {
        self.enter(depth)?;
        loop {
            let label = self.u16()?;
            if label == 0 {
                return match self.take(1)?[0] {
                    OBJECT_END => Ok(()),
                    _ => Err(AmfError::BadObjectEnd),
                };
            }
            self.take(label)?;
            if self.value(depth)?.is_none() {
                return Err(AmfError::PropertyWithoutValue);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(s: &str) -> Vec<u8> {
        let mut v = vec![STRING];
        v.extend_from_slice(&(s.len() as u16).to_be_bytes());
        v.extend_from_slice(s.as_bytes());
        v
    }

    #[test]
    fn a_connect_command_summarizes() {
        let mut m = string("connect");
        m.push(NUMBER);
        m.extend_from_slice(&1f64.to_be_bytes());
        m.push(OBJECT);
        m.extend_from_slice(&3u16.to_be_bytes());
        m.extend_from_slice(b"app");
        m.extend(string("live"));
        m.extend_from_slice(&[0, 0, OBJECT_END]);
        assert_eq!(
            summarize(&m, 8),
            Ok(Summary {
                values: 3,
                first_string: Some("connect".into())
            })
        );
    }

    #[test]
    fn nesting_is_bounded_without_recursing_past_the_limit() {
        // The attack: 400k nested one-element strict arrays (2 MB).
        let m: Vec<u8> = [STRICT_ARRAY, 0, 0, 0, 1].repeat(400_000);
        assert_eq!(summarize(&m, 32), Err(AmfError::TooDeep(32)));
        let ok: Vec<u8> = [STRICT_ARRAY, 0, 0, 0, 1].repeat(32);
        assert_eq!(summarize(&ok, 32).unwrap().values, 1);
        let mut objects = Vec::new();
        for _ in 0..40 {
            objects.extend_from_slice(&[OBJECT, 0, 1, b'a']);
        }
        assert_eq!(summarize(&objects, 32), Err(AmfError::TooDeep(32)));
    }

    #[test]
    fn cut_short_and_unknown_values_are_errors() {
        assert_eq!(summarize(&[NUMBER, 1, 2], 8), Err(AmfError::Truncated));
        assert_eq!(
            summarize(&[STRING, 0, 9, b'a'], 8),
            Err(AmfError::Truncated)
        );
        assert_eq!(summarize(&[0x11], 8), Err(AmfError::UnknownMarker(0x11)));
        assert_eq!(
            summarize(&[OBJECT, 0, 1, b'a'], 8),
            Err(AmfError::PropertyWithoutValue)
        );
        assert_eq!(
            summarize(&[OBJECT, 0, 2, b'a'], 8),
            Err(AmfError::Truncated)
        );
        assert_eq!(
            summarize(&[OBJECT, 0, 0, 0x05], 8),
            Err(AmfError::BadObjectEnd)
        );
        // A huge strict-array count over little input ends with the input.
        assert_eq!(
            summarize(&[STRICT_ARRAY, 0xff, 0xff, 0xff, 0xff, NULL], 8)
                .unwrap()
                .values,
            1
        );
    }

    #[test]
    fn a_top_level_object_end_stops_the_values_as_in_the_decoder() {
        let mut m = string("@setDataFrame");
        m.push(OBJECT_END);
        m.extend(string("onMetaData"));
        let s = summarize(&m, 8).unwrap();
        assert_eq!(s.values, 1);
        assert_eq!(s.first_string.as_deref(), Some("@setDataFrame"));
    }
}
