//! docs/semantics.md "Cluster membership": only nodes that share the cookie
//! join; a node whose cookie differs never appears in the cluster's view
//! (nor the cluster in its), while a node with the right cookie, started
//! after it, joins; the refused node warns that the peer refuses it. A
//! listener on a non-loopback address without a cookie is refused at
//! start, naming the config file and the key.

use crate::common;

use std::time::Duration;

use common::cluster::{all_reachable, ClusterNode, JOINED_WITHIN};

#[test]
fn a_node_with_another_cookie_does_not_join() {
    let dir = common::scratch_dir();
    let lib = &common::fixtures().counter;
    let mut a = ClusterNode::new(dir.path(), "a", lib, &[], "cookie = \"alpha-secret\"");
    let mut intruder = ClusterNode::new(
        dir.path(),
        "intruder",
        lib,
        &[a.listen],
        "cookie = \"beta-secret\"",
    );
    let mut b = ClusterNode::new(
        dir.path(),
        "b",
        lib,
        &[a.listen],
        "cookie = \"alpha-secret\"",
    );
    a.start();
    intruder.start();
    // The intruder tries from its start on; b, started after it, joins.
    b.start();
    let v = a.await_view("b joined", JOINED_WITHIN, |v| all_reachable(v, &["a", "b"]));
    assert!(v.member("intruder").is_none(), "{v:#?}");
    b.await_view("a, b only", JOINED_WITHIN, |v| {
        all_reachable(v, &["a", "b"])
    });
    let alone = intruder.view().expect("the intruder answers");
    assert!(all_reachable(&alone, &["intruder"]), "{alone:#?}");
    // It says why it stays alone.
    let line = intruder
        .process
        .as_mut()
        .unwrap()
        .wait_for_line("refuses this node", JOINED_WITHIN);
    assert!(
        line.contains("another cookie") && line.contains(&a.listen.to_string()),
        "{line}"
    );
}

#[test]
fn a_non_loopback_listener_without_a_cookie_is_refused() {
    let dir = common::scratch_dir();
    let config = dir.path().join("open.toml");
    std::fs::write(
        &config,
        "[node]\nname = \"open\"\nhot_reload = false\nadmin_listen = \"127.0.0.1:0\"\n\
         [cluster]\nlisten = \"192.0.2.10:7879\"\n",
    )
    .unwrap();
    let mut p = common::MoltProcess::start(&["run", config.to_str().unwrap()], dir.path());
    let status = p
        .wait_exit(Duration::from_secs(30))
        .expect("molt refuses at once");
    assert!(!status.success());
    let out = p.output();
    assert!(
        out.contains(&format!(
            "{}:6:10: cluster.listen: 192.0.2.10:7879 is not a loopback address: set cluster.cookie_file (or cluster.cookie)",
            config.display()
        )),
        "{out}"
    );
    assert!(!out.contains("panicked"), "{out}");
}
