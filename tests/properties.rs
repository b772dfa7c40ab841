//! Property tests (proptest):
//!
//! - the config file parser takes any text, and near-valid TOML built from
//!   the real keys with random values and random edits, and answers a
//!   config or one `Error::ConfigFile` naming a line of the file: it never
//!   panics; any valid config written with `to_toml` reads back the same;
//! - the request bodies that exist so far (the admin HTTP layer is written
//!   elsewhere): `NodeConfig`, `ModuleSpec` and `Limits` from arbitrary and
//!   near-valid JSON never panic, and round-trip through JSON; the history
//!   audit file's lines (`HistoryEntry`) never panic the node reading them
//!   back or appending to them; `config::diff::plan` on any two configs
//!   never panics, is empty for identical ones, and classifies every module;
//! - a state migrated up and then down equals the original: arbitrary kv
//!   states go kv 1.0.0 → kv 2.0.0 (reload) → kv 1.0.0 (rollback, down-
//!   migration) on one node reused across cases; arbitrary counter totals
//!   survive counter 1.0.0 → 2.0.0 (up only: 2.0.0 cannot downgrade).
//!
//! The node-level properties run 32 cases each (`PROPTEST_CASES` overrides
//! every count here).

use crate::common;

use common::kv::dump;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use molt::config::{diff, file};
use molt::history::{Action, History, HistoryEntry, Outcome};
use molt::{Error, Limits, ModuleSpec, NodeConfig, ReloadOptions};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestRunner};
use serde_json::Value;

/// The file every parsed text claims to come from (it is never read).
const FILE: &str = "/nonexistent/molt-props/molt.toml";

/// Cases of the properties that run a node.
const NODE_CASES: u32 = 32;

fn cases(default: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(default);
    Config {
        cases,
        ..Config::default()
    }
}

// ---------------------------------------------------------------------------
// (a) The config file parser
// ---------------------------------------------------------------------------

/// `parse` answered: a config, or one `ConfigFile` error naming this file, a
/// line of the text (or the one after its end) and a column.
fn check_parse(text: &str) -> Result<(), TestCaseError> {
    match file::parse(text, Path::new(FILE)) {
        Ok(config) => {
            prop_assert!(config.validate().is_ok(), "{config:?}");
        }
        Err(Error::ConfigFile {
            path,
            line,
            column,
            message,
        }) => {
            prop_assert_eq!(path, PathBuf::from(FILE));
            let lines = text.split('\n').count();
            prop_assert!(
                (1..=lines + 1).contains(&line),
                "line {} of {}: {}",
                line,
                lines,
                message
            );
            prop_assert!(column >= 1, "column {}: {}", column, message);
            prop_assert!(!message.is_empty());
        }
        Err(other) => prop_assert!(false, "not a ConfigFile error: {other:?}"),
    }
    Ok(())
}

// The parser's own key lists: the generated files use every key it knows.
use molt::config::file::{CLUSTER_KEYS, LIMIT_KEYS, MODULE_KEYS, NODE_KEYS, ROLLOUT_KEYS};

/// A TOML string literal (JSON's escapes are TOML's).
fn quoted(s: &str) -> String {
    serde_json::to_string(s).expect("a string encodes")
}

/// A key: one the parser knows, a bare word, or a quoted anything.
fn toml_key(known: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(known).prop_map(String::from),
        1 => "[A-Za-z_][A-Za-z0-9_-]{0,8}",
        1 => any::<String>().prop_map(|s| quoted(&s)),
        1 => "[a-z]{1,4}\\.[a-z]{1,4}",
    ]
}

/// A key of a module's free-form config: a word, or a quoted anything.
fn free_key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z]{1,6}",
        1 => any::<String>().prop_map(|s| quoted(&s)),
    ]
}

/// A TOML value, mostly well formed: numbers at their edges, strings that
/// look like paths and addresses, arrays and inline tables.
fn toml_value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(|i| i.to_string()),
        (0u64..100_000).prop_map(|i| i.to_string()),
        Just("0".to_string()),
        Just("-1".to_string()),
        Just("18446744073709551615".to_string()),
        any::<f64>().prop_map(|f| format!("{f:?}")),
        proptest::sample::select(vec!["nan", "-inf", "+inf", "1e400", "0.5"])
            .prop_map(String::from),
        any::<bool>().prop_map(|b| b.to_string()),
        any::<String>().prop_map(|s| quoted(&s)),
        "[a-z0-9:./ \\[\\]-]{0,24}".prop_map(|s| quoted(&s)),
        proptest::sample::select(vec![
            "\"127.0.0.1:7878\"",
            "\"[::1]:0\"",
            "\"localhost:80\"",
            "\"target/release/libkv.so\"",
            "\"/abs/libkv.so\"",
            "\"../outside/lib.so\"",
            "\"\"",
            "'literal \\\\ string'",
            "\"\"\"multi\nline\"\"\"",
            "1979-05-27T07:32:00Z",
            "07:32:00",
        ])
        .prop_map(String::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4)
                .prop_map(|v| format!("[{}]", v.join(", "))),
            proptest::collection::vec((free_key(), inner), 0..4).prop_map(|kv| {
                let items: Vec<String> = kv.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                format!("{{ {} }}", items.join(", "))
            }),
        ]
    })
}

