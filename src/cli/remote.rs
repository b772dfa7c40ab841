//! The commands that talk to a running node over its HTTP admin surface:
//! status, reload, rollback, history, events, config check --node.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use molt::history::{Action as Attempt, HistoryEntry, Outcome, Trigger};
use molt::http::{local_token_path, AdminClient, AdminEvent, ClientError};

use super::NodeArgs;

pub(super) fn client(node: &NodeArgs) -> Result<AdminClient, ExitCode> {
    let token = node.token.clone().or_else(|| {
        local_token_path(node.addr)
            .and_then(|p| std::fs::read_to_string(p).ok())
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
    });
    AdminClient::for_addr(node.addr, token).map_err(|e| {
        eprintln!("molt: {e}");
        ExitCode::from(2)
    })
}

pub(super) fn failed(e: ClientError) -> ExitCode {
    eprintln!("molt: {e}");
    ExitCode::FAILURE
}

/// ANSI color when stdout is a terminal.
fn paint(code: &str, text: &str) -> String {
    if std::io::stdout().is_terminal() {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

pub async fn status(node: &NodeArgs, json: bool) -> ExitCode {
    let client = match client(node) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let status = match client.status().await {
        Ok(s) => s,
        Err(e) => return failed(e),
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&status).unwrap_or_default()
        );
        return ExitCode::SUCCESS;
    }
    println!(
        "node {:?}: up {} s, {} module(s), {} library copies mapped",
        status.node,
        status.uptime_s,
        status.modules.len(),
        status.libraries_mapped
    );
    for m in &status.modules {
        let depth: u64 = m.instances.iter().map(|i| i.mailbox_depth).sum();
        let handled: u64 = m.instances.iter().map(|i| i.handled).sum();
        let failed: u64 = m.instances.iter().map(|i| i.failed).sum();
        // A keyed module's one instance is its template: its actors are
        // what serves (their counts are on the next lines).
        let serving = match &m.keyed {
            Some(k) => format!(
                "keyed: {} live, {} passivated  mailbox {}",
                k.live, k.passivated, k.mailbox_depth
            ),
            None => format!(
                "{} instance(s)  mailbox {depth}  handled {handled}  failed {failed}",
                m.instances.len()
            ),
        };
        println!(
            "  {:<10} {} (state v{}){}  {serving}{}",
            m.name,
            m.code_version,
            m.state_version,
            m.previous
                .as_ref()
                .map(|p| format!(", previous {p}"))
                .unwrap_or_default(),
            if m.reloading { "  (reloading)" } else { "" }
        );
        println!(
            "  {:<10} library {} (from {}), versions kept [{}]",
            "",
            m.library.display(),
            m.source,
            m.versions.join(", ")
        );
        if let Some(k) = &m.keyed {
            println!(
                "  {:<10} keyed actors: max_live {}, idle {} ms; {} activations, {} passivations",
                "", k.max_live, k.idle_passivate_ms, k.activations, k.passivations
            );
        }
    }
    ExitCode::SUCCESS
}

/// `molt status NAME`: the module's status and its handling figures.
pub async fn module_status(node: &NodeArgs, name: &str, json: bool) -> ExitCode {
    let client = match client(node) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let (module, figures) = match (client.module(name).await, client.figures(name).await) {
        (Ok(m), Ok(f)) => (m, f),
        (Err(e), _) | (_, Err(e)) => return failed(e),
    };
    if json {
        let both = serde_json::json!({ "module": module, "figures": figures });
        println!(
            "{}",
            serde_json::to_string_pretty(&both).unwrap_or_default()
        );
        return ExitCode::SUCCESS;
    }
    let handled: u64 = module.instances.iter().map(|i| i.handled).sum();
    let depth: u64 = module.instances.iter().map(|i| i.mailbox_depth).sum();
    println!(
        "{} {} (state v{}), {} instance(s), mailbox {depth}, handled {handled}{}",
        module.name,
        module.code_version,
        module.state_version,
        module.instances.len(),
        if module.reloading {
            "  (reloading)"
        } else {
            ""
        }
    );
    println!("  {}", figures_line("serving", &figures.current));
    if let Some(previous) = &figures.previous {
        println!("  {}", figures_line("before", previous));
    }
    println!(
        "  (latency sampled: one message in {} per instance)",
        figures.sample_every
    );
    ExitCode::SUCCESS
}

