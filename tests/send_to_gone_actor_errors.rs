//! Sending to an actor that does not exist is an error the sender sees,
//! never a wrap or a silent drop: an instance index out of range (also
//! after a scale-down), a removed module, a key of a module that is not
//! keyed, another node (issue #9 §1; `docs/semantics.md` "Addresses").

use crate::common;
use common::actors::{self, on, sent};
use common::actors_proto::{Msg, Reply};
use molt::{Address, CallError};

fn note(to: &Address) -> Msg {
    Msg::SendTo {
        to: to.clone(),
        text: "hi".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_out_of_range_is_an_error_naming_module_index_and_count() {
    let node = actors::node("gone-index", 2).await;
    let a0 = on(&node, "actors", 0);
    let err = sent(
        &a0,
        Msg::SendToIndex {
            module: "actors".into(),
            index: 2,
            text: "hi".into(),
        },
    )
    .await
    .expect_err("instance 2 of 2 does not exist");
    assert!(
        err.contains("actors") && err.contains("2 instance(s)") && err.contains("no instance 2"),
        "{err}"
    );
    // In range: reaches exactly that instance.
    assert_eq!(
        sent(
            &a0,
            Msg::SendToIndex {
                module: "actors".into(),
                index: 1,
                text: "one".into()
            }
        )
        .await,
        Ok(())
    );
    actors::until_notes(&on(&node, "actors", 1), 1).await;
    assert!(actors::notes(&a0).await.is_empty());

    // ctx.instances: its own module, another one, an unknown one.
    let count = |module: &str| {
        let a0 = a0.clone();
        let module = module.to_string();
        async move {
            match actors::call(&a0, Msg::Instances { module }).await {
                Reply::Count(c) => c,
                other => panic!("unexpected reply {other:?}"),
            }
        }
    };
    assert_eq!(count("actors").await, Ok(2));
    assert_eq!(count("peer").await, Ok(1));
    assert!(count("nobody").await.unwrap_err().contains("nobody"));
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_removed_by_a_scale_down_or_a_removed_module_is_an_error() {
    let node = actors::node("gone-scale", 3).await;
    let peer = on(&node, "peer", 0);
    let third = node.address("actors", 2);
    assert_eq!(sent(&peer, note(&third)).await, Ok(()));
    actors::until_notes(&on(&node, "actors", 2), 1).await;

    node.admin().scale("actors", 2).await.expect("scale down");
    let err = sent(&peer, note(&third))
        .await
        .expect_err("instance 2 is gone");
    assert!(
        err.contains("no instance 2") && err.contains("2 instance(s)"),
        "{err}"
    );
    match node.cast_addr::<common::ActorsProto>(&third, &Msg::Note { text: "x".into() }) {
        Err(CallError::NoActor(why)) => assert!(why.contains("no instance 2"), "{why}"),
        other => panic!("the application's send must fail too: {other:?}"),
    }

    node.admin()
        .remove_module("peer")
        .await
        .expect("remove peer");
    let a0 = on(&node, "actors", 0);
    let err = sent(&a0, note(&node.address("peer", 0)))
        .await
        .expect_err("peer is removed");
    assert!(err.contains("module peer is not running"), "{err}");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_of_a_module_that_is_not_keyed_or_another_node_is_an_error() {
    let node = actors::node("gone-key", 1).await;
    let a0 = on(&node, "actors", 0);
    let err = sent(&a0, note(&Address::key(node.name(), "peer", "k1")))
        .await
        .expect_err("peer is not keyed");
    assert!(err.contains("not keyed"), "{err}");
    let err = sent(&a0, note(&Address::instance("elsewhere", "peer", 0)))
        .await
        .expect_err("another node");
    assert!(err.contains("elsewhere"), "{err}");
    assert!(actors::notes(&on(&node, "peer", 0)).await.is_empty());
    node.shutdown().await;
}
