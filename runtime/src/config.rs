//! The node configuration, as a typed struct. (Reading it from a file is the
//! job of the config-file layer; the runtime takes the struct.)

pub mod cluster;
pub mod diff;
pub mod file;
pub mod rollout;

pub use cluster::ClusterSpec;
pub use rollout::RolloutSpec;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How one module runs: which library, how many instances, its config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleSpec {
    /// The module's name; the library must declare the same name.
    pub name: String,
    /// The module library (`libNAME.so`).
    pub library: PathBuf,
    /// How many actor instances run this module (at least 1).
    #[serde(default = "one")]
    pub instances: u32,
    /// Free-form configuration handed to the module's `init` and `migrate`.
    #[serde(default)]
    pub config: serde_json::Value,
    /// The module's crate (the folder with its `Cargo.toml`), for dev mode:
    /// its sources are watched and rebuilt on save.
    #[serde(default)]
    pub crate_dir: Option<PathBuf>,
    /// A keyed module (`keyed = true`): one actor per key, activated by the
    /// first message to that key and passivated when idle, instead of a
    /// fixed pool of `instances` (see [`KeyedSpec`]). `None`: a pool module.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyed: Option<KeyedSpec>,
}

fn one() -> u32 {
    1
}

/// How the actors of a keyed module live (`keyed = true` in its module
/// table): one actor per key, created by the first message to the key,
/// passivated into a host-held snapshot after `idle_passivate` without a
/// message, restored from it by the next message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeyedSpec {
    /// How long a key's actor may go without a message before it is
    /// passivated (its state snapshot kept by the host, the actor stopped).
    #[serde(with = "millis")]
    pub idle_passivate: Duration,
    /// The most actors live (or being activated) at once. A message to a key
    /// that is not live while this many are fails with
    /// [`crate::CallError::TooManyLive`] (no queueing: the caller decides).
    pub max_live: u32,
}

impl Default for KeyedSpec {
    fn default() -> Self {
        KeyedSpec {
            idle_passivate: Duration::from_secs(60),
            max_live: 100_000,
        }
    }
}

impl ModuleSpec {
    /// A module with one instance and no config.
    pub fn new(name: impl Into<String>, library: impl Into<PathBuf>) -> Self {
        ModuleSpec {
            name: name.into(),
            library: library.into(),
            instances: 1,
            config: serde_json::Value::Null,
            crate_dir: None,
            keyed: None,
        }
    }

    /// Makes the module keyed: one actor per key (see [`KeyedSpec`]).
    pub fn keyed(mut self, keyed: KeyedSpec) -> Self {
        self.keyed = Some(keyed);
        self
    }

    /// Sets the module's crate folder (dev mode).
    pub fn crate_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.crate_dir = Some(dir.into());
        self
    }

    /// Sets the instance count.
    pub fn instances(mut self, n: u32) -> Self {
        self.instances = n;
        self
    }

    /// Sets the module's config (any serde value: a JSON object usually).
    pub fn config(mut self, config: serde_json::Value) -> Self {
        self.config = config;
        self
    }
}

impl KeyedSpec {
    /// What is wrong with this keyed module's settings, if anything.
    ///
    /// # Errors
    /// A sentence naming the key at fault: `max_live` of 0, an
    /// `idle_passivate_ms` of 0, or an instance count other than 1 (a keyed
    /// module has one actor per key, not a pool).
    pub fn check(&self, instances: u32) -> Result<(), String> {
        if instances != 1 {
            return Err(format!(
                "instances = {instances} has no meaning for a keyed module (one actor per key, created on demand): remove `instances`"
            ));
        }
        if self.max_live == 0 {
            return Err("max_live must be at least 1".into());
        }
        if self.idle_passivate.is_zero() {
            return Err("idle_passivate_ms must be at least 1".into());
        }
        Ok(())
    }
}

