//! Fault injection, table-driven: every entry point of a module (init,
//! migrate, downgrade, start, stop, verify, handle, snapshot) returns an
//! error, panics, or hangs past its phase timeout, and every library that is
//! not a good module (missing, truncated, zero bytes, not ELF, not a molt
//! module, another module's name, an older molt-abi layout) is offered as a
//! reload. Every case runs on a two-instance `fault` module with one sender
//! per instance casting (and now and then calling) `Push(seq)` throughout the
//! attempt, and checks:
//!
//! - the outcome: a rollback naming the phase (result, `module.reload_failed`
//!   event, history), a rejection in prepare, or error replies to the calls;
//! - the node is alive: status answers, no reload is left marked running,
//!   every instance answers a call with the tag of the load that should serve;
//! - no message is lost, duplicated or reordered: each instance's log is
//!   exactly its pre-existing state followed by every value its sender pushed,
//!   in order (none of them when the handler itself fails);
//! - a failed attempt is abandoned: once the coordinator rolls back, no
//!   instance runs more of the new code than the entry point it is in (the
//!   fixture's migrate publishes `fault.migrating`: counted);
//! - the module is not wedged: a reload to a clean config is accepted and
//!   commits, or, when the fault sits in the serving code's own `stop` or
//!   `snapshot` (which every reload calls), fails again the same way.
//!
//! A failing row prints its case name; the other rows still run.
//!
//! Where each point is exercised (the fault fires in the load whose config
//! carries it):
//! - init: only a fresh state runs `init` during a reload, so by an explicit
//!   rollback with `reset_state` to the previous library, whose `init` gets
//!   the serving config (armed by a committed reload). `Node::start` is the
//!   other route: see [`faults_at_node_start`].
//! - migrate, start, verify: a reload to the faulty config.
//! - downgrade: the runtime calls `downgrade` only for a rollback to an
//!   *older state version* (same version: the previous library migrates the
//!   state as in any upgrade), and the `fault` module has one state version.
//!   So the fixture's source is also built as `fault-v2` (code 2.0.0, state
//!   version 2, down-migrates to 1): fault 1.0.0 → reload to fault-v2 with
//!   the faulty config → rollback, which runs 2.0.0's `downgrade`.
//! - stop: the *old* code's stop, during a reload away from it (the node
//!   starts with the faulty config). `stop` cannot return an error, so an
//!   injected error is only logged and the reload commits.
//! - snapshot: the new code's, in verify's snapshot round trip; and the old
//!   code's, at the start of every reload away from it (armed by a reload
//!   committed without the round trip, which would have caught it).
//! - handle: no reload; the traffic meets the fault. And a hanging handler
//!   ahead of a reload's `Swap` message times the reload out in drain.
//!
//! "Hang" rows hang until the case releases them (the fixture's `HangUntil`
//! polls a file the case creates once it has the attempt's outcome), so a
//! hang outlasts every timeout by construction instead of racing it. They
//! run with smaller limits (prepare and decision 3 s, verify 1 s, call
//! 200 ms) that leave seconds of slack for the work around the hang on a
//! busy debug build; the verify timeout sits well under the prepare timeout
//! so that a verify hang is reported by verify. (The coordinator waits for
//! the hung instances' reports until prepare + decision timeout after its
//! decision, and the case releases the hang once it has the outcome: a
//! hang row takes about 9 s, 18 s when the clean retry hangs too.) The other rows run with the
//! generous test limits. Only [`faults_at_node_start`] uses a fixed hang (a
//! node start has no timeout to race).
//!
//! Module code runs on the runtime's worker threads, and a hang blocks the
//! one it runs on: these tests run on 4 workers so that, with both instances
//! hanging, the reload coordinator still has a worker to time out on.

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::fault_proto::{Msg, Point, Reply};
use common::{FaultProto, Release};
use molt::{
    Action, CallError, Error, Event, EventStream, InstanceStatus, Limits, LoadCause, ModuleHandle,
    ModuleSpec, Node, Outcome, Phase, ReloadOptions,
};
use serde_json::{json, Value};

const INSTANCES: usize = 2;
/// How long the fixed hang of [`faults_at_node_start`] lasts.
const HANG_MS: u64 = 900;
/// The timeout of the checking calls: longer than anything a case waits for.
const PATIENT: Duration = Duration::from_secs(30);

/// The limits of the hang rows: the verify timeout is well under the prepare
/// timeout (so a verify hang is reported by verify, not by the coordinator),
/// and each leaves the work around a hang seconds of slack.
fn small_limits() -> Limits {
    Limits {
        prepare_timeout: Duration::from_secs(3),
        verify_timeout: Duration::from_secs(1),
        decision_timeout: Duration::from_secs(3),
        call_timeout: Duration::from_millis(200),
        ..Limits::default()
    }
}

// ---------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum How {
    Error,
    Panic,
    Hang,
}

