//! docs/semantics.md "Cluster membership": the module versions a node
//! shows for its peers follow their reloads. A node asks its supervisor for
//! its versions when a module event says they may have changed (not on
//! every heartbeat); a reload on one node shows on the other.

use crate::common;

use common::cluster::{all_reachable, versions, ClusterNode, JOINED_WITHIN};

#[test]
fn a_reload_on_one_node_shows_in_the_others_view() {
    let dir = common::scratch_dir();
    let f = common::fixtures();
    let mut a = ClusterNode::new(dir.path(), "a", &f.counter, &[], "");
    let mut b = ClusterNode::new(dir.path(), "b", &f.counter, &[a.listen], "");
    a.start();
    b.start();
    let before = b.await_view("a and b reachable", JOINED_WITHIN, |v| {
        all_reachable(v, &["a", "b"])
    });
    assert_eq!(
        versions(before.member("a").unwrap()),
        [("counter", "1.0.0")]
    );

    // The operator reloads a, with the CLI, its token found where a wrote it.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_molt"))
        .args([
            "reload",
            "counter",
            "--library",
            f.counter_v2.to_str().unwrap(),
            "--addr",
            &a.admin.unwrap().to_string(),
        ])
        .env_remove("MOLT_ADMIN_TOKEN")
        .env_remove("MOLT_ADMIN_ADDR")
        .env("XDG_RUNTIME_DIR", dir.path())
        .output()
        .expect("run molt");
    assert!(out.status.success(), "{}", common::output_text(&out));

    for n in [&a, &b] {
        n.await_view("a's counter at 2.0.0", JOINED_WITHIN, |v| {
            v.member("a")
                .is_some_and(|m| versions(m) == [("counter", "2.0.0")])
        });
    }
}
