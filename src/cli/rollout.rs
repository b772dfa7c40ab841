//! `molt rollout NAME --library PATH`: a cluster rollout coordinated by the
//! node at `--addr` (`POST /rollout`), its steps printed as they happen
//! (its `rollout.*` events); `molt rollout --status` (`GET /rollout`).
//! Also the one-line wording of rollout and cluster events that `molt run`
//! prints.

use std::path::PathBuf;
use std::process::ExitCode;

use futures_util::StreamExt;
use molt::http::AdminEvent;
use molt::{RolloutOutcome, RolloutReport, RolloutRequest};
use serde_json::Value;

use super::remote::{client, failed};
use super::NodeArgs;

/// What `molt rollout` was asked.
#[derive(Debug, clap::Args)]
pub struct RolloutArgs {
    /// The module (not with --status).
    #[arg(required_unless_present = "status")]
    pub name: Option<String>,
    /// The library: an absolute path where every member has the same file.
    #[arg(long, required_unless_present = "status")]
    pub library: Option<PathBuf>,
    /// The canary node (default: the node at --addr).
    #[arg(long, value_name = "NODE")]
    pub canary: Option<String>,
    /// Nodes per wave after the gate (default: `rollout.wave_size`).
    #[arg(long, value_name = "N")]
    pub wave_size: Option<usize>,
    /// How long the gate watches the canary, in milliseconds (default:
    /// `rollout.gate_window_ms`).
    #[arg(long, value_name = "MS")]
    pub gate_window_ms: Option<u64>,
    /// How long each wave is watched, in milliseconds (default:
    /// `rollout.wave_watch_ms`).
    #[arg(long, value_name = "MS")]
    pub wave_watch_ms: Option<u64>,
    /// How many messages the canary must handle in the gate window, or its
    /// gate fails (default: `rollout.min_handled`; 0 for a module without
    /// traffic).
    #[arg(long, value_name = "N")]
    pub min_handled: Option<u64>,
    /// Show the rollout the node coordinates (or the last one) instead.
    #[arg(long, conflicts_with_all = ["name", "library", "canary", "wave_size", "gate_window_ms", "wave_watch_ms", "min_handled"])]
    pub status: bool,
    /// With --status: print the JSON the node answers.
    #[arg(long, requires = "status")]
    pub json: bool,
    #[command(flatten)]
    pub node: NodeArgs,
}

/// Runs `molt rollout`: exit 0 when it committed, 1 when it halted or was
/// refused, 2 for a client setup problem.
pub async fn run(args: RolloutArgs) -> ExitCode {
    let client = match client(&args.node) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if args.status {
        return match client.rollout_status().await {
            Ok(Some(r)) if args.json => {
                println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
                ExitCode::SUCCESS
            }
            Ok(Some(r)) => {
                print_report(&r);
                ExitCode::SUCCESS
            }
            Ok(None) => {
                println!("no rollout was coordinated on this node yet");
                ExitCode::SUCCESS
            }
            Err(e) => failed(e),
        };
    }
    let (Some(module), Some(library)) = (args.name, args.library) else {
        eprintln!("molt: rollout needs NAME and --library");
        return ExitCode::from(2);
    };
    let request = RolloutRequest {
        module: module.clone(),
        library,
        canary: args.canary,
        wave_size: args.wave_size,
        gate_window_ms: args.gate_window_ms,
        wave_watch_ms: args.wave_watch_ms,
        min_handled: args.min_handled,
    };
    // Follow the steps while the request runs.
    let follower = match client.events().await {
        Ok(events) => Some(tokio::spawn(show_steps(events, module))),
        Err(_) => None,
    };
    let result = client.rollout(&request).await;
    // Let the last step events arrive before printing the outcome.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    if let Some(f) = follower {
        f.abort();
    }
    match result {
        Ok(report) => {
            print_outcome(&report);
            match report.outcome {
                RolloutOutcome::Committed => ExitCode::SUCCESS,
                _ => ExitCode::FAILURE,
            }
        }
        Err(e) => failed(e),
    }
}

/// Prints the rollout events of `module` until the stream ends.
async fn show_steps(mut events: molt::http::EventsStream, module: String) {
    while let Some(Ok(AdminEvent { kind, data })) = events.next().await {
        if !kind.starts_with("rollout.") || data["module"].as_str() != Some(module.as_str()) {
            continue;
        }
        if let Some(line) = describe(&kind, &data) {
            println!("  {line}");
        }
    }
}

