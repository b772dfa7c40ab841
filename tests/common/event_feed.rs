//! A node's `GET /events` stream read as a user would (the HTTP admin
//! client over server-sent events), from a test thread: every event is
//! kept, and awaited with a bound. For tests driving `molt` processes,
//! whose other helpers block.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use molt::http::{AdminClient, AdminEvent};

/// How long opening the stream may take on a loaded machine.
const OPEN_WITHIN: Duration = Duration::from_secs(20);

/// The events of one node since [`EventFeed::open`]; stops reading when
/// dropped.
pub struct EventFeed {
    seen: Arc<Mutex<Vec<AdminEvent>>>,
    stop: Arc<AtomicBool>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl EventFeed {
    /// Subscribes to the events of the node whose HTTP admin is `admin`
    /// (loopback: no token needed to read); returns once the stream is
    /// open, so every event published from then on is seen.
    pub fn open(admin: SocketAddr) -> EventFeed {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (opened, is_open) = std::sync::mpsc::channel();
        let (into, stopped) = (seen.clone(), stop.clone());
        let reader = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            rt.block_on(async move {
                let client = AdminClient::for_addr(admin, None).expect("a client");
                let mut events = match client.events().await {
                    Ok(e) => e,
                    Err(e) => {
                        let _ = opened.send(Err(e.to_string()));
                        return;
                    }
                };
                let _ = opened.send(Ok(()));
                while !stopped.load(Ordering::Relaxed) {
                    match tokio::time::timeout(Duration::from_millis(100), events.next()).await {
                        Ok(Some(Ok(event))) => into.lock().unwrap().push(event),
                        Ok(_) => return, // the stream ended
                        Err(_) => {}     // nothing yet: look at `stop`
                    }
                }
            });
        });
        match is_open.recv_timeout(OPEN_WITHIN) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("GET /events on {admin}: {e}"),
            Err(_) => panic!("GET /events on {admin}: not open within {OPEN_WITHIN:?}"),
        }
        EventFeed {
            seen,
            stop,
            reader: Some(reader),
        }
    }

    /// Every event seen so far, in order.
    pub fn seen(&self) -> Vec<AdminEvent> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits until an event of `kind` for which `ok` holds was seen, for at
    /// most `within`: that event (the first one). Panics naming the kind,
    /// with every event seen.
    pub fn await_event(
        &self,
        kind: &str,
        within: Duration,
        ok: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + within;
        loop {
            if let Some(e) = self
                .seen()
                .into_iter()
                .find(|e| e.kind == kind && ok(&e.data))
            {
                return e.data;
            }
            assert!(
                Instant::now() < deadline,
                "no {kind} event within {within:?}; seen: {:#?}",
                self.seen()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for EventFeed {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}
