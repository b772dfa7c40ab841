//! The ELF check: a library file must be a complete ELF object before
//! `dlopen` sees it.
//!
//! `dlopen` does not check that a file is complete: it accepts a file whose
//! tail is missing (section headers and debug info are never mapped), and
//! for a file cut inside a loadable segment it maps pages past the end of
//! the file, so the first access raises SIGBUS and kills the process.
//! Linkers write the section header table last, so a file cut anywhere
//! fails one of these checks.

use std::fs::File;

use crate::error::LoadCause;

/// Checks the open `file` of `size` bytes (read with positioned reads: the
/// file offset is left alone).
#[cfg(target_os = "linux")]
pub(super) fn check(file: &File, size: u64) -> Result<(), LoadCause> {
    use std::os::unix::fs::FileExt;
    const PT_LOAD: u64 = 1;

    let io = |e: std::io::Error| LoadCause::Io(e.to_string());
    let bad = |why: String| LoadCause::NotALibrary(why);
    let mut header = [0u8; 64];
    let header_len = header
        .len()
        .min(usize::try_from(size).unwrap_or(usize::MAX));
    file.read_exact_at(&mut header[..header_len], 0)
        .map_err(io)?;
    if header[..header_len].starts_with(b"!<arch>\n") {
        // What a crate without `crate-type = ["cdylib"]` builds (issue #10 §5).
        return Err(bad(
            "a static archive (an .rlib or .a), not a shared library: build the module crate \
             as a cdylib: add crate-type = [\"cdylib\"] under [lib] in its Cargo.toml"
                .to_string(),
        ));
    }
    if header_len < 16 || header[..4] != *b"\x7fELF" {
        return Err(bad(format!("not an ELF file ({size} bytes)")));
    }
    let wide = match header[4] {
        1 => false,
        2 => true,
        class => return Err(bad(format!("unknown ELF class {class}"))),
    };
    let little = match header[5] {
        1 => true,
        2 => false,
        data => return Err(bad(format!("unknown ELF byte order {data}"))),
    };
    // An unsigned field of `len` bytes at `at`, in the file's byte order.
    let field = |buf: &[u8], at: usize, len: usize| -> u64 {
        let bytes = &buf[at..at + len];
        let fold = |v: u64, b: &u8| (v << 8) | u64::from(*b);
        if little {
            bytes.iter().rev().fold(0, fold)
        } else {
            bytes.iter().fold(0, fold)
        }
    };
    if header_len < if wide { 64 } else { 52 } {
        return Err(bad(format!(
            "truncated: {size} bytes, shorter than an ELF header"
        )));
    }
    // e_phoff, e_shoff, e_phentsize, e_phnum, e_shentsize, e_shnum
    let [phoff, shoff, phentsize, phnum, shentsize, shnum] = if wide {
        [(32, 8), (40, 8), (54, 2), (56, 2), (58, 2), (60, 2)]
    } else {
        [(28, 4), (32, 4), (42, 2), (44, 2), (46, 2), (48, 2)]
    }
    .map(|(at, len)| field(&header, at, len));
    let within = |what: &str, offset: u64, len: u64| match offset.checked_add(len) {
        Some(end) if end <= size => Ok(()),
        _ => Err(bad(format!(
            "truncated: its {what} end at byte {}, the file has {size} bytes",
            offset.saturating_add(len)
        ))),
    };
    within("program headers", phoff, phentsize * phnum)?;
    within("section headers", shoff, shentsize * shnum)?;
    if phnum > 0 && phentsize < if wide { 56 } else { 32 } {
        return Err(bad(format!("invalid program header size {phentsize}")));
    }
    let mut table = vec![0u8; (phentsize * phnum) as usize];
    file.read_exact_at(&mut table, phoff).map_err(io)?;
    for entry in table.chunks_exact(phentsize.max(1) as usize) {
        // p_type, p_offset, p_filesz
        let [kind, offset, file_size] = if wide {
            [(0, 4), (8, 8), (32, 8)]
        } else {
            [(0, 4), (4, 4), (16, 4)]
        }
        .map(|(at, len)| field(entry, at, len));
        if kind == PT_LOAD {
            within("loadable segments", offset, file_size)?;
        }
    }
    Ok(())
}

/// Other platforms' formats (Mach-O, PE) are left to the dynamic loader.
#[cfg(not(target_os = "linux"))]
pub(super) fn check(_file: &File, _size: u64) -> Result<(), LoadCause> {
    Ok(())
}
