//! The folder library copies are written to before `dlopen`, and the copies
//! themselves (docs/semantics.md "Loading and libraries").
//!
//! `dlopen` maps whatever file is at the copy's path, as the node's user, so
//! nobody else may be able to put a file there: the default folder is
//! created fresh for each node (`molt-PID-XXXXXX` in the temp directory, a
//! random part, mode 0700), a configured `copy_dir` must be a real
//! directory (not a symbolic link) owned by the node's user and writable by
//! nobody else, and each copy is created exclusively (`O_CREAT | O_EXCL |
//! O_NOFOLLOW`, mode 0600): a file or symbolic link planted at its name
//! fails the load, it is never followed or overwritten. The ELF check runs
//! on the copy's own descriptor after the bytes are written.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, LoadCause};

static NEXT_COPY: AtomicU64 = AtomicU64::new(0);

/// Where a loader writes its copies: a folder only this process's user can
/// write to.
#[derive(Debug, Clone)]
pub struct CopyDir {
    path: PathBuf,
    /// Created by this node (`molt-PID-XXXXXX`), so removed at shutdown.
    private: bool,
}

impl CopyDir {
    /// Creates a fresh private folder `molt-PID-XXXXXX` (mode 0700) in
    /// `parent` (the temp directory by default). The PID in the name lets a
    /// later node recognize it as stale once this process is gone.
    ///
    /// # Errors
    /// [`Error::Config`] when the folder cannot be created.
    pub fn create_private(parent: &Path) -> Result<CopyDir, Error> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("molt-{}-", std::process::id()))
            .rand_bytes(6)
            // mkdir's mode (the umask can only take bits away): tempfile's
            // default would be 0777 minus the umask.
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir_in(parent)
            .map_err(|e| {
                Error::Config(format!(
                    "cannot create a private copy folder in {}: {e}",
                    parent.display()
                ))
            })?;
        let path = dir.keep();
        Ok(CopyDir {
            path,
            private: true,
        })
    }

    /// A configured `copy_dir`, created (mode 0700) when it does not exist.
    ///
    /// # Errors
    /// [`Error::Config`] naming the folder when it cannot be created, or is
    /// a symbolic link, not a directory, owned by another user, or writable
    /// by group or others.
    pub fn configured(path: &Path) -> Result<CopyDir, Error> {
        if std::fs::symlink_metadata(path).is_err() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(path)
                .map_err(|e| {
                    Error::Config(format!(
                        "copy_dir {}: cannot create it: {e}",
                        path.display()
                    ))
                })?;
        }
        let dir = CopyDir {
            path: path.to_path_buf(),
            private: false,
        };
        dir.check().map_err(|why| {
            Error::Config(format!(
                "copy_dir {}: {why}; libraries are copied there and loaded from there, so it \
                 must be a directory owned by this user (uid {}) that nobody else can write to \
                 (chmod 700)",
                path.display(),
                effective_uid()
            ))
        })?;
        Ok(dir)
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this node created the folder (the default), so removes it at
    /// shutdown.
    pub fn is_private(&self) -> bool {
        self.private
    }

    /// Why nobody but this user may write to the folder, or why not.
    fn check(&self) -> Result<(), String> {
        let meta = std::fs::symlink_metadata(&self.path).map_err(|e| e.to_string())?;
        if meta.file_type().is_symlink() {
            return Err("it is a symbolic link".into());
        }
        if !meta.is_dir() {
            return Err("it is not a directory".into());
        }
        let me = effective_uid();
        if meta.uid() != me {
            return Err(format!(
                "it is owned by uid {}, not by this process's uid {me}",
                meta.uid()
            ));
        }
        if meta.mode() & 0o022 != 0 {
            return Err(format!(
                "it is writable by {} (mode {:o})",
                if meta.mode() & 0o002 != 0 {
                    "others"
                } else {
                    "its group"
                },
                meta.mode() & 0o7777
            ));
        }
        Ok(())
    }

    /// Copies `size` bytes of `source` to a new file `STEM.PID.N.so` in the
    /// folder and checks the copy's ELF headers. A failed copy (disk full,
    /// a read error, a copy that fails the check) leaves no file behind.
    pub(super) fn copy(&self, source: &File, size: u64, stem: &str) -> Result<PathBuf, LoadCause> {
        // A private folder deleted meanwhile (a temp cleaner) is made again;
        // whatever is at its path then must pass the check.
        if self.private && std::fs::symlink_metadata(&self.path).is_err() {
            let _ = std::fs::DirBuilder::new().mode(0o700).create(&self.path);
        }
        self.check().map_err(|why| {
            LoadCause::Io(format!(
                "the copy folder {} is not safe: {why}",
                self.path.display()
            ))
        })?;
        let n = NEXT_COPY.fetch_add(1, Ordering::Relaxed);
        let to = self
            .path
            .join(format!("{stem}.{}.{n}.so", std::process::id()));
        let mut out = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&to)
            .map_err(|e| LoadCause::Io(format!("cannot create the copy {}: {e}", to.display())))?;
        let written = std::io::copy(&mut source.take(size), &mut out)
            .map_err(|e| format!("cannot copy it to {}: {e}", to.display()))
            .and_then(|n| {
                if n == size {
                    Ok(())
                } else {
                    Err(format!(
                        "it shrank while being copied ({n} of {size} bytes)"
                    ))
                }
            })
            .map_err(LoadCause::Io)
            .and_then(|()| super::elf::check(&out, size));
        if let Err(cause) = written {
            drop(out);
            let _ = std::fs::remove_file(&to);
            return Err(cause);
        }
        Ok(to)
    }
}

/// The effective uid of this process.
pub(super) fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}
