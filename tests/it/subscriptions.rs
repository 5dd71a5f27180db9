//! `inventoryChanged` over WebSocket (graphql-transport-ws): changes arrive as they commit,
//! through this instance or another, and only a token opens the connection.

use crate::support::{Backend, TestApp};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub async fn connect(address: &str, token: &str) -> Socket {
    let url = format!("{}/graphql/ws", address.replace("http://", "ws://"));
    let mut request = url.into_client_request().expect("request");
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().expect("header"),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("connect");
    socket
        .send(Message::text(json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {token}") } }).to_string()))
        .await
        .expect("init");
    socket
}

/// The next JSON message, bounded so a missing push fails instead of hanging.
pub async fn next(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("a message within 5 s")
            .expect("open")
            .expect("message");
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).expect("json");
        }
    }
}

async fn subscribe(socket: &mut Socket, model: &str) {
    assert_eq!(next(socket).await["type"], "connection_ack");
    socket
        .send(Message::text(json!({ "id": "1", "type": "subscribe", "payload": { "query": "subscription($m: String!) { inventoryChanged(model: $m) { revision entity present missed } }", "variables": { "m": model } } }).to_string()))
        .await
        .expect("subscribe");
}

const DECLARE: &str = "mutation($i: ConsumerInputGql!) { declareConsumer(input: $i) { created } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_to_a_model_are_pushed_from_either_instance_and_others_are_not() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let other = app.spawn_sibling().await;
    let owner = crate::artifacts::model_with_version(&app).await;
    app.create_model(&owner, "unrelated", "payments-ml").await;
    app.gql_ok(&owner, "mutation { createVersion(input: { model: \"unrelated\", version: \"1.0.0\" }) { version } }", json!({})).await;
    for name in ["checkout", "web"] {
        app.gql_ok(&owner, DECLARE, json!({ "i": { "name": name, "kind": "SERVICE", "ownerTeam": "payments-ml", "environment": "prod" } })).await;
    }
    // The other instance catches up first, so only what follows is news to it.
    let head = app
        .services
        .inventory()
        .refresh_inventory()
        .await
        .expect("refresh");
    let mut caught_up = other.services.inventory().inventory_revision();
    tokio::time::timeout(Duration::from_secs(2), caught_up.wait_for(|r| *r >= head))
        .await
        .expect("caught up")
        .expect("open");

    // Subscribed on the other instance; changes are made through this one.
    let mut socket = connect(&other.address, &owner).await;
    subscribe(&mut socket, "fraud-scorer").await;
    tokio::time::timeout(Duration::from_secs(2), async {
        while other.services.inventory().inventory_subscribers() == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the subscription is listening");
    // A change to another model sends nothing; the next one, to ours, arrives first.
    let use_ = "mutation($c: String!, $m: String!) { declareUse(consumer: $c, model: $m, version: \"1.0.0\") { kind } }";
    app.gql_ok(&owner, use_, json!({ "c": "checkout", "m": "unrelated" }))
        .await;
    app.gql_ok(
        &owner,
        use_,
        json!({ "c": "checkout", "m": "fraud-scorer" }),
    )
    .await;
    let pushed = next(&mut socket).await;
    assert_eq!(pushed["type"], "next", "{pushed}");
    let change = &pushed["payload"]["data"]["inventoryChanged"];
    assert_eq!(change["entity"], "EDGE");
    assert_eq!(change["present"], true);
    assert_eq!(change["missed"], 0);
    let revision = change["revision"].as_i64().expect("revision");

    // A transitive change counts too: web now reaches fraud-scorer through checkout.
    app.gql_ok(
        &owner,
        "mutation { declareDependency(consumer: \"web\", dependsOn: \"checkout\") { kind } }",
        json!({}),
    )
    .await;
    let pushed = next(&mut socket).await;
    assert!(
        pushed["payload"]["data"]["inventoryChanged"]["revision"]
            .as_i64()
            .expect("revision")
            > revision
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_without_a_valid_token_is_closed() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let mut socket = connect(&app.address, "sunset_not-a-token").await;
    let outcome = tokio::time::timeout(Duration::from_secs(5), socket.next())
        .await
        .expect("an answer");
    match outcome {
        Some(Ok(Message::Close(Some(frame)))) => assert!(
            frame.reason.contains("unknown or revoked token"),
            "{frame:?}"
        ),
        other => panic!("expected the connection to be closed, got {other:?}"),
    }
}

/// Waits (bounded) until the server closes `socket`; true when it did.
async fn closed_by_server(socket: &mut Socket, within: Duration) -> bool {
    tokio::time::timeout(within, async {
        loop {
            match socket.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// Sockets are bounded: one that never sends `connection_init` is closed after
/// `graphql.connection_init_timeout_secs`, an oversized message closes it, and a
/// subscription ends when its token is revoked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_close_without_init_on_oversized_messages_and_when_the_token_is_revoked() {
    let app = TestApp::spawn_with(
        crate::support::Backend::Sqlite,
        std::sync::Arc::new(sunset::clock::SystemClock),
        |s| s.graphql.connection_init_timeout_secs = 1,
    )
    .await;
    let url = format!("{}/graphql/ws", app.address.replace("http://", "ws://"));
    let mut request = url.clone().into_client_request().expect("request");
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().expect("header"),
    );
    let (mut silent, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("connect");
    assert!(
        closed_by_server(&mut silent, Duration::from_secs(5)).await,
        "no init: closed"
    );

    let reader = app.token("watcher", "reader", None).await;
    let mut big = connect(&app.address, &reader).await;
    assert_eq!(next(&mut big).await["type"], "connection_ack");
    let huge = json!({ "id": "1", "type": "subscribe", "payload": { "query": format!("subscription {{ inventoryChanged(model: \"{}\") {{ revision }} }}", "m".repeat(128 * 1024)) } });
    let _ = big.send(Message::text(huge.to_string())).await;
    assert!(
        closed_by_server(&mut big, Duration::from_secs(5)).await,
        "oversized: closed"
    );

    let mut socket = connect(&app.address, &reader).await;
    subscribe(&mut socket, "fraud").await;
    app.gql_ok(
        &app.admin,
        "mutation { revokeApiToken(name: \"watcher\") { revokedAt } }",
        json!({}),
    )
    .await;
    assert!(
        closed_by_server(&mut socket, Duration::from_secs(5)).await,
        "revoked: closed"
    );
}
