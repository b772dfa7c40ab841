//! Config changes (docs/semantics.md "Watch and dev mode"): the diff of a
//! running config and a new one is classified (module added / removed / config
//! table changed / library changed / instance count changed are live changes;
//! node-level keys reject the whole change, listing them), and the node applies
//! or rejects it so.

use crate::common;

use std::path::PathBuf;

use kv_proto::{Msg, Proto, Reply};
use molt::config::diff::{plan, render, Change};
use molt::{Action, Error, Event, ModuleSpec, NodeConfig, Outcome};
use serde_json::json;

/// The running config of the table's cases (pure data: nothing is loaded).
fn running() -> NodeConfig {
    NodeConfig::new("n")
        .library_dir("/libs")
        .module(
            ModuleSpec::new("kv", "/libs/libkv.so")
                .crate_dir("/src/kv")
                .config(json!({ "max_value_len": 10 })),
        )
        .module(ModuleSpec::new("counter", "/libs/libcounter.so").instances(2))
}

struct Case {
    name: &'static str,
    edit: fn(&mut NodeConfig),
    changes: Vec<Change>,
    restart_keys: &'static [&'static str],
}

fn kv(c: &mut NodeConfig) -> &mut ModuleSpec {
    c.modules.iter_mut().find(|m| m.name == "kv").unwrap()
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "no change",
            edit: |_| {},
            changes: vec![],
            restart_keys: &[],
        },
        Case {
            name: "module added",
            edit: |c| {
                c.modules
                    .push(ModuleSpec::new("extra", "/libs/libextra.so"))
            },
            changes: vec![Change::Added {
                spec: ModuleSpec::new("extra", "/libs/libextra.so"),
            }],
            restart_keys: &[],
        },
        Case {
            name: "module removed",
            edit: |c| c.modules.retain(|m| m.name != "counter"),
            changes: vec![Change::Removed {
                module: "counter".into(),
            }],
            restart_keys: &[],
        },
        Case {
            name: "config table changed",
            edit: |c| kv(c).config = json!({ "max_value_len": 20 }),
            changes: vec![Change::Reload {
                module: "kv".into(),
                library: None,
                config: Some(json!({ "max_value_len": 20 })),
            }],
            restart_keys: &[],
        },
        Case {
            name: "library path changed",
            edit: |c| kv(c).library = "/libs/libkv_v2.so".into(),
            changes: vec![Change::Reload {
                module: "kv".into(),
                library: Some("/libs/libkv_v2.so".into()),
                config: None,
            }],
            restart_keys: &[],
        },
        Case {
            name: "library and config changed: one reload",
            edit: |c| {
                kv(c).library = "/libs/libkv_v2.so".into();
                kv(c).config = json!({});
            },
            changes: vec![Change::Reload {
                module: "kv".into(),
                library: Some("/libs/libkv_v2.so".into()),
                config: Some(json!({})),
            }],
            restart_keys: &[],
        },
        Case {
            name: "instances changed",
            edit: |c| kv(c).instances = 3,
            changes: vec![Change::Instances {
                module: "kv".into(),
                from: 1,
                to: 3,
            }],
            restart_keys: &[],
        },
        Case {
            name: "reload, addition, then removal (what cannot be undone goes last)",
            edit: |c| {
                c.modules
                    .insert(0, ModuleSpec::new("extra", "/libs/libextra.so"));
                c.modules.retain(|m| m.name != "counter");
                kv(c).config = json!(null);
            },
            changes: vec![
                Change::Reload {
                    module: "kv".into(),
                    library: None,
                    config: Some(json!(null)),
                },
                Change::Added {
                    spec: ModuleSpec::new("extra", "/libs/libextra.so"),
                },
                Change::Removed {
                    module: "counter".into(),
                },
            ],
            restart_keys: &[],
        },
        Case {
            name: "node name",
            edit: |c| c.name = "m".into(),
            changes: vec![],
            restart_keys: &["node.name"],
        },
        Case {
            name: "admin listen address",
            edit: |c| c.admin_listen = "0.0.0.0:9000".parse().unwrap(),
            changes: vec![],
            restart_keys: &["node.admin_listen"],
        },
        Case {
            name: "library dirs",
            edit: |c| c.library_dirs.push("/more".into()),
            changes: vec![],
            restart_keys: &["node.library_dirs"],
        },
        Case {
            name: "node-level keys with a module change: rejected whole, keys listed",
            edit: |c| {
                c.name = "m".into();
                c.admin_listen = "0.0.0.0:9000".parse().unwrap();
                c.library_dirs = vec!["/other".into()];
                kv(c).instances = 2;
            },
            changes: vec![Change::Instances {
                module: "kv".into(),
                from: 1,
                to: 2,
            }],
            restart_keys: &["node.name", "node.admin_listen", "node.library_dirs"],
        },
        Case {
            name: "the other node-level keys",
            edit: |c| {
                c.copy_dir = Some("/copies".into());
                c.hot_reload = false;
                c.debounce_ms = 100;
                c.dev = true;
                c.target_dir = Some("/target".into());
                c.limits.call_timeout *= 2;
                c.history_len = 5;
            },
            changes: vec![],
            restart_keys: &[
                "node.copy_dir",
                "node.hot_reload",
                "node.debounce_ms",
                "node.dev",
                "node.target_dir",
                "node.limits",
                "node.history_len",
            ],
        },
        Case {
            name: "a module's crate",
            edit: |c| kv(c).crate_dir = Some("/src/kv2".into()),
            changes: vec![],
            restart_keys: &["modules.kv.crate"],
        },
    ]
}

