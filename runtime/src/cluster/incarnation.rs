//! A node's incarnation: an id drawn at each start, so that a node that
//! restarts at the same address is recognised as a new member (its peers
//! drop what they knew of the old one).

use serde::{Deserialize, Serialize};

/// One start of a node: random, 64 bits, shown as 16 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct Incarnation(pub u64);

impl Incarnation {
    /// A new incarnation, from the system's random source (the start time
    /// when it has none: two starts in the same nanosecond are unlikely).
    pub(crate) fn new() -> Self {
        let mut bytes = [0u8; 8];
        if getrandom::fill(&mut bytes).is_err() {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            bytes = (nanos ^ u64::from(std::process::id())).to_le_bytes();
        }
        Incarnation(u64::from_le_bytes(bytes))
    }
}

impl std::fmt::Display for Incarnation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_start_draws_a_new_one() {
        let (a, b) = (Incarnation::new(), Incarnation::new());
        assert_ne!(a, b);
        assert_eq!(a.to_string().len(), 16);
    }
}
