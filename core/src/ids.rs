//! Identity of a process incarnation.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A process incarnation. Every process start uses a fresh id, so a restarted
/// replica is a new instance and never inherits what its predecessor held.
/// Who mints it is the caller's business (the simulator counts; production can
/// use anything unique).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct InstanceId(pub u64);

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "i{}", self.0)
    }
}

impl InstanceId {
    /// The id whose [`Display`](fmt::Display) form is exactly `s` ("i"
    /// and the decimal digits, no leading zero), or `None`. A label is
    /// matched against a set of ids through this, not by formatting every
    /// id of the set (a fallback pass formatted the whole fleet's ids
    /// each time; docs/design.md §12).
    pub fn from_label(s: &str) -> Option<InstanceId> {
        let digits = s.strip_prefix('i')?;
        let canonical = !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && (digits == "0" || !digits.starts_with('0'));
        if !canonical {
            return None;
        }
        digits.parse().ok().map(InstanceId)
    }
}

#[cfg(test)]
mod tests {
    use super::InstanceId;

    #[test]
    fn from_label_inverts_display_and_nothing_else() {
        for id in [0, 1, 7, 10, 42, u64::MAX] {
            assert_eq!(InstanceId::from_label(&InstanceId(id).to_string()), Some(InstanceId(id)));
        }
        for bad in ["", "i", "7", "i07", "i00", "i-1", "i+1", "i1 ", " i1", "I1", "i1x", "i18446744073709551616"] {
            assert_eq!(InstanceId::from_label(bad), None, "{bad:?}");
        }
    }
}
