//! The config file: TOML, read into a [`NodeConfig`].
//!
//! Relative paths in it are taken from the file's folder. Every key is
//! optional except `node.name`, and every default is [`NodeConfig`]'s:
//!
//! ```toml
//! [node]
//! name = "molt"                   # also names the supervisor: molt.supervisor/molt
//! hot_reload = true               # watch the library directories and reload on change
//! debounce_ms = 5                 # quiet time merging a burst of file events
//! library_dirs = ["target/release"] # libraries may only come from here
//!                                 # (empty or absent: the folders of the modules
//!                                 # configured at start; no module: none)
//! # copy_dir = "/var/tmp/molt"    # where libraries are copied before dlopen
//! dev = false                     # dev mode: watch module crates, cargo build on save
//! # target_dir = "target"         # cargo --target-dir for dev-mode builds
//! admin_listen = "127.0.0.1:7878" # the HTTP admin surface, "ip:port"
//! history_len = 1000              # reload attempts kept in the history
//!
//! [node.limits]
//! prepare_timeout_ms = 10000
//! verify_timeout_ms = 5000
//! decision_timeout_ms = 10000
//! call_timeout_ms = 30000
//! restart_after_failures = 5      # handler panics in a row; 0: never restart
//! verify_round_trip = true
//! max_library_bytes = 268435456   # larger library files are refused before copying
//! max_mapped_libraries = 4096     # library copies this process may map (never unmapped)
//! checkpoint_interval_ms = 1000   # least time between two checkpoints of an instance (0: off)
//! shutdown_timeout_ms = 10000     # shutdown waits this long for mailboxes to drain
//! versions_kept = 4               # library versions a module keeps for rollback
//! admin_timeout_ms = 5000         # an admin request waits this long for the supervisor
//! http_header_timeout_ms = 10000  # HTTP admin: time to send the request headers
//! http_max_connections = 256      # HTTP admin: connections open at once
//! http_max_event_streams = 64     # HTTP admin: event streams open at once
//! history_file_max_bytes = 67108864 # rotate the audit file past this size (0: never)
//!
//! [modules.kv]                    # one table per module, named by the module
//! library = "target/release/libkv.so"
//! crate = "modules/kv"            # the module's crate, for dev mode
//! instances = 2                   # at least 1 (default 1)
//!
//! [modules.cart]                  # a keyed module: one actor per key, on demand
//! library = "target/release/libcart.so"
//! keyed = true                    # no `instances` then
//! idle_passivate_ms = 60000       # passivate a key's actor after this long idle
//! max_live = 100000               # past this many live actors, a new key's message fails
//!
//! [modules.kv.config]             # free-form, handed to the module's init/migrate
//! max_value_len = 4096
//!
//! [cluster]                       # absent: the node runs alone
//! listen = "127.0.0.1:7879"       # where peers connect, "ip:port" (loopback by default)
//! seeds = ["127.0.0.1:7880"]      # peers to connect to at start, "host:port"
//! cookie_file = "cluster.cookie"  # the shared secret (or cookie = "..."); needed
//!                                 # for a non-loopback listen
//! heartbeat_interval_ms = 200     # how often each peer is told this node is alive
//! unreachable_after_ms = 2000     # silence after which a peer is marked unreachable
//! forget_after_ms = 300000        # unreachable this long, a peer is forgotten (0: never)
//! max_in_flight = 10000           # unacknowledged messages per peer before sends fail
//!
//! [rollout]                       # cluster rollouts coordinated by this node (defaults shown)
//! gate_window_ms = 30000          # how long the gate watches the canary
//! max_error_rate_increase = 0.01  # the canary's error rate may exceed the old one's by this
//! max_restarts = 0                # instance restarts allowed on the canary in the window
//! max_p99_ratio = 2.0             # the canary's p99 handling time may be this many times the old one's
//! min_handled = 20                # the canary must handle this many in the window
//! wave_size = 1                   # nodes per wave after the gate
//! wave_watch_ms = 5000            # how long each wave is watched before the next
//! request_timeout_ms = 30000      # the bound on each request to a node
//! lease_ms = 15000                # how long a node keeps an uncommitted version without word
//! ```
//!
//! In dev mode a module may give only `crate`: its library is then
//! `TARGET/debug/libNAME.so`, where NAME is the crate's library target name
//! (`[lib] name`, else its package name with `-` as `_`) and TARGET is
//! `node.target_dir`, else the target dir cargo uses for the crate
//! (`CARGO_TARGET_DIR`, `build.target-dir` of `.cargo/config.toml`, else the
//! workspace's `target`): both as `cargo metadata` tells.
//!
//! Every problem is one [`Error::ConfigFile`] naming the file, the line and
//! column, and the full dotted key: an unknown key, a value of the wrong
//! type, a module listed twice, a library outside `library_dirs`, an
//! instance count of 0, an empty name, an address that is not `ip:port`.
//! Nothing is half-read: a file gives a whole [`NodeConfig`] or an error.

use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::de::{DeserializeOwned, IntoDeserializer};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::config::{ClusterSpec, Limits, ModuleSpec, NodeConfig};
use crate::error::Error;

/// Reads and parses a config file.
///
/// # Errors
/// [`Error::ConfigFile`] naming the file, line and key (line 0 when the file
/// cannot be read, or is not a regular file: a FIFO is refused, never read).
pub fn load(path: &Path) -> Result<NodeConfig, Error> {
    // Never a blocking read of a FIFO or a device (issue #8 item 3).
    let text = crate::regular_file::read_to_string(path).map_err(|e| Error::ConfigFile {
        path: path.to_path_buf(),
        line: 0,
        column: 0,
        message: format!("cannot read it: {e}"),
    })?;
    parse(&text, path)
}

