//! The HTTP admin surface (docs/semantics.md "Admin surfaces"): axum on the
//! node's tokio runtime.
//!
//! The HTTP layer only translates: every endpoint sends the same admin
//! messages as the in-process [`Admin`](crate::Admin) API and answers with
//! their result as JSON.
//!
//! | method | path | answer |
//! |---|---|---|
//! | GET | `/` | the dashboard (HTML; `/dashboard.js`, `/dashboard.css`): modules, mailboxes, message rates, history, live events, reload / dry-run / rollback buttons |
//! | GET | `/healthz` | 200 `{"status":"ok",...}`; 503 `node_down` when the supervisor is gone, `busy` when it does not answer within `limits.admin_timeout` |
//! | GET | `/status` | 200 [`NodeStatus`](crate::NodeStatus) |
//! | GET | `/modules/{name}` | 200 [`ModuleStatus`](crate::ModuleStatus); 404 |
//! | GET | `/modules/{name}/figures` | 200 [`ModuleFigures`](crate::ModuleFigures): handled, errors, panics, restarts, sampled latency of the serving version and of the one it replaced; 404 |
//! | GET | `/history` | 200 a list of [`HistoryEntry`](crate::HistoryEntry) |
//! | GET | `/events` | server-sent events: event name = kind, data = the event's JSON |
//! | GET | `/ws` | the same events over WebSocket: one text message per event, its JSON object with an `event` field (= kind); a text `ping` is answered `pong` |
//! | GET | `/metrics` | Prometheus text (`text/plain; version=0.0.4`) |
//! | POST | `/modules/{name}/reload` | 200 [`ReloadReport`](crate::ReloadReport); body (optional) [`ReloadRequest`] |
//! | POST | `/modules/{name}/rollback` | 200 [`ReloadReport`](crate::ReloadReport); body (optional) [`RollbackRequest`] |
//! | POST | `/modules/{name}/call` | 200 the module's reply as JSON; body: the message as JSON (`{"Put": {"key": "a", "value": "1"}}`, `"Dump"`); `?instance=N` picks the instance (default: round robin) |
//! | POST | `/modules/{name}/cast` | 202 [`CastAccepted`] (queued, not awaited); body and query as `call` |
//! | POST | `/config/check` | 200 [`ConfigCheck`] (dry run of the TOML text in the body) |
//!
//! Errors answer a 4xx/5xx with an [`ErrorBody`]
//! (`{"error": "...", "kind": "...", "phase": "..."}`):
//!
//! | status | kind |
//! |---|---|
//! | 400 | `bad_request` (malformed JSON, a relative library path, a config text that is not UTF-8), `bad_message` (`call`: the module could not decode the message; the error names the field or variant it expected) |
//! | 401 | `unauthorized` (missing or wrong bearer token) |
//! | 403 | `no_admin_token` (the server has no token, so it takes no changes), `forbidden_host` |
//! | 404 | `unknown_module`, `not_found` (no such endpoint) |
//! | 405 | `method_not_allowed` |
//! | 409 | `reload_in_progress`, `rollback_refused`, `config_rejected` (the node's state forbids it) |
//! | 422 | `load` (with `phase` = prepare and the `cause`, e.g. `outside_library_dirs`), `reload_failed` (with the `phase`; rolled back), `config`, `config_file`, `start_failed` (what the request names cannot be used), `handler` (`call`: the handler failed or panicked, `cause` = the module's error kind) |
//! | 500 | `metrics_unavailable` |
//! | 502 | `bad_reply` (`call`: the module's reply has no JSON form, e.g. a map with non-string keys) |
//! | 503 | `node_down`, `busy` (the supervisor did not take the request within `limits.admin_timeout`; nothing was done), `too_many_event_streams`, `not_running` (`call` / `cast`: the module stopped) |
//! | 504 | `timeout` (`call`: no reply within `limits.call_timeout`; the message may still be handled) |
//!
//! # Limits
//!
//! From the node's `[node.limits]` (see `listener.rs`): at most
//! `http_max_connections` connections open at once (one past it is
//! accepted and closed at once, unanswered); `http_header_timeout` for a
//! request's headers (an idle connection is closed after it); at most
//! `http_max_event_streams` open event streams, `/events` and `/ws` together (503
//! `too_many_event_streams` past it); a failed accept (EMFILE) is retried
//! after a pause. Every answer that needs the supervisor waits at most
//! `admin_timeout` for it (503 `busy`).
//!
//! # Tokens
//!
//! - Every POST needs `Authorization: Bearer <token>`, always. A server
//!   started without a token ([`serve`] with `None`) takes no changes
//!   (403); it can only do that on a loopback address: on any other address
//!   [`serve`] refuses to start without a token.
//! - GETs are open on a loopback address. On any other address they need
//!   the token too, except `/healthz` and `/metrics` (for probes and
//!   scrapers) and the dashboard's static files (`/`, `/dashboard.js`,
//!   `/dashboard.css`: no data; the page sends the token it is given).
//! - On a loopback address a request whose `Host` is not a loopback name is
//!   refused (403 `forbidden_host`): a web page cannot reach the server
//!   through DNS rebinding.
//! - Where the token comes from ([`serve_configured`], what the `molt`
//!   binary uses): the `MOLT_ADMIN_TOKEN` environment variable, else the
//!   file named by `node.admin_token_file`. With neither, a loopback server
//!   makes a random token for the run and writes it, readable by the
//!   current user only, to [`local_token_path`]
//!   (`$XDG_RUNTIME_DIR/molt/` or `~/.molt/`), where [`AdminClient::for_config`]
//!   finds it: `molt reload NAME` works locally with no setup, and neither
//!   another user of the machine nor a web page can change the node.