/// Junk entries: random keys (some of them real) with random values.
fn junk_entries(known: &'static [&'static str], n: usize) -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(
        (toml_key(known), toml_value()).prop_map(|(k, v)| format!("{k} = {v}")),
        0..n,
    )
}

/// The kinds of value the real keys take.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Name,
    Bool,
    Int,
    Path,
    Paths,
    Addr,
    Addrs,
}

/// Mostly a value of the right kind (at its edges), sometimes any value.
fn typed_value(kind: Kind) -> BoxedStrategy<String> {
    let right = match kind {
        Kind::Name => prop_oneof![
            8 => "[a-z]{1,8}".prop_map(|s| quoted(&s)),
            1 => Just("\"  \"".to_string()),
            1 => any::<String>().prop_map(|s| quoted(&s)),
        ]
        .boxed(),
        Kind::Bool => any::<bool>().prop_map(|b| b.to_string()).boxed(),
        Kind::Int => prop_oneof![
            12 => (1u64..10_000).prop_map(|i| i.to_string()),
            1 => any::<i64>().prop_map(|i| i.to_string()),
            1 => proptest::sample::select(vec!["0", "-1", "4294967296", "9223372036854775807"])
                .prop_map(String::from),
        ]
        .boxed(),
        Kind::Path => prop_oneof![
            8 => "(lib|target/release|/abs|\\.\\./up|)[a-z/]{0,8}(/lib[a-z]{1,4}\\.so)?"
                .prop_map(|s| quoted(&s)),
            1 => any::<String>().prop_map(|s| quoted(&s)),
        ]
        .boxed(),
        Kind::Paths => proptest::collection::vec(typed_value(Kind::Path), 0..3)
            .prop_map(|v| format!("[{}]", v.join(", ")))
            .boxed(),
        Kind::Addr => prop_oneof![
            8 => (any::<[u8; 4]>(), any::<u16>())
                .prop_map(|(ip, port)| quoted(&format!("{}:{port}", Ipv4Addr::from(ip)))),
            2 => Just("\"[::1]:7878\"".to_string()),
            1 => "[a-z0-9:.\\[\\]]{0,16}".prop_map(|s| quoted(&s)),
        ]
        .boxed(),
        Kind::Addrs => proptest::collection::vec(typed_value(Kind::Addr), 0..3)
            .prop_map(|v| format!("[{}]", v.join(", ")))
            .boxed(),
    };
    prop_oneof![15 => right, 1 => toml_value()].boxed()
}

/// Each of these keys at most once, with a mostly right-typed value, in a
/// random order, plus some junk entries.
fn typed_entries(
    keys: &'static [(&'static str, Kind)],
    junk: &'static [&'static str],
) -> impl Strategy<Value = Vec<String>> {
    let each: Vec<_> = keys
        .iter()
        .map(|&(key, kind)| {
            // The one required key is there more often.
            let p = if key == "name" { 0.95 } else { 0.6 };
            proptest::option::weighted(p, typed_value(kind))
                .prop_map(move |v| v.map(|v| format!("{key} = {v}")))
        })
        .collect();
    (
        each,
        proptest::option::weighted(0.15, junk_entries(junk, 2)),
    )
        .prop_map(|(each, junk)| {
            let mut lines: Vec<String> = each.into_iter().flatten().collect();
            lines.extend(junk.unwrap_or_default());
            lines
        })
        .prop_shuffle()
}

