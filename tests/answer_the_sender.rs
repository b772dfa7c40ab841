//! A module answers the sender of the message it handles with
//! `ctx.cast_sender` (issue #11 §1): the answer reaches the sending actor,
//! which sees the answering actor as its sender, across reloads of either
//! side; a message without a sender (from an application) makes it a clear
//! error and the module keeps serving (`docs/semantics.md` "Addresses").

use crate::common;
use common::actors::{self, call, on, sent, until_notes};
use common::actors_proto::{Msg, Reply};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_answer_reaches_the_sender_across_reloads_of_either_side() {
    let node = actors::node("answer-sender", 2).await;
    let asker = on(&node, "actors", 1);
    let peer = node.address("peer", 0);
    let ask = |text: &str| Msg::Cast {
        to: peer.clone(),
        msg: Box::new(Msg::NoteBack { text: text.into() }),
    };

    assert_eq!(sent(&asker, ask("first")).await, Ok(()));
    until_notes(&asker, 1).await;
    actors::reload(&node, "peer", None)
        .await
        .expect("the answering side reloads");
    assert_eq!(sent(&asker, ask("after its reload")).await, Ok(()));
    until_notes(&asker, 2).await;
    actors::reload(&node, "actors", None)
        .await
        .expect("the asking side reloads");
    assert_eq!(sent(&asker, ask("after the asker's reload")).await, Ok(()));

    let from = Some(peer);
    assert_eq!(
        until_notes(&asker, 3).await,
        vec![
            (from.clone(), "first".to_string()),
            (from.clone(), "after its reload".to_string()),
            (from, "after the asker's reload".to_string()),
        ],
        "each answer once, in order, at the instance that asked, from the actor that answered"
    );
    assert_eq!(
        actors::notes(&on(&node, "actors", 0)).await,
        vec![],
        "the other instance of the asking module got nothing"
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_without_a_sender_cannot_be_answered_and_the_module_keeps_serving() {
    let node = actors::node("answer-no-sender", 1).await;
    let peer = on(&node, "peer", 0);
    let refused = sent(
        &peer,
        Msg::NoteBack {
            text: "to nobody".into(),
        },
    )
    .await
    .expect_err("a message from an application has no sender to answer");
    assert!(
        refused.contains("has no sender to answer")
            && refused.contains("application handle, HTTP or the CLI"),
        "the error says why: {refused}"
    );
    assert_eq!(
        call(&peer, Msg::Notes).await,
        Reply::Notes(vec![]),
        "the module keeps serving"
    );
    node.shutdown().await;
}