/// Parses config text; relative paths are taken from `path`'s folder (made
/// absolute from the current directory when it is relative).
///
/// # Errors
/// [`Error::ConfigFile`] naming the file, line and key.
pub fn parse(text: &str, path: &Path) -> Result<NodeConfig, Error> {
    let folder = path.parent().unwrap_or(Path::new(""));
    let folder = if folder.as_os_str().is_empty() {
        Path::new(".")
    } else {
        folder
    };
    let base = std::path::absolute(folder).unwrap_or_else(|_| folder.to_path_buf());
    let file = File { text, path, base };
    file.read()
}

/// The built-in default configuration (what `molt.toml` at the workspace
/// root says): node `molt`, the example modules `kv` and `counter` from
/// `WORKSPACE/target/release`, hot reload on.
pub fn builtin(workspace: &Path) -> NodeConfig {
    let release = workspace.join("target/release");
    let mut config = NodeConfig::new("molt").library_dir(&release);
    config.hot_reload = true;
    config
        .module(
            ModuleSpec::new("kv", release.join("libkv.so")).crate_dir(workspace.join("modules/kv")),
        )
        .module(
            ModuleSpec::new("counter", release.join("libcounter.so"))
                .crate_dir(workspace.join("modules/counter")),
        )
}

/// Writes a configuration as config-file TOML (absolute paths, every key).
/// [`parse`] reads it back to the same [`NodeConfig`], except for `null`s in
/// module configs, which TOML cannot hold: they are left out.
pub fn to_toml(config: &NodeConfig) -> String {
    use toml::{Table, Value};
    let path = |p: &Path| Value::String(p.display().to_string());
    let ms = |d: Duration| Value::Integer(i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let int = |n: u64| Value::Integer(i64::try_from(n).unwrap_or(i64::MAX));

    let mut node = Table::new();
    node.insert("name".into(), Value::String(config.name.clone()));
    node.insert("hot_reload".into(), Value::Boolean(config.hot_reload));
    node.insert("debounce_ms".into(), int(config.debounce_ms));
    node.insert(
        "library_dirs".into(),
        Value::Array(config.library_dirs.iter().map(|d| path(d)).collect()),
    );
    if let Some(d) = &config.copy_dir {
        node.insert("copy_dir".into(), path(d));
    }
    node.insert("dev".into(), Value::Boolean(config.dev));
    if let Some(d) = &config.target_dir {
        node.insert("target_dir".into(), path(d));
    }
    node.insert(
        "admin_listen".into(),
        Value::String(config.admin_listen.to_string()),
    );
    if let Some(f) = &config.admin_token_file {
        node.insert("admin_token_file".into(), path(f));
    }
    node.insert("history_len".into(), int(config.history_len as u64));
    if let Some(f) = &config.history_file {
        node.insert("history_file".into(), path(f));
    }
    let l = &config.limits;
    let mut limits = Table::new();
    limits.insert("prepare_timeout_ms".into(), ms(l.prepare_timeout));
    limits.insert("verify_timeout_ms".into(), ms(l.verify_timeout));
    limits.insert("decision_timeout_ms".into(), ms(l.decision_timeout));
    limits.insert("call_timeout_ms".into(), ms(l.call_timeout));
    limits.insert(
        "restart_after_failures".into(),
        int(u64::from(l.restart_after_failures)),
    );
    limits.insert(
        "verify_round_trip".into(),
        Value::Boolean(l.verify_round_trip),
    );
    limits.insert("max_library_bytes".into(), int(l.max_library_bytes));
    limits.insert(
        "max_mapped_libraries".into(),
        int(l.max_mapped_libraries as u64),
    );
    limits.insert("checkpoint_interval_ms".into(), ms(l.checkpoint_interval));
    limits.insert("shutdown_timeout_ms".into(), ms(l.shutdown_timeout));
    limits.insert("versions_kept".into(), int(l.versions_kept as u64));
    limits.insert("admin_timeout_ms".into(), ms(l.admin_timeout));
    limits.insert("http_header_timeout_ms".into(), ms(l.http_header_timeout));
    limits.insert(
        "http_max_connections".into(),
        int(l.http_max_connections as u64),
    );
    limits.insert(
        "http_max_event_streams".into(),
        int(l.http_max_event_streams as u64),
    );
    limits.insert(
        "history_file_max_bytes".into(),
        int(l.history_file_max_bytes),
    );
    node.insert("limits".into(), Value::Table(limits));

    let mut root = Table::new();
    root.insert("node".into(), Value::Table(node));
    if let Some(c) = &config.cluster {
        let mut cluster = Table::new();
        cluster.insert("listen".into(), Value::String(c.listen.to_string()));
        cluster.insert(
            "seeds".into(),
            Value::Array(c.seeds.iter().cloned().map(Value::String).collect()),
        );
        if let Some(cookie) = &c.cookie {
            cluster.insert("cookie".into(), Value::String(cookie.clone()));
        }
        if let Some(f) = &c.cookie_file {
            cluster.insert("cookie_file".into(), path(f));
        }
        cluster.insert("heartbeat_interval_ms".into(), ms(c.heartbeat_interval));
        cluster.insert("unreachable_after_ms".into(), ms(c.unreachable_after));
        cluster.insert("forget_after_ms".into(), ms(c.forget_after));
        cluster.insert("max_in_flight".into(), int(c.max_in_flight));
        root.insert("cluster".into(), Value::Table(cluster));
    }
    let r = &config.rollout;
    if *r != crate::config::RolloutSpec::default() {
        let mut rollout = Table::new();
        rollout.insert("gate_window_ms".into(), ms(r.gate_window));
        rollout.insert(
            "max_error_rate_increase".into(),
            Value::Float(r.max_error_rate_increase),
        );
        rollout.insert("max_restarts".into(), int(r.max_restarts));
        rollout.insert("max_p99_ratio".into(), Value::Float(r.max_p99_ratio));
        rollout.insert("min_handled".into(), int(r.min_handled));
        rollout.insert("wave_size".into(), int(r.wave_size as u64));
        rollout.insert("wave_watch_ms".into(), ms(r.wave_watch));
        rollout.insert("request_timeout_ms".into(), ms(r.request_timeout));
        rollout.insert("lease_ms".into(), ms(r.lease));
        root.insert("rollout".into(), Value::Table(rollout));
    }
    let mut text = toml::to_string(&root).expect("a TOML table always serializes");
    // One document per module keeps them in order (a Table sorts its keys).
    for m in &config.modules {
        let mut t = Table::new();
        t.insert("library".into(), path(&m.library));
        if let Some(c) = &m.crate_dir {
            t.insert("crate".into(), path(c));
        }
        match &m.keyed {
            None => {
                t.insert("instances".into(), int(u64::from(m.instances)));
            }
            Some(k) => {
                t.insert("keyed".into(), Value::Boolean(true));
                t.insert(
                    "idle_passivate_ms".into(),
                    int(k.idle_passivate.as_millis() as u64),
                );
                t.insert("max_live".into(), int(u64::from(k.max_live)));
            }
        }
        if let Some(Value::Table(c)) = json_to_toml(&m.config) {
            t.insert("config".into(), Value::Table(c));
        }
        let mut modules = Table::new();
        modules.insert(m.name.clone(), Value::Table(t));
        let mut root = Table::new();
        root.insert("modules".into(), Value::Table(modules));
        text.push('\n');
        text.push_str(&toml::to_string(&root).expect("a TOML table always serializes"));
    }
    text
}

fn json_to_toml(v: &serde_json::Value) -> Option<toml::Value> {
    use serde_json::Value as J;
    use toml::Value as T;
    Some(match v {
        J::Null => return None,
        J::Bool(b) => T::Boolean(*b),
        J::Number(n) => match n.as_i64() {
            Some(i) => T::Integer(i),
            None => T::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        J::String(s) => T::String(s.clone()),
        J::Array(a) => T::Array(a.iter().filter_map(json_to_toml).collect()),
        J::Object(o) => T::Table(
            o.iter()
                .filter_map(|(k, v)| json_to_toml(v).map(|v| (k.clone(), v)))
                .collect(),
        ),
    })
}

/// The keys of the `[node]` table.
pub const NODE_KEYS: &[&str] = &[
    "name",
    "hot_reload",
    "debounce_ms",
    "library_dirs",
    "copy_dir",
    "dev",
    "target_dir",
    "admin_listen",
    "admin_token_file",
    "history_len",
    "history_file",
    "limits",
];
/// The keys of the `[node.limits]` table.
pub const LIMIT_KEYS: &[&str] = &[
    "prepare_timeout_ms",
    "verify_timeout_ms",
    "decision_timeout_ms",
    "call_timeout_ms",
    "restart_after_failures",
    "verify_round_trip",
    "max_library_bytes",
    "max_mapped_libraries",
    "checkpoint_interval_ms",
    "shutdown_timeout_ms",
    "versions_kept",
    "admin_timeout_ms",
    "http_header_timeout_ms",
    "http_max_connections",
    "http_max_event_streams",
    "history_file_max_bytes",
];
/// The keys of the `[cluster]` table.
pub const CLUSTER_KEYS: &[&str] = &[
    "listen",
    "seeds",
    "cookie",
    "cookie_file",
    "heartbeat_interval_ms",
    "unreachable_after_ms",
    "forget_after_ms",
    "max_in_flight",
];
/// The keys of the `[rollout]` table.
pub const ROLLOUT_KEYS: &[&str] = &[
    "gate_window_ms",
    "max_error_rate_increase",
    "max_restarts",
    "max_p99_ratio",
    "min_handled",
    "wave_size",
    "wave_watch_ms",
    "request_timeout_ms",
    "lease_ms",
];
/// The keys of a `[modules.NAME]` table.
pub const MODULE_KEYS: &[&str] = &[
    "library",
    "crate",
    "instances",
    "config",
    "keyed",
    "idle_passivate_ms",
    "max_live",
];

type Key<'i> = Spanned<std::borrow::Cow<'i, str>>;
type Item<'i> = Spanned<DeValue<'i>>;

/// A module as read, before its library is checked (which needs the whole
/// node section).
struct RawModule {
    name: String,
    /// The `[modules.NAME]` header (or the key's) span.
    span: Range<usize>,
    library: Option<(PathBuf, Range<usize>)>,
    crate_dir: Option<(PathBuf, Range<usize>)>,
    instances: u32,
    config: serde_json::Value,
    keyed: Option<crate::config::KeyedSpec>,
}

struct File<'a> {
    text: &'a str,
    path: &'a Path,
    base: PathBuf,
}

impl<'a> File<'a> {
    fn read(&self) -> Result<NodeConfig, Error> {
        let root = DeTable::parse(self.text).map_err(|e| self.syntax_error(&e))?;
        let mut node = None;
        let mut modules = None;
        let mut cluster = None;
        let mut rollout = None;
        for (key, value) in sorted(root.into_inner()) {
            match key.get_ref().as_ref() {
                "node" => node = Some(value),
                "modules" => modules = Some(value),
                "cluster" => cluster = Some(value),
                "rollout" => rollout = Some(value),
                other => return Err(self.unknown(&key, other, None, &[])),
            }
        }
        let Some(node) = node else {
            return Err(self.at(
                0..0,
                "missing [node] table (it needs at least name = \"...\")".into(),
            ));
        };
        let mut config = self.node(node)?;
        if let Some(cluster) = cluster {
            config.cluster = Some(self.cluster(cluster)?);
        }
        if let Some(rollout) = rollout {
            config.rollout = self.rollout(rollout)?;
        }
        let mut raw = Vec::new();
        if let Some(modules) = modules {
            let span = modules.span();
            let DeValue::Table(table) = modules.into_inner() else {
                return Err(self.at(
                    span,
                    "modules: expected one table per module ([modules.NAME])".into(),
                ));
            };
            for (key, value) in sorted(table) {
                raw.push(self.module(key, value)?);
            }
        }
        for m in raw {
            config.modules.push(self.finish_module(&config, m)?);
        }
        // Everything validate() checks was checked above with a line number;
        // this only guards against the two drifting apart.
        config
            .validate()
            .map_err(|e| self.at(0..0, e.to_string()))?;
        Ok(config)
    }

    fn node(&self, node: Item<'_>) -> Result<NodeConfig, Error> {
        let header = node.span();
        let entries = self.table("node", node)?;
        let mut config = NodeConfig::new("");
        let mut named = false;
        for (key, value) in entries {
            let name = format!("node.{}", key.get_ref());
            match key.get_ref().as_ref() {
                "name" => {
                    let span = value.span();
                    let s: String = self.value(&name, value)?;
                    if s.trim().is_empty() {
                        return Err(self.at(span, "node.name is empty".into()));
                    }
                    config.name = s;
                    named = true;
                }
                "hot_reload" => config.hot_reload = self.value(&name, value)?,
                "debounce_ms" => config.debounce_ms = self.value(&name, value)?,
                "library_dirs" => {
                    let dirs: Vec<PathBuf> = self.value(&name, value)?;
                    config.library_dirs = dirs.iter().map(|d| self.resolve(d)).collect();
                }
                "copy_dir" => config.copy_dir = Some(self.path_value(&name, value)?),
                "dev" => config.dev = self.value(&name, value)?,
                "target_dir" => config.target_dir = Some(self.path_value(&name, value)?),
                "admin_listen" => {
                    let span = value.span();
                    let s: String = self.value(&name, value)?;
                    config.admin_listen = s.parse::<SocketAddr>().map_err(|e| {
                        self.at(
                            span,
                            format!("node.admin_listen: {s:?} is not ip:port ({e}); e.g. \"127.0.0.1:7878\""),
                        )
                    })?;
                }
                "admin_token_file" => {
                    config.admin_token_file = Some(self.path_value(&name, value)?)
                }
                "history_len" => config.history_len = self.value(&name, value)?,
                "history_file" => config.history_file = Some(self.path_value(&name, value)?),
                "limits" => config.limits = self.limits(value)?,
                other => return Err(self.unknown(&key, other, Some("node"), NODE_KEYS)),
            }
        }
        if !named {
            return Err(self.at(header, "node.name is missing".into()));
        }
        Ok(config)
    }

    fn limits(&self, limits: Item<'_>) -> Result<Limits, Error> {
        let mut l = Limits::default();
        for (key, value) in self.table("node.limits", limits)? {
            let name = format!("node.limits.{}", key.get_ref());
            let ms = |v| self.value::<u64>(&name, v).map(Duration::from_millis);
            match key.get_ref().as_ref() {
                "prepare_timeout_ms" => l.prepare_timeout = ms(value)?,
                "verify_timeout_ms" => l.verify_timeout = ms(value)?,
                "decision_timeout_ms" => l.decision_timeout = ms(value)?,
                "call_timeout_ms" => l.call_timeout = ms(value)?,
                "restart_after_failures" => l.restart_after_failures = self.value(&name, value)?,
                "verify_round_trip" => l.verify_round_trip = self.value(&name, value)?,
                "max_library_bytes" => l.max_library_bytes = self.value(&name, value)?,
                "max_mapped_libraries" => l.max_mapped_libraries = self.value(&name, value)?,
                "checkpoint_interval_ms" => l.checkpoint_interval = ms(value)?,
                "shutdown_timeout_ms" => l.shutdown_timeout = ms(value)?,
                "versions_kept" => l.versions_kept = self.value(&name, value)?,
                "admin_timeout_ms" => l.admin_timeout = ms(value)?,
                "http_header_timeout_ms" => l.http_header_timeout = ms(value)?,
                "http_max_connections" => l.http_max_connections = self.value(&name, value)?,
                "http_max_event_streams" => l.http_max_event_streams = self.value(&name, value)?,
                "history_file_max_bytes" => l.history_file_max_bytes = self.value(&name, value)?,
                other => {
                    return Err(self.unknown(&key, other, Some("node.limits"), LIMIT_KEYS));
                }
            }
        }
        Ok(l)
    }

    /// The `[cluster]` table; a problem [`ClusterSpec::check`] finds is
    /// reported at its key (or at the table when the key is absent).
    fn cluster(&self, cluster: Item<'_>) -> Result<ClusterSpec, Error> {
        let header = cluster.span();
        let mut c = ClusterSpec::default();
        let mut spans: Vec<(&'static str, Range<usize>)> = Vec::new();
        for (key, value) in self.table("cluster", cluster)? {
            let name = format!("cluster.{}", key.get_ref());
            let span = value.span();
            let ms = |v| self.value::<u64>(&name, v).map(Duration::from_millis);
            let known = match key.get_ref().as_ref() {
                "listen" => {
                    let s: String = self.value(&name, value)?;
                    c.listen = s.parse::<SocketAddr>().map_err(|e| {
                        self.at(
                            span.clone(),
                            format!("cluster.listen: {s:?} is not ip:port ({e}); e.g. \"127.0.0.1:7879\""),
                        )
                    })?;
                    "listen"
                }
                "seeds" => {
                    c.seeds = self.value(&name, value)?;
                    "seeds"
                }
                "cookie" => {
                    c.cookie = Some(self.value(&name, value)?);
                    "cookie"
                }
                "cookie_file" => {
                    c.cookie_file = Some(self.path_value(&name, value)?);
                    "cookie_file"
                }
                "heartbeat_interval_ms" => {
                    c.heartbeat_interval = ms(value)?;
                    "heartbeat_interval_ms"
                }
                "unreachable_after_ms" => {
                    c.unreachable_after = ms(value)?;
                    "unreachable_after_ms"
                }
                "forget_after_ms" => {
                    c.forget_after = ms(value)?;
                    "forget_after_ms"
                }
                "max_in_flight" => {
                    c.max_in_flight = self.value(&name, value)?;
                    "max_in_flight"
                }
                other => return Err(self.unknown(&key, other, Some("cluster"), CLUSTER_KEYS)),
            };
            spans.push((known, span));
        }
        self.checked("cluster", c.check(), &spans, header)?;
        Ok(c)
    }

    /// A table's `check` verdict as an error at the key it names (`spans`:
    /// where each key of the table was read; the table's `header` when the
    /// key is not in the file, so a default failed).
    fn checked(
        &self,
        table: &str,
        verdict: Result<(), (&'static str, String)>,
        spans: &[(&'static str, Range<usize>)],
        header: Range<usize>,
    ) -> Result<(), Error> {
        let Err((key, why)) = verdict else {
            return Ok(());
        };
        let span = spans
            .iter()
            .find(|(k, _)| *k == key)
            .map_or(header, |(_, s)| s.clone());
        Err(self.at(span, format!("{table}.{key}: {why}")))
    }

    /// The `[rollout]` table; a problem [`crate::config::RolloutSpec::check`]
    /// finds is reported at its key.
    fn rollout(&self, rollout: Item<'_>) -> Result<crate::config::RolloutSpec, Error> {
        let header = rollout.span();
        let mut r = crate::config::RolloutSpec::default();
        let mut spans: Vec<(&'static str, Range<usize>)> = Vec::new();
        for (key, value) in self.table("rollout", rollout)? {
            let name = format!("rollout.{}", key.get_ref());
            let span = value.span();
            let ms = |v| self.value::<u64>(&name, v).map(Duration::from_millis);
            let known = match key.get_ref().as_ref() {
                "gate_window_ms" => {
                    r.gate_window = ms(value)?;
                    "gate_window_ms"
                }
                "max_error_rate_increase" => {
                    r.max_error_rate_increase = self.value(&name, value)?;
                    "max_error_rate_increase"
                }
                "max_restarts" => {
                    r.max_restarts = self.value(&name, value)?;
                    "max_restarts"
                }
                "max_p99_ratio" => {
                    r.max_p99_ratio = self.value(&name, value)?;
                    "max_p99_ratio"
                }
                "min_handled" => {
                    r.min_handled = self.value(&name, value)?;
                    "min_handled"
                }
                "wave_size" => {
                    r.wave_size = self.value(&name, value)?;
                    "wave_size"
                }
                "wave_watch_ms" => {
                    r.wave_watch = ms(value)?;
                    "wave_watch_ms"
                }
                "request_timeout_ms" => {
                    r.request_timeout = ms(value)?;
                    "request_timeout_ms"
                }
                "lease_ms" => {
                    r.lease = ms(value)?;
                    "lease_ms"
                }
                other => return Err(self.unknown(&key, other, Some("rollout"), ROLLOUT_KEYS)),
            };
            spans.push((known, span));
        }
        self.checked("rollout", r.check(), &spans, header)?;
        Ok(r)
    }

    fn module(&self, key: Key<'_>, value: Item<'_>) -> Result<RawModule, Error> {
        let name = key.get_ref().to_string();
        if name.trim().is_empty() {
            return Err(self.at(key.span(), "modules: a module name cannot be empty".into()));
        }
        let table_name = format!("modules.{name}");
        let span = value.span();
        let mut m = RawModule {
            name,
            span,
            library: None,
            crate_dir: None,
            instances: 1,
            config: serde_json::Value::Null,
            keyed: None,
        };
        let mut keyed: Option<Range<usize>> = None;
        let mut instances_at: Option<Range<usize>> = None;
        let mut keyed_spec = crate::config::KeyedSpec::default();
        // The first keyed-only key given, to name when `keyed` is not true.
        let mut keyed_only: Option<(String, Range<usize>)> = None;
        for (k, v) in self.table(&table_name, value)? {
            let full = format!("{table_name}.{}", k.get_ref());
            let span = v.span();
            match k.get_ref().as_ref() {
                "library" => m.library = Some((self.path_value(&full, v)?, span)),
                "crate" => m.crate_dir = Some((self.path_value(&full, v)?, span)),
                "keyed" => {
                    if self.value::<bool>(&full, v)? {
                        keyed = Some(span);
                    }
                }
                "idle_passivate_ms" => {
                    let ms: u64 = self.value(&full, v)?;
                    if ms == 0 {
                        return Err(self.at(span, format!("{full}: must be at least 1")));
                    }
                    keyed_spec.idle_passivate = Duration::from_millis(ms);
                    keyed_only.get_or_insert((full, span));
                }
                "max_live" => {
                    keyed_spec.max_live = self.value(&full, v)?;
                    if keyed_spec.max_live == 0 {
                        return Err(self.at(span, format!("{full}: must be at least 1")));
                    }
                    keyed_only.get_or_insert((full, span));
                }
                "instances" => {
                    instances_at = Some(span.clone());
                    m.instances = self.value(&full, v)?;
                    if m.instances == 0 {
                        return Err(self.at(span, format!("{full}: must be at least 1")));
                    }
                }
                "config" => {
                    if !matches!(v.get_ref(), DeValue::Table(_)) {
                        return Err(self.at(
                            span,
                            format!("{full}: expected a table, found {}", v.get_ref().type_str()),
                        ));
                    }
                    m.config = self.json(&full, v)?;
                }
                other => {
                    return Err(self.unknown(&k, other, Some(&table_name), MODULE_KEYS));
                }
            }
        }
        match (keyed, keyed_only, instances_at) {
            (Some(_), _, Some(at)) => {
                return Err(self.at(
                    at,
                    format!(
                        "{table_name}.instances: a keyed module has one actor per key, created on demand, not a pool of instances: remove `instances` (or `keyed`)"
                    ),
                ))
            }
            (None, Some((key, at)), _) => {
                return Err(self.at(
                    at,
                    format!("{key}: only a keyed module takes it: add `keyed = true`"),
                ))
            }
            (Some(_), _, None) => m.keyed = Some(keyed_spec),
            (None, None, _) => {}
        }
        Ok(m)
    }

    /// The module's library (given, or derived from its crate in dev mode),
    /// checked against the library directories.
    fn finish_module(&self, node: &NodeConfig, m: RawModule) -> Result<ModuleSpec, Error> {
        let key = format!("modules.{}.library", m.name);
        let (library, span, derived) = match (m.library, &m.crate_dir) {
            (Some((l, span)), _) => (l, span, false),
            (None, Some((dir, span))) if node.dev => {
                let lib = derive_library(dir, node.target_dir.as_deref())
                    .map_err(|e| self.at(span.clone(), format!("modules.{}.crate: {e}", m.name)))?;
                (lib, span.clone(), true)
            }
            (None, Some(_)) => {
                return Err(self.at(
                    m.span,
                    format!("{key} is missing (only dev mode derives it from `crate`)"),
                ))
            }
            (None, None) => return Err(self.at(m.span, format!("{key} is missing"))),
        };
        if !node.library_dirs.is_empty() && !inside(&library, &node.library_dirs) {
            let dirs = node
                .library_dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ");
            let derived = if derived {
                " (derived from `crate`)"
            } else {
                ""
            };
            return Err(self.at(
                span,
                format!(
                    "{key}: {}{derived} is outside the library directories ({dirs})",
                    library.display()
                ),
            ));
        }
        let mut spec = ModuleSpec::new(m.name, library)
            .instances(m.instances)
            .config(m.config);
        spec.crate_dir = m.crate_dir.map(|(d, _)| d);
        spec.keyed = m.keyed;
        Ok(spec)
    }

    /// A table's entries in file order, or an error naming `name`.
    fn table<'i>(&self, name: &str, value: Item<'i>) -> Result<Vec<(Key<'i>, Item<'i>)>, Error> {
        let span = value.span();
        match value.into_inner() {
            DeValue::Table(t) => Ok(sorted(t)),
            other => Err(self.at(
                span,
                format!("{name}: expected a table, found {}", other.type_str()),
            )),
        }
    }

    /// A typed value; a type error names the key.
    fn value<T: DeserializeOwned>(&self, key: &str, value: Item<'_>) -> Result<T, Error> {
        let span = value.span();
        T::deserialize(value.into_deserializer()).map_err(|e: toml::de::Error| {
            self.at(e.span().unwrap_or(span), format!("{key}: {}", e.message()))
        })
    }

    fn path_value(&self, key: &str, value: Item<'_>) -> Result<PathBuf, Error> {
        let p: PathBuf = self.value(key, value)?;
        Ok(self.resolve(&p))
    }

    fn resolve(&self, p: &Path) -> PathBuf {
        self.base.join(p)
    }

    /// A module's free-form config table as JSON.
    fn json(&self, key: &str, value: Item<'_>) -> Result<serde_json::Value, Error> {
        let span = value.span();
        match value.into_inner() {
            DeValue::Table(t) => {
                let mut map = serde_json::Map::new();
                for (k, v) in sorted(t) {
                    let full = format!("{key}.{}", k.get_ref());
                    map.insert(k.into_inner().into_owned(), self.json(&full, v)?);
                }
                Ok(serde_json::Value::Object(map))
            }
            DeValue::Array(a) => a
                .into_iter()
                .enumerate()
                .map(|(i, v)| self.json(&format!("{key}[{i}]"), v))
                .collect::<Result<Vec<_>, _>>()
                .map(serde_json::Value::Array),
            DeValue::Datetime(d) => Ok(serde_json::Value::String(d.to_string())),
            other => {
                let float = matches!(other, DeValue::Float(_));
                let v: serde_json::Value = self.value(key, Spanned::new(span.clone(), other))?;
                if float && v.is_null() {
                    return Err(self.at(
                        span,
                        format!("{key}: nan and inf cannot be handed to a module (JSON has no such numbers)"),
                    ));
                }
                Ok(v)
            }
        }
    }

    fn unknown(&self, key: &Key<'_>, name: &str, table: Option<&str>, expected: &[&str]) -> Error {
        let place = match table {
            Some(t) => format!("in [{t}]"),
            None => "at the top level".into(),
        };
        let expected = match table {
            None => "expected [node], [modules.NAME], [cluster] or [rollout]".to_string(),
            Some(_) => format!("expected one of {}", expected.join(", ")),
        };
        self.at(
            key.span(),
            format!("unknown key `{name}` {place}; {expected}"),
        )
    }

    /// A TOML syntax error (or a key defined twice), with the key when the
    /// line shows one.
    fn syntax_error(&self, e: &toml::de::Error) -> Error {
        let span = e.span().unwrap_or(0..0);
        let (line, _) = line_col(self.text, span.start);
        let key = key_path_of_line(self.text, line - 1);
        let message = match key {
            Some(key) if e.message() == "duplicate key" => {
                let first = (0..line - 1)
                    .find(|&l| key_path_of_line(self.text, l).as_ref() == Some(&key))
                    .map(|l| format!(" (first at line {})", l + 1))
                    .unwrap_or_default();
                let dotted = key.join(".");
                if key.len() == 2 && key[0] == "modules" {
                    format!("{dotted} listed twice{first}")
                } else {
                    format!("{dotted} defined twice{first}")
                }
            }
            Some(key) => format!("{}: invalid TOML: {}", key.join("."), e.message()),
            None => format!("invalid TOML: {}", e.message()),
        };
        self.at(span, message)
    }

    fn at(&self, span: Range<usize>, message: String) -> Error {
        let (line, column) = line_col(self.text, span.start);
        Error::ConfigFile {
            path: self.path.to_path_buf(),
            line,
            column,
            message,
        }
    }
}

/// A table's entries in the order they appear in the file.
fn sorted<'i>(table: DeTable<'i>) -> Vec<(Key<'i>, Item<'i>)> {
    let mut entries: Vec<_> = table.into_iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    entries
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, column)
}

/// The dotted key a line defines: a `[table]` header's path, or the
/// enclosing header's path plus the line's `key =`. Only for messages (a
/// duplicate key is a parse error, before any key path is known), so a
/// simple reading of the lines: `None` when the line is neither.
fn key_path_of_line(text: &str, line: usize) -> Option<Vec<String>> {
    let lines: Vec<&str> = text.split('\n').collect();
    let this = lines.get(line)?;
    if let Some(path) = header_path(this) {
        return Some(path);
    }
    let eq = find_unquoted(this, '=')?;
    let keys = split_keys(&this[..eq])?;
    let mut path = lines[..line]
        .iter()
        .rev()
        .find_map(|l| header_path(l))
        .unwrap_or_default();
    path.extend(keys);
    Some(path)
}

/// The path of a `[a.b]` or `[[a.b]]` header line.
fn header_path(line: &str) -> Option<Vec<String>> {
    let t = line.trim_start();
    let inner = t.strip_prefix("[[").or_else(|| t.strip_prefix('['))?;
    let end = find_unquoted(inner, ']')?;
    split_keys(&inner[..end])
}

fn find_unquoted(s: &str, wanted: char) -> Option<usize> {
    let mut quote = None;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, c) if c == wanted => return Some(i),
            _ => {}
        }
    }
    None
}