const NODE_TYPED: &[(&str, Kind)] = &[
    ("name", Kind::Name),
    ("hot_reload", Kind::Bool),
    ("debounce_ms", Kind::Int),
    ("library_dirs", Kind::Paths),
    ("copy_dir", Kind::Path),
    ("dev", Kind::Bool),
    ("target_dir", Kind::Path),
    ("admin_listen", Kind::Addr),
    ("admin_token_file", Kind::Path),
    ("history_len", Kind::Int),
    ("history_file", Kind::Path),
];
const LIMITS_TYPED: &[(&str, Kind)] = &[
    ("prepare_timeout_ms", Kind::Int),
    ("verify_timeout_ms", Kind::Int),
    ("decision_timeout_ms", Kind::Int),
    ("call_timeout_ms", Kind::Int),
    ("restart_after_failures", Kind::Int),
    ("verify_round_trip", Kind::Bool),
    ("max_library_bytes", Kind::Int),
    ("max_mapped_libraries", Kind::Int),
    ("checkpoint_interval_ms", Kind::Int),
    ("shutdown_timeout_ms", Kind::Int),
    ("versions_kept", Kind::Int),
    ("admin_timeout_ms", Kind::Int),
    ("http_header_timeout_ms", Kind::Int),
    ("http_max_connections", Kind::Int),
    ("http_max_event_streams", Kind::Int),
    ("history_file_max_bytes", Kind::Int),
];
const CLUSTER_TYPED: &[(&str, Kind)] = &[
    ("listen", Kind::Addr),
    ("seeds", Kind::Addrs),
    ("cookie", Kind::Name),
    ("cookie_file", Kind::Path),
    ("heartbeat_interval_ms", Kind::Int),
    ("unreachable_after_ms", Kind::Int),
    ("forget_after_ms", Kind::Int),
    ("max_in_flight", Kind::Int),
];
const ROLLOUT_TYPED: &[(&str, Kind)] = &[
    ("gate_window_ms", Kind::Int),
    ("max_error_rate_increase", Kind::Int),
    ("max_restarts", Kind::Int),
    ("max_p99_ratio", Kind::Int),
    ("min_handled", Kind::Int),
    ("wave_size", Kind::Int),
    ("wave_watch_ms", Kind::Int),
    ("request_timeout_ms", Kind::Int),
    ("lease_ms", Kind::Int),
];
const MODULE_TYPED: &[(&str, Kind)] = &[
    ("library", Kind::Path),
    ("crate", Kind::Path),
    ("instances", Kind::Int),
    ("keyed", Kind::Bool),
    ("idle_passivate_ms", Kind::Int),
    ("max_live", Kind::Int),
];

/// A config file built from the real tables and keys.
fn near_valid_toml() -> impl Strategy<Value = String> {
    let module = (
        prop_oneof![3 => "[a-z]{1,6}", 1 => any::<String>().prop_map(|s| quoted(&s))],
        typed_entries(MODULE_TYPED, MODULE_KEYS),
        proptest::option::of(proptest::collection::vec(
            (free_key(), toml_value()).prop_map(|(k, v)| format!("{k} = {v}")),
            0..4,
        )),
    )
        .prop_map(|(name, keys, config)| {
            let mut t = format!("[modules.{name}]\n{}\n", keys.join("\n"));
            if let Some(c) = config {
                t.push_str(&format!("[modules.{name}.config]\n{}\n", c.join("\n")));
            }
            t
        });
    (
        typed_entries(NODE_TYPED, NODE_KEYS),
        proptest::option::of(typed_entries(LIMITS_TYPED, LIMIT_KEYS)),
        proptest::collection::vec(module, 0..4),
        proptest::option::weighted(
            0.1,
            junk_entries(&["node", "modules", "cluster", "rollout"], 2),
        ),
        proptest::option::weighted(0.2, typed_entries(CLUSTER_TYPED, CLUSTER_KEYS)),
        proptest::option::weighted(0.2, typed_entries(ROLLOUT_TYPED, ROLLOUT_KEYS)),
    )
        .prop_map(|(node, limits, modules, top, cluster, rollout)| {
            let top = top.unwrap_or_default().join("\n");
            let mut t = format!("{top}\n[node]\n{}\n", node.join("\n"));
            if let Some(l) = limits {
                t.push_str(&format!("[node.limits]\n{}\n", l.join("\n")));
            }
            for m in modules {
                t.push_str(&m);
            }
            if let Some(c) = cluster {
                t.push_str(&format!("[cluster]\n{}\n", c.join("\n")));
            }
            if let Some(r) = rollout {
                t.push_str(&format!("[rollout]\n{}\n", r.join("\n")));
            }
            t
        })
}

/// Line-level edits that keep most of a file intact.
#[derive(Debug, Clone)]
enum Edit {
    DuplicateLine(Index),
    DeleteLine(Index),
    SwapLines(Index, Index),
    InsertLine(Index, String),
    CutAt(Index),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        any::<Index>().prop_map(Edit::DuplicateLine),
        any::<Index>().prop_map(Edit::DeleteLine),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
        (
            any::<Index>(),
            prop_oneof![
                "[\\[\\]{}=\"'.,# a-z_\\\\-]{0,16}",
                any::<String>(),
                Just("[node]".to_string()),
                Just("[modules.x]".to_string()),
                Just("[[modules]]".to_string()),
            ]
        )
            .prop_map(|(i, s)| Edit::InsertLine(i, s)),
        any::<Index>().prop_map(Edit::CutAt),
    ]
}

