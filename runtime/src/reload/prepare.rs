//! Phase 1, prepare: resolve the library inside the configured directories,
//! check the file, copy it to a unique file, dlopen it and check its layout
//! and name, all on the blocking pool (a load blocks for about a
//! millisecond), within `limits.prepare_timeout`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::directory::Route;
use crate::error::{Error, LoadCause};
use crate::loader::{Library, Loader};

/// Loads `path` as module `module`, retrying once when the file is briefly
/// missing (cargo unlinks the final file before hard-linking the new one).
/// Past `limits.prepare_timeout` the load fails naming the file; the
/// blocking thread cannot be interrupted and finishes on its own (a file
/// that is not a regular one never gets that far: the loader refuses it
/// before opening it for reading).
pub(crate) async fn load(
    loader: &Loader,
    path: PathBuf,
    module: &str,
) -> Result<Arc<Library>, Error> {
    let limit = loader.prepare_timeout();
    match tokio::time::timeout(limit, load_retrying(loader, path.clone(), module)).await {
        Ok(result) => result,
        Err(_) => {
            tracing::warn!(target: "molt::reload", library = %path.display(), "loading {module} took longer than limits.prepare_timeout ({limit:?}): failed in prepare");
            Err(Error::Load {
                path,
                cause: LoadCause::TimedOut { after: limit },
            })
        }
    }
}

async fn load_retrying(
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
                tokio::time::sleep(Duration::from_millis(5)).await;
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

/// Brings the code the instances' swaps are about to run into the CPU's
/// caches, on the blocking pool, before the swaps begin: the serving
/// library (the one that wrote the newest checkpoint: its `snapshot` and
/// `stop` run first in each pause, and it was loaded one reload ago, so its
/// code is cold by now) and, unless it was loaded just now (the load warms
/// it), the target. Without this, each first run of a piece of code inside
/// the pause waits for memory (a few µs per phase for a 1 KiB state:
/// BENCHMARKS.md, "Third round: the 1 KiB floor").
pub(crate) async fn warm(routes: &[Route], target: Option<&Arc<Library>>) {
    let serving = routes
        .first()
        .and_then(|r| r.shared.checkpoint())
        .map(|c| c.lib);
    let libs: Vec<Arc<Library>> = serving.into_iter().chain(target.cloned()).collect();
    if libs.is_empty() {
        return;
    }
    let _ = tokio::task::spawn_blocking(move || libs.iter().for_each(|l| l.warm())).await;
}
