//! State-version helpers: encode and decode states (and any other value that
//! crosses the boundary) the way the host does, as msgpack with named fields.

use serde::{de::DeserializeOwned, Serialize};

use crate::Error;

/// Encodes a value as msgpack with named fields (what `snapshot` produces).
///
/// # Errors
/// [`crate::ErrorKind::Failed`] when the value cannot be serialized.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Error> {
    rmp_serde::to_vec_named(value).map_err(|e| Error::msg(format!("cannot encode state: {e}")))
}

/// Decodes msgpack produced by [`encode`] (or by an older library version).
///
/// # Errors
/// [`crate::ErrorKind::BadInput`] naming `what` when the bytes do not decode.
pub fn decode<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, Error> {
    rmp_serde::from_slice(bytes).map_err(|e| Error::bad_input(what, e))
}
