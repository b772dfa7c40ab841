//! Config file vs admin reloads (issue #8 item 14): a config change applies
//! only what the edit changed (it is diffed against the config as last
//! declared, not against the running modules), so an admin reload to another
//! library survives an unrelated edit; status says where each module's
//! library came from; and a config change applies whole or not at all.

use crate::common;

use std::path::PathBuf;

use kv_proto::{Msg, Proto as KvProto};
use molt::config::file::to_toml;
use molt::{
    Action, Change, LibrarySource, ModuleHandle, ModuleSpec, Node, NodeConfig, Outcome,
    ReloadOptions,
};
use serde_json::json;

/// A node running kv 1.0.0 from a temp folder that also holds kv 2.0.0,
/// and the config file it was started from.
struct Lab {
    dir: tempfile::TempDir,
    config: NodeConfig,
    node: Node,
    kv: ModuleHandle<KvProto>,
}

impl Lab {
    async fn start(name: &str) -> Lab {
        let f = common::fixtures();
        let dir = common::scratch_dir();
        std::fs::copy(&f.kv, dir.path().join("libkv.so")).unwrap();
        std::fs::copy(&f.kv_v2, dir.path().join("libkv_v2.so")).unwrap();
        let mut config = common::config(name, &[dir.path()]).module(
            ModuleSpec::new("kv", dir.path().join("libkv.so"))
                .config(json!({ "max_value_len": 3 })),
        );
        config.hot_reload = false;
        let lab_config = config.clone();
        let node = Node::start(config).await.expect("node starts");
        let kv = node.module::<KvProto>("kv").unwrap();
        common::kv::put(&kv, "a", "1").await;
        let lab = Lab {
            dir,
            config: lab_config,
            node,
            kv,
        };
        lab.write(&lab.config);
        lab
    }

    fn file(&self) -> PathBuf {
        self.dir.path().join("molt.toml")
    }

    fn lib(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, config: &NodeConfig) {
        std::fs::write(self.file(), to_toml(config)).expect("write the config file");
    }

    async fn kv_status(&self) -> (String, PathBuf, LibrarySource, usize) {
        let status = self.node.status().await.unwrap();
        let m = status.module("kv").unwrap();
        (
            m.code_version.clone(),
            m.library.clone(),
            m.source,
            m.instances.len(),
        )
    }

    async fn put_five_bytes(&self) -> bool {
        self.kv
            .call(Msg::Put {
                key: "long".into(),
                value: "12345".into(),
            })
            .await
            .is_ok()
    }
}

fn kv_spec(config: &mut NodeConfig) -> &mut ModuleSpec {
    config.modules.iter_mut().find(|m| m.name == "kv").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unrelated_edit_keeps_an_admin_reload() {
    let lab = Lab::start("source-wins-edit").await;
    assert_eq!(
        lab.kv_status().await,
        (
            "1.0.0".into(),
            lab.lib("libkv.so"),
            LibrarySource::Config,
            1
        )
    );
    lab.node
        .reload("kv", ReloadOptions::library(lab.lib("libkv_v2.so")))
        .await
        .expect("admin reload to v2");
    assert_eq!(
        lab.kv_status().await,
        (
            "2.0.0".into(),
            lab.lib("libkv_v2.so"),
            LibrarySource::Admin,
            1
        ),
        "status shows the library came from an admin request"
    );

    // The file still names v1; an edit of `instances` only scales.
    let mut edited = lab.config.clone();
    kv_spec(&mut edited).instances = 2;
    lab.write(&edited);
    let report = lab
        .node
        .admin()
        .apply_config_file(lab.file())
        .await
        .expect("the edit applies");
    assert!(report.all_applied(), "{report:?}");
    let changes: Vec<&Change> = report.changes.iter().map(|(c, _)| c).collect();
    assert_eq!(
        changes,
        [&Change::Instances {
            module: "kv".into(),
            from: 1,
            to: 2
        }],
        "only what the edit changed is applied"
    );
    assert_eq!(
        lab.kv_status().await,
        (
            "2.0.0".into(),
            lab.lib("libkv_v2.so"),
            LibrarySource::Admin,
            2
        ),
        "the admin's library stays"
    );
    assert_eq!(
        common::kv::dump(&lab.kv)
            .await
            .entries
            .get("a")
            .map(String::as_str),
        Some("1")
    );

    // An edit of kv's own config is the file's to make: it reloads kv with
    // the new config, on the library it runs (the file did not change that).
    kv_spec(&mut edited).config = json!({ "max_value_len": 100 });
    lab.write(&edited);
    let report = lab
        .node
        .admin()
        .apply_config_file(lab.file())
        .await
        .unwrap();
    assert!(report.all_applied(), "{report:?}");
    assert_eq!(
        lab.kv_status().await,
        (
            "2.0.0".into(),
            lab.lib("libkv_v2.so"),
            LibrarySource::Config,
            2
        )
    );
    assert!(lab.put_five_bytes().await, "the file's new config serves");
    lab.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_change_applies_whole_or_not_at_all() {
    let f = common::fixtures();
    let lab = Lab::start("source-wins-atomic").await;
    let before = lab.node.admin().running_config().await.unwrap();
    // Two changes: kv's config (applied first), then a module whose library
    // is not a molt module (fails in prepare).
    let mut edited = lab.config.clone();
    kv_spec(&mut edited).config = json!({ "max_value_len": 100 });
    edited
        .modules
        .push(ModuleSpec::new("broken", &f.not_a_module));
    lab.write(&edited);
    let report = lab
        .node
        .admin()
        .apply_config_file(lab.file())
        .await
        .expect("applied, then undone");
    let results: Vec<(&str, bool)> = report
        .changes
        .iter()
        .map(|(c, r)| (c.module(), r.is_ok()))
        .collect();
    assert_eq!(results, [("kv", true), ("broken", false)]);
    let undone: Vec<(&str, bool)> = report
        .undone
        .iter()
        .map(|(c, r)| (c.module(), r.is_ok()))
        .collect();
    assert_eq!(undone, [("kv", true)], "the first change is undone");

    // kv runs as before the change: its config, its library, its data.
    assert!(!lab.put_five_bytes().await, "kv's old config serves again");
    assert_eq!(
        common::kv::dump(&lab.kv)
            .await
            .entries
            .get("a")
            .map(String::as_str),
        Some("1")
    );
    let after = lab.node.admin().running_config().await.unwrap();
    assert_eq!(
        after.modules, before.modules,
        "the running config is unchanged"
    );
    let status = lab.node.status().await.unwrap();
    assert!(status.module("broken").is_none());

    // The history says what happened: rolled back, the failure and the undo.
    let last = lab
        .node
        .history()
        .await
        .unwrap()
        .into_iter()
        .rfind(|h| h.action == Action::ApplyConfig)
        .unwrap();
    assert_eq!(last.outcome, Outcome::RolledBack);
    assert_eq!(last.to, "", "nothing of it stays applied");
    let error = last.error.unwrap_or_default();
    assert!(
        error.contains("broken: added") && error.contains(&f.not_a_module.display().to_string()),
        "{error}"
    );
    assert!(
        error.contains("kv: config changed") && error.contains("undone"),
        "{error}"
    );
    lab.node.shutdown().await;
}