/// `a . "b.c" .d` → `[a, b.c, d]`; `None` unless it is a key.
fn split_keys(s: &str) -> Option<Vec<String>> {
    let mut keys = Vec::new();
    let mut rest = s.trim();
    loop {
        let (key, after) = if let Some(r) = rest.strip_prefix('"') {
            let end = r.find('"')?;
            (r[..end].to_string(), &r[end + 1..])
        } else if let Some(r) = rest.strip_prefix('\'') {
            let end = r.find('\'')?;
            (r[..end].to_string(), &r[end + 1..])
        } else {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
                .unwrap_or(rest.len());
            if end == 0 {
                return None;
            }
            (rest[..end].to_string(), &rest[end..])
        };
        keys.push(key);
        let after = after.trim_start();
        if after.is_empty() {
            return Some(keys);
        }
        rest = after.strip_prefix('.')?.trim_start();
    }
}

/// Whether `library` is inside one of `dirs` (resolving symlinks where the
/// paths exist, `.` and `..` everywhere, as the loader will).
fn inside(library: &Path, dirs: &[PathBuf]) -> bool {
    let library = normalize(library);
    dirs.iter().any(|d| library.starts_with(normalize(d)))
}

fn normalize(p: &Path) -> PathBuf {
    if let Ok(c) = p.canonicalize() {
        return c;
    }
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let mut lexical = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::ParentDir => {
                lexical.pop();
            }
            Component::CurDir => {}
            other => lexical.push(other),
        }
    }
    // The longest part that exists, with its symlinks resolved.
    for ancestor in lexical.ancestors().skip(1) {
        if let (Ok(c), Ok(rest)) = (ancestor.canonicalize(), lexical.strip_prefix(ancestor)) {
            return c.join(rest);
        }
    }
    lexical
}

