//! An address stays valid across a reload of the sender, a reload of the
//! receiver (committed, then rolled back) and a restart in place, and every delivered message carries its
//! sender's address: the sending actor's for a module, none for an
//! application (issue #9 §1; `docs/semantics.md` "Addresses").

use crate::common;
use common::actors::{self, on, sent, until_notes};
use common::actors_proto::Msg;
use molt::Event;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_reaches_its_actor_across_reloads_of_sender_and_receiver() {
    let node = actors::node("addr-reload", 2).await;
    let sender = on(&node, "actors", 1);
    let peer = on(&node, "peer", 0);
    let to = match actors::call(&peer, Msg::Me).await {
        common::actors_proto::Reply::Me(a) => a,
        other => panic!("unexpected reply {other:?}"),
    };
    assert_eq!(
        to,
        node.address("peer", 0),
        "ctx.me() is the node's address of the actor"
    );
    let send = |text: &str| Msg::SendTo {
        to: to.clone(),
        text: text.into(),
    };

    assert_eq!(sent(&sender, send("before")).await, Ok(()));
    actors::reload(&node, "actors", None)
        .await
        .expect("sender reloads");
    assert_eq!(sent(&sender, send("after sender reload")).await, Ok(()));
    until_notes(&peer, 2).await;
    actors::reload(&node, "peer", None)
        .await
        .expect("receiver reloads");
    assert_eq!(sent(&sender, send("after receiver reload")).await, Ok(()));
    // From the application: no sender.
    node.cast_addr::<common::ActorsProto>(&to, &Msg::Note { text: "app".into() })
        .expect("the application sends to an address");

    let notes = until_notes(&peer, 4).await;
    let from = Some(node.address("actors", 1));
    assert_eq!(
        notes,
        vec![
            (from.clone(), "before".to_string()),
            (from.clone(), "after sender reload".to_string()),
            (from, "after receiver reload".to_string()),
            (None, "app".to_string()),
        ],
        "each note once, in order, with its sender (the receiver's state kept them across its reload)"
    );
    // The application calls through the address too.
    let via_address = node
        .call_addr::<common::ActorsProto>(&to, &Msg::Notes)
        .await
        .expect("the application calls an address");
    assert_eq!(via_address, common::actors_proto::Reply::Notes(notes));
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_reaches_its_actor_after_a_restart_in_place() {
    let mut config = actors::config("addr-restart", 1);
    config.limits.restart_after_failures = 2;
    let node = molt::Node::start(config).await.expect("node starts");
    let mut events = node.subscribe();
    let sender = on(&node, "actors", 0);
    let peer = on(&node, "peer", 0);
    let to = node.address("peer", 0);
    for _ in 0..2 {
        assert!(peer.call(Msg::Panic).await.is_err(), "the handler panics");
    }
    match common::next_event(&mut events, "module.restarted").await {
        Event::ModuleRestarted { name, .. } => assert_eq!(name, "peer"),
        other => panic!("unexpected event {other:?}"),
    }
    assert_eq!(
        sent(
            &sender,
            Msg::SendTo {
                to,
                text: "after restart".into()
            }
        )
        .await,
        Ok(())
    );
    let notes = until_notes(&peer, 1).await;
    assert_eq!(
        notes,
        vec![(Some(node.address("actors", 0)), "after restart".to_string())]
    );
    node.shutdown().await;
}