impl How {
    /// The fixture's fault: a hang lasts until `release` exists (with
    /// none: [`HANG_MS`]).
    fn json(self, release: Option<&Release>) -> Value {
        match (self, release) {
            (How::Error, _) => json!("Error"),
            (How::Panic, _) => json!("Panic"),
            (How::Hang, Some(r)) => r.hang(),
            (How::Hang, None) => json!({ "Hang": { "ms": HANG_MS } }),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lib {
    Fault,
    FaultV2,
}

impl Lib {
    fn path(self) -> &'static Path {
        let f = common::fixtures();
        match self {
            Lib::Fault => &f.fault,
            Lib::FaultV2 => &f.fault_v2,
        }
    }

    fn code_version(self) -> &'static str {
        match self {
            Lib::Fault => "1.0.0",
            Lib::FaultV2 => "2.0.0",
        }
    }
}

/// Where the fault sits before the attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arm {
    /// Nowhere: the node serves a clean load of `fault`, tagged "a".
    Clean,
    /// In the load the node starts with (tagged "a").
    AtStart,
    /// In a committed reload to this library (tagged "b").
    Reload(Lib),
    /// In the version below the serving one: a committed reload to this
    /// library with the fault (tagged "b"), then one with a clean config
    /// (tagged "c"), so a rollback returns to the faulty config (a rollback
    /// restores the config of the version it returns to).
    Beneath(Lib),
}

/// Library files that are not a good `fault` module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BadLib {
    Missing,
    /// The first half of libfault.so.
    Truncated,
    ZeroBytes,
    NotElf,
    NotAMoltModule,
    /// The kv module's library.
    OtherModule,
    /// Built against a molt-abi with another root-module layout.
    OlderAbi,
}

/// What the case does while the senders run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    /// Reload `fault` with the faulty config (tagged "b").
    ReloadFaulty,
    /// Reload the serving library with a clean config (tagged "c").
    ReloadClean,
    /// An explicit rollback to the previous library.
    Rollback { reset_state: bool },
    /// No admin operation: the traffic itself meets the fault.
    Traffic,
    /// Reload from a bad library file.
    BadLibrary(BadLib),
}

