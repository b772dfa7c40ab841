//! Prometheus metrics (prefix `molt_`), through the `metrics` facade.
//!
//! The message hot path pays nothing extra: message and error counts and
//! mailbox depths already live in each instance's shared atomics (for
//! status); they are copied into the registry when it is scraped
//! ([`render`]). Reload metrics are recorded as reloads happen.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `molt_reloads_total` | counter | module, result (committed, rolled_back, rejected, refused) |
//! | `molt_reload_phase_seconds` | histogram | module, phase |
//! | `molt_swap_pause_seconds` | histogram | module |
//! | `molt_mailbox_depth` | gauge | module, instance |
//! | `molt_messages_total` | counter | module |
//! | `molt_handler_errors_total` | counter | module |
//! | `molt_module_info` | gauge (1) | module, code_version, state_version |
//! | `molt_libraries_mapped` | gauge | |
//! | `molt_history_write_failures_total` | counter | |
//! | `molt_checkpoint_seconds` | histogram | module (one checkpoint: the snapshot, between messages) |
//! | `molt_checkpoint_failures_total` | counter | module (a checkpoint snapshot failed; the previous one is kept) |
//! | `molt_restarts_total` | counter | module, restored (checkpoint, start) |
//! | `molt_handle_seconds` | histogram | module (handling time of one message, **sampled**: one in 16 per instance, see `crate::figures`; buckets at powers of 4 ns from 256 ns to 17.2 s; with [`render_with_figures`]) |
//! | `molt_module_<name>` | counter / gauge | module (what modules count through their context) |

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::figures::ModuleFigures;
use crate::history::Outcome;
use crate::status::NodeStatus;

/// Bucket bounds (seconds) of the duration histograms: 10 µs to 10 s.
const BUCKETS: &[f64] = &[
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How often histogram samples are drained when nobody scrapes.
const UPKEEP: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs molt's Prometheus recorder as the process's `metrics` recorder
/// (once; later calls return the same handle). `None` when the application
/// installed another recorder first: molt's metrics then go to that one.
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
                .ok()?
                .install_recorder()
                .map_err(|e| tracing::info!(target: "molt::metrics", "not installing molt's recorder: {e}"))
                .ok()
                .inspect(|handle| {
                    // Histogram samples pile up until they are drained: by a
                    // scrape, or by this upkeep for a node nobody scrapes.
                    let handle = handle.clone();
                    let _ = std::thread::Builder::new()
                        .name("molt-metrics-upkeep".into())
                        .spawn(move || loop {
                            std::thread::sleep(UPKEEP);
                            handle.run_upkeep();
                        });
                })
        })
        .as_ref()
}

/// The metrics as Prometheus text, after copying the scrape-time values
/// (mailbox depths, message counts, module info, mapped libraries) from
/// `status`.
///
/// # Errors
/// When molt's recorder is not installed (another one was first).
pub fn render(status: &NodeStatus) -> Result<String, String> {
    render_with_figures(status, &[])
}

/// [`render`], plus `molt_handle_seconds` from the modules' handling
/// figures (`Admin::figures`; what `GET /metrics` serves). The figures keep
/// their own fixed buckets (the message path never touches the `metrics`
/// registry), so this histogram is written here, from each module's
/// figures since it started.
///
/// # Errors
/// When molt's recorder is not installed (another one was first).
pub fn render_with_figures(
    status: &NodeStatus,
    figures: &[ModuleFigures],
) -> Result<String, String> {
    let handle = install().ok_or("molt's Prometheus recorder is not installed (another metrics recorder was installed first)")?;
    publish_status(status);
    let mut text = handle.render();
    handle_seconds(&mut text, figures);
    Ok(text)
}

/// `molt_handle_seconds` as Prometheus text: cumulative buckets at every
/// second power of two of the figures' buckets (exact: those are bucket
/// edges), `_sum` and `_count`.
fn handle_seconds(text: &mut String, figures: &[ModuleFigures]) {
    use std::fmt::Write;
    if figures.is_empty() {
        return;
    }
    let _ = writeln!(
        text,
        "# HELP molt_handle_seconds Handling time of one message, sampled (one in {} per instance).\n# TYPE molt_handle_seconds histogram",
        crate::figures::SAMPLE_EVERY
    );
    for f in figures {
        let module = f
            .module
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n");
        let counts = f.total.latency.counts();
        let mut below = 0u64;
        let mut bucket = 0;
        for exp in (8..=34).step_by(2) {
            let le = 1u64 << exp;
            while bucket < counts.len() - 1 && crate::figures::upper_edge_ns(bucket) <= le {
                below += counts[bucket];
                bucket += 1;
            }
            let _ = writeln!(
                text,
                "molt_handle_seconds_bucket{{module=\"{module}\",le=\"{}\"}} {below}",
                le as f64 / 1e9
            );
        }
        let count = f.total.latency.count();
        let _ = writeln!(
            text,
            "molt_handle_seconds_bucket{{module=\"{module}\",le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            text,
            "molt_handle_seconds_sum{{module=\"{module}\"}} {}",
            f.total.latency_sum_ns as f64 / 1e9
        );
        let _ = writeln!(
            text,
            "molt_handle_seconds_count{{module=\"{module}\"}} {count}"
        );
    }
}

