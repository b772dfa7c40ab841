//! Warming a library: every cache line of its file's mappings is read here,
//! off the actors (while it loads, and again on the blocking pool just
//! before a reload's swaps, for the serving library), so that its code is
//! mapped and in the CPU's shared cache when it runs. Otherwise the first
//! run of each piece of its code waits for a page fault or for memory, and
//! those first runs are inside a swap's pause: the new code's `migrate`,
//! `start` and round-trip encode, the old code's `snapshot` and `stop`
//! (BENCHMARKS.md, "Swap pause vs state size": one byte per page took the
//! page faults out; every line, 2026-11-30, took a 1 KiB state's snapshot,
//! migrate and swap from 10/18/5 µs to 7/15/3 µs). A 1 MiB library is read
//! in tens of µs.
//! Linux only (`/proc/self/maps`); elsewhere a no-op.

/// A cache line: the unit the CPU fetches memory in.
const LINE: usize = 64;

/// Reads one byte of every cache line of the readable mappings of the file
/// that holds `addr` (an address inside a mapped library).
pub(super) fn touch_mappings_of(addr: usize) {
    #[cfg(target_os = "linux")]
    {
        let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
            return;
        };
        let mappings: Vec<Mapping> = maps.lines().filter_map(Mapping::parse).collect();
        let Some(file) = mappings
            .iter()
            .find(|m| m.start <= addr && addr < m.end)
            .and_then(|m| m.file)
        else {
            return;
        };
        for m in mappings
            .iter()
            .filter(|m| m.file == Some(file) && m.readable)
        {
            for line in (m.start..m.end).step_by(LINE) {
                // SAFETY: `line` lies inside a readable mapping of this
                // process, listed by /proc/self/maps just now, of a library
                // that is never unmapped (the loader never `dlclose`s).
                // Mapped from the file's own bytes (or zero-filled past
                // them), so the read cannot fault past the end of the file.
                unsafe {
                    std::ptr::read_volatile(line as *const u8);
                }
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = addr;
}

/// One line of `/proc/self/maps`.
#[cfg(target_os = "linux")]
struct Mapping {
    start: usize,
    end: usize,
    readable: bool,
    /// The file mapped, as (device, inode); `None` for anonymous memory.
    file: Option<(u64, u64)>,
}

#[cfg(target_os = "linux")]
impl Mapping {
    /// `start-end perms offset major:minor inode [path]`.
    fn parse(line: &str) -> Option<Mapping> {
        let mut fields = line.split_whitespace();
        let (start, end) = fields.next()?.split_once('-')?;
        let perms = fields.next()?;
        let _offset = fields.next()?;
        let (major, minor) = fields.next()?.split_once(':')?;
        let inode: u64 = fields.next()?.parse().ok()?;
        let device =
            (u64::from_str_radix(major, 16).ok()? << 32) | u64::from_str_radix(minor, 16).ok()?;
        Some(Mapping {
            start: usize::from_str_radix(start, 16).ok()?,
            end: usize::from_str_radix(end, 16).ok()?,
            readable: perms.starts_with('r'),
            file: (inode != 0).then_some((device, inode)),
        })
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn a_maps_line_parses() {
        let m = Mapping::parse(
            "7f1c2a000000-7f1c2a021000 r-xp 00001000 fd:01 1234567                    /tmp/libkv.1.so (deleted)",
        )
        .unwrap();
        assert_eq!((m.start, m.end), (0x7f1c2a000000, 0x7f1c2a021000));
        assert!(m.readable);
        assert_eq!(m.file, Some(((0xfd << 32) | 1, 1234567)));
        let anon = Mapping::parse("7ffd1000-7ffd2000 rw-p 00000000 00:00 0").unwrap();
        assert_eq!(anon.file, None);
        let guard = Mapping::parse("7f0000000000-7f0000001000 ---p 00000000 00:00 0").unwrap();
        assert!(!guard.readable);
    }

    #[test]
    fn touching_this_test_binary_reads_its_pages() {
        // Any address in this binary's code: its mappings are read, without
        // a fault the process could not take.
        touch_mappings_of(a_maps_line_parses as *const () as usize);
    }
}
