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
use crate::{index, Error};

/// Which actor of a module an [`Address`] names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Target {
    /// One instance of a module with a fixed pool of instances (0-based).
    Instance(usize),
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
    pub fn instance(node: impl Into<String>, module: impl Into<String>, instance: usize) -> Self {
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
    ///
    /// # Errors
    /// When the instance index does not fit the FFI's `u32` (see
    /// [`crate::index::to_ffi`]).
    pub(crate) fn as_ffi(&self) -> Result<AddressRef<'_>, Error> {
        let (instance, key) = match &self.target {
            Target::Instance(i) => (index::to_ffi(*i)?, ROption::RNone),
            Target::Key(k) => (0, ROption::RSome(RSlice::from_slice(k.as_bytes()))),
        };
        Ok(AddressRef {
            node: RStr::from_str(&self.node),
            module: RStr::from_str(&self.module),
            instance,
            key,
        })
    }
}

impl From<RAddress> for Address {
    fn from(a: RAddress) -> Self {
        Address {
            node: a.node.into_string(),
            module: a.module.into_string(),
            target: match a.key {
                ROption::RSome(k) => Target::Key(Key(k.into_vec())),
                ROption::RNone => Target::Instance(index::from_ffi(a.instance)),
            },
        }
    }
}

impl TryFrom<&Address> for RAddress {
    type Error = Error;

    /// The owned FFI form (the host hands a sender's address this way).
    ///
    /// # Errors
    /// When the instance index does not fit the FFI's `u32`.
    fn try_from(a: &Address) -> Result<Self, Error> {
        let (instance, key) = match &a.target {
            Target::Instance(i) => (index::to_ffi(*i)?, ROption::RNone),
            Target::Key(k) => (0, ROption::RSome(RVec::from(k.as_bytes()))),
        };
        Ok(RAddress {
            node: RString::from(a.node.as_str()),
            module: RString::from(a.module.as_str()),
            instance,
            key,
        })
    }
}

impl<'a> From<AddressRef<'a>> for Address {
    fn from(a: AddressRef<'a>) -> Self {
        Address {
            node: a.node.as_str().to_string(),
            module: a.module.as_str().to_string(),
            target: match a.key {
                ROption::RSome(k) => Target::Key(Key(k.to_vec())),
                ROption::RNone => Target::Instance(index::from_ffi(a.instance)),
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
            assert_eq!(Address::from(a.as_ffi().unwrap()), a);
            assert_eq!(Address::from(RAddress::try_from(&a).unwrap()), a);
        }
    }

    #[cfg(target_pointer_width = "64")]
    #[test]
    fn an_index_past_the_ffi_range_is_refused_not_truncated() {
        let a = Address::instance("n1", "ping", u32::MAX as usize + 1);
        assert!(a.as_ffi().is_err());
        assert!(RAddress::try_from(&a).is_err());
    }

    /// `Address` as it was when instance indices were `u32`: a state or a
    /// message holding one must still decode.
    mod before {
        use serde::{Deserialize, Serialize};

        #[derive(Serialize, Deserialize)]
        pub(super) enum Target {
            Instance(u32),
            Key(crate::Key),
        }

        #[derive(Serialize, Deserialize)]
        pub(super) struct Address {
            pub(super) node: String,
            pub(super) module: String,
            pub(super) target: Target,
        }
    }

    #[test]
    fn an_address_written_with_a_u32_index_reads_back_and_writes_the_same_bytes() {
        for i in [0u32, 3, 200, 70_000, u32::MAX] {
            let old = before::Address {
                node: "n1".into(),
                module: "ping".into(),
                target: before::Target::Instance(i),
            };
            let new = Address::instance("n1", "ping", i as usize);
            let old_bytes = rmp_serde::to_vec_named(&old).unwrap();
            assert_eq!(rmp_serde::from_slice::<Address>(&old_bytes).unwrap(), new);
            assert_eq!(rmp_serde::to_vec_named(&new).unwrap(), old_bytes);
            let old_json = serde_json::to_string(&old).unwrap();
            assert_eq!(serde_json::from_str::<Address>(&old_json).unwrap(), new);
            assert_eq!(serde_json::to_string(&new).unwrap(), old_json);
            // Positional (`to_vec`, as some states are written) too.
            let old_compact = rmp_serde::to_vec(&old).unwrap();
            assert_eq!(rmp_serde::from_slice::<Address>(&old_compact).unwrap(), new);
        }
        let key = before::Address {
            node: "n1".into(),
            module: "cart".into(),
            target: before::Target::Key(crate::Key::from("user-42")),
        };
        let bytes = rmp_serde::to_vec_named(&key).unwrap();
        assert_eq!(
            rmp_serde::from_slice::<Address>(&bytes).unwrap(),
            Address::key("n1", "cart", "user-42")
        );
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
