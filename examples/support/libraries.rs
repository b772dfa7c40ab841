//! The libraries the examples load: kv v1 and kv v2, built with cargo, and a
//! *broken* one (the first half of a library's bytes).
//!
//! Shared by the examples (`live_swap`, `soak`), each including it with
//! `#[path = "support/libraries.rs"] mod libraries;`.

use std::path::{Path, PathBuf};

use molt::cargo_build::{build, library_of, BuildRequest};

type AnyError = Box<dyn std::error::Error + Send + Sync>;

/// The two kv libraries, freshly built, and the directory they are in.
pub struct Libraries {
    pub kv: PathBuf,
    pub kv_v2: PathBuf,
    pub dir: PathBuf,
}

/// Builds kv and kv v2 with the example's own profile (cargo does nothing
/// when they are up to date) and returns the artifacts cargo reports.
pub fn build_libraries() -> Result<Libraries, AnyError> {
    let release = !cfg!(debug_assertions);
    let packages = ["kv", "kv-v2"];
    println!(
        "building {} ({}) with cargo, if missing or stale",
        packages.join(" and "),
        if release { "release" } else { "debug" }
    );
    let built = build(&BuildRequest {
        manifest: molt::workspace_dir().join("Cargo.toml"),
        packages: packages.iter().map(|p| p.to_string()).collect(),
        release,
        target_dir: None,
        progress: false,
    })?;
    let (kv, kv_v2) = (library_of(&built, "kv")?, library_of(&built, "kv-v2")?);
    let dir = kv
        .parent()
        .ok_or("the kv library has no directory")?
        .to_path_buf();
    Ok(Libraries { kv, kv_v2, dir })
}

/// A truncated copy of a library (its first half) in a temporary directory.
pub struct BrokenLibrary {
    dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl BrokenLibrary {
    /// Writes the first half of `library` to a new temporary directory named
    /// `<prefix>XXXXXX` (removed when this is dropped).
    pub fn truncate(library: &Path, prefix: &str) -> Result<BrokenLibrary, AnyError> {
        let bytes = std::fs::read(library)?;
        let dir = tempfile::Builder::new().prefix(prefix).tempdir()?;
        let path = dir
            .path()
            .join(library.file_name().ok_or("library path has no file name")?);
        std::fs::write(&path, &bytes[..bytes.len() / 2])?;
        Ok(BrokenLibrary { dir, path })
    }

    /// The directory it is in (a node must be allowed to load from it).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}