fn apply(text: &str, edit: &Edit) -> String {
    let mut lines: Vec<String> = text.split('\n').map(String::from).collect();
    match edit {
        Edit::DuplicateLine(i) => {
            let i = i.index(lines.len());
            lines.insert(i, lines[i].clone());
        }
        Edit::DeleteLine(i) => {
            lines.remove(i.index(lines.len()));
        }
        Edit::SwapLines(a, b) => {
            let (a, b) = (a.index(lines.len()), b.index(lines.len()));
            lines.swap(a, b);
        }
        Edit::InsertLine(i, s) => lines.insert(i.index(lines.len() + 1), s.clone()),
        Edit::CutAt(i) => {
            let mut at = i.index(text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            return text[..at].to_string();
        }
    }
    lines.join("\n")
}

proptest! {
    #![proptest_config(cases(512))]

    #[test]
    fn config_parse_never_panics_on_any_text(text in any::<String>()) {
        check_parse(&text)?;
    }

    #[test]
    fn config_parse_never_panics_on_toml_punctuation(
        text in "[\\[\\]{}=\"'.,#\n a-z_0-9\\\\:-]{0,120}"
    ) {
        check_parse(&text)?;
    }

    #[test]
    fn config_parse_never_panics_on_near_valid_toml(
        text in near_valid_toml(),
        edits in prop_oneof![Just(vec![]), proptest::collection::vec(edit(), 1..3)],
    ) {
        let edited = edits.iter().fold(text, |t, e| apply(&t, e));
        check_parse(&edited)?;
    }
}

// ---------------------------------------------------------------------------
// Arbitrary valid configs
// ---------------------------------------------------------------------------

/// An absolute path of plain segments (no `.`, `..` or empty ones).
fn abs_path() -> impl Strategy<Value = PathBuf> {
    proptest::collection::vec("[A-Za-z0-9_][A-Za-z0-9 _.+-]{0,7}", 1..4)
        .prop_map(|segments| PathBuf::from(format!("/{}", segments.join("/"))))
}

/// A name that is not blank: usually plain, sometimes anything.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z][a-z0-9_-]{0,7}",
        1 => any::<String>().prop_filter("not blank", |s| !s.trim().is_empty()),
    ]
}

/// JSON as a module config holds it in a TOML file: no nulls, finite
/// numbers, integers within i64.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(any::<String>(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn module_config() -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => Just(Value::Null),
        3 => proptest::collection::btree_map(any::<String>(), json_value(), 0..4)
            .prop_map(|m| Value::Object(m.into_iter().collect())),
    ]
}

fn millis() -> impl Strategy<Value = Duration> {
    (0u64..=u64::from(u32::MAX)).prop_map(Duration::from_millis)
}

fn limits() -> impl Strategy<Value = Limits> {
    (
        millis(),
        millis(),
        millis(),
        millis(),
        any::<u32>(),
        any::<bool>(),
        (
            0u64..=i64::MAX as u64,
            0usize..=1_000_000,
            millis(),
            millis(),
        ),
        (0usize..=1_000_000, millis(), millis()),
        (
            0usize..=1_000_000,
            0usize..=1_000_000,
            0u64..=i64::MAX as u64,
        ),
    )
        .prop_map(
            |(p, v, d, c, r, rt, (lib, mapped, cp, sh), (vk, at, ht), (hc, he, hf))| Limits {
                prepare_timeout: p,
                verify_timeout: v,
                decision_timeout: d,
                call_timeout: c,
                restart_after_failures: r,
                verify_round_trip: rt,
                max_library_bytes: lib,
                max_mapped_libraries: mapped,
                checkpoint_interval: cp,
                shutdown_timeout: sh,
                versions_kept: vk,
                admin_timeout: at,
                http_header_timeout: ht,
                http_max_connections: hc,
                http_max_event_streams: he,
                history_file_max_bytes: hf,
            },
        )
}

fn socket_addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|o| IpAddr::V4(Ipv4Addr::from(o))),
        any::<[u16; 8]>().prop_map(|s| IpAddr::V6(Ipv6Addr::from(s))),
    ]
    .prop_flat_map(|ip| any::<u16>().prop_map(move |port| SocketAddr::new(ip, port)))
}

