//! Phase 1, prepare: resolve the library inside the configured directories,
//! copy it to a unique file, dlopen it and check its layout and name, all on
//! the blocking pool (a load blocks for about a millisecond).

use std::path::PathBuf;
use std::sync::Arc;

use crate::error::{Error, LoadCause};
use crate::loader::{Library, Loader};

/// Loads `path` as module `module`, retrying once when the file is briefly
/// missing (cargo unlinks the final file before hard-linking the new one).
pub(crate) async fn load(
    loader: &Loader,
    path: PathBuf,
    module: &str,
) -> Result<Arc<Library>, Error> {
    for attempt in 0..2 {
        let (loader, p, m) = (loader.clone(), path.clone(), module.to_string());
        let result = tokio::task::spawn_blocking(move || loader.load(&p, &m))
            .await
            .unwrap_or_else(|e| {
                Err(Error::Load {
                    path: path.clone(),
                    cause: LoadCause::RootModule(format!("the loader task failed: {e}")),
                })
            });
        match result {
            Err(Error::Load {
                cause: LoadCause::NotFound,
                ..
            }) if attempt == 0 => {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            other => {
                if let Ok(lib) = &other {
                    tracing::debug!(target: "molt::reload", library = %lib.path.display(), load_us = lib.load_time.as_micros() as u64, "prepared {}", lib.describe());
                }
                return other;
            }
        }
    }
    unreachable!("the second attempt always returns")
}
