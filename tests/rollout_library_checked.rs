//! docs/semantics.md "Rollouts": before its canary, a rollout checks that
//! every member has the library file (the same SHA-256; a different file is
//! refused naming the node and both hashes: unit test in
//! `runtime/src/rollout/plan.rs`); a file missing on a member refuses it,
//! naming the node and the path, and no node changes. `POST /rollout`
//! needs the admin token.

use std::time::Duration;

use crate::common;

use common::cluster::{all_reachable, ClusterNode, JOINED_WITHIN};
use common::rollout::{history, run_rollout, version, ROLLOUT};

#[test]
fn a_library_missing_on_a_member_refuses_the_rollout_and_nothing_changes() {
    let dir = common::scratch_dir();
    let f = common::fixtures();
    let mut a = ClusterNode::running(dir.path(), "a", ("fault", &f.fault, ""), &[], "", ROLLOUT);
    let mut b = ClusterNode::running(
        dir.path(),
        "b",
        ("fault", &f.fault, ""),
        &[a.listen],
        "",
        ROLLOUT,
    );
    a.start();
    b.start();
    a.await_view("a and b reachable", JOINED_WITHIN, |v| {
        all_reachable(v, &["a", "b"])
    });

    let missing = f.fault_v2.with_file_name("libfault_v9.so");
    let (status, out) = run_rollout(&a, dir.path(), &missing, &[]);
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(
        out.contains("rollout refused: node a cannot read the library")
            && out.contains(&missing.display().to_string()),
        "{out}"
    );
    for n in [&a, &b] {
        assert_eq!(version(n), "1.0.0");
        assert!(history(n).is_empty(), "{}: {:#?}", n.name, history(n));
    }

    // Changes need the token.
    let client = molt::http::AdminClient::for_addr(a.admin.unwrap(), None).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let request = molt::RolloutRequest {
        module: "fault".into(),
        library: f.fault_v2.clone(),
        ..Default::default()
    };
    let answer = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(10), client.rollout(&request)).await
    });
    let (code, body) = common::api_error(answer.expect("answered"));
    assert_eq!((code, body.kind.as_str()), (401, "unauthorized"));
    assert_eq!(version(&a), "1.0.0");
}