/// The outcome a case must end in.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// The attempt fails in this phase, its error containing the text; the
    /// load that served before keeps serving.
    RolledBack(Phase, &'static str),
    /// Prepare rejects the library: `Error::Load` with a cause like this.
    Rejected(fn(&LoadCause) -> bool),
    /// The attempt commits.
    Committed,
    /// The calls answer errors: `CallError::Handler` of this kind, or
    /// "timeout" for `CallError::Timeout`.
    ErrorReplies(&'static str),
}

/// How the senders send: `max` messages at most, every `call_every`-th a
/// call (0: casts only).
#[derive(Debug, Clone, Copy)]
struct Traffic {
    max: usize,
    call_every: usize,
}

const STEADY: Traffic = Traffic {
    max: 5_000,
    call_every: 16,
};

#[derive(Debug, Clone, Copy)]
struct Case {
    name: &'static str,
    fault: Option<(Point, How)>,
    arm: Arm,
    attempt: Attempt,
    expect: Expect,
    round_trip: bool,
    traffic: Traffic,
}

fn row(
    name: &'static str,
    point: Point,
    how: How,
    arm: Arm,
    attempt: Attempt,
    expect: Expect,
) -> Case {
    Case {
        name,
        fault: Some((point, how)),
        arm,
        attempt,
        expect,
        round_trip: true,
        traffic: STEADY,
    }
}

fn library_row(name: &'static str, bad: BadLib, cause: fn(&LoadCause) -> bool) -> Case {
    Case {
        name,
        fault: None,
        arm: Arm::Clean,
        attempt: Attempt::BadLibrary(bad),
        expect: Expect::Rejected(cause),
        round_trip: true,
        traffic: STEADY,
    }
}

impl Case {
    fn without_round_trip(self) -> Self {
        Case {
            round_trip: false,
            ..self
        }
    }

    fn traffic(self, max: usize, call_every: usize) -> Self {
        Case {
            traffic: Traffic { max, call_every },
            ..self
        }
    }

    fn how(&self) -> Option<How> {
        self.fault.map(|(_, how)| how)
    }

    /// The config carrying this case's fault (a hang lasts until released).
    fn faulty(&self, tag: &str, release: &Release) -> Value {
        match self.fault {
            Some((point, how)) => json!({
                "fault": { "at": format!("{point:?}"), "how": how.json(Some(release)) },
                "tag": tag,
            }),
            None => clean(tag),
        }
    }

    /// The tag and library of the load serving before the attempt.
    fn armed(&self) -> (&'static str, Lib) {
        match self.arm {
            Arm::Clean | Arm::AtStart => ("a", Lib::Fault),
            Arm::Reload(lib) => ("b", lib),
            Arm::Beneath(lib) => ("c", lib),
        }
    }

    /// The tag and library that must serve after the attempt.
    fn serving_after(&self) -> (&'static str, Lib) {
        match (self.expect, self.attempt) {
            (Expect::Committed, Attempt::ReloadFaulty) => ("b", Lib::Fault),
            (Expect::Committed, Attempt::ReloadClean) => ("c", self.armed().1),
            (Expect::Committed, other) => panic!("{}: no commit expected of {other:?}", self.name),
            _ => self.armed(),
        }
    }

    /// Whether the load serving after the attempt carries the fault.
    fn serving_is_faulty(&self) -> bool {
        match self.expect {
            Expect::Committed => self.attempt == Attempt::ReloadFaulty,
            _ => matches!(self.arm, Arm::AtStart | Arm::Reload(_)),
        }
    }

    /// Whether the pushes of the senders reach the state.
    fn pushes_apply(&self) -> bool {
        !matches!(self.expect, Expect::ErrorReplies("failed" | "panicked"))
    }
}

fn clean(tag: &str) -> Value {
    json!({ "tag": tag })
}

/// Every (point × how) and every bad library. Read a row as: with the fault
/// at this point, armed there, doing that ends like this.
#[rustfmt::skip]
fn table() -> Vec<Case> {
    use Arm::{AtStart, Beneath, Clean, Reload};
    use Attempt::{ReloadClean, ReloadFaulty, Rollback, Traffic};
    use How::{Error, Hang, Panic};
    use Lib::{Fault, FaultV2};
    use Point::*;
    let rolled_back = Expect::RolledBack;
    let reset = Rollback { reset_state: true };
    let back = Rollback { reset_state: false };
    vec![
        //  case                 point       how    armed            attempt        outcome
        // init: in a reset rollback to the previous version (its init gets that version's config)
        row("init/error",         Init,      Error, Beneath(Fault),  reset,        rolled_back(Phase::Migrate, "injected error at Init")),
        row("init/panic",         Init,      Panic, Beneath(Fault),  reset,        rolled_back(Phase::Migrate, "injected panic at Init")),
        row("init/hang",          Init,      Hang,  Beneath(Fault),  reset,        rolled_back(Phase::Migrate, "did not prepare within 3s")),
        // migrate
        row("migrate/error",      Migrate,   Error, Clean,           ReloadFaulty, rolled_back(Phase::Migrate, "injected error at Migrate")),
        row("migrate/panic",      Migrate,   Panic, Clean,           ReloadFaulty, rolled_back(Phase::Migrate, "injected panic at Migrate")),
        row("migrate/hang",       Migrate,   Hang,  Clean,           ReloadFaulty, rolled_back(Phase::Migrate, "did not prepare within 3s")),
        // downgrade: in a rollback from fault-v2 (state 2) to fault (state 1)
        row("downgrade/error",    Downgrade, Error, Reload(FaultV2), back,         rolled_back(Phase::Snapshot, "downgrade: injected error at Downgrade")),
        row("downgrade/panic",    Downgrade, Panic, Reload(FaultV2), back,         rolled_back(Phase::Snapshot, "injected panic at Downgrade")),
        row("downgrade/hang",     Downgrade, Hang,  Reload(FaultV2), back,         rolled_back(Phase::Snapshot, "did not prepare within 3s")),
        // start (the new code's)
        row("start/error",        Start,     Error, Clean,           ReloadFaulty, rolled_back(Phase::Swap, "injected error at Start")),
        row("start/panic",        Start,     Panic, Clean,           ReloadFaulty, rolled_back(Phase::Swap, "injected panic at Start")),
        row("start/hang",         Start,     Hang,  Clean,           ReloadFaulty, rolled_back(Phase::Swap, "did not prepare within 3s")),
        // stop (the old code's): an error is only logged, stop cannot fail
        row("stop/error",         Stop,      Error, AtStart,         ReloadClean,  Expect::Committed),
        row("stop/panic",         Stop,      Panic, AtStart,         ReloadClean,  rolled_back(Phase::Swap, "injected panic at Stop")),
        row("stop/hang",          Stop,      Hang,  AtStart,         ReloadClean,  rolled_back(Phase::Swap, "did not prepare within 3s")),
        // verify
        row("verify/error",       Verify,    Error, Clean,           ReloadFaulty, rolled_back(Phase::Verify, "injected error at Verify")),
        row("verify/panic",       Verify,    Panic, Clean,           ReloadFaulty, rolled_back(Phase::Verify, "injected panic at Verify")),
        row("verify/hang",        Verify,    Hang,  Clean,           ReloadFaulty, rolled_back(Phase::Verify, "verify did not finish within 1s")),
        // snapshot of the new code, in verify's round trip
        row("snapshot-new/error", Snapshot,  Error, Clean,           ReloadFaulty, rolled_back(Phase::Verify, "injected error at Snapshot")),
        row("snapshot-new/panic", Snapshot,  Panic, Clean,           ReloadFaulty, rolled_back(Phase::Verify, "injected panic at Snapshot")),
        row("snapshot-new/hang",  Snapshot,  Hang,  Clean,           ReloadFaulty, rolled_back(Phase::Verify, "did not prepare within 3s")),
        // snapshot of the old code (armed without the round trip, which would catch it)
        row("snapshot-old/error", Snapshot,  Error, Reload(Fault),   ReloadClean,  rolled_back(Phase::Snapshot, "injected error at Snapshot")).without_round_trip(),
        row("snapshot-old/panic", Snapshot,  Panic, Reload(Fault),   ReloadClean,  rolled_back(Phase::Snapshot, "injected panic at Snapshot")).without_round_trip(),
        row("snapshot-old/hang",  Snapshot,  Hang,  Reload(Fault),   ReloadClean,  rolled_back(Phase::Snapshot, "did not prepare within 3s")).without_round_trip(),
        // handle: no reload, the calls answer errors (traffic: 40 messages, every 2nd a call; 3 with a hang)
        row("handle/error",       Handle,    Error, Reload(Fault),   Traffic,      Expect::ErrorReplies("failed")).traffic(40, 2),
        row("handle/panic",       Handle,    Panic, Reload(Fault),   Traffic,      Expect::ErrorReplies("panicked")).traffic(40, 2),
        row("handle/hang",        Handle,    Hang,  Reload(Fault),   Traffic,      Expect::ErrorReplies("timeout")).traffic(3, 2),
        // drain: two hanging pushes queued ahead of the reload's Swap message
        row("drain/handle-hang",  Handle,    Hang,  Reload(Fault),   ReloadClean,  rolled_back(Phase::Drain, "did not reach the reload within 3s")).traffic(2, 0),
        // prepare: libraries that are not a good `fault` module
        library_row("library/missing",           BadLib::Missing,        |c| *c == LoadCause::NotFound),
        library_row("library/truncated",         BadLib::Truncated,      |c| matches!(c, LoadCause::NotALibrary(_))),
        library_row("library/zero-bytes",        BadLib::ZeroBytes,      |c| matches!(c, LoadCause::NotALibrary(_))),
        library_row("library/not-elf",           BadLib::NotElf,         |c| matches!(c, LoadCause::NotALibrary(_))),
        library_row("library/not-a-molt-module", BadLib::NotAMoltModule, |c| *c == LoadCause::NotAMoltModule),
        library_row("library/other-module",      BadLib::OtherModule,    |c| *c == LoadCause::WrongModule { expected: "fault".into(), found: "kv".into() }),
        library_row("library/older-abi-layout",  BadLib::OlderAbi,       |c| matches!(c, LoadCause::LayoutMismatch(_))),
    ]
}

// ---------------------------------------------------------------------------
// The runner
// ---------------------------------------------------------------------------

/// Runs every row whose name starts with `group`, each in a task of its own
/// (one after the other: a hang row's timing must not depend on another
/// row), and fails naming every row that failed.
async fn run_group(group: &str) {
    let cases: Vec<Case> = table()
        .into_iter()
        .filter(|c| c.name.starts_with(group))
        .collect();
    assert!(!cases.is_empty(), "no case in group {group}");
    let mut failed = Vec::new();
    for case in cases {
        let started = Instant::now();
        match tokio::spawn(run_case(case)).await {
            Ok(summary) => println!(
                "ok     {:<26} {:>7.0?}  {summary}",
                case.name,
                started.elapsed()
            ),
            Err(e) => {
                let why = panic_text(e);
                eprintln!("FAILED {}: {why}", case.name);
                failed.push(format!("{}: {why}", case.name));
            }
        }
    }
    assert!(
        failed.is_empty(),
        "{} case(s) failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

fn panic_text(e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(payload) => payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a non-string panic".into()),
        Err(e) => e.to_string(),
    }
}

/// One message a sender sent: the value pushed, and a call's result.
#[derive(Debug)]
struct Sent {
    value: i64,
    call: Option<Result<Reply, CallError>>,
}

/// One sender per instance, casting (and calling) `Push` until told to stop.
struct Senders {
    stop: Arc<AtomicBool>,
    progress: Vec<Arc<AtomicUsize>>,
    tasks: Vec<tokio::task::JoinHandle<Vec<Sent>>>,
    traffic: Traffic,
}

/// Messages each sender sends before the attempt, and at least after it.
const AROUND: usize = 16;

impl Senders {
    fn start(handles: &[ModuleHandle<FaultProto>], traffic: Traffic) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let mut progress = Vec::new();
        let mut tasks = Vec::new();
        for (i, h) in handles.iter().enumerate() {
            let (h, stop) = (h.clone(), stop.clone());
            let count = Arc::new(AtomicUsize::new(0));
            progress.push(count.clone());
            tasks.push(tokio::spawn(async move {
                let mut sent = Vec::new();
                let mut after_stop = 0;
                while sent.len() < traffic.max && after_stop < AROUND {
                    let value = 1_000_000 * (i as i64 + 1) + sent.len() as i64;
                    let k = sent.len() + 1;
                    let call = if traffic.call_every > 0 && k % traffic.call_every == 0 {
                        Some(h.call(Msg::Push(value)).await.map_err(CallError::from))
                    } else {
                        h.cast(Msg::Push(value)).expect("a cast is accepted");
                        None
                    };
                    sent.push(Sent { value, call });
                    count.store(sent.len(), Ordering::Relaxed);
                    if stop.load(Ordering::Relaxed) {
                        after_stop += 1;
                    }
                    if k % 4 == 0 {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
                sent
            }));
        }
        Senders {
            stop,
            progress,
            tasks,
            traffic,
        }
    }

    /// Waits until every sender has sent its first messages.
    async fn started(&self) {
        let want = AROUND.min(self.traffic.max);
        let t = Instant::now();
        while self
            .progress
            .iter()
            .any(|p| p.load(Ordering::Relaxed) < want)
        {
            assert!(t.elapsed() < PATIENT, "the senders did not start");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    async fn finish(self) -> Vec<Vec<Sent>> {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for t in self.tasks {
            all.push(t.await.expect("sender task"));
        }
        all
    }
}

async fn tag(h: &ModuleHandle<FaultProto>) -> String {
    match h.call_timeout(Msg::Tag, PATIENT).await.expect("tag") {
        Reply::Tag(t) => t,
        other => panic!("unexpected reply {other:?}"),
    }
}

async fn log(h: &ModuleHandle<FaultProto>) -> Vec<i64> {
    match h.call_timeout(Msg::Get, PATIENT).await.expect("get") {
        Reply::Log(l) => l,
        other => panic!("unexpected reply {other:?}"),
    }
}

async fn instances(node: &Node) -> Vec<InstanceStatus> {
    let status = node.status().await.expect("the node answers status");
    status
        .module("fault")
        .expect("fault runs")
        .instances
        .clone()
}

async fn next_reload_failed(events: &mut EventStream) -> (Phase, String) {
    match common::next_event(events, "module.reload_failed").await {
        Event::ModuleReloadFailed { name, phase, error } => {
            assert_eq!(name, "fault");
            (phase, error)
        }
        other => panic!("unexpected event {other:?}"),
    }
}

/// Writes (or names) the bad library of a row.
fn bad_library(bad: BadLib, scratch: &Path) -> PathBuf {
    let f = common::fixtures();
    let write = |name: &str, bytes: &[u8]| {
        let p = scratch.join(name);
        std::fs::write(&p, bytes).expect("write the library file");
        p
    };
    match bad {
        BadLib::Missing => f.fault.parent().unwrap().join("libfault_not_there.so"),
        BadLib::Truncated => {
            let full = std::fs::read(&f.fault).expect("read libfault.so");
            write("libfault.so", &full[..full.len() / 2])
        }
        BadLib::ZeroBytes => write("libfault.so", b""),
        BadLib::NotElf => write(
            "libfault.so",
            "Not a shared library, just text.\n".repeat(40).as_bytes(),
        ),
        BadLib::NotAMoltModule => f.not_a_module.clone(),
        BadLib::OtherModule => f.kv.clone(),
        BadLib::OlderAbi => f.abi_mismatch.clone(),
    }
}

/// Runs one row; returns what happened, in a few words.
async fn run_case(case: Case) -> String {
    let name = case.name;
    let f = common::fixtures();
    let scratch = common::scratch_dir();
    let release = Release::new();
    let node_name = format!("fault-injection-{}", name.replace('/', "-"));
    let mut config = common::config(&node_name, &[scratch.path()]);
    if case.how() == Some(How::Hang) {
        config.limits = small_limits();
    }
    config.limits.verify_round_trip = case.round_trip;
    // The rows fail reload phases; a periodic checkpoint would run the
    // serving code's faulty `snapshot` between messages too (see
    // tests/restart_keeps_checkpoint.rs for checkpoints).
    config.limits.checkpoint_interval = Duration::ZERO;
    let restart_after = u64::from(config.limits.restart_after_failures);
    let start_config = match case.arm {
        Arm::AtStart => case.faulty("a", &release),
        _ => clean("a"),
    };
    let spec = ModuleSpec::new("fault", &f.fault)
        .instances(INSTANCES as u32)
        .config(start_config);
    let node = Node::start(config.module(spec))
        .await
        .unwrap_or_else(|e| panic!("{name}: the node starts: {e}"));
    let any = node.module::<FaultProto>("fault").unwrap();
    let handles: Vec<_> = (0..INSTANCES).map(|i| any.on_instance(i)).collect();

    // Pre-existing state, different on each instance.
    let mut logs = Vec::new();
    for (i, h) in handles.iter().enumerate() {
        let initial: Vec<i64> = (0..5 + 3 * i as i64)
            .map(|k| -(100 * i as i64 + k))
            .collect();
        for v in &initial {
            let reply = h.call_timeout(Msg::Push(*v), PATIENT).await;
            assert_eq!(reply, Ok(Reply::Log(vec![])), "{name}: initial push");
        }
        logs.push(initial);
    }

    // Arm the fault.
    if let Arm::Reload(lib) | Arm::Beneath(lib) = case.arm {
        let options = ReloadOptions::library(lib.path()).with_config(case.faulty("b", &release));
        let report = node
            .reload("fault", options)
            .await
            .unwrap_or_else(|e| panic!("{name}: arming the fault: the reload commits: {e}"));
        assert_eq!(report.to, lib.code_version(), "{name}");
    }
    if let Arm::Beneath(lib) = case.arm {
        let options = ReloadOptions::library(lib.path()).with_config(clean("c"));
        node.reload("fault", options)
            .await
            .unwrap_or_else(|e| panic!("{name}: the clean reload above the fault commits: {e}"));
    }
    let (armed_tag, _) = case.armed();
    for h in &handles {
        assert_eq!(tag(h).await, armed_tag, "{name}: armed");
    }
    let counters_before = instances(&node).await;

    // The attempt, under traffic.
    let mut events = node.subscribe();
    let mut published = node.subscribe();
    let senders = Senders::start(&handles, case.traffic);
    senders.started().await;
    let result = match case.attempt {
        Attempt::ReloadFaulty => Some(
            node.reload(
                "fault",
                ReloadOptions::library(&f.fault).with_config(case.faulty("b", &release)),
            )
            .await,
        ),
        Attempt::ReloadClean => {
            let lib = case.armed().1.path();
            Some(
                node.reload("fault", ReloadOptions::library(lib).with_config(clean("c")))
                    .await,
            )
        }
        Attempt::Rollback { reset_state } => Some(node.rollback("fault", reset_state).await),
        Attempt::BadLibrary(bad) => {
            let path = bad_library(bad, scratch.path());
            Some(node.reload("fault", ReloadOptions::library(path)).await)
        }
        Attempt::Traffic => None,
    };
    let sent = senders.finish().await;
    // The outcome is in: a hang may end now.
    release.now();
    let calls = || sent.iter().flatten().filter_map(|s| s.call.as_ref());
    let outcome = match &result {
        None => "error replies".to_string(),
        Some(Ok(_)) => "committed".to_string(),
        Some(Err(Error::Load { .. })) => "rejected in prepare".to_string(),
        Some(Err(e)) => format!("rolled back in {}", e.phase().expect("a phase")),
    };

    // (1) The outcome.
    match (case.expect, result) {
        (Expect::RolledBack(phase, needle), Some(Err(e))) => {
            let Error::ReloadFailed {
                module,
                phase: failed,
                error,
                ..
            } = &e
            else {
                panic!("{name}: expected ReloadFailed in {phase}, got {e:?}");
            };
            println!("{name}: {e}");
            assert_eq!(module, "fault", "{name}");
            assert_eq!(*failed, phase, "{name}: the phase named ({error})");
            assert!(
                error.contains(needle),
                "{name}: the error says {needle:?}: {error}"
            );
            let (event_phase, event_error) = next_reload_failed(&mut events).await;
            assert_eq!(event_phase, phase, "{name}: the event's phase");
            assert_eq!(&event_error, error, "{name}: the event's error");
            let h = node
                .history()
                .await
                .expect("history")
                .pop()
                .expect("an entry");
            assert_eq!(h.outcome, Outcome::RolledBack, "{name}: {h:?}");
            assert_eq!(h.phase, Some(phase), "{name}: {h:?}");
            let action = match case.attempt {
                Attempt::Rollback { .. } => Action::Rollback,
                _ => Action::Reload,
            };
            assert_eq!(h.action, action, "{name}: {h:?}");
        }
        (Expect::Rejected(cause_ok), Some(Err(e))) => {
            let Error::Load { cause, .. } = &e else {
                panic!("{name}: expected Error::Load, got {e:?}");
            };
            println!("{name}: {e}");
            assert!(cause_ok(cause), "{name}: unexpected cause {cause:?}");
            let (event_phase, _) = next_reload_failed(&mut events).await;
            assert_eq!(event_phase, Phase::Prepare, "{name}");
            let h = node
                .history()
                .await
                .expect("history")
                .pop()
                .expect("an entry");
            assert_eq!(h.outcome, Outcome::Rejected, "{name}: {h:?}");
        }
        (Expect::Committed, Some(Ok(report))) => {
            println!("{name}: committed {} -> {}", report.from, report.to);
            assert_eq!(report.pauses_us.len(), INSTANCES, "{name}");
            match common::next_event(&mut events, "module.reloaded").await {
                Event::ModuleReloaded { name: m, .. } => assert_eq!(m, "fault"),
                other => panic!("{name}: unexpected event {other:?}"),
            }
        }
        (Expect::ErrorReplies(kind), None) => {
            let mut n = 0;
            for call in calls() {
                n += 1;
                match (kind, call) {
                    ("timeout", Err(CallError::Timeout { .. })) => {}
                    (
                        kind,
                        Err(CallError::Handler {
                            kind: k, message, ..
                        }),
                    ) if k.as_str() == kind => {
                        assert!(message.contains("injected"), "{name}: {message}");
                    }
                    (_, other) => panic!("{name}: expected a {kind} error reply, got {other:?}"),
                }
            }
            assert!(n > 0, "{name}: the senders made calls");
        }
        (expect, result) => panic!("{name}: expected {expect:?}, got {result:?}"),
    }
    // Calls made during a reload are answered (or, with a hang, time out):
    // never a handler error.
    if !matches!(case.expect, Expect::ErrorReplies(_)) {
        for call in calls() {
            match call {
                Ok(reply) => assert_eq!(reply, &Reply::Log(vec![]), "{name}"),
                Err(CallError::Timeout { .. }) if case.how() == Some(How::Hang) => {}
                Err(e) => panic!("{name}: a call during the attempt failed: {e:?}"),
            }
        }
    }

    // (2) The node is alive, the right load serves.
    let (serving_tag, serving_lib) = case.serving_after();
    for (i, h) in handles.iter().enumerate() {
        assert_eq!(tag(h).await, serving_tag, "{name}: instance {i} serves");
    }
    // Once the coordinator gives up, an instance runs no more of the new
    // code for the attempt than the entry point it is in: the new code's
    // migrate (which publishes `fault.migrating`) runs at most once per
    // instance (never again for verify's round trip), and not at all when
    // the attempt fails before it (in drain, in the old code's snapshot or
    // downgrade, in a reset's init). The tag calls above have waited out
    // every instance's swap, so all it published is in the stream.
    if matches!(case.expect, Expect::RolledBack(..) | Expect::Rejected(_)) {
        let mut migrates = 0;
        while let Ok(Some(event)) =
            tokio::time::timeout(Duration::from_millis(20), published.next_event()).await
        {
            if matches!(&event, Event::Published { topic, .. } if topic == "fault.migrating") {
                migrates += 1;
            }
        }
        let fails_before_migrate = match (case.expect, case.fault) {
            (Expect::Rejected(_), _) => true,
            (Expect::RolledBack(phase, _), Some((point, _))) => {
                matches!(phase, Phase::Drain | Phase::Snapshot) || point == Point::Init
            }
            _ => false,
        };
        let most = if fails_before_migrate { 0 } else { INSTANCES };
        assert!(
            migrates <= most,
            "{name}: the new code's migrate ran {migrates} times, at most {most} expected"
        );
    }
    let status = node.status().await.expect("status answers");
    let m = status.module("fault").expect("fault runs");
    assert!(!m.reloading, "{name}: no reload is left running: {m:?}");
    assert_eq!(m.code_version, serving_lib.code_version(), "{name}: {m:?}");
    assert_eq!(m.instances.len(), INSTANCES, "{name}: {m:?}");

    // Handler failures: each message counted once as failed, and repeated
    // panics (never errors) restarted the instance from its newest checkpoint.
    if !case.pushes_apply() {
        let panics = matches!(case.expect, Expect::ErrorReplies("panicked"));
        let after = instances(&node).await;
        for i in 0..INSTANCES {
            let failed = after[i].failed - counters_before[i].failed;
            assert_eq!(
                failed,
                sent[i].len() as u64,
                "{name}: instance {i} failures"
            );
            let restarts = after[i].restarts - counters_before[i].restarts;
            assert_eq!(
                restarts,
                if panics { failed / restart_after } else { 0 },
                "{name}: instance {i} restarts"
            );
        }
    }

    // (3) Not wedged: a reload to a clean config is accepted. It commits,
    // unless the serving code's own stop or snapshot is what fails (every
    // reload runs them): then it fails again the same way.
    let stuck = matches!(
        (case.expect, case.attempt),
        (Expect::RolledBack(..), Attempt::ReloadClean)
    ) && case.serving_is_faulty()
        && matches!(case.fault, Some((Point::Stop | Point::Snapshot, _)));
    // A hang in the serving code's stop or snapshot must hang again.
    if stuck && case.how() == Some(How::Hang) {
        release.hold();
    }
    let retry = node
        .reload(
            "fault",
            ReloadOptions::library(serving_lib.path()).with_config(clean("z")),
        )
        .await;
    release.now();
    let final_tag = match (stuck, case.expect, retry) {
        (false, _, Ok(_)) => "z",
        (true, Expect::RolledBack(phase, _), Err(e)) => {
            assert_eq!(
                e.phase(),
                Some(phase),
                "{name}: the retry fails the same way: {e}"
            );
            serving_tag
        }
        (stuck, _, other) => panic!("{name}: the clean retry (stuck: {stuck}): {other:?}"),
    };

    // (4) Nothing lost, duplicated or reordered.
    for (i, h) in handles.iter().enumerate() {
        assert_eq!(tag(h).await, final_tag, "{name}: instance {i}");
        let mut expected = logs[i].clone();
        if case.pushes_apply() {
            expected.extend(sent[i].iter().map(|s| s.value));
        }
        let held = log(h).await;
        if held != expected {
            let first = held.iter().zip(&expected).position(|(a, b)| a != b);
            panic!(
                "{name}: instance {i} holds {} values, expected {} (first difference at {first:?})",
                held.len(),
                expected.len()
            );
        }
    }
    node.shutdown().await;
    let counts: Vec<String> = sent.iter().map(|s| s.len().to_string()).collect();
    format!(
        "{outcome}; messages sent per instance: {}",
        counts.join(" + ")
    )
}

// ---------------------------------------------------------------------------
// The tests: one per group of rows, so groups run in parallel
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fault_in_init() {
    run_group("init/").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fault_in_migrate() {
    run_group("migrate/").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fault_in_downgrade() {
    run_group("downgrade/").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fault_in_start() {
    run_group("start/").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fault_in_stop() {
    run_group("stop/").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fault_in_verify() {
    run_group("verify/").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fault_in_snapshot() {
    run_group("snapshot-").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fault_in_handle() {
    run_group("handle/").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn handler_hang_ahead_of_a_reload_times_out_in_drain() {
    run_group("drain/").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_libraries_are_rejected_in_prepare() {
    run_group("library/").await;
}

#[test]
fn the_table_covers_every_point_and_how() {
    use Point::*;
    let table = table();
    for point in [
        Init, Migrate, Downgrade, Start, Stop, Verify, Handle, Snapshot,
    ] {
        for how in [How::Error, How::Panic, How::Hang] {
            assert!(
                table.iter().any(|c| c.fault == Some((point, how))),
                "no row for {point:?} × {how:?}"
            );
        }
    }
    let mut names: Vec<_> = table.iter().map(|c| c.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), table.len(), "case names are unique");
}

// ---------------------------------------------------------------------------
// Faults while the node starts
// ---------------------------------------------------------------------------

/// `init`, `start` and the first snapshot run in `Node::start` (two
/// instances, the fault in instance 1 only, so instance 0 has started when
/// instance 1 fails). An error or a panic fails the start with `StartFailed`
/// naming the instance, and leaves nothing running (the supervisor's name is
/// free, the node starts again with a clean config). A hang has no timeout
/// to run past: a node start has none, so the start takes that much longer
/// and the node serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn faults_at_node_start() {
    let f = common::fixtures();
    let mut failed = Vec::new();
    for point in [Point::Init, Point::Start, Point::Snapshot] {
        for how in [How::Error, How::Panic, How::Hang] {
            let name = format!("start-{point:?}-{how:?}").to_lowercase();
            let case = name.clone();
            let run = tokio::spawn(async move {
                let spec = ModuleSpec::new("fault", &f.fault)
                    .instances(2)
                    .config(json!({
                        "fault": { "at": format!("{point:?}"), "how": how.json(None) },
                        "only_instance": 1,
                        "tag": "a",
                    }));
                let started = Instant::now();
                let result = Node::start(common::config(&name, &[]).module(spec)).await;
                match (how, result) {
                    (How::Hang, Ok(node)) => {
                        assert!(started.elapsed() >= Duration::from_millis(HANG_MS));
                        let h = node.module::<FaultProto>("fault").unwrap();
                        for i in 0..2 {
                            let h = h.on_instance(i);
                            assert_eq!(tag(&h).await, "a");
                            h.call(Msg::Push(7)).await.expect("push");
                            assert_eq!(log(&h).await, vec![7]);
                        }
                        node.shutdown().await;
                    }
                    (
                        How::Error | How::Panic,
                        Err(Error::StartFailed {
                            module,
                            instance,
                            error,
                        }),
                    ) => {
                        println!("{name}: {error}");
                        assert_eq!((module.as_str(), instance), ("fault", 1));
                        let what = if how == How::Error { "error" } else { "panic" };
                        let needle = format!("injected {what} at {point:?}");
                        assert!(error.contains(&needle), "{error}");
                        let sup = format!("molt.supervisor/{name}");
                        assert!(
                            ractor::registry::where_is(sup).is_none(),
                            "the supervisor is gone"
                        );
                        let node = Node::start(
                            common::config(&name, &[]).module(
                                ModuleSpec::new("fault", &f.fault)
                                    .instances(2)
                                    .config(clean("a")),
                            ),
                        )
                        .await
                        .expect("the same node starts with a clean config");
                        node.shutdown().await;
                    }
                    (_, Ok(node)) => {
                        node.shutdown().await;
                        panic!("expected StartFailed");
                    }
                    (_, Err(e)) => panic!("unexpected error {e:?}"),
                }
            })
            .await;
            if let Err(e) = run {
                let why = panic_text(e);
                eprintln!("FAILED {case}: {why}");
                failed.push(format!("{case}: {why}"));
            }
        }
    }
    assert!(failed.is_empty(), "failed:\n{}", failed.join("\n"));
}
