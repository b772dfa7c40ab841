//! The endpoints: each one translates the request into an admin message
//! (the same ones the in-process [`Admin`] sends) and its result into JSON.

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::auth::{self, Auth};
use super::call;
use super::dashboard;
use super::errors::ApiError;
use super::sse;
use super::ws;
use crate::admin::{Admin, ModuleStatus, NodeStatus, ReloadOptions, ReloadReport};
use crate::config::diff::{plan, Change, Plan};
use crate::error::Error;
use crate::events::EventStream;
use crate::figures::ModuleFigures;
use crate::history::{HistoryEntry, Trigger};
use crate::rehearsal::RehearsalReport;

/// What the handlers share.
#[derive(Clone)]
pub(crate) struct AppState {
    pub admin: Admin,
    /// The modules, for `call` / `cast` from outside.
    pub modules: crate::raw_handle::RawModules,
    /// A subscription each `/events` request copies (holding it, unlike
    /// holding the bus, lets the streams end when the node stops).
    pub events: Arc<EventStream>,
    /// One permit per open event stream (`limits.http_max_event_streams`).
    pub event_streams: Arc<tokio::sync::Semaphore>,
    pub stop: watch::Receiver<bool>,
}

/// The body of `POST /modules/{name}/reload` (all optional; an empty body
/// reloads the configured library).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReloadRequest {
    /// The library to load, an absolute path inside a configured library
    /// directory; default: the module's configured library.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub library: Option<PathBuf>,
    /// A new module config; default: the running one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<serde_json::Value>,
    /// A forced reload (see `ReloadOptions::force`): start the new code
    /// from the newest checkpoint where the old code cannot hand over its
    /// state.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
}

/// The query of `POST /modules/{name}/reload`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReloadQuery {
    /// Rehearse the reload instead (a dry run): answer a
    /// [`RehearsalReport`] and change nothing.
    #[serde(default)]
    dry_run: bool,
}

/// The body of `POST /modules/{name}/rollback` (optional).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// Start the previous library with a fresh state when the module cannot
    /// down-migrate its state.
    #[serde(default)]
    pub reset_state: bool,
    /// The kept code version to return to (`molt status` lists them under
    /// `versions`); default: the previous one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

/// The answer of `POST /config/check`: what applying the config text would
/// do to the running node (nothing is applied).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigCheck {
    /// Whether the change could be applied live (no node-level key differs).
    pub applicable: bool,
    /// One line per change (and per key needing a restart), for a person.
    pub summary: Vec<String>,
    /// The live changes, in the order they would be applied.
    pub changes: Vec<Change>,
    /// Node-level keys that differ: the whole change would be rejected.
    pub restart_keys: Vec<String>,
}

impl From<Plan> for ConfigCheck {
    fn from(plan: Plan) -> Self {
        let mut summary: Vec<String> = plan.changes.iter().map(Change::describe).collect();
        summary.extend(
            plan.restart_keys
                .iter()
                .map(|k| format!("{k}: changed; needs a restart (the whole change is rejected)")),
        );
        ConfigCheck {
            applicable: plan.is_applicable(),
            summary,
            changes: plan.changes,
            restart_keys: plan.restart_keys,
        }
    }
}

/// The query of `POST /config/check`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckQuery {
    /// The file the text comes from (absolute): names it in errors, and
    /// relative paths in the text are taken from its folder.
    file: Option<PathBuf>,
}

pub(crate) fn router(state: AppState, auth: Auth, loopback: bool) -> Router {
    let need_token = from_fn_with_state(auth, auth::require_token);
    let writes = Router::new()
        .route("/modules/{name}/reload", post(reload))
        .route("/modules/{name}/rollback", post(rollback))
        .route("/modules/{name}/call", post(call::call))
        .route("/modules/{name}/cast", post(call::cast))
        .route("/config/check", post(config_check))
        .route_layer(need_token.clone());
    let mut reads = Router::new()
        .route("/status", get(status))
        .route("/modules/{name}", get(module))
        .route("/history", get(history))
        .route("/cluster", get(cluster))
        .route("/modules/{name}/figures", get(figures))
        .route("/events", get(sse::events))
        .route("/ws", get(ws::events));
    if !loopback {
        reads = reads.route_layer(need_token);
    }
    let app = Router::new()
        .route("/", get(dashboard::index))
        .route("/dashboard.js", get(dashboard::script))
        .route("/dashboard.css", get(dashboard::style))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .merge(reads)
        .merge(writes)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state);
    if loopback {
        app.layer(from_fn(auth::loopback_host))
    } else {
        app
    }
}

async fn healthz(State(st): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let status = st.admin.status().await?;
    Ok(Json(serde_json::json!({
        "status": "ok",
        "node": status.node,
        "uptime_s": status.uptime_s,
    })))
}

async fn status(State(st): State<AppState>) -> Result<Json<NodeStatus>, ApiError> {
    Ok(Json(st.admin.status().await?))
}