/// A valid node config that the config file can express: no history file
/// (the file has no key for it), each library inside the library dirs.
fn node_config() -> impl Strategy<Value = NodeConfig> {
    let node = (
        name(),
        proptest::collection::vec(abs_path(), 0..3),
        proptest::option::of(abs_path()),
        proptest::option::of(abs_path()),
        limits(),
        (0u64..=i64::MAX as u64, 0usize..=1_000_000),
        (any::<bool>(), any::<bool>()),
        socket_addr(),
    );
    let modules = proptest::collection::btree_map(
        name(),
        (
            "lib[a-z0-9_]{1,8}\\.so",
            abs_path(),
            any::<Index>(),
            proptest::option::of(abs_path()),
            1u32..=u32::MAX,
            module_config(),
        ),
        0..4,
    );
    (node, modules).prop_map(
        |(
            (name, dirs, copy_dir, target_dir, limits, (debounce, history), (hot, dev), addr),
            modules,
        )| {
            let mut c = NodeConfig::new(name);
            c.library_dirs = dirs.clone();
            c.copy_dir = copy_dir;
            c.target_dir = target_dir;
            c.limits = limits;
            c.debounce_ms = debounce;
            c.history_len = history;
            c.hot_reload = hot;
            c.dev = dev;
            c.admin_listen = addr;
            for (module, (file, anywhere, dir, crate_dir, instances, config)) in modules {
                let folder = if dirs.is_empty() {
                    anywhere
                } else {
                    dirs[dir.index(dirs.len())].clone()
                };
                let mut spec = ModuleSpec::new(module, folder.join(file))
                    .instances(instances)
                    .config(config);
                spec.crate_dir = crate_dir;
                c.modules.push(spec);
            }
            c
        },
    )
}

/// Edits some fields of a config (a second config that overlaps the first).
fn edited(c: NodeConfig) -> impl Strategy<Value = NodeConfig> {
    let n = c.modules.len();
    (
        proptest::collection::vec(any::<Index>(), 0..3),
        proptest::collection::vec(any::<Index>(), 0..3),
        proptest::collection::vec((any::<Index>(), module_config()), 0..2),
        proptest::collection::vec((any::<Index>(), 1u32..8), 0..2),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(move |(drop, relib, reconf, rescale, rename, retime)| {
            let mut c = c.clone();
            for i in relib {
                if n > 0 {
                    let m = &mut c.modules[i.index(n)];
                    m.library = m.library.with_extension("so2");
                }
            }
            for (i, config) in reconf {
                if n > 0 {
                    c.modules[i.index(n)].config = config;
                }
            }
            for (i, instances) in rescale {
                if n > 0 {
                    c.modules[i.index(n)].instances = instances;
                }
            }
            let mut dropped: Vec<usize> =
                drop.iter().filter(|_| n > 0).map(|i| i.index(n)).collect();
            dropped.sort_unstable();
            dropped.dedup();
            for i in dropped.into_iter().rev() {
                c.modules.remove(i);
            }
            c.modules
                .push(ModuleSpec::new("added-module", "/x/libadded.so"));
            if rename {
                c.name.push_str("-renamed");
            }
            if retime {
                c.limits.call_timeout += Duration::from_millis(1);
            }
            c
        })
}

proptest! {
    #![proptest_config(cases(256))]

    /// `to_toml` writes what `parse` reads back (except `null`s in module
    /// configs: generated without them).
    #[test]
    fn any_valid_config_survives_to_toml_and_parse(config in node_config()) {
        let text = file::to_toml(&config);
        match file::parse(&text, Path::new("/elsewhere/molt.toml")) {
            Ok(back) => prop_assert_eq!(back, config, "{}", text),
            Err(e) => prop_assert!(false, "{e}\n{text}"),
        }
    }
}

// ---------------------------------------------------------------------------
// (b) Request bodies, the history file, the config diff
// ---------------------------------------------------------------------------

/// JSON near a serialized config: some of its values replaced by others.
fn near_valid_json() -> impl Strategy<Value = String> {
    let any_json = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        any::<String>().prop_map(Value::String),
        Just(Value::Array(vec![])),
        Just(serde_json::json!({})),
    ];
    (
        node_config(),
        proptest::collection::vec((any::<Index>(), any_json), 0..4),
        proptest::option::of(any::<Index>()),
    )
        .prop_map(|(config, replace, cut)| {
            let mut v = serde_json::to_value(&config).expect("a config encodes");
            for (at, new) in replace {
                replace_somewhere(&mut v, at, new);
            }
            let text = v.to_string();
            match cut {
                Some(at) => {
                    let mut at = at.index(text.len() + 1);
                    while !text.is_char_boundary(at) {
                        at -= 1;
                    }
                    text[..at].to_string()
                }
                None => text,
            }
        })
}

