//! Instance indices across the FFI: every Rust API of molt takes and gives
//! an instance index as `usize` (like the host's handles), while the
//! `#[repr(C)]` interface in [`crate::ffi`] carries a `u32`. These two
//! functions are the only places the two meet, so an index never truncates.

use crate::{Error, ErrorKind};

/// The FFI form of instance index `index`.
///
/// # Errors
/// [`ErrorKind::BadInput`] when `index` does not fit a `u32` (no module runs
/// that many instances, so such an index can never name an actor): the
/// error names the index instead of truncating it to another actor's.
pub fn to_ffi(index: usize) -> Result<u32, Error> {
    u32::try_from(index).map_err(|_| {
        Error::new(
            ErrorKind::BadInput,
            format!(
                "instance index {index} is out of range: an index is at most {}",
                u32::MAX
            ),
        )
    })
}

/// The Rust form of an instance index the FFI carries (lossless: a `usize`
/// holds every `u32` on the platforms molt builds for).
pub fn from_ffi(index: u32) -> usize {
    const _: () = assert!(
        usize::BITS >= u32::BITS,
        "molt needs usize of 32 bits or more"
    );
    index as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_that_fits_crosses_both_ways_unchanged() {
        for i in [0usize, 1, 7, u32::MAX as usize] {
            assert_eq!(from_ffi(to_ffi(i).unwrap()), i);
        }
    }

    #[cfg(target_pointer_width = "64")]
    #[test]
    fn an_index_past_u32_is_an_error_not_a_truncation() {
        for i in [u32::MAX as usize + 1, u32::MAX as usize + 4, usize::MAX] {
            let e = to_ffi(i).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::BadInput);
            assert!(e.to_string().contains(&i.to_string()), "{e}");
        }
    }
}