async fn module(
    State(st): State<AppState>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Json<ModuleStatus>, ApiError> {
    let Path(name) = name?;
    let status = st.admin.status().await?;
    match status.modules.into_iter().find(|m| m.name == name) {
        Some(m) => Ok(Json(m)),
        None => Err(Error::UnknownModule(name).into()),
    }
}

/// `GET /modules/{name}/figures`: the module's handling figures
/// (docs/semantics.md "Handling figures").
async fn figures(
    State(st): State<AppState>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Json<ModuleFigures>, ApiError> {
    let Path(name) = name?;
    Ok(Json(st.admin.figures(&name).await?))
}

async fn cluster(
    State(st): State<AppState>,
) -> Result<Json<crate::cluster::ClusterStatus>, ApiError> {
    Ok(Json(st.admin.cluster().await?))
}

async fn history(State(st): State<AppState>) -> Result<Json<Vec<HistoryEntry>>, ApiError> {
    Ok(Json(st.admin.history().await?))
}

async fn metrics(State(st): State<AppState>) -> Result<Response, ApiError> {
    let status = st.admin.status().await?;
    let mut figures = Vec::with_capacity(status.modules.len());
    for m in &status.modules {
        // A module removed since the status was taken has none.
        if let Ok(f) = st.admin.figures(&m.name).await {
            figures.push(f);
        }
    }
    let text = crate::metrics::render_with_figures(&status, &figures)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "metrics_unavailable", e))?;
    Ok((
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        text,
    )
        .into_response())
}

/// `POST /modules/{name}/reload`: a reload, answering a [`ReloadReport`];
/// with `?dry_run=true` a rehearsal, answering a [`RehearsalReport`] (200
/// whether or not the reload would commit: `would_commit` says).
async fn reload(
    State(st): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    query: Result<Query<ReloadQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let Path(name) = name?;
    let Query(query) = query?;
    let req: ReloadRequest = json_body(&body?)?;
    if let Some(library) = &req.library {
        if !library.is_absolute() {
            return Err(ApiError::bad_request(format!(
                "library path {} must be absolute (it is resolved by the node, not the client)",
                library.display()
            )));
        }
    }
    if query.dry_run && req.force {
        return Err(ApiError::bad_request(
            "a forced reload cannot be rehearsed: drop force or dry_run",
        ));
    }
    let options = ReloadOptions {
        library: req.library,
        config: req.config,
        trigger: Trigger::Http,
        force: req.force,
    };
    if query.dry_run {
        let report: RehearsalReport = st.admin.rehearse(&name, options).await?;
        return Ok(Json(report).into_response());
    }
    Ok(Json(st.admin.reload(&name, options).await?).into_response())
}

async fn rollback(
    State(st): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ReloadReport>, ApiError> {
    let Path(name) = name?;
    let req: RollbackRequest = json_body(&body?)?;
    Ok(Json(
        st.admin
            .rollback_to(&name, req.to.as_deref(), req.reset_state, Trigger::Http)
            .await?,
    ))
}

async fn config_check(
    State(st): State<AppState>,
    query: Result<Query<CheckQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ConfigCheck>, ApiError> {
    let Query(query) = query?;
    let body = body?;
    let text = std::str::from_utf8(&body)
        .map_err(|e| ApiError::bad_request(format!("the config text is not UTF-8: {e}")))?;
    let file = match query.file {
        Some(f) if !f.is_absolute() => {
            return Err(ApiError::bad_request(format!(
                "file {} must be absolute",
                f.display()
            )))
        }
        Some(f) => f,
        None => PathBuf::from("<request>"),
    };
    let new = crate::config::file::parse(text, &file)?;
    // The same diff as applying it: against the configuration last declared.
    let declared = st.admin.declared_config().await?;
    Ok(Json(plan(&declared, &new).into()))
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method",
    )
}

/// An optional JSON body: empty means the defaults; anything else must be
/// the JSON object of `T`.
fn json_body<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("malformed JSON body: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optional_json_bodies() {
        assert_eq!(
            json_body::<RollbackRequest>(b"").unwrap(),
            RollbackRequest::default()
        );
        assert_eq!(
            json_body::<RollbackRequest>(b" \n").unwrap(),
            RollbackRequest::default()
        );
        assert!(
            json_body::<RollbackRequest>(br#"{"reset_state": true}"#)
                .unwrap()
                .reset_state
        );
        assert_eq!(
            json_body::<RollbackRequest>(br#"{"to": "1.0.0"}"#)
                .unwrap()
                .to
                .as_deref(),
            Some("1.0.0")
        );
        for bad in [&b"{"[..], b"[1]", br#"{"reset":true}"#, b"null"] {
            let e = json_body::<RollbackRequest>(bad).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
            assert_eq!(e.body.kind, "bad_request");
        }
        let r: ReloadRequest = json_body(br#"{"library": "/a/libkv.so"}"#).unwrap();
        assert_eq!(r.library, Some(PathBuf::from("/a/libkv.so")));
    }
}
