//! State-version helpers: encode and decode states (and any other value that
//! crosses the boundary) the way the host does, as msgpack with named fields.

use serde::{de::DeserializeOwned, Serialize};

use crate::Error;

/// Encodes a value as msgpack with named fields (what `snapshot` produces).
///
/// # Errors
/// [`crate::ErrorKind::Failed`] when the value cannot be serialized.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    encode_into(&mut out, value)?;
    Ok(out)
}

/// Decodes msgpack produced by [`encode`] (or by an older library version).
///
/// # Errors
/// [`crate::ErrorKind::BadInput`] naming `what` when the bytes do not decode.
pub fn decode<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, Error> {
    rmp_serde::from_slice(bytes).map_err(|e| Error::bad_input(what, e))
}

/// Encodes a value as [`encode`] does, at the end of `out` (any writer: the
/// host's buffer during a swap, so the bytes need no copy out of the
/// library).
///
/// # Errors
/// [`crate::ErrorKind::Failed`] when the value cannot be serialized.
pub(crate) fn encode_into<T: Serialize + ?Sized>(
    out: &mut impl std::io::Write,
    value: &T,
) -> Result<(), Error> {
    rmp_serde::encode::write_named(out, value)
        .map_err(|e| Error::msg(format!("cannot encode state: {e}")))
}

/// Whether [`encode`] of `value` gives exactly `expected`, found without
/// building the encoding: each piece the encoder writes is compared with
/// the next bytes of `expected`, and the first difference stops it.
///
/// # Errors
/// [`crate::ErrorKind::Failed`] when the value cannot be serialized.
pub(crate) fn encodes_to<T: Serialize + ?Sized>(value: &T, expected: &[u8]) -> Result<bool, Error> {
    let mut against = Against {
        rest: expected,
        differs: false,
    };
    match encode_into(&mut against, value) {
        Ok(()) => Ok(against.rest.is_empty()),
        Err(_) if against.differs => Ok(false),
        Err(e) => Err(e),
    }
}

/// A writer that compares what it is given with the bytes expected next.
struct Against<'a> {
    rest: &'a [u8],
    differs: bool,
}

impl std::io::Write for Against<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.rest.strip_prefix(buf) {
            Some(rest) => {
                self.rest = rest;
                Ok(buf.len())
            }
            None => {
                self.differs = true;
                Err(std::io::Error::other("the encoding differs"))
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn encodes_to_agrees_with_encode() {
        let state: BTreeMap<String, String> = (0..50)
            .map(|i| (format!("key-{i}"), "v".repeat(i)))
            .collect();
        let bytes = encode(&state).unwrap();
        assert!(encodes_to(&state, &bytes).unwrap());
        let mut longer = bytes.clone();
        longer.push(0xc0);
        assert!(
            !encodes_to(&state, &longer).unwrap(),
            "a longer expectation"
        );
        assert!(
            !encodes_to(&state, &bytes[..bytes.len() - 1]).unwrap(),
            "a shorter one"
        );
        let mut other = bytes.clone();
        let last = other.len() - 1;
        other[last] ^= 1;
        assert!(!encodes_to(&state, &other).unwrap(), "one byte differs");
        let mut into = abi_stable::std_types::RVec::new();
        encode_into(&mut into, &state).unwrap();
        assert_eq!(into.as_slice(), bytes.as_slice());
    }
}