#[test]
fn diff_classification() {
    let running = running();
    for case in cases() {
        let mut new = running.clone();
        (case.edit)(&mut new);
        let p = plan(&running, &new);
        assert_eq!(p.changes, case.changes, "{}", case.name);
        assert_eq!(p.restart_keys, case.restart_keys, "{}", case.name);
        assert_eq!(
            p.is_applicable(),
            case.restart_keys.is_empty(),
            "{}",
            case.name
        );
        assert_eq!(
            p.is_empty(),
            case.changes.is_empty() && case.restart_keys.is_empty(),
            "{}",
            case.name
        );
    }
}

#[test]
fn render_shows_the_plan() {
    let running = running();
    assert_eq!(render(&plan(&running, &running)), "no changes");

    let mut new = running.clone();
    new.name = "m".into();
    new.admin_listen = "0.0.0.0:9000".parse().unwrap();
    kv(&mut new).instances = 2;
    assert_eq!(
        render(&plan(&running, &new)),
        "rejected: node.name, node.admin_listen need a restart; nothing would be applied"
    );

    let mut new = running.clone();
    new.modules.retain(|m| m.name != "counter");
    kv(&mut new).instances = 2;
    kv(&mut new).library = "/libs/libkv_v2.so".into();
    new.modules
        .push(ModuleSpec::new("extra", "/libs/libextra.so"));
    assert_eq!(
        render(&plan(&running, &new)),
        "kv: library changed to /libs/libkv_v2.so: reload\n\
         kv: instances 1 -> 2 (scale up)\n\
         extra: added (1 instance(s) of /libs/libextra.so)\n\
         counter: removed (drain its mailboxes, then stop)"
    );
}

