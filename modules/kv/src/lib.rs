//! The example `kv` module, code version 1.0.0, state version 1.
//!
//! Speaks [`kv_proto`]: keys and values, append-only journals, and two demo
//! messages that fail and panic. `kv_v2` reads this state and can produce it
//! again (down-migration), so rolling back from 2.x keeps the data.
#![warn(missing_docs)]

use std::collections::BTreeMap;

use kv_proto::{Dump, Msg, Reply};
use molt_abi::{Ctx, Error, Module};
use serde::{Deserialize, Serialize};

/// The configuration of a kv module (the `config` table of its module entry).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[serde(default)]
pub struct KvConfig {
    /// The longest value (in bytes) `Put` accepts; no limit when absent.
    pub max_value_len: Option<usize>,
}

/// The kv state (state version 1).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct Kv {
    entries: BTreeMap<String, String>,
    streams: BTreeMap<String, Vec<u64>>,
    /// The limit of the current load's config: not part of the state.
    #[serde(skip)]
    max_value_len: Option<usize>,
}

impl Module for Kv {
    const NAME: &'static str = "kv";
    const CODE_VERSION: &'static str = "1.0.0";
    const STATE_VERSION: u32 = 1;
    // No `verify` of its own: a swap needs no hand-off to check it.
    const HAS_VERIFY: bool = false;

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
        if from != Self::STATE_VERSION {
            return Err(Error::unknown_state_version(
                Self::NAME,
                from,
                Self::STATE_VERSION,
            ));
        }
        let mut kv: Kv = molt_abi::state::decode("kv state v1", bytes)?;
        kv.max_value_len = config.max_value_len;
        Ok(kv)
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
                self.entries.insert(key, value);
                Reply::Ok
            }
            Msg::Get { key } => Reply::Value(self.entries.get(&key).cloned()),
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
                entries: self.entries.clone(),
                streams: self.streams.clone(),
            }),
            Msg::Hits { .. } => return Err(Error::msg("hits needs kv 2.x")),
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
}

molt_abi::export_module!(Kv);
