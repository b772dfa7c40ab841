//! Hot reload survives its library folder being deleted (or moved away) and
//! made again: the watch, which died with the folder's inode, is
//! re-established, the log says so (a warning when the folder goes, info
//! when it is watched again), and a library put in the new folder reloads
//! its module, as does every later change there.

use crate::common;

use std::path::{Path, PathBuf};

use kv_proto::{Msg, Proto as KvProto, Reply};
use molt::{Event, EventStream, ModuleHandle, ModuleSpec, Node, NodeConfig};

/// A node running `kv` 1.0.0 from `<root>/libs/libkv.so`, `<root>/libs`
/// being its only library folder (its parent is quiet: a scratch folder).
struct Lab {
    root: tempfile::TempDir,
    /// The library folder as the watcher names it (canonical).
    libs_logged: String,
    node: Node,
    events: EventStream,
    kv: ModuleHandle<KvProto>,
}

impl Lab {
    async fn start(name: &str) -> Lab {
        common::captured_logs();
        let root = common::scratch_dir();
        let libs = root.path().join("libs");
        std::fs::create_dir(&libs).unwrap();
        std::fs::copy(&common::fixtures().kv, libs.join("libkv.so")).expect("copy kv");
        let libs_logged = libs.canonicalize().unwrap().display().to_string();
        let mut config = NodeConfig::new(name).module(ModuleSpec::new("kv", libs.join("libkv.so")));
        config.library_dirs = vec![libs];
        config.limits = common::test_limits();
        config.debounce_ms = 5;
        let node = Node::start(config).await.expect("node starts");
        let events = node.subscribe();
        let kv = node.module::<KvProto>("kv").unwrap();
        common::kv::put(&kv, "a", "1").await;
        Lab {
            root,
            libs_logged,
            node,
            events,
            kv,
        }
    }

    fn libs(&self) -> PathBuf {
        self.root.path().join("libs")
    }

    /// Puts `from` in place as the module's library: copied next to the
    /// folder, then renamed in (complete when it appears).
    fn put_library(&self, from: &Path) {
        let staged = self.root.path().join("libkv.so.staged");
        std::fs::copy(from, &staged).expect("stage a library");
        std::fs::rename(&staged, self.libs().join("libkv.so")).expect("rename into place");
    }

    /// Awaits `module.reloaded` for kv from `from` to `to`; the state is
    /// carried over.
    async fn expect_reloaded(&mut self, from: &str, to: &str) {
        match common::next_event(&mut self.events, "module.reloaded").await {
            Event::ModuleReloaded {
                name,
                from: f,
                to: t,
                ..
            } => assert_eq!((name.as_str(), f.as_str(), t.as_str()), ("kv", from, to)),
            other => panic!("unexpected event {other:?}"),
        }
        assert_eq!(common::kv::version(&self.kv).await.0, to);
        assert_eq!(
            self.kv.call(Msg::Get { key: "a".into() }).await.unwrap(),
            Reply::Value(Some("1".into())),
            "the state was carried over"
        );
    }

    /// After the folder went away and came back: the log said both, a new
    /// library there reloads the module, and so does a later change.
    async fn expect_watched_again(mut self) {
        let dir = self.libs_logged.clone();
        common::await_logged(1, &["WARN", &dir, "deleted or moved away"]).await;
        self.put_library(&common::fixtures().kv_v2);
        self.expect_reloaded("1.0.0", "2.0.0").await;
        common::await_logged(1, &["INFO", &dir, "watching it again"]).await;
        // The new folder's watch stays: an ordinary change reloads too.
        self.put_library(&common::fixtures().kv_v2);
        self.expect_reloaded("2.0.0", "2.0.0").await;
        self.node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_library_folder_deleted_and_made_again_is_watched_again() {
    let lab = Lab::start("watch-recreate").await;
    std::fs::remove_dir_all(lab.libs()).unwrap();
    // Said before anything comes back.
    common::await_logged(1, &["WARN", &lab.libs_logged, "deleted or moved away"]).await;
    std::fs::create_dir(lab.libs()).unwrap();
    lab.expect_watched_again().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_library_folder_moved_away_and_made_again_is_watched_again() {
    let lab = Lab::start("watch-moved").await;
    std::fs::rename(lab.libs(), lab.root.path().join("libs.old")).unwrap();
    std::fs::create_dir(lab.libs()).unwrap();
    lab.expect_watched_again().await;
}
