//! The loader: copy a library to a unique file, `dlopen` it through
//! abi_stable, check its layout and read its root module.
//!
//! Two traps shape this (see the shared FINDINGS): `dlopen` returns the cached
//! handle for a path it has seen (and for a hard link to the same inode), so
//! every load copies the bytes to a new, unique name first; and a library is
//! never unloaded (abi_stable never `dlclose`s, and unloading by hand crashes
//! the next load), so every load maps one more copy. [`mapped_libraries`]
//! reports the count.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use abi_stable::library::{lib_header_from_path, LibraryError, RootModuleError};
use abi_stable::std_types::{RResult, RSlice};
use molt_abi::ffi::{BehaviourBox, HostCtxBox, ModError, ModuleRef};

use crate::error::{Error, LoadCause};

static MAPPED: AtomicUsize = AtomicUsize::new(0);
static NEXT_COPY: AtomicU64 = AtomicU64::new(0);

/// How many library copies this process has mapped (they are never unmapped).
pub fn mapped_libraries() -> usize {
    MAPPED.load(Ordering::Relaxed)
}

/// One loaded library version of a module. Cheap to share; never unloaded.
pub struct Library {
    /// The file it was loaded from, as given.
    pub path: PathBuf,
    /// The module name it declares.
    pub name: String,
    /// Its code version.
    pub code_version: String,
    /// The state version it writes.
    pub state_version: u32,
    /// Whether it wants host events.
    pub wants_events: bool,
    /// How long copy + dlopen + layout check took.
    pub load_time: Duration,
    root: ModuleRef,
}

impl std::fmt::Debug for Library {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Library")
            .field("path", &self.path)
            .field("name", &self.name)
            .field("code_version", &self.code_version)
            .field("state_version", &self.state_version)
            .finish_non_exhaustive()
    }
}

impl Library {
    /// Constructs a fresh behaviour.
    pub(crate) fn init(&self, config: &[u8], ctx: HostCtxBox) -> Result<BehaviourBox, ModError> {
        (self.root.init())(RSlice::from_slice(config), ctx).into_result()
    }

    /// Constructs a behaviour from a state of version `from`.
    pub(crate) fn migrate(
        &self,
        from: u32,
        state: &[u8],
        config: &[u8],
        ctx: HostCtxBox,
    ) -> Result<BehaviourBox, ModError> {
        let result: RResult<BehaviourBox, ModError> = (self.root.migrate())(
            from,
            RSlice::from_slice(state),
            RSlice::from_slice(config),
            ctx,
        );
        result.into_result()
    }

    /// "kv 2.0.0 (state v2)": how the library shows in logs and errors.
    pub fn describe(&self) -> String {
        format!(
            "{} {} (state v{})",
            self.name, self.code_version, self.state_version
        )
    }
}

/// Where copies go and which directories libraries may come from.
#[derive(Debug, Clone)]
pub struct Loader {
    copy_dir: PathBuf,
    library_dirs: Vec<PathBuf>,
}

impl Loader {
    /// A loader copying into `copy_dir` and accepting libraries only from
    /// `library_dirs` (empty: none; [`NodeConfig::effective_library_dirs`]
    /// turns an empty `library_dirs` into the configured modules' folders).
    ///
    /// [`NodeConfig::effective_library_dirs`]: crate::NodeConfig::effective_library_dirs
    pub fn new(copy_dir: PathBuf, library_dirs: Vec<PathBuf>) -> Self {
        let library_dirs = library_dirs
            .into_iter()
            .map(|d| d.canonicalize().unwrap_or(d))
            .collect();
        Loader {
            copy_dir,
            library_dirs,
        }
    }

    /// The directories libraries may be loaded from.
    pub fn library_dirs(&self) -> &[PathBuf] {
        &self.library_dirs
    }

    /// Loads `path` and checks that it is module `expected`. Blocking: call
    /// it from the blocking pool (the `prepare` phase does).
    ///
    /// # Errors
    /// [`Error::Load`] naming the file and the cause.
    pub fn load(&self, path: &Path, expected: &str) -> Result<Arc<Library>, Error> {
        let fail = |cause: LoadCause| Error::Load {
            path: path.to_path_buf(),
            cause,
        };
        let started = Instant::now();
        let resolved = self.resolve(path).map_err(fail)?;
        let copy = self.copy(&resolved).map_err(fail)?;
        // Check the bytes `dlopen` will map (the copy), not the original.
        #[cfg(target_os = "linux")]
        let checked = check_elf(&copy);
        // Other platforms' formats (Mach-O, PE) are left to the loader.
        #[cfg(not(target_os = "linux"))]
        let checked = Ok(());
        let loaded = checked
            .and_then(|()| load_copy(&copy))
            .map_err(|cause| name_original(cause, &copy, &resolved));
        // The mapping survives the unlink; the copy's name only had to be new.
        let _ = std::fs::remove_file(&copy);
        let root = loaded.map_err(fail)?;
        MAPPED.fetch_add(1, Ordering::Relaxed);
        let name = root.name().as_str().to_string();
        if name != expected {
            return Err(fail(LoadCause::WrongModule {
                expected: expected.to_string(),
                found: name,
            }));
        }
        Ok(Arc::new(Library {
            path: path.to_path_buf(),
            name,
            code_version: root.code_version().as_str().to_string(),
            #[allow(clippy::useless_conversion)]
            state_version: u32::try_from(root.state_version()).unwrap_or(u32::MAX),
            wants_events: root.wants_events(),
            load_time: started.elapsed(),
            root,
        }))
    }

