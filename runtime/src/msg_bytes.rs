//! The encoded bytes of a message on its way to a module actor, kept inline
//! when they are small (issue #11 §1).
//!
//! Every message used to carry its msgpack bytes in a `Vec<u8>`: one
//! `malloc` on the sending thread and one `free` on the actor's thread per
//! message, on top of the box ractor makes of every message anyway. The
//! allocator handles that producer/consumer pattern badly (each thread's
//! cache of free blocks drains on one side and overflows on the other):
//! 57 ns per handle cast in the profile (BENCHMARKS.md, "Where a message's
//! time goes"). Most messages are a few bytes (`"Add"` and an integer,
//! a unit variant's name), so they travel inside the message itself, in the
//! box ractor allocates for it; larger ones keep a `Vec`.

use std::io::Write;

use serde::Serialize;

/// Up to this many bytes travel inline. With the length byte and the
/// variant tag, [`MsgBytes`] is 48 bytes: the size of a `Vec` and its
/// neighbours in `ModuleMsg`'s call variant, so the message's box grows by
/// little. A named-field struct variant of two integers fits (the ring's
/// `Ping { hops_left, ring }` is 40 bytes).
const INLINE: usize = 46;

/// A message's encoded bytes: inline up to 46 bytes, on the heap above.
pub(crate) struct MsgBytes(Repr);

enum Repr {
    Inline { len: u8, buf: [u8; INLINE] },
    Heap(Vec<u8>),
}

impl MsgBytes {
    /// No bytes (inline).
    pub(crate) const fn new() -> Self {
        MsgBytes(Repr::Inline {
            len: 0,
            buf: [0; INLINE],
        })
    }

    /// Encodes `value` as named-field msgpack (the bytes of
    /// `rmp_serde::to_vec_named`, the wire format), written straight into
    /// the inline buffer when it fits: no allocation for a small message.
    ///
    /// # Errors
    /// When `value` does not serialize.
    pub(crate) fn encode<T: Serialize + ?Sized>(
        value: &T,
    ) -> Result<Self, rmp_serde::encode::Error> {
        let mut bytes = MsgBytes::new();
        rmp_serde::encode::write_named(&mut bytes, value)?;
        Ok(bytes)
    }

    /// The bytes.
    pub(crate) fn as_slice(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, buf } => &buf[..usize::from(*len)],
            Repr::Heap(v) => v,
        }
    }

    /// Whether the bytes are inline (no allocation of their own).
    #[cfg(test)]
    fn is_inline(&self) -> bool {
        matches!(self.0, Repr::Inline { .. })
    }
}

impl Default for MsgBytes {
    fn default() -> Self {
        MsgBytes::new()
    }
}

impl std::ops::Deref for MsgBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl std::fmt::Debug for MsgBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("MsgBytes").field(&self.as_slice()).finish()
    }
}

impl From<&[u8]> for MsgBytes {
    /// A copy: inline when it fits, else one exact-size allocation.
    fn from(bytes: &[u8]) -> Self {
        let mut out = MsgBytes::new();
        out.append(bytes);
        out
    }
}

impl From<Vec<u8>> for MsgBytes {
    /// Small bytes move inline (the `Vec` is freed here, on the thread
    /// that allocated it); larger ones keep their `Vec`.
    fn from(bytes: Vec<u8>) -> Self {
        if bytes.len() <= INLINE {
            MsgBytes::from(bytes.as_slice())
        } else {
            MsgBytes(Repr::Heap(bytes))
        }
    }
}

impl MsgBytes {
    /// Appends `more`, moving to the heap when the inline buffer is full.
    /// Inlined: the encoder calls it once per marker and per field (a
    /// byte or a few at a time), and inlined each of those is a store of a
    /// known size instead of a call and a `memcpy` (issue #11 §1).
    #[inline]
    fn append(&mut self, more: &[u8]) {
        match &mut self.0 {
            Repr::Inline { len, buf } => {
                let at = usize::from(*len);
                let end = at + more.len();
                if end <= INLINE {
                    buf[at..end].copy_from_slice(more);
                    // `end <= INLINE < 256`.
                    *len = end as u8;
                } else {
                    self.spill(more);
                }
            }
            Repr::Heap(v) => v.extend_from_slice(more),
        }
    }

    /// Moves the inline bytes and `more` to the heap (the rare path, kept
    /// out of the inlined one).
    #[cold]
    #[inline(never)]
    fn spill(&mut self, more: &[u8]) {
        let at = self.as_slice().len();
        let mut v = Vec::with_capacity((at + more.len()).max(2 * INLINE));
        v.extend_from_slice(self.as_slice());
        v.extend_from_slice(more);
        self.0 = Repr::Heap(v);
    }
}

impl Write for MsgBytes {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.append(buf);
        Ok(buf.len())
    }

    #[inline]
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.append(buf);
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    enum Msg {
        Add(i64),
        Work,
        Ping { hops_left: u64, ring: u64 },
        Put { key: String, value: String },
    }

    /// The bytes are those of `rmp_serde::to_vec_named` (the wire format),
    /// inline up to the limit, on the heap above, and across the boundary.
    #[test]
    fn encodes_as_to_vec_named_inline_when_small() {
        let long = "x".repeat(INLINE);
        for (msg, inline) in [
            (Msg::Add(i64::MIN), true),
            (Msg::Work, true),
            (
                Msg::Ping {
                    hops_left: u64::MAX,
                    ring: u64::MAX,
                },
                true,
            ),
            (
                Msg::Put {
                    key: "k".into(),
                    value: long.clone(),
                },
                false,
            ),
        ] {
            let expected = rmp_serde::to_vec_named(&msg).unwrap();
            let got = MsgBytes::encode(&msg).unwrap();
            assert_eq!(got.as_slice(), expected);
            assert_eq!(got.is_inline(), inline, "{} bytes", expected.len());
            assert_eq!(MsgBytes::from(expected.as_slice()).as_slice(), expected);
            assert_eq!(MsgBytes::from(expected.clone()).is_inline(), inline);
            assert_eq!(MsgBytes::from(expected.clone()).as_slice(), expected);
        }
        for n in [INLINE - 1, INLINE, INLINE + 1] {
            let bytes: Vec<u8> = (0..n as u8).collect();
            let b = MsgBytes::from(bytes.as_slice());
            assert_eq!(&*b, bytes.as_slice());
            assert_eq!(b.is_inline(), n <= INLINE);
        }
    }

    /// The message's box (ractor allocates one per message) stays small.
    #[test]
    fn stays_the_size_of_a_vec_and_two_words() {
        assert_eq!(std::mem::size_of::<MsgBytes>(), 48);
    }
}
