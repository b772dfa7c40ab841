//! Which notify events mean "a file may now be complete at this name"
//! (FINDINGS: cargo unlinks the final library, then hard-links the new one;
//! the file is complete at `Create` or at the rename's `Modify(Name(To))`),
//! and which file names they are about.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
use notify::{Event, EventKind};

/// The paths of `event` that may now hold a complete new file. Removals
/// (cargo's unlink before the link, a rename's old name), metadata changes
/// and reads (the loader copying a library) give none.
pub(crate) fn changed_paths(event: &Event) -> &[PathBuf] {
    match event.kind {
        EventKind::Create(_)
        | EventKind::Modify(ModifyKind::Data(_))
        | EventKind::Modify(ModifyKind::Any)
        | EventKind::Modify(ModifyKind::Name(RenameMode::To))
        // Backends that cannot tell the two ends of a rename apart; a name
        // that is gone by then is skipped when its quiet period ends.
        | EventKind::Modify(ModifyKind::Name(RenameMode::Any))
        | EventKind::Access(AccessKind::Close(AccessMode::Write)) => &event.paths,
        // [from, to]: only the new name.
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => {
            event.paths.last().map(std::slice::from_ref).unwrap_or(&[])
        }
        _ => &[],
    }
}

/// A file as the watcher compares it: its folder, canonicalized, and its
/// name. (The file itself may be missing between cargo's unlink and link, so
/// only the folder is canonicalized.)
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct FileKey {
    pub dir: PathBuf,
    pub name: OsString,
}

impl FileKey {
    /// The key of `path`, or `None` when it names no file or its folder
    /// cannot be resolved.
    pub(crate) fn of(path: &Path) -> Option<FileKey> {
        let name = path.file_name()?.to_os_string();
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        Some(FileKey {
            dir: dir.canonicalize().ok()?,
            name,
        })
    }

    /// The key of a path reported by the watcher: its folder is one of the
    /// watched folders, canonical already.
    pub(crate) fn of_event_path(path: &Path) -> Option<FileKey> {
        Some(FileKey {
            dir: path.parent()?.to_path_buf(),
            name: path.file_name()?.to_os_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, DataChange, MetadataKind, RemoveKind};

    fn ev(kind: EventKind, paths: &[&str]) -> Event {
        let mut e = Event::new(kind);
        for p in paths {
            e = e.add_path(PathBuf::from(p));
        }
        e
    }

    #[test]
    fn completed_files_count_and_removals_do_not() {
        let lib = "/d/libkv.so";
        let counts = [
            EventKind::Create(CreateKind::File),
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            EventKind::Modify(ModifyKind::Data(DataChange::Any)),
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
        ];
        for kind in counts {
            assert_eq!(changed_paths(&ev(kind, &[lib])), [PathBuf::from(lib)]);
        }
        let ignored = [
            EventKind::Remove(RemoveKind::File),
            EventKind::Modify(ModifyKind::Name(RenameMode::From)),
            EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any)),
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
        ];
        for kind in ignored {
            assert!(changed_paths(&ev(kind, &[lib])).is_empty(), "{kind:?}");
        }
    }

    #[test]
    fn a_rename_counts_for_its_new_name_only() {
        let both = ev(
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)),
            &["/d/libkv.so", "/d/libkv.so.old"],
        );
        assert_eq!(changed_paths(&both), [PathBuf::from("/d/libkv.so.old")]);
    }

    #[test]
    fn keys_compare_the_canonical_folder_and_the_name() {
        let dir = tempfile::tempdir().unwrap();
        let canonical = dir.path().canonicalize().unwrap();
        let dotted = dir.path().join(".").join("libkv.so");
        let key = FileKey::of(&dotted).unwrap();
        assert_eq!(
            key,
            FileKey::of_event_path(&canonical.join("libkv.so")).unwrap()
        );
        assert!(FileKey::of(Path::new("/no/such/dir/libkv.so")).is_none());
    }
}