    fn resolve(&self, path: &Path) -> Result<PathBuf, LoadCause> {
        let resolved = match path.canonicalize() {
            Ok(p) => p,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(LoadCause::NotFound),
            Err(e) => return Err(LoadCause::Io(e.to_string())),
        };
        // Strict (issue #8 item 15): no directories means none allowed.
        if !self.library_dirs.iter().any(|d| resolved.starts_with(d)) {
            let allowed = if self.library_dirs.is_empty() {
                "none: library_dirs is empty and the node started without modules; set node.library_dirs".to_string()
            } else {
                self.library_dirs
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(LoadCause::OutsideLibraryDirs { allowed });
        }
        Ok(resolved)
    }

    fn copy(&self, from: &Path) -> Result<PathBuf, LoadCause> {
        std::fs::create_dir_all(&self.copy_dir).map_err(|e| {
            LoadCause::Io(format!("cannot create {}: {e}", self.copy_dir.display()))
        })?;
        let stem = from
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("module");
        let n = NEXT_COPY.fetch_add(1, Ordering::Relaxed);
        let to = self
            .copy_dir
            .join(format!("{stem}.{}.{n}.so", std::process::id()));
        match std::fs::copy(from, &to) {
            Ok(_) => Ok(to),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(LoadCause::NotFound),
            Err(e) => Err(LoadCause::Io(e.to_string())),
        }
    }
}

/// Rejects a file that is not a complete ELF object before `dlopen` sees it.
/// `dlopen` does not check that a file is complete: it accepts a file whose
/// tail is missing (section headers and debug info are never mapped), and
/// for a file cut inside a loadable segment it maps pages past the end of
/// the file, so the first access raises SIGBUS and kills the process.
/// Linkers write the section header table last, so a file cut anywhere
/// fails one of these checks.
#[cfg(target_os = "linux")]
fn check_elf(path: &Path) -> Result<(), LoadCause> {
    use std::os::unix::fs::FileExt;
    const PT_LOAD: u64 = 1;

    let io = |e: std::io::Error| LoadCause::Io(e.to_string());
    let bad = |why: String| LoadCause::NotALibrary(why);
    let file = std::fs::File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    let mut header = [0u8; 64];
    let header_len = header
        .len()
        .min(usize::try_from(size).unwrap_or(usize::MAX));
    file.read_exact_at(&mut header[..header_len], 0)
        .map_err(io)?;
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

/// The loader's messages name the copy `dlopen` saw; the user knows the
/// original file.
fn name_original(cause: LoadCause, copy: &Path, original: &Path) -> LoadCause {
    let (copy, original) = (copy.display().to_string(), original.display().to_string());
    match cause {
        LoadCause::NotALibrary(m) => LoadCause::NotALibrary(m.replace(&copy, &original)),
        other => other,
    }
}

fn load_copy(copy: &Path) -> Result<ModuleRef, LoadCause> {
    let header = lib_header_from_path(copy).map_err(cause_of)?;
    header.init_root_module::<ModuleRef>().map_err(cause_of)
}

/// Maps abi_stable's error to a cause a user can act on. Layout mismatches
/// produce hundreds of lines: keep the `Error:` lines, log the rest at debug.
fn cause_of(err: LibraryError) -> LoadCause {
    match err {
        LibraryError::OpenError { err, .. } => LoadCause::NotALibrary(err.to_string()),
        LibraryError::GetSymbolError { .. } => LoadCause::NotAMoltModule,
        LibraryError::ParseVersionError(e) => LoadCause::IncompatibleAbiVersion(e.to_string()),
        LibraryError::IncompatibleVersionNumber {
            expected_version,
            actual_version,
            ..
        } => LoadCause::IncompatibleAbiVersion(format!(
            "the host has molt-abi {expected_version}, the library {actual_version}"
        )),
        LibraryError::RootModule { err, .. } => LoadCause::RootModule(match err {
            RootModuleError::Returned(e) => e.to_string(),
            RootModuleError::Unwound => "it panicked".to_string(),
        }),
        LibraryError::AbiInstability(e) => {
            let full = e.to_string();
            tracing::debug!(target: "molt::loader", "full layout check report:\n{full}");
            LoadCause::LayoutMismatch(summarize_layout_error(&full))
        }
        LibraryError::InvalidAbiHeader(h) => {
            LoadCause::IncompatibleAbiVersion(format!("abi_stable header {h:?}"))
        }
        LibraryError::InvalidCAbi { expected, found } => {
            LoadCause::IncompatibleAbiVersion(format!("C ABI: expected {expected}, found {found}"))
        }
        LibraryError::Many(errs) => {
            let mut causes: Vec<String> =
                errs.into_iter().map(|e| cause_of(e).to_string()).collect();
            causes.dedup();
            LoadCause::LayoutMismatch(causes.join("; "))
        }
    }
}

fn summarize_layout_error(full: &str) -> String {
    let mut lines: Vec<&str> = full
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("Error:") || l.starts_with("error:"))
        .collect();
    lines.dedup();
    if lines.is_empty() {
        full.lines().take(3).collect::<Vec<_>>().join(" ")
    } else {
        lines.join("; ")
    }
}