/// Timeouts and limits of the reload protocol and of failure handling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// How long an instance may take from the coordinator sending `Swap` to
    /// reporting prepared: the messages ahead of `Swap` in its mailbox (drain),
    /// then snapshot + migrate + swap + verify. Past it: rollback, naming the
    /// phase the instance is stuck in. It also bounds loading the library
    /// (check, copy, dlopen): past it the reload fails in prepare.
    #[serde(with = "millis")]
    pub prepare_timeout: Duration,
    /// How long `verify` may run.
    #[serde(with = "millis")]
    pub verify_timeout: Duration,
    /// After the coordinator's commit/rollback decision, how long it waits (on
    /// top of `prepare_timeout`) for the instances' reports of their pauses.
    /// The decision stands either way: an instance that has voted prepared
    /// never decides alone, it waits for the decision however long the
    /// coordinator takes (docs/semantics.md "Two-phase decision").
    #[serde(with = "millis")]
    pub decision_timeout: Duration,
    /// Handler panics in a row after which an instance is restarted in place
    /// from its newest checkpoint (0 = never). Handler errors neither count nor
    /// reset the count (docs/semantics.md "Restarts and checkpoints").
    pub restart_after_failures: u32,
    /// Check every swap with a snapshot round trip of the new state.
    pub verify_round_trip: bool,
    /// Default timeout of `ModuleHandle::call`.
    #[serde(with = "millis")]
    pub call_timeout: Duration,
    /// The largest library file a load accepts, in bytes: checked on the
    /// source file before anything is copied.
    pub max_library_bytes: u64,
    /// How many library copies this process may map (they are never
    /// unmapped): a load past it is refused with an error naming the cap.
    pub max_mapped_libraries: usize,
    /// The least time between two checkpoints of an instance (a snapshot
    /// taken between messages when it handled something since the last one):
    /// what a restart in place and a forced reload restore. 0 turns periodic
    /// checkpoints off (the newest good state is then the last committed
    /// reload's, or the start state).
    #[serde(with = "millis")]
    pub checkpoint_interval: Duration,
    /// How long a node shutdown waits for the instances to handle the
    /// messages already in their mailboxes.
    #[serde(with = "millis")]
    pub shutdown_timeout: Duration,
    /// How many library versions a module keeps (the running one included):
    /// how far `rollback` can walk back.
    pub versions_kept: usize,
    /// How long an admin request waits for the supervisor before it answers
    /// that the node is busy.
    #[serde(with = "millis")]
    pub admin_timeout: Duration,
    /// HTTP admin: how long a client may take to send its request headers.
    #[serde(with = "millis")]
    pub http_header_timeout: Duration,
    /// HTTP admin: the most connections open at once.
    pub http_max_connections: usize,
    /// HTTP admin: the most event streams open at once (`/events` and `/ws`
    /// together).
    pub http_max_event_streams: usize,
    /// The audit file's size past which it is rotated (`FILE.1`), in bytes
    /// (0: never).
    pub history_file_max_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            prepare_timeout: Duration::from_secs(10),
            verify_timeout: Duration::from_secs(5),
            decision_timeout: Duration::from_secs(10),
            restart_after_failures: 5,
            verify_round_trip: true,
            call_timeout: Duration::from_secs(30),
            max_library_bytes: 256 << 20,
            max_mapped_libraries: 4096,
            checkpoint_interval: Duration::from_secs(1),
            shutdown_timeout: Duration::from_secs(10),
            versions_kept: 4,
            admin_timeout: Duration::from_secs(5),
            http_header_timeout: Duration::from_secs(10),
            http_max_connections: 256,
            http_max_event_streams: 64,
            history_file_max_bytes: 64 << 20,
        }
    }
}

