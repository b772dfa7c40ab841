//! The example `kv` module, code version 2.0.0, state version 2.
//!
//! The state layout changed: every entry now counts how often it was read
//! (`Msg::Hits`). [`Module::migrate`] converts the 1.x state (every count
//! starts at zero) and [`Module::downgrade`] produces it again (dropping the
//! counts), so an operator can roll back to 1.x without losing data.
#![warn(missing_docs)]

use std::collections::BTreeMap;

use kv_proto::{Dump, Msg, Reply};
use molt_abi::{state, Ctx, Error, Module};
use serde::{Deserialize, Serialize};

/// The configuration of a kv module (unchanged since 1.x).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[serde(default)]
pub struct KvConfig {
    /// The longest value (in bytes) `Put` accepts; no limit when absent.
    pub max_value_len: Option<usize>,
}

/// One key's value and how often it was read.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
struct Entry {
    value: String,
    hits: u64,
}

/// The kv state (state version 2).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct Kv {
    entries: BTreeMap<String, Entry>,
    streams: BTreeMap<String, Vec<u64>>,
    /// The limit of the current load's config: not part of the state.
    #[serde(skip)]
    max_value_len: Option<usize>,
}

/// The state as kv 1.x writes it (state version 1).
#[derive(Deserialize)]
struct V1State {
    entries: BTreeMap<String, String>,
    streams: BTreeMap<String, Vec<u64>>,
}

/// State version 1, borrowed from a v2 state for [`Module::downgrade`]
/// (encodes exactly as [`V1State`]).
#[derive(Serialize)]
struct V1StateRef<'a> {
    entries: BTreeMap<&'a str, &'a str>,
    streams: &'a BTreeMap<String, Vec<u64>>,
}

impl From<V1State> for Kv {
    fn from(v1: V1State) -> Self {
        Kv {
            entries: v1
                .entries
                .into_iter()
                .map(|(key, value)| (key, Entry { value, hits: 0 }))
                .collect(),
            streams: v1.streams,
            max_value_len: None,
        }
    }
}

impl Kv {
    fn as_v1(&self) -> V1StateRef<'_> {
        V1StateRef {
            entries: self
                .entries
                .iter()
                .map(|(key, entry)| (key.as_str(), entry.value.as_str()))
                .collect(),
            streams: &self.streams,
        }
    }
}

