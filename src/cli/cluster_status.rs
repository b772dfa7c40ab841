//! `molt status --cluster`: the cluster as a running node sees it
//! (`GET /cluster`): its members, their reachability and incarnation, and
//! each one's module versions.

use std::process::ExitCode;

use super::remote::{client, failed};
use super::NodeArgs;

/// Prints the node's cluster view (the JSON with `json`). Exits 1 when
/// the node cannot be asked or is not in a cluster.
pub async fn show(node: &NodeArgs, json: bool) -> ExitCode {
    let client = match client(node) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let cluster = match client.cluster().await {
        Ok(c) => c,
        Err(e) => return failed(e),
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&cluster).unwrap_or_default()
        );
        return ExitCode::SUCCESS;
    }
    let reachable = cluster.members.iter().filter(|m| m.reachable).count();
    println!(
        "cluster seen from {:?}: {} member(s), {reachable} reachable",
        cluster.node,
        cluster.members.len()
    );
    for m in &cluster.members {
        let state = match (m.this_node, m.reachable) {
            (true, _) => "this node".to_string(),
            (false, true) => "reachable".to_string(),
            (false, false) => "UNREACHABLE".to_string(),
        };
        let heard = m
            .last_heard_ms
            .map(|ms| format!(", heard {ms} ms ago"))
            .unwrap_or_default();
        println!(
            "  {:<12} {:<22} incarnation {}  {state}{heard}",
            m.node, m.address, m.incarnation
        );
        let modules: Vec<String> = m
            .modules
            .iter()
            .map(|v| format!("{} {} (state v{})", v.name, v.code_version, v.state_version))
            .collect();
        if !modules.is_empty() {
            println!("  {:<12} {}", "", modules.join(", "));
        }
    }
    ExitCode::SUCCESS
}
