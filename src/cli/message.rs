//! `molt call` and `molt cast`: a message to a module of a running node,
//! as JSON, over its HTTP admin surface (issue #10 §1).

use std::process::ExitCode;

use molt::http::Route;

use super::remote::client;
use super::NodeArgs;

/// Parses the message; a text that is not JSON is a usage error (exit 2).
fn message(text: &str) -> Result<serde_json::Value, ExitCode> {
    serde_json::from_str(text).map_err(|e| {
        eprintln!(
            "molt: the message is not JSON ({e}); e.g. '{{\"Put\": {{\"key\": \"a\", \"value\": \"1\"}}}}' or '\"Dump\"'"
        );
        ExitCode::from(2)
    })
}

/// Sends a call and prints the reply as one line of JSON. Exits 1 when the
/// node refused it or the handler failed (the error on stderr).
pub async fn call(node: &NodeArgs, module: &str, text: &str, to: Route) -> ExitCode {
    let (client, msg) = match client(node).and_then(|c| Ok((c, message(text)?))) {
        Ok(v) => v,
        Err(code) => return code,
    };
    match client.call(module, &msg, to).await {
        Ok(reply) => {
            println!("{reply}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("molt: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Queues a message (not awaited) and says which instance took it.
pub async fn cast(node: &NodeArgs, module: &str, text: &str, to: Route) -> ExitCode {
    let (client, msg) = match client(node).and_then(|c| Ok((c, message(text)?))) {
        Ok(v) => v,
        Err(code) => return code,
    };
    match client.cast(module, &msg, to).await {
        Ok(sent) => {
            match &sent.key {
                Some(key) => eprintln!("molt: queued for {} key {key}", sent.module),
                None => eprintln!(
                    "molt: queued for {} instance {}",
                    sent.module, sent.instance
                ),
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("molt: {e}");
            ExitCode::FAILURE
        }
    }
}
