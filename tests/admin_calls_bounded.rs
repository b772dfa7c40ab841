//! Admin calls answer within `limits.admin_timeout` even when the
//! supervisor is busy (issue #8 item 3): `Error::Busy` in process, 503
//! `busy` over HTTP (`/healthz` too); a request the busy supervisor did
//! not take is never run later; and a reload that takes longer than the
//! bound is not cut short by it (only its start is bounded).

use crate::common;

use std::time::Duration;

use common::fault_proto::{Fault, FaultConfig, How, Point};
use molt::{Action, Error, ModuleSpec, Node, ReloadOptions};

const DEADLINE: Duration = Duration::from_secs(30);
const ADMIN_TIMEOUT: Duration = Duration::from_millis(200);

fn hang(at: Point, ms: u64, only_instance: Option<usize>) -> serde_json::Value {
    serde_json::to_value(FaultConfig {
        fault: Some(Fault {
            at,
            how: How::Hang { ms },
        }),
        only_instance,
        ..FaultConfig::default()
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_supervisor_answers_busy_within_the_bound() {
    let f = common::fixtures();
    let mut config = common::config("admin-bounded", &[]);
    config.limits.admin_timeout = ADMIN_TIMEOUT;
    // Instance 1's init hangs 3 s: scaling to 2 keeps the supervisor busy.
    let spec = ModuleSpec::new("fault", &f.fault).config(hang(Point::Init, 3000, Some(1)));
    let node = Node::start(config.module(spec)).await.expect("node starts");
    let server = molt::http::serve(&node, "127.0.0.1:0".parse().unwrap(), None)
        .await
        .expect("admin server");
    let addr = server.local_addr();

    let admin = node.admin();
    let scaling = tokio::spawn(async move { admin.scale("fault", 2).await });

    // The supervisor is busy starting instance 1: status answers Busy, in
    // about the bound (the deadline only catches a hang).
    let busy = tokio::time::timeout(DEADLINE, async {
        loop {
            match node.status().await {
                Err(e @ Error::Busy { .. }) => return e,
                Ok(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                Err(e) => panic!("unexpected {e}"),
            }
        }
    })
    .await
    .expect("status answers while the supervisor is busy");
    assert!(
        matches!(busy, Error::Busy { what: "status", waited } if waited == ADMIN_TIMEOUT),
        "{busy:?}"
    );
    let healthz = tokio::task::spawn_blocking(move || common::http_get(addr, "/healthz", DEADLINE))
        .await
        .unwrap()
        .expect("/healthz answers while the supervisor is busy");
    assert_eq!(healthz.0, 503, "{healthz:?}");
    assert!(healthz.1.contains("\"kind\":\"busy\""), "{healthz:?}");

    // A reload the busy supervisor does not take is dropped, never run.
    let refused = tokio::time::timeout(DEADLINE, node.reload("fault", ReloadOptions::default()))
        .await
        .expect("reload answers while the supervisor is busy");
    assert!(
        matches!(refused, Err(Error::Busy { what: "reload", .. })),
        "{refused:?}"
    );

    tokio::time::timeout(DEADLINE, scaling)
        .await
        .expect("the scale ends")
        .unwrap()
        .expect("scaled");
    let status = node.status().await.expect("status answers again");
    assert_eq!(status.modules[0].instances.len(), 2);
    let history = node.history().await.unwrap();
    assert!(
        history.iter().all(|e| e.action != Action::Reload),
        "the dropped reload never ran: {history:?}"
    );
    server.shutdown().await;
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_longer_than_the_bound_is_not_cut_short() {
    let f = common::fixtures();
    let mut config = common::config("admin-long-reload", &[]);
    config.limits.admin_timeout = ADMIN_TIMEOUT;
    let node = Node::start(config.module(ModuleSpec::new("fault", &f.fault)))
        .await
        .expect("node starts");
    // The new load's start takes 5x the admin bound.
    let options = ReloadOptions::library(&f.fault).with_config(hang(Point::Start, 1000, None));
    let report = tokio::time::timeout(DEADLINE, node.reload("fault", options))
        .await
        .expect("the reload ends")
        .expect("a long reload commits");
    assert_eq!(report.to, "1.0.0");
    node.shutdown().await;
}