/// Replaces one value inside `v` (its nodes in depth-first order).
fn replace_somewhere(v: &mut Value, at: Index, new: Value) {
    fn count(v: &Value) -> usize {
        1 + match v {
            Value::Array(a) => a.iter().map(count).sum(),
            Value::Object(o) => o.values().map(count).sum(),
            _ => 0,
        }
    }
    fn nth(v: &mut Value, mut n: usize) -> Option<&mut Value> {
        if n == 0 {
            return Some(v);
        }
        n -= 1;
        let children: Vec<&mut Value> = match v {
            Value::Array(a) => a.iter_mut().collect(),
            Value::Object(o) => o.values_mut().collect(),
            _ => vec![],
        };
        for child in children {
            let size = count(child);
            if n < size {
                return nth(child, n);
            }
            n -= size;
        }
        None
    }
    let n = at.index(count(v));
    if let Some(slot) = nth(v, n) {
        *slot = new;
    }
}

/// Equal JSON, floats within a few ULPs.
fn nearly_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            let (x, y) = (
                x.as_f64().unwrap_or(f64::NAN),
                y.as_f64().unwrap_or(f64::NAN),
            );
            // Within 4 ULPs (of the same sign, the bit patterns are ordered).
            x == y
                || (x.is_sign_negative() == y.is_sign_negative()
                    && x.to_bits().abs_diff(y.to_bits()) <= 4)
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| nearly_equal(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| nearly_equal(v, w)))
        }
        _ => a == b,
    }
}

fn decode_everything(text: &str) {
    if let Ok(c) = serde_json::from_str::<NodeConfig>(text) {
        let _ = c.validate();
        let _ = diff::plan(&c, &c);
    }
    let _ = serde_json::from_str::<ModuleSpec>(text);
    let _ = serde_json::from_str::<Limits>(text);
    let _ = serde_json::from_str::<HistoryEntry>(text);
}

fn history_entry() -> impl Strategy<Value = HistoryEntry> {
    let id = prop_oneof![Just(u64::MAX), Just(u64::MAX - 1), Just(0u64), any::<u64>(),];
    (
        id,
        prop_oneof![Just(u64::MAX), any::<u64>(), 0u64..4_000_000_000_000],
        any::<String>(),
        proptest::sample::select(vec![
            Action::Reload,
            Action::Rollback,
            Action::ApplyConfig,
            Action::Restart,
        ]),
        (any::<String>(), any::<String>()),
        proptest::sample::select(vec![
            Outcome::Committed,
            Outcome::RolledBack,
            Outcome::Rejected,
            Outcome::Refused,
        ]),
        (
            proptest::option::of(proptest::sample::select(molt::Phase::ALL.to_vec())),
            proptest::option::of(any::<String>()),
        ),
        any::<u64>(),
    )
        .prop_map(
            |(id, ms, module, action, (from, to), outcome, (phase, error), pause_us)| {
                HistoryEntry {
                    id,
                    at: SystemTime::UNIX_EPOCH + Duration::from_millis(ms),
                    module,
                    action,
                    trigger: molt::Trigger::Admin,
                    from,
                    to,
                    outcome,
                    phase,
                    error,
                    pause_us,
                    restored: None,
                    keys_kept_passivated: 0,
                }
            },
        )
}

/// A line of a history audit file: an entry, an entry with edits, or junk.
fn history_line() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => history_entry().prop_map(|e| serde_json::to_string(&e).expect("an entry encodes")),
        1 => (history_entry(), any::<Index>(), any::<String>()).prop_map(|(e, at, junk)| {
            let mut text = serde_json::to_string(&e).expect("an entry encodes");
            let mut at = at.index(text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            text.insert_str(at, &junk);
            text
        }),
        1 => any::<String>().prop_map(|s| s.replace('\n', " ")),
    ]
}

