//! `molt config check`'s look inside the libraries: for each module of a
//! config, load its library (the bounded prepare of a reload: the file
//! exists, is a shared library and a molt module of that name) and have the
//! library decode the module's `config` table into its `Config` type, by
//! building a throwaway behaviour (`init`, with a context that reaches
//! nothing) that is dropped unstarted. A config the module cannot decode is
//! named by key and expected type, as the module's SDK reports it.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use super::scratch_ctx::ScratchCtx;
use crate::config::{ModuleSpec, NodeConfig};
use crate::error::{Error, LoadCause};
use crate::loader::{CopyDir, Loader};
use crate::reload::prepare;

/// The check of one module of a config.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModuleCheck {
    /// The module.
    pub module: String,
    /// Its library, as configured.
    pub library: PathBuf,
    /// The library as it describes itself ("kv 1.0.0 (state v1)"), or what
    /// is wrong (the module's name is not repeated): the library (naming
    /// the file and the cause) or the config (naming the key and the type
    /// the module expected).
    pub result: Result<String, String>,
}

/// Checks every module of `config`: its library loads as that module, and
/// the library decodes its config. Nothing is started; each library maps
/// one copy into this process (as any load does).
///
/// # Errors
/// [`Error::Config`] when the folder for library copies cannot be created.
pub async fn check_modules(config: &NodeConfig) -> Result<Vec<ModuleCheck>, Error> {
    let copies = CopyDir::create_private(&std::env::temp_dir())?;
    let loader = Loader::new(
        copies.clone(),
        config.effective_library_dirs(),
        &config.limits,
    );
    let mut checks = Vec::with_capacity(config.modules.len());
    for spec in &config.modules {
        checks.push(ModuleCheck {
            module: spec.name.clone(),
            library: spec.library.clone(),
            result: check_one(&loader, spec).await,
        });
    }
    let _ = std::fs::remove_dir_all(copies.path());
    Ok(checks)
}

async fn check_one(loader: &Loader, spec: &ModuleSpec) -> Result<String, String> {
    let lib = prepare::load(loader, spec.library.clone(), &spec.name)
        .await
        .map_err(|e| match (&e, &spec.crate_dir) {
            (
                Error::Load {
                    cause: LoadCause::NotFound,
                    ..
                },
                Some(dir),
            ) => format!(
                "{e} (not built yet? `molt dev` builds it, or `cargo build` in {})",
                dir.display()
            ),
            _ => e.to_string(),
        })?;
    let config = if spec.config.is_null() {
        Vec::new()
    } else {
        rmp_serde::to_vec_named(&spec.config)
            .map_err(|e| format!("cannot encode its config: {e}"))?
    };
    let name: Arc<str> = Arc::from(spec.name.as_str());
    let limit = loader.prepare_timeout();
    let described = lib.describe();
    let decode = tokio::task::spawn_blocking(move || {
        // Built and dropped here, never started.
        lib.init(&config, ScratchCtx::boxed(name, 0)).map(drop)
    });
    match tokio::time::timeout(limit, decode).await {
        Ok(Ok(Ok(()))) => Ok(described),
        Ok(Ok(Err(e))) => Err(format!(
            "its config does not suit {described}: {} ({})",
            e.message,
            e.kind.as_str()
        )),
        Ok(Err(join)) => Err(format!("checking its config failed: {join}")),
        Err(_) => Err(format!(
            "its init did not return within limits.prepare_timeout ({limit:?})"
        )),
    }
}
