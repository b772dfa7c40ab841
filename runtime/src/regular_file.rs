//! Opening a file the node reads whole (the config file, the audit file, a
//! token file) without ever blocking on something that is not a regular
//! file: a FIFO opened for reading blocks until a writer comes, a device
//! may never end (issue #8 item 3). The file is opened non-blocking and
//! checked with `fstat` on the open descriptor, so it cannot be swapped
//! between the check and the read.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// Opens `path` for reading, refusing anything that is not a regular file
/// (after following symlinks) with an error saying what it is.
///
/// # Errors
/// The open's error, or [`io::ErrorKind::InvalidInput`] "not a regular file
/// (a FIFO)" and the like.
pub(crate) fn open(path: &Path) -> io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Non-blocking: opening a FIFO with no writer returns at once. It
        // changes nothing for reading a regular file.
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path)?;
    let kind = file.metadata()?.file_type();
    if kind.is_file() {
        Ok(file)
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not a regular file ({})", describe(&kind)),
        ))
    }
}

/// The whole content of the regular file `path`, as UTF-8.
///
/// # Errors
/// As [`open`], and the read's error.
pub(crate) fn read_to_string(path: &Path) -> io::Result<String> {
    let mut text = String::new();
    open(path)?.read_to_string(&mut text)?;
    Ok(text)
}

/// Why a secret file (an admin token, a cluster cookie) was not read.
#[derive(Debug)]
pub(crate) enum PrivateReadError {
    /// It could not be opened or read (or is not a regular file).
    Io(io::Error),
    /// Group or others may read it: `mode` is its permission bits.
    Exposed {
        /// The file's permission bits (`& 0o7777`).
        mode: u32,
    },
}

impl PrivateReadError {
    /// The error's text for `what` (e.g. "the admin token file PATH") at `path`.
    pub(crate) fn describe(&self, what: &str, path: &Path) -> String {
        match self {
            PrivateReadError::Io(e) => format!("cannot read {what}: {e}"),
            PrivateReadError::Exposed { mode } => format!(
                "{what} can be read by group or others (mode {mode:o}): \
                 allow its owner only (`chmod 600 {}`)",
                path.display()
            ),
        }
    }
}

/// The whole content of the regular file `path`, which only its owner may
/// read (mode 0600 or 0400 on unix): a secret that other users of the
/// machine could read is refused before its content is read.
///
/// # Errors
/// [`PrivateReadError::Exposed`] when group or others may read it;
/// [`PrivateReadError::Io`] as [`read_to_string`].
pub(crate) fn read_private(path: &Path) -> Result<String, PrivateReadError> {
    let mut opened = open(path).map_err(PrivateReadError::Io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = opened
            .metadata()
            .map_err(PrivateReadError::Io)?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(PrivateReadError::Exposed {
                mode: mode & 0o7777,
            });
        }
    }
    let mut text = String::new();
    opened
        .read_to_string(&mut text)
        .map_err(PrivateReadError::Io)?;
    Ok(text)
}

/// What kind of file this is, for an error message.
pub(crate) fn describe(kind: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "a FIFO";
        }
        if kind.is_socket() {
            return "a socket";
        }
        if kind.is_char_device() {
            return "a character device";
        }
        if kind.is_block_device() {
            return "a block device";
        }
    }
    if kind.is_dir() {
        "a directory"
    } else if kind.is_symlink() {
        "a symbolic link"
    } else if kind.is_file() {
        "a regular file"
    } else {
        "not a file"
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn fifos_and_folders_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        let e = read_to_string(&fifo).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("FIFO"), "{e}");
        let e = read_to_string(dir.path()).unwrap_err();
        assert!(e.to_string().contains("directory"), "{e}");
        let file = dir.path().join("f");
        std::fs::write(&file, "text").unwrap();
        assert_eq!(read_to_string(&file).unwrap(), "text");
    }
}