fn blank_entry() -> HistoryEntry {
    HistoryEntry {
        id: 0,
        at: SystemTime::now(),
        module: "m".into(),
        action: Action::Reload,
        trigger: molt::Trigger::Admin,
        from: "1".into(),
        to: "2".into(),
        outcome: Outcome::Committed,
        phase: None,
        error: None,
        pause_us: 0,
        restored: None,
        keys_kept_passivated: 0,
    }
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn request_bodies_never_panic_on_any_text(text in any::<String>()) {
        decode_everything(&text);
    }

    #[test]
    fn request_bodies_never_panic_on_near_valid_json(text in near_valid_json()) {
        decode_everything(&text);
    }

    /// Exactly, but for the floats of module configs: serde_json (without
    /// its `float_roundtrip` feature) may read a float back one ULP off.
    #[test]
    fn configs_round_trip_through_json(config in node_config()) {
        let text = serde_json::to_string(&config).expect("encodes");
        let mut back: NodeConfig = serde_json::from_str(&text).expect("decodes");
        prop_assert_eq!(back.modules.len(), config.modules.len());
        for (b, c) in back.modules.iter_mut().zip(&config.modules) {
            prop_assert!(nearly_equal(&b.config, &c.config), "{} vs {}", b.config, c.config);
            b.config = c.config.clone();
        }
        prop_assert_eq!(back, config);
    }

    /// A node reads its audit file back at start and appends to it: no line
    /// may panic it (an id at the top of the range included), and what it
    /// reads back is what was written, newest last.
    #[test]
    fn the_history_file_never_panics_the_node(
        lines in proptest::collection::vec(history_line(), 0..8),
        capacity in 1usize..5,
    ) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("history.jsonl");
        std::fs::write(&path, lines.join("\n")).expect("write");
        let mut history = History::with_file(capacity, &path).expect("the file reads");
        let kept = history.entries();
        prop_assert!(kept.len() <= capacity);
        for _ in 0..2 {
            history.push(blank_entry());
        }
        let after = history.entries();
        prop_assert!(after.len() <= capacity);
        prop_assert!(after.last().is_some_and(|e| e.module == "m"));
        let ids: Vec<u64> = after.iter().map(|e| e.id).collect();
        let reread = History::with_file(capacity, &path).expect("the file reads again");
        prop_assert_eq!(reread.entries().iter().map(|e| e.id).collect::<Vec<_>>(), ids);
    }

    #[test]
    fn config_diff_of_identical_configs_is_empty(config in node_config()) {
        let plan = diff::plan(&config, &config.clone());
        prop_assert!(plan.is_empty(), "{plan:?}");
        prop_assert_eq!(diff::render(&plan), "no changes");
    }

    #[test]
    fn config_diff_never_panics_and_classifies_every_module(
        (a, b) in node_config().prop_flat_map(|a| {
            let b = prop_oneof![edited(a.clone()), node_config()];
            (Just(a), b)
        })
    ) {
        let plan = diff::plan(&a, &b);
        let _ = diff::render(&plan);
        let names = |c: &NodeConfig| c.modules.iter().map(|m| m.name.clone()).collect::<BTreeSet<_>>();
        let (old, new) = (names(&a), names(&b));
        let mut removed = BTreeSet::new();
        let mut added = BTreeSet::new();
        for change in &plan.changes {
            match change {
                molt::Change::Removed { module } => {
                    prop_assert!(removed.insert(module.clone()));
                }
                molt::Change::Added { spec } => {
                    prop_assert!(added.insert(spec.name.clone()));
                }
                molt::Change::Reload { module, .. } | molt::Change::Instances { module, .. } => {
                    prop_assert!(old.contains(module) && new.contains(module), "{module}");
                }
            }
        }
        prop_assert_eq!(removed, old.difference(&new).cloned().collect::<BTreeSet<_>>());
        prop_assert_eq!(added, new.difference(&old).cloned().collect::<BTreeSet<_>>());
        // Node-level differences are seen from both sides.
        let back = diff::plan(&b, &a);
        let keys = |p: &diff::Plan| {
            p.restart_keys.iter().filter(|k| k.starts_with("node.")).cloned().collect::<BTreeSet<_>>()
        };
        prop_assert_eq!(keys(&plan), keys(&back));
        prop_assert_eq!(plan.restart_keys.iter().any(|k| k == "node.name"), a.name != b.name);
    }
}

// ---------------------------------------------------------------------------
// (c) Up, then down: the example modules' states
// ---------------------------------------------------------------------------

use counter_proto::{Msg as CounterMsg, Proto as CounterProto, Reply as CounterReply};
use kv_proto::{Msg as KvMsg, Proto as KvProto, Reply as KvReply};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

/// A kv state: entries (some overwritten, some deleted) and journals.
#[derive(Debug, Clone)]
struct KvState {
    puts: Vec<(String, String)>,
    deletes: Vec<Index>,
    streams: BTreeMap<String, Vec<u64>>,
}

fn kv_state() -> impl Strategy<Value = KvState> {
    let key = prop_oneof![3 => "[a-z]{1,3}", 1 => any::<String>()];
    (
        proptest::collection::vec((key, any::<String>()), 0..16),
        proptest::collection::vec(any::<Index>(), 0..4),
        proptest::collection::btree_map(
            any::<String>(),
            proptest::collection::vec(any::<u64>(), 0..16),
            0..4,
        ),
    )
        .prop_map(|(puts, deletes, streams)| KvState {
            puts,
            deletes,
            streams,
        })
}

async fn kv_version(kv: &molt::ModuleHandle<KvProto>) -> String {
    match kv.call(KvMsg::Version).await.expect("version") {
        KvReply::Version { code, .. } => code,
        other => panic!("unexpected reply {other:?}"),
    }
}

