//! A client of the HTTP admin surface (what the `molt` CLI uses): one method
//! per endpoint, typed answers, and errors that carry the HTTP status and
//! the server's JSON error body.
//!
//! ```no_run
//! # async fn demo() -> Result<(), molt_runtime::http::ClientError> {
//! use molt_runtime::http::AdminClient;
//!
//! let client = AdminClient::new("http://127.0.0.1:7878", Some("s3cret".into()))?;
//! for m in client.status().await?.modules {
//!     println!("{} {}", m.name, m.code_version);
//! }
//! client.reload("kv", None).await?;
//! # Ok(()) }
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::body::Bytes;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use reqwest::{Method, RequestBuilder, StatusCode, Url};
use serde::de::DeserializeOwned;

use super::auth::{local_token_path, token_from_env_or_file};
use super::call::CastAccepted;
use super::errors::ErrorBody;
use super::routes::{ConfigCheck, ReloadRequest, RollbackRequest};
use super::sse_client::{parse_events, MAX_EVENT_BYTES};
use crate::admin::{ModuleStatus, NodeStatus, ReloadReport};
use crate::config::NodeConfig;
use crate::history::HistoryEntry;
use crate::rehearsal::RehearsalReport;

/// Why a request to the admin server failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error status.
    #[error("{} (HTTP {status})", body.error)]
    Api {
        /// The HTTP status code.
        status: u16,
        /// The server's error body (for a non-JSON answer: its text, kind `http`).
        body: ErrorBody,
    },
    /// The server could not be reached, or the connection broke.
    #[error("cannot reach the molt admin server at {base}: {error}")]
    Transport {
        /// The server's base URL.
        base: String,
        /// What failed.
        error: String,
    },
    /// The answer was not what the endpoint returns.
    #[error("unexpected answer from {url}: {error}")]
    Decode {
        /// The request's URL.
        url: String,
        /// What was wrong with it.
        error: String,
    },
    /// The client could not be set up (bad URL, unreadable token file, ...).
    #[error("{0}")]
    Setup(String),
}

impl ClientError {
    /// The HTTP status, for [`ClientError::Api`].
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The server's error body, for [`ClientError::Api`].
    pub fn body(&self) -> Option<&ErrorBody> {
        match self {
            ClientError::Api { body, .. } => Some(body),
            _ => None,
        }
    }

    /// The error's kind (`unknown_module`, `unauthorized`, ...), for
    /// [`ClientError::Api`].
    pub fn kind(&self) -> Option<&str> {
        self.body().map(|b| b.kind.as_str())
    }
}

/// One event of the `/events` stream.
#[derive(Debug, Clone, PartialEq)]
pub struct AdminEvent {
    /// The event's kind (`module.reloaded`, ..., or `lagged`).
    pub kind: String,
    /// The event as JSON (`{"kind": ..., fields...}`).
    pub data: serde_json::Value,
}

/// The events of a node, as they happen; ends when the node or the server
/// stops.
pub type EventsStream = BoxStream<'static, Result<AdminEvent, ClientError>>;

/// A client of one node's admin server. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AdminClient {
    base: Url,
    token: Option<String>,
    http: reqwest::Client,
}

