//! docs/semantics.md "Keyed actors": a reload of a keyed module keeps its
//! live actors serving while they vote. Each live actor only takes a
//! snapshot between two of its messages for its vote and goes on serving
//! the old code; after the commit each is switched over to the new code.
//! Here one key holds the vote open (its old code hangs in a handler, so
//! its snapshot waits): meanwhile 200 other live keys answer every call
//! with the old code. Released, the reload commits, every key answers with
//! the new code, and each key's log is exactly what was sent to it, in
//! order, across the vote and the switch-over (casts keep coming through
//! both).

use crate::common;

use common::cart::keyed_status_of;
use common::fault::{hang_until, keyed_node, log, push, tag};
use common::fault_proto::Msg;
use common::FaultProto;
use molt::ModuleHandle;

const KEYS: i64 = 200;
/// Casts per key sent while the reload finishes (through the switch-over).
const LATE: i64 = 30;

fn first(k: i64) -> i64 {
    k * 1000
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_keys_answer_with_the_old_code_during_the_vote_then_the_new_code_in_order() {
    let node = keyed_node("keyed-keeps-serving", "a").await;
    let module = node.module::<FaultProto>("fault").unwrap();
    let dir = common::scratch_dir();
    let release = dir.path().join("release");
    let hold = module.key("hold");
    hang_until(&hold, &release).await;
    let keys: Vec<ModuleHandle<FaultProto>> =
        (0..KEYS).map(|k| module.key(format!("k{k}"))).collect();
    for (k, h) in (0..).zip(&keys) {
        push(h, first(k)).await;
    }
    assert_eq!(keyed_status_of(&node, "fault").await.live, KEYS as u64 + 1);

    let mut events = node.subscribe();
    let reload = common::fault::reload_to_v2_in_background(&node);
    // The template instance is migrating: every live key was asked for its
    // vote's snapshot before that.
    common::next_event(&mut events, "module.published").await;
    for (k, h) in (0..).zip(&keys) {
        assert_eq!(tag(h).await, "a", "key k{k} is served by the old code");
        push(h, first(k) + 1).await;
    }
    assert!(
        !reload.is_finished(),
        "the vote is still under way: the held key has not taken its snapshot"
    );

    let casts = {
        let keys = keys.clone();
        tokio::spawn(async move {
            for seq in 2..2 + LATE {
                for (k, h) in (0..).zip(&keys) {
                    h.cast(Msg::Push(first(k) + seq)).expect("cast");
                }
                tokio::task::yield_now().await;
            }
        })
    };
    std::fs::write(&release, b"").expect("release the held key");
    let report = reload
        .await
        .expect("the reload task")
        .expect("every live key voted ok: the reload commits");
    casts.await.expect("the casts");
    assert_eq!(
        report.pauses_us.len(),
        KEYS as usize + 2,
        "the template instance and every live key (the held one too) switched"
    );
    assert!(report.switch_failures.is_empty(), "{report:?}");
    for (k, h) in (0..).zip(&keys) {
        assert_eq!(tag(h).await, "b", "key k{k} is served by the new code");
        let want: Vec<i64> = (0..2 + LATE).map(|seq| first(k) + seq).collect();
        assert_eq!(log(h).await, want, "key k{k}: every message once, in order");
    }
    assert_eq!(log(&hold).await, vec![0], "the held key's push, once");
    node.shutdown().await;
}