impl Module for Kv {
    const NAME: &'static str = "kv";
    // The test fixture tests/fixtures/kv_v2_1 builds this source as 2.0.1.
    const CODE_VERSION: &'static str = if matches!(env!("CARGO_PKG_NAME").as_bytes(), b"kv-v2-1") {
        "2.0.1"
    } else {
        "2.0.0"
    };
    const STATE_VERSION: u32 = 2;

    type Config = KvConfig;
    type Msg = Msg;
    type Reply = Reply;

    fn init(config: KvConfig, _ctx: &Ctx) -> Result<Self, Error> {
        Ok(Kv {
            max_value_len: config.max_value_len,
            ..Kv::default()
        })
    }

    fn migrate(from: u32, bytes: &[u8], config: KvConfig, _ctx: &Ctx) -> Result<Self, Error> {
        let mut kv = match from {
            1 => Kv::from(state::decode::<V1State>("kv state v1", bytes)?),
            2 => state::decode::<Kv>("kv state v2", bytes)?,
            _ => {
                return Err(Error::unknown_state_version(
                    Self::NAME,
                    from,
                    Self::STATE_VERSION,
                ))
            }
        };
        kv.max_value_len = config.max_value_len;
        Ok(kv)
    }

    fn downgrade(&self, to: u32) -> Result<Vec<u8>, Error> {
        match to {
            1 => state::encode(&self.as_v1()),
            _ => Err(Error::cannot_downgrade(Self::NAME, Self::STATE_VERSION, to)),
        }
    }

    fn handle(&mut self, msg: Msg, ctx: &Ctx) -> Result<Reply, Error> {
        Ok(match msg {
            Msg::Put { key, value } => {
                if let Some(max) = self.max_value_len.filter(|&max| value.len() > max) {
                    return Err(Error::msg(format!(
                        "value for key {key:?} is {} bytes, over the limit of {max}",
                        value.len()
                    )));
                }
                ctx.debug(format!("put {key:?}"));
                // Overwriting a value keeps its read count.
                match self.entries.get_mut(&key) {
                    Some(entry) => entry.value = value,
                    None => {
                        self.entries.insert(key, Entry { value, hits: 0 });
                    }
                }
                Reply::Ok
            }
            Msg::Get { key } => Reply::Value(self.entries.get_mut(&key).map(|entry| {
                entry.hits += 1;
                entry.value.clone()
            })),
            Msg::Delete { key } => {
                ctx.debug(format!("delete {key:?}"));
                self.entries.remove(&key);
                Reply::Ok
            }
            // The hot path: no logging.
            Msg::Push { stream, seq } => {
                self.streams.entry(stream).or_default().push(seq);
                Reply::Ok
            }
            Msg::Stream { stream } => {
                Reply::Stream(self.streams.get(&stream).cloned().unwrap_or_default())
            }
            Msg::Dump => Reply::Dump(Dump {
                entries: self
                    .entries
                    .iter()
                    .map(|(key, entry)| (key.clone(), entry.value.clone()))
                    .collect(),
                streams: self.streams.clone(),
            }),
            Msg::Hits { key } => Reply::Hits(self.entries.get(&key).map_or(0, |e| e.hits)),
            Msg::Version => Reply::Version {
                code: Self::CODE_VERSION.to_owned(),
                state: Self::STATE_VERSION,
            },
            Msg::Fail { reason } => return Err(Error::msg(reason)),
            Msg::Panic { reason } => panic!("{reason}"),
        })
    }

    fn start(&mut self, ctx: &Ctx) -> Result<(), Error> {
        ctx.info(format!(
            "kv {} serving {} keys and {} journals",
            Self::CODE_VERSION,
            self.entries.len(),
            self.streams.len()
        ));
        Ok(())
    }

    fn verify(&self, ctx: &Ctx) -> Result<(), Error> {
        // `verify` runs inside the swap pause, so it must stay O(1): the
        // invariants of this state either hold by construction (the types) or
        // would cost a walk over every entry and journal. Report the sizes
        // the reload produced instead, for the operator to compare.
        ctx.gauge("entries", self.entries.len() as f64);
        ctx.gauge("journals", self.streams.len() as f64);
        Ok(())
    }
}

molt_abi::export_module!(Kv);

#[cfg(test)]
mod tests {
    use super::*;

    /// kv 1.x's state type, as that crate defines it.
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct V1 {
        entries: BTreeMap<String, String>,
        streams: BTreeMap<String, Vec<u64>>,
    }

    fn v1() -> V1 {
        V1 {
            entries: [("a".to_owned(), "1".to_owned())].into(),
            streams: [("s".to_owned(), vec![1, 2, 3])].into(),
        }
    }

    #[test]
    fn converts_v1_and_back() {
        let bytes = state::encode(&v1()).unwrap();
        let mut kv = Kv::from(state::decode::<V1State>("v1", &bytes).unwrap());
        assert_eq!(
            kv.entries["a"],
            Entry {
                value: "1".into(),
                hits: 0
            }
        );
        kv.entries.get_mut("a").unwrap().hits = 7;

        let down = kv.downgrade(1).unwrap();
        assert_eq!(
            down, bytes,
            "v1 state encodes the same bytes after a round trip"
        );
        assert_eq!(state::decode::<V1>("v1", &down).unwrap(), v1());
    }

    #[test]
    fn refuses_unknown_downgrade() {
        let err = Kv::default().downgrade(0).unwrap_err();
        assert_eq!(err.kind(), molt_abi::ErrorKind::CannotDowngrade);
    }
}
