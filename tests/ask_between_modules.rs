//! A module asks another actor without blocking: the reply comes back as a
//! later message carrying the correlation the asker chose, also when either
//! side is reloaded while the request is pending, and a request never
//! answered comes back as a timeout error (issue #9 §2;
//! `docs/semantics.md` "Requests between modules").

use std::time::Duration;

use crate::common;
use common::actors::{self, on, sent, until_answers, until_held};
use common::actors_proto::{Msg, Reply, Seen};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_comes_back_with_the_askers_correlation_and_sender() {
    let node = actors::node("ask-basic", 1).await;
    let asker = on(&node, "actors", 0);
    let peer = node.address("peer", 0);
    let ask = Msg::Ask {
        to: peer.clone(),
        msg: Box::new(Msg::Me),
        correlation: 42,
    };
    assert_eq!(sent(&asker, ask).await, Ok(()));
    let answers = until_answers(&asker, 1).await;
    assert_eq!(
        answers,
        vec![Seen {
            correlation: 42,
            from: Some(peer.clone()),
            reply: Ok(Reply::Me(peer)),
        }]
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_request_is_answered_across_a_reload_of_either_side() {
    let node = actors::node("ask-reload", 1).await;
    let asker = on(&node, "actors", 0);
    let asked = on(&node, "peer", 0);
    let peer = node.address("peer", 0);
    let ask = |correlation| Msg::Ask {
        to: peer.clone(),
        msg: Box::new(Msg::Hold),
        correlation,
    };

    // The asked side holds the request open and is reloaded.
    assert_eq!(sent(&asker, ask(1)).await, Ok(()));
    until_held(&asked, 1).await;
    actors::reload(&node, "peer", None)
        .await
        .expect("peer reloads");
    assert_eq!(sent(&asked, Msg::Release { value: 10 }).await, Ok(()));
    until_answers(&asker, 1).await;

    // The asker is reloaded while its request is pending.
    assert_eq!(sent(&asker, ask(2)).await, Ok(()));
    until_held(&asked, 1).await;
    actors::reload(&node, "actors", None)
        .await
        .expect("asker reloads");
    assert_eq!(sent(&asked, Msg::Release { value: 20 }).await, Ok(()));

    let answers = until_answers(&asker, 2).await;
    let got: Vec<_> = answers
        .iter()
        .map(|s| (s.correlation, s.reply.clone()))
        .collect();
    assert_eq!(
        got,
        vec![(1, Ok(Reply::Value(10))), (2, Ok(Reply::Value(20)))],
        "each answer once, with its correlation, kept across the asker's reload"
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_never_answered_comes_back_as_a_timeout() {
    let mut config = actors::config("ask-timeout", 1);
    config.limits.call_timeout = Duration::from_millis(300);
    let node = molt::Node::start(config).await.expect("node starts");
    let asker = on(&node, "actors", 0);
    let ask = Msg::Ask {
        to: node.address("peer", 0),
        msg: Box::new(Msg::Hold),
        correlation: 9,
    };
    assert_eq!(sent(&asker, ask).await, Ok(()));
    let answers = until_answers(&asker, 1).await;
    assert_eq!(answers[0].correlation, 9);
    let err = answers[0].reply.clone().expect_err("no answer");
    assert!(err.contains("did not answer within"), "{err}");
    node.shutdown().await;
}
