//! What the kv module holds, and the end check: every client's journal
//! against the sequence numbers it sent.
//!
//! Shared by the examples (`live_swap`, `soak`), each including it with
//! `#[path = "support/check.rs"] mod check;` next to `mod load;`
//! (`support/load.rs`, whose [`ClientTally`]s it checks).

use std::collections::{BTreeMap, HashMap};

use kv_proto::{Dump, GetDump, Proto, Version};
use molt::ModuleHandle;

use crate::load::ClientTally;

type AnyError = Box<dyn std::error::Error + Send + Sync>;

/// The running code, as the module itself reports it.
pub async fn serving(kv: &ModuleHandle<Proto>) -> Result<String, AnyError> {
    let (code, state) = kv.request(Version).await?;
    Ok(format!("{code} (state v{state})"))
}

/// The module's whole user-visible state (its journals: `.streams`).
pub async fn dump(kv: &ModuleHandle<Proto>) -> Result<Dump, AnyError> {
    Ok(kv.request(GetDump).await?)
}

/// Sent versus held.
#[derive(Debug, Default)]
pub struct Check {
    /// Sent seqs missing from their journal.
    pub lost: u64,
    /// Seqs present more than once.
    pub dup: u64,
    /// Positions where a seq is smaller than its predecessor.
    pub reordered: u64,
    /// Entries nobody sent (seqs past a client's last, unknown journals).
    pub unexpected: u64,
}

impl Check {
    pub fn is_clean(&self) -> bool {
        self.lost == 0 && self.dup == 0 && self.reordered == 0 && self.unexpected == 0
    }
}

/// Compares every client's journal with the seqs it sent (`0..sent`).
pub fn check_journals(clients: &[ClientTally], held: &BTreeMap<String, Vec<u64>>) -> Check {
    let mut check = Check::default();
    for c in clients {
        let journal = held.get(&c.stream).map(Vec::as_slice).unwrap_or_default();
        let mut seen: HashMap<u64, u64> = HashMap::with_capacity(journal.len());
        for &seq in journal {
            *seen.entry(seq).or_default() += 1;
        }
        check.lost += (0..c.sent).filter(|seq| !seen.contains_key(seq)).count() as u64;
        check.dup += seen.values().filter(|&&n| n > 1).count() as u64;
        check.unexpected += seen.keys().filter(|&&seq| seq >= c.sent).count() as u64;
        check.reordered += journal.windows(2).filter(|w| w[1] < w[0]).count() as u64;
    }
    check.unexpected += held
        .keys()
        .filter(|stream| !clients.iter().any(|c| &c.stream == *stream))
        .count() as u64;
    check
}
