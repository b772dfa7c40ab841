//! The runtime's errors as HTTP answers: a status code and a JSON body.

use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::error::{Error, LoadCause};
use crate::phase::Phase;

/// The body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong, for a person (the error's `Display` text).
    pub error: String,
    /// What went wrong, for a program: the runtime error's variant in
    /// snake case (`unknown_module`, `reload_failed`, ...) or an HTTP-level
    /// kind (`bad_request`, `unauthorized`, ...).
    pub kind: String,
    /// The reload phase that failed, for `load` and `reload_failed`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::phase::known_or_none"
    )]
    pub phase: Option<Phase>,
    /// Why the library could not be loaded, for `load`
    /// (`outside_library_dirs`, `not_found`, `not_a_molt_module`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

/// An error answer.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, kind: &str, error: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody {
                error: error.into(),
                kind: kind.to_string(),
                phase: None,
                cause: None,
            },
        }
    }

    pub(crate) fn bad_request(error: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", error)
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let cause = match &e {
            Error::Load { cause, .. } => Some(cause_kind(cause).to_string()),
            _ => None,
        };
        ApiError {
            status: status_of(&e),
            body: ErrorBody {
                error: e.to_string(),
                kind: kind_of(&e).to_string(),
                phase: e.phase(),
                cause,
            },
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::new(r.status(), "bad_request", r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::new(r.status(), "bad_request", r.body_text())
    }
}

impl From<BytesRejection> for ApiError {
    fn from(r: BytesRejection) -> Self {
        ApiError::new(r.status(), "bad_request", r.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

/// The status code of a runtime error: 404 for what does not exist, 409
/// when the node's state forbids the request now, 422 when what the request
/// names (a library, a config) cannot be used, 503 when the node is gone or
/// too busy to take the request within `limits.admin_timeout`.
pub(crate) fn status_of(e: &Error) -> StatusCode {
    match e {
        Error::UnknownModule(_) | Error::NotInCluster => StatusCode::NOT_FOUND,
        Error::ReloadInProgress(_)
        | Error::RollbackRefused { .. }
        | Error::NotForKeyed { .. }
        | Error::ConfigRejected { .. }
        | Error::RolloutRefused(_) => StatusCode::CONFLICT,
        Error::Load { .. }
        | Error::Config(_)
        | Error::ConfigFile { .. }
        | Error::ReloadFailed { .. }
        | Error::StartFailed { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        Error::NodeDown | Error::Busy { .. } | Error::Spawn(_) => StatusCode::SERVICE_UNAVAILABLE,
        Error::Watch(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The runtime error's variant, in snake case.
pub(crate) fn kind_of(e: &Error) -> &'static str {
    match e {
        Error::Load { .. } => "load",
        Error::Config(_) => "config",
        Error::ConfigFile { .. } => "config_file",
        Error::UnknownModule(_) => "unknown_module",
        Error::StartFailed { .. } => "start_failed",
        Error::ReloadInProgress(_) => "reload_in_progress",
        Error::ReloadFailed { .. } => "reload_failed",
        Error::RollbackRefused { .. } => "rollback_refused",
        Error::NotForKeyed { .. } => "not_for_keyed",
        Error::ConfigRejected { .. } => "config_rejected",
        Error::NodeDown => "node_down",
        Error::Busy { .. } => "busy",
        Error::Spawn(_) => "spawn",
        Error::Watch(_) => "watch",
        Error::NotInCluster => "not_in_cluster",
        Error::RolloutRefused(_) => "rollout_refused",
    }
}

fn cause_kind(c: &LoadCause) -> &'static str {
    match c {
        LoadCause::NotFound => "not_found",
        LoadCause::OutsideLibraryDirs { .. } => "outside_library_dirs",
        LoadCause::NotARegularFile { .. } => "not_a_regular_file",
        LoadCause::TooLarge { .. } => "too_large",
        LoadCause::TooManyMappings { .. } => "too_many_mappings",
        LoadCause::TimedOut { .. } => "timed_out",
        LoadCause::Io(_) => "io",
        LoadCause::NotALibrary(_) => "not_a_library",
        LoadCause::NotAMoltModule => "not_a_molt_module",
        LoadCause::IncompatibleAbiVersion(_) => "incompatible_abi_version",
        LoadCause::LayoutMismatch(_) => "layout_mismatch",
        LoadCause::WrongModule { .. } => "wrong_module",
        LoadCause::RootModule(_) => "root_module",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reload::Phase;

    #[test]
    fn reload_failures_carry_their_phase() {
        let e: ApiError = Error::ReloadFailed {
            module: "kv".into(),
            phase: Phase::Migrate,
            error: "unknown state version".into(),
            from: "1.0.0".into(),
        }
        .into();
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.body.kind, "reload_failed");
        assert_eq!(e.body.phase, Some(Phase::Migrate));

        let e: ApiError = Error::Load {
            path: "/x/libkv.so".into(),
            cause: LoadCause::OutsideLibraryDirs {
                allowed: "/lib".into(),
            },
        }
        .into();
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.body.phase, Some(Phase::Prepare));
        assert_eq!(e.body.cause.as_deref(), Some("outside_library_dirs"));
        let json = serde_json::to_value(&e.body).unwrap();
        assert_eq!(json["kind"], "load");
    }

    #[test]
    fn state_conflicts_are_409_and_a_gone_node_503() {
        assert_eq!(
            status_of(&Error::ReloadInProgress("kv".into())),
            StatusCode::CONFLICT
        );
        assert_eq!(
            status_of(&Error::RollbackRefused {
                module: "kv".into(),
                reason: "no previous library".into()
            }),
            StatusCode::CONFLICT
        );
        assert_eq!(
            status_of(&Error::UnknownModule("x".into())),
            StatusCode::NOT_FOUND
        );
        assert_eq!(status_of(&Error::NodeDown), StatusCode::SERVICE_UNAVAILABLE);
        let busy = Error::Busy {
            what: "status",
            waited: std::time::Duration::from_millis(50),
        };
        assert_eq!(status_of(&busy), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(kind_of(&busy), "busy");
        let body = ApiError::from(Error::NodeDown).body;
        assert_eq!(body.phase, None);
        assert!(!serde_json::to_string(&body).unwrap().contains("phase"));
    }
}