/// The running config, as status shows it: each module's code version and
/// instance count.
async fn modules_running(node: &molt::Node) -> Vec<(String, String, usize)> {
    let mut m: Vec<_> = node
        .status()
        .await
        .unwrap()
        .modules
        .iter()
        .map(|m| (m.name.clone(), m.code_version.clone(), m.instances.len()))
        .collect();
    m.sort();
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_level_change_is_rejected_whole() {
    let f = common::fixtures();
    let node =
        molt::Node::start(common::config("cfg-reject", &[]).module(ModuleSpec::new("kv", &f.kv)))
            .await
            .unwrap();
    let admin = node.admin();
    let before = admin.running_config().await.unwrap();
    let modules_before = modules_running(&node).await;
    let mut events = node.subscribe();

    let mut new = before.clone();
    new.name = "cfg-reject-renamed".into();
    new.admin_listen = "127.0.0.1:9999".parse().unwrap();
    new.library_dirs.push(PathBuf::from("/elsewhere"));
    // Module-level changes in the same config are not applied either.
    new.modules.push(ModuleSpec::new("counter", &f.counter));
    new.modules[0].instances = 2;

    let err = admin.apply_config(new).await.unwrap_err();
    let Error::ConfigRejected { keys } = &err else {
        panic!("expected ConfigRejected, got {err:?}");
    };
    assert_eq!(
        keys,
        &["node.name", "node.admin_listen", "node.library_dirs"]
    );
    match common::next_event(&mut events, "config.rejected").await {
        Event::ConfigRejected { error } => {
            assert_eq!(error, err.to_string());
            assert!(error.contains("node.name, node.admin_listen, node.library_dirs"));
        }
        other => panic!("{other:?}"),
    }
    let last = node
        .history()
        .await
        .unwrap()
        .pop()
        .expect("a history entry");
    assert_eq!(last.action, Action::ApplyConfig);
    assert_eq!(last.outcome, Outcome::Refused);
    assert_eq!(last.error.as_deref(), Some(err.to_string().as_str()));

    assert_eq!(admin.running_config().await.unwrap(), before);
    assert_eq!(modules_running(&node).await, modules_before);
    assert_eq!(modules_before, [("kv".into(), "1.0.0".into(), 1)]);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn module_level_changes_apply_live() {
    let f = common::fixtures();
    let node =
        molt::Node::start(common::config("cfg-apply", &[]).module(ModuleSpec::new("kv", &f.kv)))
            .await
            .unwrap();
    let admin = node.admin();
    let kv = node.module::<Proto>("kv").unwrap();
    kv.call(Msg::Put {
        key: "a".into(),
        value: "a long value".into(),
    })
    .await
    .unwrap();
    let mut events = node.subscribe();

    let mut new = admin.running_config().await.unwrap();
    new.modules.push(ModuleSpec::new("counter", &f.counter));
    new.modules[0].instances = 2;
    new.modules[0].config = json!({ "max_value_len": 3 });
    let report = admin.apply_config(new.clone()).await.unwrap();
    assert!(report.all_applied(), "{report:?}");
    let changes: Vec<&Change> = report.changes.iter().map(|(c, _)| c).collect();
    assert_eq!(
        changes,
        [
            &Change::Reload {
                module: "kv".into(),
                library: None,
                config: Some(json!({ "max_value_len": 3 })),
            },
            &Change::Instances {
                module: "kv".into(),
                from: 1,
                to: 2,
            },
            &Change::Added {
                spec: ModuleSpec::new("counter", &f.counter),
            },
        ]
    );

    match common::next_event(&mut events, "config.applied").await {
        Event::ConfigApplied { changes, failed } => {
            assert!(failed.is_empty(), "{failed:?}");
            assert_eq!(
                changes,
                [
                    "kv: config changed: reconfigure (reload with the same library)",
                    "kv: instances 1 -> 2 (scale up)",
                    &format!("counter: added (1 instance(s) of {})", f.counter.display()),
                ]
            );
        }
        other => panic!("{other:?}"),
    }

    assert_eq!(
        modules_running(&node).await,
        [
            ("counter".into(), "1.0.0".into(), 1),
            ("kv".into(), "1.0.0".into(), 2)
        ]
    );
    let running = admin.running_config().await.unwrap();
    let kv_spec = running.modules.iter().find(|m| m.name == "kv").unwrap();
    assert_eq!(kv_spec.instances, 2);
    assert_eq!(kv_spec.config, json!({ "max_value_len": 3 }));
    assert!(running.modules.iter().any(|m| m.name == "counter"));
    // The state survived the reconfigure; the new limit holds.
    assert_eq!(
        kv.call(Msg::Get { key: "a".into() }).await.unwrap(),
        Reply::Value(Some("a long value".into()))
    );
    assert!(kv
        .call(Msg::Put {
            key: "b".into(),
            value: "too long".into(),
        })
        .await
        .is_err());
    let last = node.history().await.unwrap().pop().unwrap();
    assert_eq!(last.action, Action::ApplyConfig);
    assert_eq!(last.outcome, Outcome::Committed);
    // Applying the same config again changes nothing.
    let report = admin.apply_config(new).await.unwrap();
    assert!(report.changes.is_empty());
    node.shutdown().await;
}