impl AdminClient {
    /// A client of the server at `base` (`http://127.0.0.1:7878`), sending
    /// `token` as the bearer token.
    ///
    /// # Errors
    /// [`ClientError::Setup`] for a URL that is not `http://HOST[:PORT]`.
    pub fn new(base: &str, token: Option<String>) -> Result<Self, ClientError> {
        let base = Url::parse(base)
            .map_err(|e| ClientError::Setup(format!("bad admin URL {base:?}: {e}")))?;
        if base.scheme() != "http" || base.cannot_be_a_base() {
            return Err(ClientError::Setup(format!(
                "bad admin URL {base}: only http://HOST:PORT is served"
            )));
        }
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| ClientError::Setup(format!("cannot set up the HTTP client: {e}")))?;
        Ok(AdminClient { base, token, http })
    }

    /// A client of the server listening on `addr` (an unspecified address,
    /// `0.0.0.0`, is reached on loopback).
    ///
    /// # Errors
    /// As [`AdminClient::new`].
    pub fn for_addr(addr: SocketAddr, token: Option<String>) -> Result<Self, ClientError> {
        let ip = match addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        Self::new(
            &format!("http://{}", SocketAddr::new(ip, addr.port())),
            token,
        )
    }

    /// A client of the node `config` describes (its `admin_listen`), with the
    /// token from `MOLT_ADMIN_TOKEN`, else `node.admin_token_file`, else the
    /// token a local server generated for its run (see
    /// [`super::serve_configured`]).
    ///
    /// # Errors
    /// [`ClientError::Setup`] when the token file cannot be read.
    pub fn for_config(config: &NodeConfig) -> Result<Self, ClientError> {
        let addr = config.admin_listen;
        let mut token = token_from_env_or_file(config.admin_token_file.as_deref())
            .map_err(|e| ClientError::Setup(e.to_string()))?;
        if token.is_none() {
            token = local_token_path(addr)
                .and_then(|p| std::fs::read_to_string(p).ok())
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty());
        }
        Self::for_addr(addr, token)
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        self.base.as_str()
    }

    /// `GET /status`.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn status(&self) -> Result<NodeStatus, ClientError> {
        self.json(Method::GET, &["status"], None).await
    }

    /// `GET /modules/{name}`.
    ///
    /// # Errors
    /// [`ClientError::Api`] 404 for an unknown module.
    pub async fn module(&self, name: &str) -> Result<ModuleStatus, ClientError> {
        self.json(Method::GET, &["modules", name], None).await
    }

    /// `GET /cluster`: the cluster as the node sees it.
    ///
    /// # Errors
    /// [`ClientError::Api`] 404 (`not_in_cluster`) when the node is not in
    /// a cluster.
    pub async fn cluster(&self) -> Result<crate::cluster::ClusterStatus, ClientError> {
        self.json(Method::GET, &["cluster"], None).await
    }

    /// `GET /modules/{name}/figures`.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn figures(&self, name: &str) -> Result<crate::ModuleFigures, ClientError> {
        self.json(Method::GET, &["modules", name, "figures"], None)
            .await
    }

    /// `GET /history`.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn history(&self) -> Result<Vec<HistoryEntry>, ClientError> {
        self.json(Method::GET, &["history"], None).await
    }

    /// `POST /modules/{name}/reload`, from `library` (made absolute here)
    /// or the configured library.
    ///
    /// # Errors
    /// [`ClientError::Api`]: 422 `load` / `reload_failed` (with the phase),
    /// 409 `reload_in_progress`, 404, 401.
    pub async fn reload(
        &self,
        name: &str,
        library: Option<PathBuf>,
    ) -> Result<ReloadReport, ClientError> {
        self.reload_with(name, library, false).await
    }

    /// `POST /modules/{name}/reload`, forced when `force` (see
    /// `ReloadOptions::force`).
    ///
    /// # Errors
    /// As [`AdminClient::reload`].
    pub async fn reload_with(
        &self,
        name: &str,
        library: Option<PathBuf>,
        force: bool,
    ) -> Result<ReloadReport, ClientError> {
        let library = library.map(|l| std::path::absolute(&l).unwrap_or(l));
        let body = ReloadRequest {
            library,
            config: None,
            force,
        };
        self.json(
            Method::POST,
            &["modules", name, "reload"],
            Some(to_json(&body)),
        )
        .await
    }

    /// `POST /modules/{name}/reload?dry_run=true`: rehearses the reload
    /// (see `Admin::rehearse`); nothing changes on the node.
    ///
    /// # Errors
    /// [`ClientError::Api`]: 422 `load` (the library would fail in
    /// prepare), 409 `reload_in_progress`, 404, 401.
    pub async fn rehearse(
        &self,
        name: &str,
        library: Option<PathBuf>,
    ) -> Result<RehearsalReport, ClientError> {
        let library = library.map(|l| std::path::absolute(&l).unwrap_or(l));
        let body = ReloadRequest {
            library,
            config: None,
            force: false,
        };
        let mut url = self.url(&["modules", name, "reload"]);
        url.set_query(Some("dry_run=true"));
        let req = self
            .http
            .request(Method::POST, url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(to_json(&body));
        decode(&url, &self.send(req).await?)
    }

    /// `POST /modules/{name}/rollback`.
    ///
    /// # Errors
    /// [`ClientError::Api`]: 409 `rollback_refused`, and as [`AdminClient::reload`].
    pub async fn rollback(
        &self,
        name: &str,
        reset_state: bool,
    ) -> Result<ReloadReport, ClientError> {
        self.rollback_to(name, None, reset_state).await
    }

    /// `POST /modules/{name}/rollback` with `{"to": VERSION}`: back to a kept
    /// code version (default: the previous one) in one swap.
    ///
    /// # Errors
    /// As [`AdminClient::rollback`].
    pub async fn rollback_to(
        &self,
        name: &str,
        to: Option<&str>,
        reset_state: bool,
    ) -> Result<ReloadReport, ClientError> {
        let body = RollbackRequest {
            reset_state,
            to: to.map(str::to_string),
        };
        self.json(
            Method::POST,
            &["modules", name, "rollback"],
            Some(to_json(&body)),
        )
        .await
    }

    /// `POST /modules/{name}/call`: sends `msg` (the message as JSON, e.g.
    /// `{"Put": {"key": "a", "value": "1"}}`) to instance `instance`
    /// (default: round robin) and returns the module's reply as JSON.
    ///
    /// # Errors
    /// [`ClientError::Api`]: 400 `bad_message` when the module cannot decode
    /// the message, 422 `handler` when its handler failed, 504 `timeout`,
    /// 404 `unknown_module`, 401.
    pub async fn call(
        &self,
        name: &str,
        msg: &serde_json::Value,
        to: impl Into<Route>,
    ) -> Result<serde_json::Value, ClientError> {
        self.message(name, "call", msg, to.into()).await
    }

    /// `POST /modules/{name}/cast`: queues `msg` without waiting for its
    /// handling.
    ///
    /// # Errors
    /// [`ClientError::Api`]: 400 for a body that is not JSON, 404
    /// `unknown_module`, 503 `not_running`, 401.
    pub async fn cast(
        &self,
        name: &str,
        msg: &serde_json::Value,
        to: impl Into<Route>,
    ) -> Result<CastAccepted, ClientError> {
        self.message(name, "cast", msg, to.into()).await
    }

    async fn message<T: DeserializeOwned>(
        &self,
        name: &str,
        verb: &str,
        msg: &serde_json::Value,
        to: Route,
    ) -> Result<T, ClientError> {
        let mut url = self.url(&["modules", name, verb]);
        match to {
            Route::Any => {}
            Route::Instance(i) => {
                url.query_pairs_mut()
                    .append_pair("instance", &i.to_string());
            }
            Route::Key(key) => {
                url.query_pairs_mut().append_pair("key", &key);
            }
        }
        let req = self
            .http
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(to_json(msg));
        decode(&url, &self.send(req).await?)
    }

    /// `POST /config/check`: what applying this config text would do.
    ///
    /// # Errors
    /// [`ClientError::Api`] 422 `config_file` / `config` for an invalid text.
    pub async fn config_check(&self, text: &str) -> Result<ConfigCheck, ClientError> {
        self.json(Method::POST, &["config", "check"], Some(text.into()))
            .await
    }

    /// `POST /config/check?file=PATH` with the content of a config file:
    /// errors name the file, and its relative paths are taken from its folder.
    ///
    /// # Errors
    /// [`ClientError::Setup`] when the file cannot be read; as
    /// [`AdminClient::config_check`].
    pub async fn config_check_file(&self, path: &Path) -> Result<ConfigCheck, ClientError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ClientError::Setup(format!("cannot read {}: {e}", path.display())))?;
        let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let mut url = self.url(&["config", "check"]);
        url.query_pairs_mut()
            .append_pair("file", &abs.to_string_lossy());
        let req = self.http.post(url.clone()).body(text);
        decode(&url, &self.send(req).await?)
    }

    /// `GET /metrics`: the Prometheus text.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn metrics(&self) -> Result<String, ClientError> {
        let url = self.url(&["metrics"]);
        let bytes = self.send(self.http.get(url)).await?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// `GET /healthz`.
    ///
    /// # Errors
    /// [`ClientError`]; 503 `node_down` when the node's supervisor is gone.
    pub async fn healthz(&self) -> Result<serde_json::Value, ClientError> {
        self.json(Method::GET, &["healthz"], None).await
    }

    /// `GET /events`. Once this returns, every event published afterwards
    /// arrives on the stream.
    ///
    /// # Errors
    /// [`ClientError`] when the stream cannot be opened.
    pub async fn events(&self) -> Result<EventsStream, ClientError> {
        self.events_with(false).await
    }

    /// `GET /events?progress=true`: also the `module.reload_phase` progress
    /// of every reload (what `molt reload` shows).
    ///
    /// # Errors
    /// [`ClientError`] when the stream cannot be opened.
    pub async fn events_with(&self, progress: bool) -> Result<EventsStream, ClientError> {
        let mut url = self.url(&["events"]);
        if progress {
            url.set_query(Some("progress=true"));
        }
        let req = self
            .http
            .get(url)
            .header(reqwest::header::ACCEPT, "text/event-stream");
        let response = self
            .authorize(req)
            .send()
            .await
            .map_err(|e| self.transport(&e))?;
        if !response.status().is_success() {
            let status = response.status();
            let bytes = response.bytes().await.map_err(|e| self.transport(&e))?;
            return Err(api_error(status, &bytes));
        }
        let bytes = response
            .bytes_stream()
            .map(|chunk| chunk.map_err(|e| format!("the event stream broke: {e}")));
        Ok(parse_events(bytes, self.base.to_string(), MAX_EVENT_BYTES))
    }

    /// Sends a raw POST (any body, even malformed) and returns the JSON
    /// answer: for tools and tests.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn post_raw(
        &self,
        path: &str,
        body: impl Into<reqwest::Body>,
    ) -> Result<serde_json::Value, ClientError> {
        let url = self
            .base
            .join(path)
            .map_err(|e| ClientError::Setup(format!("bad path {path:?}: {e}")))?;
        let req = self.http.post(url.clone()).body(body);
        decode(&url, &self.send(req).await?)
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    fn authorize(&self, req: RequestBuilder) -> RequestBuilder {
        match &self.token {
            Some(token) => req.bearer_auth(token),
            None => req,
        }
    }

    fn transport(&self, e: &reqwest::Error) -> ClientError {
        let mut error = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            error.push_str(": ");
            error.push_str(&s.to_string());
            source = s.source();
        }
        ClientError::Transport {
            base: self.base.to_string(),
            error,
        }
    }

    /// Sends the request; the body of a success, or the error.
    async fn send(&self, req: RequestBuilder) -> Result<Bytes, ClientError> {
        let response = self
            .authorize(req)
            .send()
            .await
            .map_err(|e| self.transport(&e))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| self.transport(&e))?;
        if status.is_success() {
            Ok(bytes)
        } else {
            Err(api_error(status, &bytes))
        }
    }

    async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<Vec<u8>>,
    ) -> Result<T, ClientError> {
        let url = self.url(segments);
        let mut req = self.http.request(method, url.clone());
        if let Some(body) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        decode(&url, &self.send(req).await?)
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

fn decode<T: DeserializeOwned>(url: &Url, bytes: &[u8]) -> Result<T, ClientError> {
    serde_json::from_slice(bytes).map_err(|e| ClientError::Decode {
        url: url.to_string(),
        error: e.to_string(),
    })
}

fn api_error(status: StatusCode, bytes: &[u8]) -> ClientError {
    let body = serde_json::from_slice::<ErrorBody>(bytes).unwrap_or_else(|_| ErrorBody {
        error: {
            let text = String::from_utf8_lossy(bytes).trim().to_string();
            if text.is_empty() {
                status.to_string()
            } else {
                text
            }
        },
        kind: "http".into(),
        phase: None,
        cause: None,
    });
    ClientError::Api {
        status: status.as_u16(),
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let c = AdminClient::new("http://127.0.0.1:7878/", None).unwrap();
        assert_eq!(
            c.url(&["modules", "a b", "reload"]).as_str(),
            "http://127.0.0.1:7878/modules/a%20b/reload"
        );
        let c = AdminClient::for_addr("0.0.0.0:1".parse().unwrap(), None).unwrap();
        assert_eq!(c.base(), "http://127.0.0.1:1/");
        assert!(AdminClient::new("https://x", None).is_err());
        assert!(AdminClient::new("nonsense", None).is_err());
    }

    #[test]
    fn non_json_errors_keep_their_text() {
        let e = api_error(StatusCode::PAYLOAD_TOO_LARGE, b"length limit exceeded");
        assert_eq!(e.status(), Some(413));
        assert_eq!(e.kind(), Some("http"));
        assert!(e.to_string().contains("length limit exceeded"));
    }
}

/// Where [`AdminClient::call`] and [`AdminClient::cast`] send a message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Route {
    /// The next instance in round-robin order.
    #[default]
    Any,
    /// Instance `i` (modulo the instance count).
    Instance(usize),
    /// The actor of this key of a keyed module (activated if not live).
    Key(String),
}

impl From<Option<usize>> for Route {
    /// `Some(i)`: instance `i`; `None`: round robin.
    fn from(instance: Option<usize>) -> Route {
        instance.map_or(Route::Any, Route::Instance)
    }
}