/// Module info labels set last time, to zero a module's old version.
static INFO: OnceLock<Mutex<HashMap<String, (String, String)>>> = OnceLock::new();

fn publish_status(status: &NodeStatus) {
    metrics::gauge!("molt_libraries_mapped").set(status.libraries_mapped as f64);
    let mut info = INFO
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    for m in &status.modules {
        let (mut handled, mut failed) = (0u64, 0u64);
        for i in &m.instances {
            handled += i.handled;
            failed += i.failed;
            metrics::gauge!("molt_mailbox_depth", "module" => m.name.clone(), "instance" => i.index.to_string())
                .set(i.mailbox_depth as f64);
        }
        metrics::counter!("molt_messages_total", "module" => m.name.clone()).absolute(handled);
        metrics::counter!("molt_handler_errors_total", "module" => m.name.clone()).absolute(failed);
        let now = (m.code_version.clone(), m.state_version.to_string());
        if let Some((code, state)) = info.get(&m.name).filter(|old| **old != now) {
            metrics::gauge!("molt_module_info", "module" => m.name.clone(), "code_version" => code.clone(), "state_version" => state.clone())
                .set(0.0);
        }
        metrics::gauge!("molt_module_info", "module" => m.name.clone(), "code_version" => now.0.clone(), "state_version" => now.1.clone())
            .set(1.0);
        info.insert(m.name.clone(), now);
        // A keyed module: four series per module, none per key.
        if let Some(k) = &m.keyed {
            metrics::gauge!("molt_keyed_live", "module" => m.name.clone()).set(k.live as f64);
            metrics::gauge!("molt_keyed_passivated", "module" => m.name.clone())
                .set(k.passivated as f64);
            metrics::counter!("molt_keyed_activations_total", "module" => m.name.clone())
                .absolute(k.activations);
            metrics::counter!("molt_keyed_passivations_total", "module" => m.name.clone())
                .absolute(k.passivations);
        }
    }
}

/// Counts a reload attempt by its outcome.
pub(crate) fn reload_finished(module: &str, outcome: Outcome) {
    let result = match outcome {
        Outcome::Committed => "committed",
        Outcome::RolledBack => "rolled_back",
        Outcome::Rejected => "rejected",
        Outcome::Refused => "refused",
    };
    metrics::counter!("molt_reloads_total", "module" => module.to_string(), "result" => result)
        .increment(1);
}

/// Counts an entry that could not be appended to the history's audit file.
pub(crate) fn history_write_failed() {
    metrics::counter!("molt_history_write_failures_total").increment(1);
}

/// Records how long one checkpoint took (the instance's pause for it).
pub(crate) fn checkpoint(module: &str, took: Duration) {
    metrics::histogram!("molt_checkpoint_seconds", "module" => module.to_string())
        .record(took.as_secs_f64());
}

/// Counts a checkpoint whose snapshot failed.
pub(crate) fn checkpoint_failed(module: &str) {
    metrics::counter!("molt_checkpoint_failures_total", "module" => module.to_string())
        .increment(1);
}

/// Counts an instance restarted from a checkpoint (or its start state).
pub(crate) fn restarted(module: &str, restored: &'static str) {
    metrics::counter!("molt_restarts_total", "module" => module.to_string(), "restored" => restored)
        .increment(1);
}

/// Records how long one phase took on one instance (or in the coordinator).
pub(crate) fn phase(module: &str, phase: crate::reload::Phase, took: Duration) {
    metrics::histogram!("molt_reload_phase_seconds", "module" => module.to_string(), "phase" => phase.as_str())
        .record(took.as_secs_f64());
}

/// Records an instance's swap pause.
pub(crate) fn pause(module: &str, took: Duration) {
    metrics::histogram!("molt_swap_pause_seconds", "module" => module.to_string())
        .record(took.as_secs_f64());
}
