//! The load: clients pushing sequence numbers to their own kv journal, and a
//! mailbox-depth probe, running until stopped, with what each client sent.
//!
//! Shared by the examples (`live_swap`, `soak`), each including it with
//! `#[path = "support/load.rs"] mod load;`. The module is `kv`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kv_proto::{Proto, Push};
use molt::abi::Request;
use molt::{Admin, Error, ModuleHandle, Node};

/// Every `CALL_EVERY`th message of a client is a call (awaits its reply).
pub const CALL_EVERY: u64 = 64;

/// What one client sent.
pub struct ClientTally {
    /// Its journal.
    pub stream: String,
    /// Messages sent: seqs `0..sent`.
    pub sent: u64,
    /// Casts that were accepted, and calls that got their reply.
    pub acked: u64,
    /// The first send or call that failed, if any.
    pub first_error: Option<String>,
}

/// The clients and a mailbox-depth probe, running until [`Load::stop`].
pub struct Load {
    started: Instant,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    clients: Vec<tokio::task::JoinHandle<ClientTally>>,
    max_depth: Arc<AtomicU64>,
    probe: tokio::task::JoinHandle<()>,
}

/// What the load did.
pub struct Totals {
    pub clients: Vec<ClientTally>,
    pub duration: Duration,
    pub max_mailbox_depth: u64,
}

impl Totals {
    pub fn sent(&self) -> u64 {
        self.clients.iter().map(|c| c.sent).sum()
    }

    pub fn acked(&self) -> u64 {
        self.clients.iter().map(|c| c.acked).sum()
    }
}

impl Load {
    /// Starts `clients` clients offering `rate` messages per second in all
    /// (0: unpaced).
    pub fn start(node: &Node, clients: usize, rate: u64) -> Result<Load, Error> {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        // Each client sends one batch of CALL_EVERY messages per period.
        let period = (rate > 0)
            .then(|| Duration::from_secs_f64((CALL_EVERY * clients as u64) as f64 / rate as f64));
        let handles = (0..clients)
            .map(|n| {
                let kv = node.module::<Proto>("kv")?;
                Ok(tokio::spawn(client(
                    kv,
                    n,
                    period,
                    stop.clone(),
                    sent.clone(),
                )))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let max_depth = Arc::new(AtomicU64::new(0));
        let probe = tokio::spawn(probe_mailbox(node.admin(), max_depth.clone(), stop.clone()));
        Ok(Load {
            started: Instant::now(),
            stop,
            sent,
            clients: handles,
            max_depth,
            probe,
        })
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Messages sent so far, all clients.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Stops the clients and the probe (each client finishes its batch) and
    /// prints each client's first failure, if any.
    pub async fn stop(self) -> Totals {
        self.stop.store(true, Ordering::Relaxed);
        let mut clients = Vec::with_capacity(self.clients.len());
        for c in self.clients {
            clients.push(c.await.expect("a client task panicked"));
        }
        let duration = self.started.elapsed();
        let _ = self.probe.await;
        for c in &clients {
            if let Some(e) = &c.first_error {
                println!("{}: first failure: {e}", c.stream);
            }
        }
        Totals {
            clients,
            duration,
            max_mailbox_depth: self.max_depth.load(Ordering::Relaxed),
        }
    }
}

/// One client: pushes `0, 1, 2, ...` to its own journal, in batches of
/// [`CALL_EVERY`] messages, one batch per `period` (or back to back). The
/// last push of a batch is a call: waiting for its reply keeps at most one
/// batch of this client in the mailbox, even while a reload pauses it.
async fn client(
    kv: ModuleHandle<Proto>,
    n: usize,
    period: Option<Duration>,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
) -> ClientTally {
    let stream = format!("client-{n}");
    let mut tally = ClientTally {
        stream: stream.clone(),
        sent: 0,
        acked: 0,
        first_error: None,
    };
    let mut ticks = period.map(|p| {
        let mut ticks = tokio::time::interval(p);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks
    });
    while !stop.load(Ordering::Relaxed) {
        if let Some(ticks) = ticks.as_mut() {
            ticks.tick().await;
        }
        for _ in 0..CALL_EVERY {
            let result = push(&kv, &stream, tally.sent).await;
            tally.sent += 1;
            match result {
                Ok(()) => tally.acked += 1,
                Err(e) => {
                    tally.first_error.get_or_insert(e);
                }
            }
        }
        sent.fetch_add(CALL_EVERY, Ordering::Relaxed);
    }
    tally
}

/// Pushes `seq`: a call for the last message of a batch, else a cast.
async fn push(kv: &ModuleHandle<Proto>, stream: &str, seq: u64) -> Result<(), String> {
    let push = Push {
        stream: stream.to_string(),
        seq,
    };
    if (seq + 1) % CALL_EVERY == 0 {
        kv.request(push)
            .await
            .map_err(|e| format!("seq {seq}: {e}"))
    } else {
        kv.cast(push.into_msg())
            .map_err(|e| format!("seq {seq}: {e}"))
    }
}

/// Samples the kv instance's mailbox depth until the load stops.
async fn probe_mailbox(admin: Admin, max: Arc<AtomicU64>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        if let Ok(status) = admin.status().await {
            let depth = status
                .module("kv")
                .and_then(|m| m.instances.first())
                .map_or(0, |i| i.mailbox_depth);
            max.fetch_max(depth, Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
