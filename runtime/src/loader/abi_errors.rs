//! abi_stable's load errors as causes a user can act on.

use std::path::Path;

use abi_stable::library::{LibraryError, RootModuleError};

use crate::error::LoadCause;

/// The loader's messages name the copy `dlopen` saw; the user knows the
/// original file.
pub(super) fn name_original(cause: LoadCause, copy: &Path, original: &Path) -> LoadCause {
    let (copy, original) = (copy.display().to_string(), original.display().to_string());
    match cause {
        LoadCause::NotALibrary(m) => LoadCause::NotALibrary(m.replace(&copy, &original)),
        other => other,
    }
}

/// Maps abi_stable's error to a cause a user can act on. Layout mismatches
/// produce hundreds of lines: keep the `Error:` lines, log the rest at debug.
pub(super) fn cause_of(err: LibraryError) -> LoadCause {
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