/// One version's figures on one line: error rate and p99 first (what a
/// rollout's gate compares).
fn figures_line(what: &str, v: &molt::VersionFigures) -> String {
    let f = &v.figures;
    let age = v
        .until_unix_ms
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64)
        })
        .saturating_sub(v.since_unix_ms);
    format!(
        "{what:<8} {:<10} errors {:.2} % ({} err, {} panics of {})  p99 {}  p50 {}  max {}  restarts {}  over {:.1} s",
        v.code_version,
        v.error_rate * 100.0,
        f.errors,
        f.panics,
        f.handled,
        show_ns(v.latency.p99_ns),
        show_ns(v.latency.p50_ns),
        show_ns(v.latency.max_ns),
        f.restarts,
        age as f64 / 1000.0
    )
}

/// A duration in nanoseconds, in the unit that reads best (two or three
/// significant digits).
fn show_ns(ns: u64) -> String {
    let scaled = |unit: f64, name: &str| {
        let v = ns as f64 / unit;
        if v < 10.0 {
            format!("{v:.1} {name}")
        } else {
            format!("{v:.0} {name}")
        }
    };
    match ns {
        0 => "-".to_string(),
        1..=999 => format!("{ns} ns"),
        1_000..=999_999 => scaled(1e3, "µs"),
        1_000_000..=999_999_999 => scaled(1e6, "ms"),
        _ => scaled(1e9, "s"),
    }
}

/// Prints the phase events of `module` until the stream ends.
async fn show_phases(mut events: molt::http::EventsStream, module: String) {
    while let Some(Ok(AdminEvent { kind, data })) = events.next().await {
        if data["name"].as_str() != Some(module.as_str()) || kind != "module.reload_phase" {
            continue;
        }
        let instance = data["instance"]
            .as_u64()
            .map(|i| format!(" #{i}"))
            .unwrap_or_default();
        let mark = if data["ok"].as_bool() == Some(true) {
            paint("32", "ok")
        } else {
            paint("31", "FAILED")
        };
        println!(
            "  {:<9}{instance:<4} {mark} ({} µs)",
            data["phase"].as_str().unwrap_or("?"),
            data["took_us"]
        );
    }
}

/// The pause line of a committed reload: one instance's pause, or for
/// several (a pool, a keyed module's live actors) the longest and the
/// median, so a keyed module's per-actor pause shows beside its template's.
fn pause_summary(pauses_us: &[u64]) -> String {
    let mut sorted = pauses_us.to_vec();
    sorted.sort_unstable();
    match sorted.as_slice() {
        [] => "pause 0 µs".to_string(),
        [one] => format!("pause {one} µs"),
        all => format!(
            "pause {} µs at most, median {} µs over {} actors",
            all[all.len() - 1],
            all[all.len() / 2],
            all.len()
        ),
    }
}

