//! An address is resolved on every send, also when the sending actor sent
//! to it before (the host keeps the route it resolved, issue #11 §1): after
//! the module it names is removed the send is an error, and once the module
//! is added again it reaches the new actor; after a scale-down removed the
//! instance the send is an error, and once a scale-up brings the index back
//! it reaches the new instance (`docs/semantics.md` "Addresses").

use molt::ModuleSpec;

use crate::common;
use common::actors::{self, on, sent, until_notes};
use common::actors_proto::Msg;

fn note(to: &molt_abi::Address, text: &str) -> Msg {
    Msg::SendTo {
        to: to.clone(),
        text: text.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_then_re_added_module_is_reached_again_by_its_address() {
    let node = actors::node("resolved-readd", 1).await;
    let sender = on(&node, "actors", 0);
    let peer = node.address("peer", 0);
    assert_eq!(sent(&sender, note(&peer, "first")).await, Ok(()));
    until_notes(&on(&node, "peer", 0), 1).await;

    node.admin()
        .remove_module("peer")
        .await
        .expect("remove peer");
    let err = sent(&sender, note(&peer, "gone"))
        .await
        .expect_err("peer was removed");
    assert!(err.contains("module peer is not running"), "{err}");

    node.admin()
        .add_module(ModuleSpec::new("peer", &common::fixtures().actors_peer))
        .await
        .expect("add peer again");
    assert_eq!(sent(&sender, note(&peer, "second")).await, Ok(()));
    assert_eq!(
        until_notes(&on(&node, "peer", 0), 1).await,
        vec![(Some(node.address("actors", 0)), "second".to_string())],
        "the note reached the new peer (fresh state), once"
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_removed_then_brought_back_by_scaling_is_reached_again() {
    let node = actors::node("resolved-scale", 3).await;
    let sender = on(&node, "peer", 0);
    let third = node.address("actors", 2);
    assert_eq!(sent(&sender, note(&third, "first")).await, Ok(()));
    until_notes(&on(&node, "actors", 2), 1).await;

    node.admin().scale("actors", 2).await.expect("scale down");
    let err = sent(&sender, note(&third, "gone"))
        .await
        .expect_err("instance 2 is gone");
    assert!(err.contains("no instance 2"), "{err}");

    node.admin().scale("actors", 3).await.expect("scale up");
    assert_eq!(sent(&sender, note(&third, "second")).await, Ok(()));
    assert_eq!(
        until_notes(&on(&node, "actors", 2), 1).await,
        vec![(Some(node.address("peer", 0)), "second".to_string())],
        "the note reached the new instance 2 (fresh state), once; none was forwarded \
         to another instance"
    );
    for i in 0..2 {
        assert_eq!(actors::notes(&on(&node, "actors", i)).await, vec![]);
    }
    node.shutdown().await;
}