mod auth;
mod call;
pub mod client;
mod dashboard;
mod errors;
mod listener;
mod routes;
mod sse;
mod sse_client;
mod ws;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use auth::{local_token_path, token_from_env_or_file, TOKEN_ENV};
pub use call::CastAccepted;
pub use client::{AdminClient, AdminEvent, ClientError, EventsStream, Route};
pub use errors::ErrorBody;
pub use routes::{ConfigCheck, ReloadRequest, RollbackRequest};

use crate::config::NodeConfig;
use crate::error::Error;
use crate::node::Node;

/// How long [`AdminServer::shutdown`] waits for requests in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A running HTTP admin server. Dropping it stops it too (without waiting).
#[derive(Debug)]
pub struct AdminServer {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
    token_file: Option<PathBuf>,
}

impl AdminServer {
    /// The address it listens on (with the port chosen when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The file holding the token this server generated for its run, if it
    /// did (see [`serve_configured`]); removed when the server stops.
    pub fn token_file(&self) -> Option<&Path> {
        self.token_file.as_deref()
    }

    /// Stops taking connections, ends the event streams, waits (a few
    /// seconds at most) for the requests in flight, and removes the
    /// generated token file.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(SHUTDOWN_GRACE, task).await.is_err() {
                abort.abort();
            }
        }
        self.remove_token_file();
    }

    fn remove_token_file(&mut self) {
        if let Some(path) = self.token_file.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        self.remove_token_file();
    }
}

/// Starts the HTTP admin server of `node` on `addr` (port 0 picks one), on
/// the current tokio runtime.
///
/// `token` is the bearer token every POST must carry (at least 32 bytes).
/// Without one the server takes no changes, and it refuses to start on an
/// address that is not loopback. The connection, header-time and event
/// stream limits are the node's (`node.limits()`).
///
/// # Errors
/// [`Error::Config`] for a non-loopback address without a token, an
/// unusable token, or an address that cannot be bound.
pub async fn serve(
    node: &Node,
    addr: SocketAddr,
    token: Option<String>,
) -> Result<AdminServer, Error> {
    if let Some(t) = &token {
        auth::check_token_text(t, "the admin token")?;
    }
    refuse_open(addr, token.is_some())?;
    let listener = bind(addr).await?;
    start(node, listener, token, None)
}

/// Starts the HTTP admin server on the node's configured address
/// (`admin_listen`), with the token of [`token_from_env_or_file`]; without
/// one, on a loopback address, with a token generated for this run and
/// written to [`local_token_path`] (user-only permissions).
///
/// # Errors
/// As [`serve`]; [`Error::Config`] when the token file cannot be read or
/// written.
pub async fn serve_configured(node: &Node, config: &NodeConfig) -> Result<AdminServer, Error> {
    let addr = config.admin_listen;
    if let Some(token) = token_from_env_or_file(config.admin_token_file.as_deref())? {
        return serve(node, addr, Some(token)).await;
    }
    refuse_open(addr, false)?;
    let listener = bind(addr).await?;
    let local = local_addr(&listener)?;
    let path = local_token_path(local).ok_or_else(|| {
        Error::Config(format!(
            "no admin token is set and there is no private folder for a generated one \
             (neither XDG_RUNTIME_DIR nor HOME is set): set {TOKEN_ENV} or node.admin_token_file"
        ))
    })?;
    let token = auth::generate_token()?;
    auth::write_private(&path, &token)?;
    tracing::info!(target: "molt::http", file = %path.display(), "admin token generated for this run");
    start(node, listener, Some(token), Some(path))
}

fn refuse_open(addr: SocketAddr, has_token: bool) -> Result<(), Error> {
    if has_token || addr.ip().is_loopback() {
        return Ok(());
    }
    Err(Error::Config(format!(
        "admin address {addr} is not loopback and no admin token is set \
         (set {TOKEN_ENV} or node.admin_token_file)"
    )))
}

async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, Error> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Config(format!("cannot listen on admin address {addr}: {e}")))
}

fn local_addr(listener: &tokio::net::TcpListener) -> Result<SocketAddr, Error> {
    listener
        .local_addr()
        .map_err(|e| Error::Config(format!("admin listener has no address: {e}")))
}

fn start(
    node: &Node,
    listener: tokio::net::TcpListener,
    token: Option<String>,
    token_file: Option<PathBuf>,
) -> Result<AdminServer, Error> {
    let addr = local_addr(&listener)?;
    let loopback = addr.ip().is_loopback();
    let (stop, stop_rx) = watch::channel(false);
    let limits = node.limits();
    let state = routes::AppState {
        admin: node.admin(),
        modules: node.raw_modules(),
        events: Arc::new(node.subscribe()),
        event_streams: Arc::new(tokio::sync::Semaphore::new(
            limits
                .http_max_event_streams
                .min(tokio::sync::Semaphore::MAX_PERMITS),
        )),
        stop: stop_rx.clone(),
    };
    let app = routes::router(state, auth::Auth::new(token), loopback);
    let task = tokio::spawn(listener::serve(
        listener,
        app,
        listener::ListenLimits::from_limits(limits),
        stop_rx,
    ));
    tracing::info!(target: "molt::http", %addr, "admin server listening");
    Ok(AdminServer {
        addr,
        stop,
        task: Some(task),
        token_file,
    })
}