async fn reload_or_rollback(node: &NodeArgs, name: &str, action: Action) -> ExitCode {
    let client = match client(node) {
        Ok(c) => c,
        Err(code) => return code,
    };
    // Follow the phases while the request runs.
    let follower = match client.events_with(true).await {
        Ok(events) => Some(tokio::spawn(show_phases(events, name.to_string()))),
        Err(_) => None,
    };
    let result = match action {
        Action::Reload(library, force) => client.reload_with(name, library, force).await,
        Action::Rollback(to, reset) => client.rollback_to(name, to.as_deref(), reset).await,
    };
    // Let the last phase events arrive before printing the outcome.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    if let Some(f) = follower {
        f.abort();
    }
    match result {
        Ok(report) => {
            let pause = pause_summary(&report.pauses_us);
            println!(
                "{} {name}: {} -> {} (state v{}), {pause}",
                paint("32", "committed"),
                report.from,
                report.to,
                report.state_version
            );
            if let Some(r) = &report.restored {
                println!(
                    "{} instance(s) {:?} started from their {} ({} ms old): the old code could not hand over its state; {} message(s) stuck behind a hang were not handled",
                    paint("33", "forced:"),
                    r.instances,
                    r.from,
                    r.state_age_ms,
                    r.stuck_messages
                );
            }
            for f in &report.switch_failures {
                let kept = if f.passivated {
                    "kept passivated with its state"
                } else {
                    "its old actor serves on"
                };
                println!(
                    "{} key {:?} was not switched to the new code ({kept}): {}",
                    paint("33", "keyed:"),
                    f.key,
                    f.error
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("{} {name}: {e}", paint("31", "failed"));
            ExitCode::FAILURE
        }
    }
}

enum Action {
    Reload(Option<PathBuf>, bool),
    Rollback(Option<String>, bool),
}

pub async fn reload(
    node: &NodeArgs,
    name: &str,
    library: Option<PathBuf>,
    force: bool,
) -> ExitCode {
    reload_or_rollback(node, name, Action::Reload(library, force)).await
}

/// `molt reload NAME --dry-run`: prints what the reload would do; exit 0
/// when it would commit, 1 otherwise (nothing changed either way).
pub async fn rehearse(node: &NodeArgs, name: &str, library: Option<PathBuf>) -> ExitCode {
    let client = match client(node) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let r = match client.rehearse(name, library).await {
        Ok(r) => r,
        // The new library was refused in prepare: what the reload would do.
        Err(e @ ClientError::Api { status: 422, .. }) => {
            println!("{} {name}: {e}", paint("31", "would fail"));
            println!("nothing was changed");
            return ExitCode::FAILURE;
        }
        // No rehearsal ran (the node is not reachable, the token is wrong,
        // the module is unknown or reloading): say so, not "would fail".
        Err(e) => {
            eprintln!("molt: no dry run of {name}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let verdict = if r.would_commit {
        paint("32", "would commit")
    } else {
        paint("31", "would roll back")
    };
    let downgrade = if r.to_state_version < r.from_state_version {
        " (the serving code would down-migrate)"
    } else {
        ""
    };
    println!(
        "dry run of {name}: {} -> {} (state v{} -> v{}){downgrade}: {verdict}, expected pause {} µs, load {} µs",
        r.from, r.to, r.from_state_version, r.to_state_version, r.expected_pause_us, r.load_us
    );
    for i in &r.instances {
        let sizes = match i.state_bytes_after {
            Some(after) => format!("state {} -> {after} bytes", i.state_bytes_before),
            None => format!("state {} bytes", i.state_bytes_before),
        };
        if i.ok {
            println!(
                "  #{:<3} {}  {sizes}, pause {} µs (snapshot {}, migrate {}, verify {})",
                i.instance,
                paint("32", "ok"),
                i.expected_pause_us,
                i.snapshot_us,
                i.migrate_us,
                i.verify_us
            );
        } else {
            println!(
                "  #{:<3} {} in {}: {}  ({sizes})",
                i.instance,
                paint("31", "FAILED"),
                i.phase.map_or("?", molt::reload::Phase::as_str),
                i.error.as_deref().unwrap_or("")
            );
        }
    }
    println!("nothing was changed: {name} {} keeps serving", r.from);
    if r.would_commit {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

pub async fn rollback(
    node: &NodeArgs,
    name: &str,
    to: Option<String>,
    reset_state: bool,
) -> ExitCode {
    reload_or_rollback(node, name, Action::Rollback(to, reset_state)).await
}

pub async fn history(node: &NodeArgs, json: bool) -> ExitCode {
    let client = match client(node) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let history = match client.history().await {
        Ok(h) => h,
        Err(e) => return failed(e),
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&history).unwrap_or_default()
        );
        return ExitCode::SUCCESS;
    }
    if history.is_empty() {
        println!(
            "no reloads, rollbacks, config changes or restarts yet on the node at {}",
            node.addr
        );
        return ExitCode::SUCCESS;
    }
    for h in &history {
        println!("{}", history_line(h));
    }
    ExitCode::SUCCESS
}

/// One history entry in words, its time in the local time zone:
/// `#3 2026-11-29 23:01:02 kv: reload by the molt CLI / HTTP, 1.0.0 -> 2.0.0: committed (paused 120 µs)`.
fn history_line(h: &HistoryEntry) -> String {
    let at = chrono::DateTime::<chrono::Local>::from(h.at).format("%Y-%m-%d %H:%M:%S");
    let what = if h.module.is_empty() {
        "(config)"
    } else {
        &h.module
    };
    let action = match h.action {
        Attempt::Reload => "reload",
        Attempt::Rollback => "rollback",
        Attempt::ApplyConfig => "config change",
        Attempt::Restart => "restart",
        Attempt::Rollout => "cluster rollout",
    };
    let trigger = match h.trigger {
        Trigger::Admin => "the admin API",
        Trigger::Http => "the molt CLI / HTTP",
        Trigger::Watch => "the file watcher",
        Trigger::Config => "a config change",
        Trigger::Dev => "dev mode",
        Trigger::Node => "the node",
        Trigger::Rollout => "a cluster rollout",
    };
    let versions = match (h.from.is_empty(), h.to.is_empty()) {
        (false, false) => format!(", {} -> {}", h.from, h.to),
        (false, true) => format!(", at {}", h.from),
        (true, false) => format!(", to {}", h.to),
        (true, true) => String::new(),
    };
    let outcome = match h.outcome {
        Outcome::Committed => paint("32", "committed"),
        Outcome::RolledBack => paint("31", "rolled back (the old code kept serving)"),
        Outcome::Rejected => paint("31", "rejected (nothing was touched)"),
        Outcome::Refused => paint("33", "refused"),
    };
    let pause = if h.pause_us > 0 {
        format!(" (paused {} µs)", h.pause_us)
    } else {
        String::new()
    };
    let kept = if h.keys_kept_passivated > 0 {
        format!(", {} key(s) kept passivated", h.keys_kept_passivated)
    } else {
        String::new()
    };
    format!(
        "#{:<4} {at} {what}: {action} by {trigger}{versions}: {outcome}{kept}{pause}{}{}",
        h.id,
        h.phase
            .as_ref()
            .map(|p| format!(" in {p}"))
            .unwrap_or_default(),
        h.error
            .as_ref()
            .map(|e| format!(": {e}"))
            .unwrap_or_default(),
    )
}

/// How often `molt events` tries again while no node answers.
const RETRY_EVERY: Duration = Duration::from_millis(250);

/// Follows the node's events; a node that does not answer yet (it is
/// starting) is waited for, up to `wait`, saying so.
pub async fn events(node: &NodeArgs, json: bool, wait: Duration) -> ExitCode {
    let deadline = Instant::now() + wait;
    let mut waiting = false;
    let (client, mut events) = loop {
        // A new client each time: a starting node writes its token file.
        let client = match client(node) {
            Ok(c) => c,
            Err(code) => return code,
        };
        match client.events().await {
            Ok(e) => break (client, e),
            Err(ClientError::Transport { .. }) if Instant::now() < deadline => {
                if !waiting {
                    eprintln!(
                        "molt: no node answers at {} yet: waiting for it (up to {} s; Ctrl-C stops)",
                        node.addr,
                        wait.as_secs()
                    );
                    waiting = true;
                }
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => return ExitCode::SUCCESS,
                    () = tokio::time::sleep(RETRY_EVERY) => {}
                }
            }
            Err(e) => {
                if waiting {
                    eprintln!(
                        "molt: no node came up at {} within {} s",
                        node.addr,
                        wait.as_secs()
                    );
                }
                return failed(e);
            }
        }
    };
    eprintln!(
        "molt: following the events of {} (Ctrl-C stops)",
        client.base()
    );
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return ExitCode::SUCCESS,
            next = events.next() => match next {
                Some(Ok(AdminEvent { kind, data })) => {
                    if json {
                        println!("{data}");
                    } else {
                        let color = match kind.as_str() {
                            "module.reloaded" | "config.applied" | "module.loaded"
                            | "cluster.member_joined" | "cluster.member_reachable" => "32",
                            "module.reload_failed" | "config.rejected"
                            | "cluster.member_unreachable"
                            | "cluster.messages_undelivered" => "31",
                            "module.rolled_back" | "module.restarted"
                            | "cluster.member_restarted" | "cluster.member_forgotten" => "33",
                            _ => "2",
                        };
                        let mut fields = data.as_object().cloned().unwrap_or_default();
                        fields.remove("kind");
                        let rest: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
                        println!("{} {}", paint(color, &kind), rest.join(" "));
                    }
                }
                Some(Err(e)) => return failed(e),
                None => {
                    eprintln!("molt: the node closed the event stream");
                    return ExitCode::SUCCESS;
                }
            }
        }
    }
}

pub async fn config_check(addr: SocketAddr, file: &Path) -> ExitCode {
    let client = match client(&NodeArgs { addr, token: None }) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match client.config_check_file(file).await {
        Ok(check) => {
            println!("{}: valid; against the node at {addr}:", file.display());
            for line in &check.summary {
                println!("  {line}");
            }
            if check.summary.is_empty() {
                println!("  no changes");
            }
            if check.applicable {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            }
        }
        Err(e) => {
            eprintln!("molt: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::pause_summary;

    #[test]
    fn one_pause_is_shown_as_is_and_several_as_longest_and_median() {
        assert_eq!(pause_summary(&[]), "pause 0 µs");
        assert_eq!(pause_summary(&[440]), "pause 440 µs");
        assert_eq!(
            pause_summary(&[30, 9000, 10, 20]),
            "pause 9000 µs at most, median 30 µs over 4 actors"
        );
    }
}
