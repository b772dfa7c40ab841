//! The loader: copy a library to a unique file, `dlopen` it through
//! abi_stable, check its layout and read its root module.
//!
//! Two traps shape this (see the shared FINDINGS): `dlopen` returns the cached
//! handle for a path it has seen (and for a hard link to the same inode), so
//! every load copies the bytes to a new, unique name first; and a library is
//! never unloaded (abi_stable never `dlclose`s, and unloading by hand crashes
//! the next load), so every load maps one more copy. [`mapped_libraries`]
//! reports the count, and `limits.max_mapped_libraries` caps it.
//!
//! One job per file under `loader/`: `source` opens the requested file
//! (a regular file within `limits.max_library_bytes`, valid ELF headers,
//! all checked before a byte is copied), [`copy_dir`] writes the copy into
//! a folder nobody else can write to, `elf` checks ELF headers,
//! `mappings` counts and caps mapped copies, `stale` removes what dead
//! nodes left behind, `abi_errors` turns abi_stable's errors into causes,
//! `warm` maps a loaded library's pages before its code first runs.

mod abi_errors;
pub mod copy_dir;
mod elf;
mod mappings;
mod source;
pub mod stale;
mod warm;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use abi_stable::library::lib_header_from_path;
use abi_stable::std_types::{RResult, RSlice};
use molt_abi::ffi::{BehaviourBox, HostCtxBox, ModError, ModuleRef};

use crate::config::Limits;
use crate::error::{Error, LoadCause};

pub use copy_dir::CopyDir;

/// How many library copies this process has mapped (they are never
/// unmapped): every `dlopen` that succeeded, also of a library rejected
/// afterwards (a layout mismatch, another module's name).
pub fn mapped_libraries() -> usize {
    mappings::mapped()
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

    /// Reads every cache line of this library's mappings (`loader/warm.rs`):
    /// its code is then in the CPU's shared cache, not only mapped, when a
    /// swap runs it next. Takes tens of µs: call it off the actors (the
    /// blocking pool), shortly before that swap.
    pub(crate) fn warm(&self) {
        warm::touch_mappings_of(self.root.migrate() as *const () as usize);
    }

    /// "kv 2.0.0 (state v2)": how the library shows in logs and errors.
    pub fn describe(&self) -> String {
        format!(
            "{} {} (state v{})",
            self.name, self.code_version, self.state_version
        )
    }
}

/// Where copies go, which directories libraries may come from, and the
/// limits a load is held to.
#[derive(Debug, Clone)]
pub struct Loader {
    copy_dir: CopyDir,
    library_dirs: Vec<PathBuf>,
    max_library_bytes: u64,
    max_mapped_libraries: usize,
    prepare_timeout: Duration,
}

impl Loader {
    /// A loader copying into `copy_dir`, accepting libraries only from
    /// `library_dirs` (empty: none; [`NodeConfig::effective_library_dirs`]
    /// turns an empty `library_dirs` into the configured modules' folders),
    /// held to `limits` (`max_library_bytes`, `max_mapped_libraries`,
    /// `prepare_timeout`).
    ///
    /// [`NodeConfig::effective_library_dirs`]: crate::NodeConfig::effective_library_dirs
    pub fn new(copy_dir: CopyDir, library_dirs: Vec<PathBuf>, limits: &Limits) -> Self {
        let library_dirs = library_dirs
            .into_iter()
            .map(|d| d.canonicalize().unwrap_or(d))
            .collect();
        Loader {
            copy_dir,
            library_dirs,
            max_library_bytes: limits.max_library_bytes,
            max_mapped_libraries: limits.max_mapped_libraries,
            prepare_timeout: limits.prepare_timeout,
        }
    }

    /// The directories libraries may be loaded from.
    pub fn library_dirs(&self) -> &[PathBuf] {
        &self.library_dirs
    }

    /// The folder copies are written to.
    pub fn copy_dir(&self) -> &CopyDir {
        &self.copy_dir
    }

    /// How long a whole load (prepare) may take.
    pub fn prepare_timeout(&self) -> Duration {
        self.prepare_timeout
    }

    /// Loads `path` and checks that it is module `expected`. Blocking: call
    /// it from the blocking pool (the `prepare` phase does).
    ///
    /// The source is checked first (a regular file, at most
    /// `max_library_bytes`, valid ELF headers), then a mapping slot is
    /// taken (at most `max_mapped_libraries`), then the copy is written and
    /// checked, then mapped.
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
        let (source, size) = source::open(&resolved, self.max_library_bytes).map_err(fail)?;
        let slot = mappings::reserve(self.max_mapped_libraries).map_err(fail)?;
        let stem = resolved
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("module");
        let copy = self.copy_dir.copy(&source, size, stem).map_err(fail)?;
        drop(source);
        let header = lib_header_from_path(&copy);
        // The mapping survives the unlink; the copy's name only had to be new.
        let _ = std::fs::remove_file(&copy);
        let header = header
            .map_err(|e| abi_errors::name_original(abi_errors::cause_of(e), &copy, &resolved))
            .map_err(fail)?;
        // Mapped now, for the process's life, whatever the checks below say.
        slot.mapped();
        let root = header
            .init_root_module::<ModuleRef>()
            .map_err(abi_errors::cause_of)
            .map_err(fail)?;
        let name = root.name().as_str().to_string();
        if name != expected {
            return Err(fail(LoadCause::WrongModule {
                expected: expected.to_string(),
                found: name,
            }));
        }
        // Its first calls come inside a swap's pause: not a page fault each.
        warm::touch_mappings_of(root.migrate() as *const () as usize);
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
}
