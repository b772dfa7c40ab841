//! Encoding a message for the host without an allocation per send: the
//! bytes of a cast, an ask or a reply are written into a buffer this thread
//! keeps (named-field msgpack, the wire format, unchanged) and lent to the
//! host for the length of the call; the host copies what it keeps.
//!
//! `rmp_serde::to_vec_named` started every message from an empty `Vec`
//! (one `malloc`, then `realloc`s as it grew, then a `free`): 64–78 ns per
//! message module to module (BENCHMARKS.md, "Where a message's time goes").

use std::cell::Cell;

use serde::Serialize;

/// A buffer that grew beyond this is dropped after use rather than kept:
/// one large message does not pin its size to the thread for good.
const KEEP_AT_MOST: usize = 64 * 1024;

/// What a new buffer starts with: room for the messages most modules send.
const START_WITH: usize = 256;

thread_local! {
    static BUFFER: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Encodes `value` as named-field msgpack (what `rmp_serde::to_vec_named`
/// gives) and calls `use_bytes` with the bytes. The buffer is taken out of
/// the thread's slot for the call, so a `use_bytes` that encodes again gets
/// a buffer of its own.
///
/// # Errors
/// The encoding error (through `on_encode_error`), or what `use_bytes`
/// returns.
pub(crate) fn with_encoded<T, R, E>(
    value: &T,
    on_encode_error: impl FnOnce(rmp_serde::encode::Error) -> E,
    use_bytes: impl FnOnce(&[u8]) -> Result<R, E>,
) -> Result<R, E>
where
    T: Serialize + ?Sized,
{
    // An exiting thread has no slot: then a buffer for this call alone.
    let mut buf = BUFFER.try_with(Cell::take).unwrap_or_default();
    if buf.capacity() == 0 {
        buf.reserve(START_WITH);
    }
    buf.clear();
    let result = match rmp_serde::encode::write_named(&mut buf, value) {
        Ok(()) => use_bytes(&buf),
        Err(e) => Err(on_encode_error(e)),
    };
    if buf.capacity() <= KEEP_AT_MOST {
        let _ = BUFFER.try_with(|slot| slot.set(buf));
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Ping {
        hops_left: u64,
        ring: usize,
    }

    fn encoded(value: &impl Serialize) -> Vec<u8> {
        with_encoded(
            value,
            |e| e.to_string(),
            |bytes| Ok::<_, String>(bytes.to_vec()),
        )
        .unwrap()
    }

    #[test]
    fn the_bytes_are_those_of_to_vec_named_reused_or_reentered() {
        let ping = Ping {
            hops_left: 7,
            ring: 100,
        };
        let expected = rmp_serde::to_vec_named(&ping).unwrap();
        // A longer message first, so that the reused buffer holds more
        // bytes than the next one writes.
        assert_eq!(
            encoded(&"x".repeat(1000)),
            rmp_serde::to_vec_named(&"x".repeat(1000)).unwrap()
        );
        assert_eq!(encoded(&ping), expected);
        let outer = with_encoded(
            &ping,
            |e| e.to_string(),
            |outer| {
                assert_eq!(encoded(&ping), expected);
                Ok::<_, String>(outer.to_vec())
            },
        );
        assert_eq!(outer.unwrap(), expected);
    }
}
