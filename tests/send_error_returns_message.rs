//! A send that fails hands the message back (issue #9 §5, as tokio's
//! `SendError<T>`): a `cast` or `call` through a handle whose module is no
//! longer running returns `SendError { error: NotRunning, message: Some(msg) }`
//! with the very message, so the caller still owns it; a call that was
//! delivered and failed afterwards (its handler failed) hands nothing back,
//! since the message may have been handled.

use crate::common;

use kv_proto::{Msg, Proto as KvProto};
use molt::{CallError, ErrorKind, ModuleSpec, SendError};

fn put(key: &str) -> Msg {
    Msg::Put {
        key: key.into(),
        value: "v".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_to_a_removed_module_hand_the_message_back() {
    let f = common::fixtures();
    let node = common::start("send-error-removed", ModuleSpec::new("kv", &f.kv)).await;
    let kv = node.module::<KvProto>("kv").expect("kv runs");
    kv.call(put("before")).await.expect("kv answers");
    node.admin()
        .remove_module("kv")
        .await
        .expect("kv is removed");

    let err = kv.cast(put("cast")).expect_err("kv is gone");
    assert!(
        matches!(err.error, CallError::NotRunning(ref m) if m == "kv"),
        "{err:?}"
    );
    assert_eq!(err.into_message(), Some(put("cast")), "the cast's message");

    let err = kv.call(put("call")).await.expect_err("kv is gone");
    assert_eq!(
        err,
        SendError {
            error: CallError::NotRunning("kv".into()),
            message: Some(put("call")),
        }
    );
    // Into the handle's plain error type, for callers that do not want it.
    let plain: CallError = err.into();
    assert_eq!(plain, CallError::NotRunning("kv".into()));
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivered_call_that_fails_hands_nothing_back() {
    let f = common::fixtures();
    let node = common::start("send-error-delivered", ModuleSpec::new("kv", &f.kv)).await;
    let kv = node.module::<KvProto>("kv").expect("kv runs");
    let err = kv
        .call(Msg::Fail {
            reason: "refused on purpose".into(),
        })
        .await
        .expect_err("the handler fails");
    assert!(
        matches!(
            err.error,
            CallError::Handler {
                kind: ErrorKind::Failed,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.message.is_none(),
        "a delivered message is not handed back"
    );
    node.shutdown().await;
}