pub(crate) mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// A node: its name, where libraries may come from, and its modules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// The node's name (also names its supervisor: `molt.supervisor/NAME`).
    pub name: String,
    /// Directories libraries may be loaded from. Empty: the directories of
    /// the configured modules' libraries. In dev mode the build output
    /// directory of every module crate is added (see
    /// [`NodeConfig::dev_output_dir`]).
    #[serde(default)]
    pub library_dirs: Vec<PathBuf>,
    /// Where loaded libraries are copied before `dlopen` (each load needs a
    /// unique file name). It must be a directory (not a symbolic link) owned
    /// by the node's user and writable by nobody else, or the node refuses to
    /// start; it is created (0700) when missing. Default: a fresh private
    /// `molt-PID-XXXXXX` folder (0700) in the temp directory, removed at
    /// shutdown. Prefer a disk-backed folder: mapped copies are never unmapped.
    #[serde(default)]
    pub copy_dir: Option<PathBuf>,
    /// The modules to run.
    #[serde(default)]
    pub modules: Vec<ModuleSpec>,
    /// Protocol timeouts and failure limits.
    #[serde(default)]
    pub limits: Limits,
    /// How many reload attempts the in-memory history keeps.
    #[serde(default = "history_len")]
    pub history_len: usize,
    /// An append-only audit file of the history (JSON lines), read back at
    /// start so the history survives a restart.
    #[serde(default)]
    pub history_file: Option<PathBuf>,
    /// Watch the library directories (and the config file) and reload on
    /// change. Admin reloads work either way.
    #[serde(default = "yes")]
    pub hot_reload: bool,
    /// Quiet time that merges a burst of file events into one reload. Dev
    /// mode waits at least [`crate::dev::MIN_DEBOUNCE`] (50 ms) after a save
    /// before it builds: editors save in several steps.
    #[serde(default = "debounce_ms")]
    pub debounce_ms: u64,
    /// Dev mode: watch each module's crate sources, `cargo build` it on save
    /// and reload the artifact (see [`crate::dev`]).
    #[serde(default)]
    pub dev: bool,
    /// cargo's `--target-dir` for dev-mode builds. Default: the one cargo
    /// uses for the crate (`CARGO_TARGET_DIR`, else `build.target-dir` of the
    /// `.cargo/config.toml` files that apply, else the `target` folder of the
    /// crate's workspace), as `cargo metadata` tells.
    #[serde(default)]
    pub target_dir: Option<PathBuf>,
    /// Where the HTTP admin surface listens (loopback by default).
    #[serde(default = "admin_listen")]
    pub admin_listen: std::net::SocketAddr,
    /// A file holding the HTTP admin bearer token (its content, trimmed).
    /// The `MOLT_ADMIN_TOKEN` environment variable takes precedence. With
    /// neither, a loopback admin server makes a token for the run (see
    /// `molt_runtime::http`); a non-loopback one refuses to start.
    #[serde(default)]
    pub admin_token_file: Option<PathBuf>,
    /// The cluster this node is part of (`[cluster]`); `None`: it runs
    /// alone. Needs molt-runtime's `cluster` feature (README "Cluster").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterSpec>,
    /// How this node coordinates cluster rollouts (`[rollout]`; README
    /// "Rolling out a new version"). Used only in a cluster.
    #[serde(default)]
    pub rollout: RolloutSpec,
}

fn yes() -> bool {
    true
}

fn debounce_ms() -> u64 {
    5
}

fn admin_listen() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], 7878))
}

fn history_len() -> usize {
    1000
}

impl NodeConfig {
    /// A node with a name and no modules.
    pub fn new(name: impl Into<String>) -> Self {
        NodeConfig {
            name: name.into(),
            library_dirs: Vec::new(),
            copy_dir: None,
            modules: Vec::new(),
            limits: Limits::default(),
            history_len: history_len(),
            history_file: None,
            hot_reload: true,
            debounce_ms: debounce_ms(),
            dev: false,
            target_dir: None,
            admin_listen: admin_listen(),
            admin_token_file: None,
            cluster: None,
            rollout: RolloutSpec::default(),
        }
    }

    /// Adds a module.
    pub fn module(mut self, spec: ModuleSpec) -> Self {
        self.modules.push(spec);
        self
    }