fn print_outcome(r: &RolloutReport) {
    match r.outcome {
        RolloutOutcome::Committed => println!(
            "committed: {} {} -> {} on every member ({} ms)",
            r.module, r.from, r.to, r.took_ms
        ),
        RolloutOutcome::Halted => {
            println!(
                "HALTED: {}",
                r.halted.as_deref().unwrap_or("(no reason given)")
            );
            println!(
                "rolled back: [{}]; not reached: [{}]",
                r.rolled_back.join(", "),
                r.unreached.join(", ")
            );
            for failed in &r.rollback_failed {
                println!("ROLLBACK FAILED on {failed}");
            }
            if !r.unreached.is_empty() {
                // Why each was not reached (no answer, gone, still busy).
                if let Some(step) = r.steps.iter().find(|s| s.step == "rollback") {
                    println!("rollback: {}", step.detail);
                }
            }
        }
        RolloutOutcome::Running => println!("still running ({} ms so far)", r.took_ms),
    }
}

fn print_report(r: &RolloutReport) {
    println!(
        "rollout {} of {} from {} ({:?}), coordinated by {}",
        r.id,
        r.module,
        r.library.display(),
        r.outcome,
        r.coordinator
    );
    println!(
        "  canary {}, waves {}",
        r.canary,
        r.waves
            .iter()
            .map(|w| format!("[{}]", w.join(", ")))
            .collect::<Vec<_>>()
            .join(" ")
    );
    // Columns as wide as their widest entry (a step may list every node).
    let step_w = r.steps.iter().map(|s| s.step.len()).max().unwrap_or(0);
    let nodes_w = r
        .steps
        .iter()
        .map(|s| s.nodes.join(",").len())
        .max()
        .unwrap_or(0);
    for s in &r.steps {
        println!(
            "  {:>7} ms  {:<step_w$}  {:<nodes_w$}  {:>6} ms  {}  {}",
            s.started_ms,
            s.step,
            s.nodes.join(","),
            s.took_ms,
            if s.ok { "ok" } else { "FAILED" },
            s.detail
        );
    }
    print_outcome(r);
}

fn list(v: &Value) -> String {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|x| match x {
                    Value::String(s) => s.clone(),
                    Value::Array(_) => format!("[{}]", list(x)),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// A rollout or cluster event in one line (`None` for other kinds).
pub fn describe(kind: &str, d: &Value) -> Option<String> {
    let s = |k: &str| d[k].as_str().unwrap_or("").to_string();
    Some(match kind {
        "rollout.started" => format!(
            "rollout {} of {} from {} ({} serving): canary {}, then waves {}",
            s("rollout"),
            s("module"),
            s("library"),
            s("from"),
            s("canary"),
            list(&d["waves"])
        ),
        "rollout.canary" => format!(
            "canary {}: {} -> {} ({} ms)",
            s("node"),
            s("from"),
            s("to"),
            d["took_ms"]
        ),
        "rollout.gate_passed" => format!("gate passed on {}: {}", s("node"), s("reading")),
        "rollout.gate_failed" => format!("gate FAILED on {}: {}", s("node"), s("reason")),
        "rollout.wave" => format!(
            "wave {} [{}] reloaded ({} ms)",
            d["wave"],
            list(&d["nodes"]),
            d["took_ms"]
        ),
        "rollout.committed" => format!(
            "rollout {} committed: {} {} on [{}] ({} ms)",
            s("rollout"),
            s("module"),
            s("to"),
            list(&d["nodes"]),
            d["took_ms"]
        ),
        "rollout.halted" => format!("rollout {} HALTED: {}", s("rollout"), s("reason")),
        "rollout.rolled_back" => {
            let mut line = format!(
                "rollout {}: rolled back on [{}], not reached [{}]",
                s("rollout"),
                list(&d["nodes"]),
                list(&d["unreached"])
            );
            if let Some(failed) = d["failed"].as_array().filter(|f| !f.is_empty()) {
                let failed: Vec<&str> = failed.iter().filter_map(|f| f.as_str()).collect();
                line.push_str(&format!("; ROLLBACK FAILED on {}", failed.join("; ")));
            }
            line
        }
        "cluster.member_joined" => format!(
            "cluster: {} joined ({}, incarnation {})",
            s("node"),
            s("address"),
            s("incarnation")
        ),
        "cluster.member_unreachable" => format!("cluster: {} is UNREACHABLE", s("node")),
        "cluster.member_reachable" => format!("cluster: {} is reachable again", s("node")),
        "cluster.member_forgotten" => format!(
            "cluster: {} forgotten (unreachable for cluster.forget_after_ms)",
            s("node")
        ),
        "cluster.member_restarted" => format!(
            "cluster: {} restarted (incarnation {})",
            s("node"),
            s("incarnation")
        ),
        _ => return None,
    })
}
