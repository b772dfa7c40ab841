//! docs/semantics.md "Keyed actors": a key whose state changes after its
//! vote into one the new code refuses is the one case a committed keyed
//! reload does not switch over. The reload stays committed; the key ends
//! passivated with exactly the snapshot its old actor took (reported in the
//! reload's `switch_failures`, a `keyed.switch_failed` event and the history
//! entry's `keys_kept_passivated`); its calls fail with the cause; after a
//! rollback to the old code it activates with that exact state.

use crate::common;

use common::cart::keyed_status_of;
use common::fault::{hang_until, keyed_node, log, push, tag};
use common::fault_proto::{Msg, REFUSED_BY_V2};
use common::FaultProto;
use molt::{Event, Outcome};

const REFUSAL: &str = "refuses a log holding -666";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_refused_after_its_vote_ends_passivated_with_its_exact_state() {
    let node = keyed_node("keyed-switch-failure", "a").await;
    let module = node.module::<FaultProto>("fault").unwrap();
    let dir = common::scratch_dir();
    let release = dir.path().join("release");
    // Holds the vote open until `release` exists.
    let hold = module.key("hold");
    hang_until(&hold, &release).await;
    let late = module.key("late");
    push(&late, 5).await;
    let other = module.key("other");
    push(&other, 7).await;

    let mut events = node.subscribe();
    let reload = common::fault::reload_to_v2_in_background(&node);
    // Every live key was asked for its vote's snapshot before the template
    // instance migrates: this push comes after `late`'s vote.
    common::next_event(&mut events, "module.published").await;
    push(&late, REFUSED_BY_V2).await;
    std::fs::write(&release, b"").expect("release the held key");

    let report = reload
        .await
        .expect("the reload task")
        .expect("every key voted ok: the reload commits");
    assert_eq!(report.to, "2.0.0");
    let [failed] = report.switch_failures.as_slice() else {
        panic!("one key not switched: {report:?}");
    };
    assert_eq!(failed.key, "late");
    assert!(failed.passivated, "{failed:?}");
    assert!(failed.error.contains(REFUSAL), "{failed:?}");
    match common::next_event(&mut events, "keyed.switch_failed").await {
        Event::KeyedSwitchFailed {
            module,
            key,
            error,
            passivated,
        } => {
            assert_eq!((module.as_str(), key.as_str()), ("fault", "late"));
            assert!(passivated && error.contains(REFUSAL), "{error}");
        }
        other => panic!("{other:?}"),
    }
    let history = node.admin().history().await.expect("history");
    let entry = history.last().expect("the reload's entry");
    assert_eq!(entry.outcome, Outcome::Committed);
    assert_eq!(entry.keys_kept_passivated, 1);

    // The others switched; `late` is passivated, and its next call fails
    // with the cause (its snapshot stays).
    assert_eq!(tag(&other).await, "b");
    assert_eq!(log(&other).await, vec![7]);
    assert!(keyed_status_of(&node, "fault").await.passivated >= 1);
    let err = late
        .call(Msg::Get)
        .await
        .expect_err("the new code refuses its state");
    assert!(err.to_string().contains(REFUSAL), "{err}");

    // Back on the old code, it activates with exactly that state.
    node.admin()
        .rollback("fault", false)
        .await
        .expect("back to 1.0.0");
    assert_eq!(log(&late).await, vec![5, REFUSED_BY_V2]);
    assert_eq!(tag(&late).await, "a");
    assert_eq!(log(&other).await, vec![7]);
    node.shutdown().await;
}