    /// Adds a library directory.
    pub fn library_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.library_dirs.push(dir.into());
        self
    }

    /// The library directories in force: the configured ones, or the
    /// directories of the modules' libraries; in dev mode, plus the build
    /// output directory of each module crate, so the libraries dev mode builds
    /// can be loaded.
    pub fn effective_library_dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = Vec::new();
        let mut add = |dir: PathBuf| {
            if !dirs.contains(&dir) {
                dirs.push(dir);
            }
        };
        if self.library_dirs.is_empty() {
            for m in &self.modules {
                if let Some(dir) = m.library.parent() {
                    add(dir.to_path_buf());
                }
            }
        } else {
            self.library_dirs.iter().cloned().for_each(&mut add);
        }
        if self.dev {
            for m in &self.modules {
                if let Some(crate_dir) = &m.crate_dir {
                    add(self.dev_output_dir(crate_dir));
                }
            }
        }
        dirs
    }

    /// The `--target-dir` dev mode builds the crate in `crate_dir` with: the
    /// configured [`NodeConfig::target_dir`], else the one cargo uses for it
    /// (`CARGO_TARGET_DIR`, `build.target-dir` of `.cargo/config.toml`, else
    /// its workspace's `target`), as `cargo metadata` says; `crate_dir/target`
    /// when cargo cannot tell (dev mode then fails to start, saying why).
    pub fn dev_target_dir(&self, crate_dir: &Path) -> PathBuf {
        if let Some(dir) = &self.target_dir {
            return dir.clone();
        }
        crate::cargo_build::crate_info(crate_dir)
            .map(|info| info.target_dir)
            .unwrap_or_else(|_| crate_dir.join("target"))
    }

    /// Where dev mode's (debug) builds of the crate in `crate_dir` put its
    /// library: `<target dir>/debug`.
    pub fn dev_output_dir(&self, crate_dir: &Path) -> PathBuf {
        self.dev_target_dir(crate_dir).join("debug")
    }

    /// Checks the configuration without starting anything.
    ///
    /// # Errors
    /// [`crate::Error::Config`] naming the first problem found.
    pub fn validate(&self) -> Result<(), crate::Error> {
        let bad = |m: String| Err(crate::Error::Config(m));
        if self.name.trim().is_empty() {
            return bad("node name is empty".into());
        }
        if let Err((key, why)) = self.rollout.check() {
            return bad(format!("rollout.{key}: {why}"));
        }
        if let Some(cluster) = &self.cluster {
            if let Err((key, why)) = cluster.check() {
                return bad(format!("cluster.{key}: {why}"));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for m in &self.modules {
            if m.name.trim().is_empty() {
                return bad(format!(
                    "a module has an empty name (library {})",
                    m.library.display()
                ));
            }
            if !seen.insert(m.name.as_str()) {
                return bad(format!("module {:?} is listed twice", m.name));
            }
            if m.instances == 0 {
                return bad(format!("module {:?}: instances must be at least 1", m.name));
            }
            if let Some(k) = &m.keyed {
                if let Err(why) = k.check(m.instances) {
                    return bad(format!("module {:?}: {why}", m.name));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_mode_adds_each_crates_output_dir_to_the_library_dirs() {
        let base = NodeConfig::new("n")
            .library_dir("/libs")
            .module(ModuleSpec::new("a", "/libs/liba.so").crate_dir("/src/a"))
            .module(ModuleSpec::new("b", "/libs/libb.so"));
        assert_eq!(base.effective_library_dirs(), vec![PathBuf::from("/libs")]);
        let dev = NodeConfig {
            dev: true,
            target_dir: Some("/build".into()),
            ..base
        };
        assert_eq!(
            dev.effective_library_dirs(),
            vec![PathBuf::from("/libs"), PathBuf::from("/build/debug")]
        );
        // Without configured library dirs: the libraries' dirs, then the
        // build output dir (once).
        let dev = NodeConfig {
            library_dirs: vec![],
            ..dev
        };
        assert_eq!(
            dev.effective_library_dirs(),
            vec![PathBuf::from("/libs"), PathBuf::from("/build/debug")]
        );
    }

    #[test]
    fn the_default_dev_target_dir_is_cargos() {
        if std::env::var_os("CARGO_TARGET_DIR").is_some() {
            return; // cargo's own choice wins then; nothing to check here
        }
        let root = tempfile::tempdir().unwrap();
        let root = root.path().canonicalize().unwrap();
        let member = root.join("modules/m");
        let alone = root.join("alone");
        let configured = root.join("configured");
        for (dir, manifest) in [
            (&root, "[workspace]\nmembers = [\"modules/m\"]\n"),
            (&member, "[package]\nname = \"m\"\n"),
            (&alone, "[workspace]\n[package]\nname = \"alone\"\n"),
            (
                &configured,
                "[workspace]\n[package]\nname = \"configured\"\n",
            ),
        ] {
            std::fs::create_dir_all(dir.join("src")).unwrap();
            std::fs::write(dir.join("src/lib.rs"), "").unwrap();
            std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
        }
        // .cargo/config.toml's build.target-dir, relative to the folder
        // holding .cargo (issue #10 §6: the hand-written guess ignored it).
        std::fs::create_dir(configured.join(".cargo")).unwrap();
        std::fs::write(
            configured.join(".cargo/config.toml"),
            "[build]\ntarget-dir = \"elsewhere\"\n",
        )
        .unwrap();
        let config = NodeConfig::new("n");
        assert_eq!(config.dev_target_dir(&member), root.join("target"));
        assert_eq!(config.dev_target_dir(&alone), alone.join("target"));
        assert_eq!(
            config.dev_target_dir(&configured),
            configured.join("elsewhere")
        );
        let config = NodeConfig {
            target_dir: Some("/t".into()),
            ..config
        };
        assert_eq!(config.dev_output_dir(&member), PathBuf::from("/t/debug"));
    }
}
