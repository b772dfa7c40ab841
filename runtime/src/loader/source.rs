//! Opening the library file a load was asked for: only a regular file no larger
//! than `limits.max_library_bytes`, with a valid ELF header, gets copied
//! (docs/semantics.md "Loading and libraries": bad input is refused in prepare,
//! naming the cause).
//!
//! The type is checked twice: on the path before it is opened (opening a
//! device can have effects of its own), and on the opened descriptor
//! (`fstat`), which closes the race with a file swapped in between. The
//! open itself is non-blocking, so a FIFO swapped in at that moment cannot
//! block it either.

use std::fs::{File, Metadata, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::error::LoadCause;

/// Opens `path` for reading and returns it with its size, once it is known
/// to be a regular file of at most `max_bytes` bytes with a valid ELF
/// header and program headers.
pub(super) fn open(path: &Path, max_bytes: u64) -> Result<(File, u64), LoadCause> {
    let io = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::NotFound => LoadCause::NotFound,
        _ => LoadCause::Io(e.to_string()),
    };
    acceptable(&std::fs::metadata(path).map_err(io)?, max_bytes)?;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(io)?;
    let size = acceptable(&file.metadata().map_err(io)?, max_bytes)?;
    super::elf::check(&file, size)?;
    Ok((file, size))
}

/// The file's size, when it is a regular file within the cap.
fn acceptable(meta: &Metadata, max_bytes: u64) -> Result<u64, LoadCause> {
    if !meta.is_file() {
        return Err(LoadCause::NotARegularFile {
            kind: crate::regular_file::describe(&meta.file_type()).to_string(),
        });
    }
    if meta.len() > max_bytes {
        return Err(LoadCause::TooLarge {
            size: meta.len(),
            max: max_bytes,
        });
    }
    Ok(meta.len())
}
