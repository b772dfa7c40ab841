//! The address of an actor: plain data a module can put in a message, keep
//! in its state and send to.
//!
//! An address names an actor, not a process, a library or a ractor cell: the
//! host resolves it on every send, so it stays valid across a reload of
//! either side and across a restart in place (`docs/semantics.md`).

use std::fmt;

use abi_stable::std_types::{ROption, RSlice, RStr, RString, RVec};
use serde::{Deserialize, Serialize};

use crate::ffi::{AddressRef, RAddress};

/// Which actor of a module an [`Address`] names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Target {
    /// One instance of a module with a fixed pool of instances (0-based).
    Instance(u32),
    /// The actor for one key of a keyed module, created on demand.
    Key(Key),
}

/// The key of a keyed actor: a string or bytes, compared byte for byte.
///
/// Built from `&str`, `String`, `&[u8]` or `Vec<u8>`; it displays as text
/// when it is UTF-8 and as hex otherwise.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Key(#[serde(with = "key_bytes")] Vec<u8>);

impl Key {
    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The key as text, when it is UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }
}

impl From<&str> for Key {
    fn from(s: &str) -> Self {
        Key(s.as_bytes().to_vec())
    }
}

impl From<String> for Key {
    fn from(s: String) -> Self {
        Key(s.into_bytes())
    }
}

impl From<&[u8]> for Key {
    fn from(b: &[u8]) -> Self {
        Key(b.to_vec())
    }
}

impl From<Vec<u8>> for Key {
    fn from(b: Vec<u8>) -> Self {
        Key(b)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_str() {
            Some(s) => f.write_str(s),
            None => self.0.iter().try_for_each(|b| write!(f, "{b:02x}")),
        }
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_str() {
            Some(s) => write!(f, "Key({s:?})"),
            None => write!(f, "Key(0x{self})"),
        }
    }
}

/// A key travels as msgpack bytes (`bin`), not as an array of numbers.
mod key_bytes {
    use serde::{Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a key (bytes or a string)")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Vec<u8>, E> {
                Ok(v.as_bytes().to_vec())
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Vec<u8>, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(b) = seq.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(out)
            }
        }
        d.deserialize_byte_buf(Visitor)
    }
}

/// The address of one actor: the node it lives on, its module, and which of
/// the module's actors.
///
/// Serializable (a module may send it in a message or keep it in its state)
/// and resolved by the host on every send. `node` names the local node for
/// now; the cluster work gives it meaning across nodes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Address {
    /// The node the actor lives on (the local node's name for now).
    pub node: String,
    /// The module the actor runs.
    pub module: String,
    /// Which of the module's actors.
    pub target: Target,
}

impl Address {
    /// The address of instance `instance` of `module` on `node`.
    pub fn instance(node: impl Into<String>, module: impl Into<String>, instance: u32) -> Self {
        Address {
            node: node.into(),
            module: module.into(),
            target: Target::Instance(instance),
        }
    }

    /// The address of the actor for `key` of the keyed module `module` on `node`.
    pub fn key(node: impl Into<String>, module: impl Into<String>, key: impl Into<Key>) -> Self {
        Address {
            node: node.into(),
            module: module.into(),
            target: Target::Key(key.into()),
        }
    }
}

impl Address {
    /// The borrowed form the host takes.
    pub(crate) fn as_ffi(&self) -> AddressRef<'_> {
        let (instance, key) = match &self.target {
            Target::Instance(i) => (*i, ROption::RNone),
            Target::Key(k) => (0, ROption::RSome(RSlice::from_slice(k.as_bytes()))),
        };
        AddressRef {
            node: RStr::from_str(&self.node),
            module: RStr::from_str(&self.module),
            instance,
            key,
        }
    }
}

impl From<RAddress> for Address {
    fn from(a: RAddress) -> Self {
        Address {
            node: a.node.into_string(),
            module: a.module.into_string(),
            target: match a.key {
                ROption::RSome(k) => Target::Key(Key(k.into_vec())),
                ROption::RNone => Target::Instance(a.instance),
            },
        }
    }
}

impl From<&Address> for RAddress {
    fn from(a: &Address) -> Self {
        let (instance, key) = match &a.target {
            Target::Instance(i) => (*i, ROption::RNone),
            Target::Key(k) => (0, ROption::RSome(RVec::from(k.as_bytes()))),
        };
        RAddress {
            node: RString::from(a.node.as_str()),
            module: RString::from(a.module.as_str()),
            instance,
            key,
        }
    }
}

impl<'a> From<AddressRef<'a>> for Address {
    fn from(a: AddressRef<'a>) -> Self {
        Address {
            node: a.node.as_str().to_string(),
            module: a.module.as_str().to_string(),
            target: match a.key {
                ROption::RSome(k) => Target::Key(Key(k.to_vec())),
                ROption::RNone => Target::Instance(a.instance),
            },
        }
    }
}

impl fmt::Display for Address {
    /// `module#3@node` for an instance, `module[key]@node` for a key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.target {
            Target::Instance(i) => write!(f, "{}#{}@{}", self.module, i, self.node),
            Target::Key(k) => write!(f, "{}[{}]@{}", self.module, k, self.node),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_round_trips_through_msgpack_and_json() {
        for a in [
            Address::instance("n1", "ping", 3),
            Address::key("n1", "cart", "user-42"),
            Address::key("n1", "cart", vec![0u8, 255, 7]),
        ] {
            let bytes = rmp_serde::to_vec_named(&a).unwrap();
            assert_eq!(rmp_serde::from_slice::<Address>(&bytes).unwrap(), a);
            let json = serde_json::to_string(&a).unwrap();
            assert_eq!(serde_json::from_str::<Address>(&json).unwrap(), a);
        }
    }

    #[test]
    fn an_address_round_trips_through_its_ffi_forms() {
        for a in [
            Address::instance("n1", "ping", 3),
            Address::key("n1", "cart", vec![0u8, 255, 7]),
        ] {
            assert_eq!(Address::from(a.as_ffi()), a);
            assert_eq!(Address::from(RAddress::from(&a)), a);
        }
    }

    #[test]
    fn addresses_display_module_target_and_node() {
        assert_eq!(Address::instance("n1", "ping", 3).to_string(), "ping#3@n1");
        assert_eq!(
            Address::key("n1", "cart", "u-1").to_string(),
            "cart[u-1]@n1"
        );
        assert_eq!(
            Address::key("n", "c", vec![0u8, 255]).to_string(),
            "c[00ff]@n"
        );
    }
}
