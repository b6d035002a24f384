//! LL-HLS blocking playlist reload (`_HLS_msn`, `_HLS_part`): when to answer,
//! when to wait, and which requests are errors (RFC 8216bis 6.2.5.2).

use super::window::Position;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockingRequest {
    pub msn: u64,
    pub part: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    Wait,
    /// More than the server will wait for: HTTP 400.
    TooFarAhead,
}

/// A playlist request's directives that are not a blocking request (HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectiveError {
    /// The directive's name and what was sent.
    #[error("{0} must be a non-negative integer, got {1:?}")]
    NotANumber(&'static str, String),
    #[error("_HLS_part requires _HLS_msn")]
    PartWithoutMsn,
}

/// Reads the directives from a playlist request. `Ok(None)`: an ordinary reload.
pub fn parse(
    msn: Option<&str>,
    part: Option<&str>,
) -> Result<Option<BlockingRequest>, DirectiveError> {
    let part = part
        .map(|p| {
            p.parse::<u32>()
                .map_err(|_| DirectiveError::NotANumber("_HLS_part", p.to_string()))
        })
        .transpose()?;
    match msn {
        None if part.is_some() => Err(DirectiveError::PartWithoutMsn),
        None => Ok(None),
        Some(m) => Ok(Some(BlockingRequest {
            msn: m
                .parse()
                .map_err(|_| DirectiveError::NotANumber("_HLS_msn", m.to_string()))?,
            part,
        })),
    }
}

/// How many parts ahead of the live edge a request may be (hls-rules 13).
pub fn advance_limit_parts(part_target_ms: u32) -> u32 {
    if part_target_ms < 1000 {
        3000u32.div_ceil(part_target_ms.max(1))
    } else {
        3
    }
}

pub fn readiness(req: BlockingRequest, pos: &Position, advance_limit: u32) -> Readiness {
    if pos.ended || req.msn < pos.open_msn {
        return Readiness::Ready;
    }
    // _HLS_msn more than two beyond the last segment of the playlist is refused; the
    // open segment counts once its parts are listed.
    let last = if pos.open_parts > 0 {
        pos.open_msn
    } else {
        pos.last_complete.unwrap_or(0)
    };
    if req.msn > last + 2 {
        return Readiness::TooFarAhead;
    }
    let Some(part) = req.part else {
        return Readiness::Wait; // Waits for the whole segment.
    };
    let ahead = if req.msn == pos.open_msn {
        part.saturating_sub(pos.open_parts)
    } else {
        part.saturating_add(1) // Next segment: at least the rest of this one plus `part`.
    };
    if ahead > advance_limit {
        Readiness::TooFarAhead
    } else if req.msn == pos.open_msn && part < pos.open_parts {
        Readiness::Ready
    } else {
        Readiness::Wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(last: Option<u64>, open: u64, parts: u32) -> Position {
        Position {
            last_complete: last,
            open_msn: open,
            open_parts: parts,
            ended: false,
        }
    }

    fn req(msn: u64, part: Option<u32>) -> BlockingRequest {
        BlockingRequest { msn, part }
    }

    #[test]
    fn parses_directives() {
        assert_eq!(parse(None, None), Ok(None));
        assert_eq!(parse(Some("5"), Some("2")), Ok(Some(req(5, Some(2)))));
        assert_eq!(parse(None, Some("1")), Err(DirectiveError::PartWithoutMsn));
        assert_eq!(
            parse(Some("-1"), None).unwrap_err().to_string(),
            "_HLS_msn must be a non-negative integer, got \"-1\""
        );
        assert_eq!(
            parse(Some("1"), Some("x")),
            Err(DirectiveError::NotANumber("_HLS_part", "x".into()))
        );
    }

    #[test]
    fn decides_ready_wait_and_too_far() {
        let p = pos(Some(9), 10, 3);
        let limit = advance_limit_parts(200);
        assert_eq!(limit, 15);
        assert_eq!(readiness(req(9, None), &p, limit), Readiness::Ready);
        assert_eq!(readiness(req(10, Some(2)), &p, limit), Readiness::Ready);
        assert_eq!(readiness(req(10, Some(3)), &p, limit), Readiness::Wait);
        assert_eq!(readiness(req(10, None), &p, limit), Readiness::Wait);
        assert_eq!(readiness(req(11, Some(0)), &p, limit), Readiness::Wait);
        assert_eq!(readiness(req(12, None), &p, limit), Readiness::Wait);
        assert_eq!(
            readiness(req(12, Some(20)), &p, limit),
            Readiness::TooFarAhead
        );
        assert_eq!(readiness(req(12, Some(0)), &p, limit), Readiness::Wait);
        assert_eq!(readiness(req(13, None), &p, limit), Readiness::TooFarAhead);
        assert_eq!(
            readiness(req(10, Some(40)), &p, limit),
            Readiness::TooFarAhead
        );
        let ended = Position { ended: true, ..p };
        assert_eq!(readiness(req(12, Some(1)), &ended, limit), Readiness::Ready);
    }
}