/// The library a dev-mode build of the crate in `crate_dir` produces, in
/// `target_dir` when given, else where cargo puts it (`cargo metadata`).
fn derive_library(crate_dir: &Path, target_dir: Option<&Path>) -> Result<PathBuf, String> {
    let mut info = crate::cargo_build::crate_info(crate_dir).map_err(|e| e.to_string())?;
    if let Some(dir) = target_dir {
        info.target_dir = dir.to_path_buf();
    }
    info.debug_library()
        .ok_or_else(|| format!("package {} has no library target", info.package))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("the workspace")
            .to_path_buf()
    }

    #[test]
    fn molt_toml_is_the_builtin_default() {
        let root = root();
        let parsed = load(&root.join("molt.toml")).unwrap();
        assert_eq!(parsed, builtin(&root));
    }

    #[test]
    fn to_toml_reads_back() {
        let mut c = builtin(Path::new("/srv/molt"));
        c.copy_dir = Some("/var/tmp/molt".into());
        c.target_dir = Some("/srv/molt/target".into());
        c.dev = true;
        c.hot_reload = false;
        c.debounce_ms = 50;
        c.history_len = 10;
        c.admin_listen = "[::1]:9000".parse().unwrap();
        c.limits.call_timeout = Duration::from_millis(1500);
        c.limits.verify_round_trip = false;
        c.limits.restart_after_failures = 0;
        c.cluster = Some(crate::config::ClusterSpec {
            listen: "10.1.2.3:7001".parse().unwrap(),
            seeds: vec!["node-b:7001".into(), "10.1.2.4:7001".into()],
            cookie_file: Some("/etc/molt/cookie".into()),
            heartbeat_interval: Duration::from_millis(100),
            ..crate::config::ClusterSpec::default()
        });
        c.rollout.gate_window = Duration::from_millis(2500);
        c.rollout.max_error_rate_increase = 0.05;
        c.rollout.max_p99_ratio = 3.5;
        c.rollout.wave_size = 2;
        c.rollout.lease = Duration::from_secs(4);
        c.modules[0].instances = 3;
        c.modules[0].config = serde_json::json!({
            "max": 4096, "tags": ["a", "b"], "nested": { "on": true, "ratio": 0.5 }
        });
        let text = to_toml(&c);
        assert_eq!(
            parse(&text, Path::new("/elsewhere/molt.toml")).unwrap(),
            c,
            "{text}"
        );
    }

    #[test]
    fn the_example_cluster_configs_read() {
        let root = root();
        for n in 1..=3 {
            let c = load(&root.join(format!("examples/cluster/node{n}.toml"))).unwrap();
            let cluster = c.cluster.expect("a [cluster] section");
            assert_eq!(cluster.listen.port(), 7100 + n);
            assert_eq!(cluster.seeds, ["127.0.0.1:7101"]);
            assert!(c.modules[0]
                .library
                .ends_with("target/release/libcounter.so"));
        }
    }

    #[test]
    fn rollout_problems_name_the_file_and_key() {
        let err = |text: &str| {
            parse(text, Path::new("/etc/molt/node.toml"))
                .unwrap_err()
                .to_string()
        };
        let e = err("[node]\nname = \"a\"\n[rollout]\nwave_size = 0\n");
        assert!(
            e.starts_with("/etc/molt/node.toml:4:13: rollout.wave_size: must be at least 1"),
            "{e}"
        );
        let e = err("[node]\nname = \"a\"\n[rollout]\ngate_ms = 5\n");
        assert!(
            e.contains("unknown key `gate_ms` in [rollout]; expected one of gate_window_ms"),
            "{e}"
        );
        let c = parse(
            "[node]\nname = \"a\"\n[rollout]\ngate_window_ms = 900\nmax_error_rate_increase = 0\n",
            Path::new("/etc/molt/node.toml"),
        )
        .unwrap();
        assert_eq!(c.rollout.gate_window, Duration::from_millis(900));
        assert_eq!(c.rollout.max_error_rate_increase, 0.0);
        assert_eq!(c.rollout.wave_size, 1);
    }

    #[test]
    fn cluster_problems_name_the_file_and_key() {
        let err = |text: &str| {
            parse(text, Path::new("/etc/molt/node.toml"))
                .unwrap_err()
                .to_string()
        };
        let e = err("[node]\nname = \"a\"\n[cluster]\nlisten = \"10.0.0.1:7879\"\n");
        assert!(
            e.starts_with("/etc/molt/node.toml:4:10: cluster.listen: 10.0.0.1:7879 is not a loopback address: set cluster.cookie_file"),
            "{e}"
        );
        let e = err("[node]\nname = \"a\"\n[cluster]\nlisen = \"127.0.0.1:7879\"\n");
        assert!(
            e.contains(
                "node.toml:4:1: unknown key `lisen` in [cluster]; expected one of listen, seeds"
            ),
            "{e}"
        );
        let e = err("[node]\nname = \"a\"\n[cluster]\nseeds = [\"b\"]\n");
        assert!(
            e.contains("cluster.seeds: \"b\": expected host:port"),
            "{e}"
        );
        let c = parse(
            "[node]\nname = \"a\"\n[cluster]\ncookie_file = \"c\"\n",
            Path::new("/etc/molt/node.toml"),
        )
        .unwrap();
        let cluster = c.cluster.unwrap();
        assert_eq!(cluster.cookie_file, Some(PathBuf::from("/etc/molt/c")));
        assert_eq!(cluster.listen, crate::config::ClusterSpec::default().listen);
    }

    #[test]
    fn key_paths_of_lines() {
        let text = "[node]\nname = \"a\"\n[modules.kv]\nlibrary = \"x\"\n[ modules . \"a.b\" ]\n";
        let p = |l| key_path_of_line(text, l);
        assert_eq!(p(0), Some(vec!["node".to_string()]));
        assert_eq!(p(1), Some(vec!["node".to_string(), "name".to_string()]));
        assert_eq!(p(2), Some(vec!["modules".to_string(), "kv".to_string()]));
        assert_eq!(
            p(3),
            Some(vec!["modules".into(), "kv".into(), "library".into()])
        );
        assert_eq!(p(4), Some(vec!["modules".to_string(), "a.b".to_string()]));
        assert_eq!(header_path("  [\"a\", \"b\"],"), None);
    }

    #[test]
    fn dev_mode_derives_the_library_from_the_crate() {
        let root = root();
        let text = "[node]\nname = \"d\"\ndev = true\n[modules.kv]\ncrate = \"modules/kv\"\n";
        let c = parse(text, &root.join("dev.toml")).unwrap();
        assert_eq!(c.modules[0].library, root.join("target/debug/libkv.so"));
        let text = "[node]\nname = \"d\"\ndev = true\ntarget_dir = \"/t\"\n[modules.kv2]\ncrate = \"modules/kv_v2\"\n";
        let c = parse(text, &root.join("dev.toml")).unwrap();
        assert_eq!(c.modules[0].library, Path::new("/t/debug/libkv_v2.so"));
        let text = "[node]\nname = \"d\"\n[modules.kv]\ncrate = \"modules/kv\"\n";
        let e = parse(text, &root.join("dev.toml")).unwrap_err().to_string();
        assert!(e.ends_with("dev.toml:3:1: modules.kv.library is missing (only dev mode derives it from `crate`)"), "{e}");
    }
}