/// kv 1.0.0 → kv 2.0.0 → kv 1.0.0 keeps any state, on one node for every
/// case. Between cases every key is deleted and the journals of a case get
/// names of their own (kv cannot delete a journal): each case starts from
/// no entries, and the whole dump, earlier journals included, must come
/// back exactly.
#[test]
fn kv_state_up_then_down_is_the_original() {
    let f = common::fixtures();
    let rt = runtime();
    let node = rt.block_on(common::start("props-kv", ModuleSpec::new("kv", &f.kv)));
    let kv = node.module::<KvProto>("kv").unwrap();
    let case = std::cell::Cell::new(0u32);
    let result = TestRunner::new(cases(NODE_CASES)).run(&kv_state(), |state| {
        case.set(case.get() + 1);
        let case = case.get();
        let (kv, node) = (&kv, &node);
        rt.block_on(async move {
            assert_eq!(kv_version(kv).await, "1.0.0");
            for key in dump(kv).await.entries.into_keys() {
                kv.cast(KvMsg::Delete { key }).expect("cast");
            }
            // The state, through the protocol, and what it must be.
            let mut entries = BTreeMap::new();
            for (key, value) in &state.puts {
                kv.cast(KvMsg::Put {
                    key: key.clone(),
                    value: value.clone(),
                })
                .expect("cast");
                entries.insert(key.clone(), value.clone());
            }
            let keys: Vec<String> = state.puts.iter().map(|(k, _)| k.clone()).collect();
            for i in &state.deletes {
                if !keys.is_empty() {
                    let key = keys[i.index(keys.len())].clone();
                    entries.remove(&key);
                    kv.cast(KvMsg::Delete { key }).expect("cast");
                }
            }
            for (stream, seqs) in &state.streams {
                for &seq in seqs {
                    let stream = format!("case {case}: {stream}");
                    kv.cast(KvMsg::Push { stream, seq }).expect("cast");
                }
            }
            let before = dump(kv).await;
            prop_assert_eq!(&before.entries, &entries);
            for (stream, seqs) in &state.streams {
                let held = before.streams.get(&format!("case {case}: {stream}"));
                prop_assert_eq!(held.map(Vec::as_slice).unwrap_or_default(), seqs.as_slice());
            }

            let up = node
                .reload("kv", ReloadOptions::library(&f.kv_v2))
                .await
                .expect("up to 2.0.0");
            prop_assert_eq!((up.to.as_str(), up.state_version), ("2.0.0", 2));
            prop_assert_eq!(&dump(kv).await, &before, "after the upgrade");
            let down = node.rollback("kv", false).await.expect("down to 1.0.0");
            prop_assert_eq!((down.to.as_str(), down.state_version), ("1.0.0", 1));
            prop_assert_eq!(kv_version(kv).await, "1.0.0");
            prop_assert_eq!(&dump(kv).await, &before, "after the downgrade");
            Ok(())
        })
    });
    rt.block_on(node.shutdown());
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// counter 1.0.0 → counter 2.0.0 keeps the total, for any additions
/// (overflowing ones are refused and change nothing). 2.0.0 cannot
/// downgrade: each case goes back by a reset rollback (a fresh 1.0.0 at 0).
#[test]
fn counter_total_survives_the_upgrade() {
    let f = common::fixtures();
    let rt = runtime();
    let node = rt.block_on(common::start(
        "props-counter",
        ModuleSpec::new("counter", &f.counter),
    ));
    let counter = node.module::<CounterProto>("counter").unwrap();
    let adds = proptest::collection::vec(
        prop_oneof![
            4 => -1_000_000i64..1_000_000,
            1 => any::<i64>(),
        ],
        0..24,
    );
    let result = TestRunner::new(cases(NODE_CASES)).run(&adds, |adds| {
        let (counter, node) = (&counter, &node);
        rt.block_on(async move {
            prop_assert_eq!(
                counter.call(CounterMsg::Get).await.expect("get"),
                CounterReply::Total(0)
            );
            let mut total = 0i64;
            for n in adds {
                let reply = counter.call(CounterMsg::Add(n)).await;
                match total.checked_add(n) {
                    Some(t) => {
                        total = t;
                        prop_assert_eq!(reply.expect("add"), CounterReply::Total(t));
                    }
                    None => prop_assert!(reply.is_err(), "an overflowing add is refused"),
                }
            }
            let up = node
                .reload("counter", ReloadOptions::library(&f.counter_v2))
                .await
                .expect("up to 2.0.0");
            prop_assert_eq!(up.to.as_str(), "2.0.0");
            prop_assert_eq!(
                counter.call(CounterMsg::Get).await.expect("get"),
                CounterReply::Total(total)
            );
            let back = node
                .rollback("counter", true)
                .await
                .expect("reset rollback");
            prop_assert_eq!(back.to.as_str(), "1.0.0");
            Ok(())
        })
    });
    rt.block_on(node.shutdown());
    if let Err(e) = result {
        panic!("{e}");
    }
}
