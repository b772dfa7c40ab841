//! Removing what dead nodes left behind (issue #8, item 18): a node killed
//! with `kill -9` leaves its private copy folder (`molt-PID-XXXXXX`, empty
//! unless it died mid-copy), and a copy interrupted mid-way stays in a
//! configured `copy_dir`. At start a node removes those whose PID is not a
//! live process and that belong to its user: in the temp directory, the
//! folders and the copies in them; in its `copy_dir`, the copy files.
//! Anything else (another user's, a live node's, a name that is not molt's)
//! is left alone.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::copy_dir::effective_uid;

/// What a clean-up removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Removed {
    /// Copy folders of dead nodes.
    pub folders: usize,
    /// Copy files of dead nodes.
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
}

/// Removes the copy folders of dead nodes in `temp` (the temp directory) and
/// the copies of dead nodes in `copy_dir` (a configured folder), logging
/// what it removed. Never fails: what cannot be removed stays.
pub fn remove_stale(temp: &Path, copy_dir: Option<&Path>) -> Removed {
    let mut removed = Removed::default();
    for entry in read_dir(temp) {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(folder_pid) else {
            continue;
        };
        let Ok(meta) = entry.path().symlink_metadata() else {
            continue;
        };
        if !meta.is_dir() || meta.uid() != effective_uid() || alive(pid) {
            continue;
        }
        remove_copies(&entry.path(), |_| true, &mut removed);
        if std::fs::remove_dir(entry.path()).is_ok() {
            removed.folders += 1;
        }
    }
    if let Some(dir) = copy_dir {
        remove_copies(dir, |pid| !alive(pid), &mut removed);
    }
    if removed != Removed::default() {
        tracing::info!(target: "molt::loader", folders = removed.folders, files = removed.files, bytes = removed.bytes, "removed the library copies of nodes that are no longer running");
    }
    removed
}

/// Removes this user's copy files `STEM.PID.N.so` in `dir` whose PID `dead` says so.
fn remove_copies(dir: &Path, dead: impl Fn(u32) -> bool, removed: &mut Removed) {
    for entry in read_dir(dir) {
        let Some(pid) = entry.file_name().to_str().and_then(copy_pid) else {
            continue;
        };
        let Ok(meta) = entry.path().symlink_metadata() else {
            continue;
        };
        if meta.is_file()
            && meta.uid() == effective_uid()
            && dead(pid)
            && std::fs::remove_file(entry.path()).is_ok()
        {
            removed.files += 1;
            removed.bytes += meta.len();
        }
    }
}

fn read_dir(dir: &Path) -> impl Iterator<Item = std::fs::DirEntry> {
    std::fs::read_dir(dir).into_iter().flatten().flatten()
}

/// The PID in a copy folder's name: `molt-PID-XXXXXX`, or `molt-PID` (the
/// name nodes used before folders got a random part).
fn folder_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("molt-")?;
    let pid = rest.split_once('-').map_or(rest, |(pid, _)| pid);
    number(pid)
}

/// The PID in a copy's name: `STEM.PID.N.so`.
fn copy_pid(name: &str) -> Option<u32> {
    let mut parts = name.strip_suffix(".so")?.rsplitn(3, '.');
    let (_n, pid) = (number(parts.next()?)?, parts.next()?);
    parts.next()?;
    number(pid)
}

fn number(s: &str) -> Option<u32> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// Whether `pid` is a live process (this one included). Only a definite
/// "no such process" counts as dead.
fn alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return true;
    };
    if pid <= 0 {
        return true;
    }
    // SAFETY: signal 0 only checks that the process exists and may be
    // signalled; it sends nothing.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(folder_pid("molt-123-aB3xYz"), Some(123));
        assert_eq!(folder_pid("molt-123"), Some(123));
        assert_eq!(folder_pid("molt-test-libs12"), None);
        assert_eq!(folder_pid("molt-"), None);
        assert_eq!(copy_pid("libkv.123.4.so"), Some(123));
        assert_eq!(copy_pid("libkv_v2.77.0.so"), Some(77));
        assert_eq!(copy_pid("libkv.so"), None);
        assert_eq!(copy_pid("123.4.so"), None);
        assert_eq!(copy_pid("libkv.x.4.so"), None);
    }
}
