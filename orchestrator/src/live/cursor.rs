//! Positions in a live log, in Redis stream id form (`ms-seq`) for both logs.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Cursor {
    pub ms: u64,
    pub seq: u64,
}

impl Cursor {
    /// Before every entry.
    pub const ZERO: Cursor = Cursor { ms: 0, seq: 0 };

    pub fn parse(raw: &str) -> Option<Self> {
        let (ms, seq) = raw.split_once('-')?;
        Some(Self {
            ms: ms.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_order_like_stream_ids() {
        let a = Cursor::parse("1700000000000-3").expect("valid");
        assert_eq!(a.to_string(), "1700000000000-3");
        assert!(Cursor::parse("1700000000000-10").expect("valid") > a);
        assert!(Cursor::parse("1700000000001-0").expect("valid") > a);
        for bad in [
            "",
            "12",
            "a-1",
            "1-",
            "-1",
            "1-2-3",
            "99999999999999999999-0",
        ] {
            assert_eq!(Cursor::parse(bad), None, "{bad:?}");
        }
    }
}
