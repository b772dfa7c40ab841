//! A headless Chromium driven over the DevTools protocol (a WebSocket, by
//! hand with tokio-tungstenite): enough to open a page, evaluate script in
//! it and wait for a condition. The browser is Debian's `chromium`; the
//! process is killed and its profile removed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// How long the browser may take to start, and any one step.
pub const DEADLINE: Duration = Duration::from_secs(30);

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One headless Chromium with one page open.
pub struct Chromium {
    child: Child,
    socket: Socket,
    session: String,
    next_id: u64,
    _profile: tempfile::TempDir,
}

/// The browser binary: `chromium` on PATH (Debian's package). A test that
/// needs it fails, naming the install step, when it is missing.
fn binary() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("chromium"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "this test drives a real browser and `chromium` is not installed: \
             install it with `apt-get update && apt-get install -y chromium` \
             (Debian's package; .ci/run does this when it is missing)"
        )
    })
}

impl Chromium {
    /// Starts a headless Chromium with a fresh profile and opens `url`.
    pub async fn open(url: &str) -> Chromium {
        let profile = tempfile::Builder::new()
            .prefix("molt-chromium")
            .tempdir()
            .expect("profile dir");
        let log = std::fs::File::create(profile.path().join("chromium.log")).expect("log file");
        let child = Command::new(binary())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-proxy-server",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start chromium: {e}"));
        let mut browser = Killed(Some(child));
        let endpoint = devtools_endpoint(profile.path(), browser.0.as_mut().unwrap()).await;
        let (socket, _) =
            tokio::time::timeout(DEADLINE, tokio_tungstenite::connect_async(&endpoint))
                .await
                .expect("the DevTools socket answers in time")
                .unwrap_or_else(|e| panic!("cannot reach chromium's DevTools at {endpoint}: {e}"));
        let mut chromium = Chromium {
            child: browser.0.take().unwrap(),
            socket,
            session: String::new(),
            next_id: 0,
            _profile: profile,
        };
        let target = chromium
            .command(None, "Target.createTarget", json!({ "url": url }))
            .await;
        let target_id = target["targetId"]
            .as_str()
            .expect("a target id")
            .to_string();
        let attached = chromium
            .command(
                None,
                "Target.attachToTarget",
                json!({ "targetId": target_id, "flatten": true }),
            )
            .await;
        chromium.session = attached["sessionId"]
            .as_str()
            .expect("a session id")
            .to_string();
        chromium
    }

    /// Evaluates `expression` in the page (awaiting a promise) and returns
    /// its value; an exception thrown by the script is returned as
    /// `Err(description)`.
    pub async fn eval(&mut self, expression: &str) -> Result<Value, String> {
        let session = self.session.clone();
        let r = self
            .command(
                Some(&session),
                "Runtime.evaluate",
                json!({ "expression": expression, "awaitPromise": true, "returnByValue": true }),
            )
            .await;
        if let Some(e) = r.get("exceptionDetails") {
            return Err(e["exception"]["description"]
                .as_str()
                .unwrap_or("an exception")
                .to_string());
        }
        Ok(r["result"]["value"].clone())
    }

    /// Evaluates `expression` until it gives a truthy value (not false,
    /// null, "" or 0) and returns it; fails the test after [`DEADLINE`],
    /// naming `what` and the page's last value of `show`.
    pub async fn wait_for(&mut self, expression: &str, what: &str, show: &str) -> Value {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let v = self.eval(expression).await;
            let truthy = match &v {
                Ok(Value::Bool(b)) => *b,
                Ok(Value::Null) => false,
                Ok(Value::String(s)) => !s.is_empty(),
                Ok(Value::Number(n)) => n.as_f64() != Some(0.0),
                Ok(_) => true,
                Err(_) => false,
            };
            if truthy {
                return v.unwrap();
            }
            if tokio::time::Instant::now() > deadline {
                let shown = self.eval(show).await;
                panic!("{what}: not seen on the page within {DEADLINE:?} (last: {v:?}; {show} = {shown:?})");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends one DevTools command and returns its result.
    async fn command(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = session {
            msg["sessionId"] = s.into();
        }
        self.socket
            .send(Message::text(msg.to_string()))
            .await
            .expect("send a DevTools command");
        let answer = tokio::time::timeout(DEADLINE, async {
            loop {
                match self.socket.next().await {
                    Some(Ok(Message::Text(t))) => {
                        let v: Value = serde_json::from_str(t.as_str()).expect("DevTools JSON");
                        if v["id"] == id {
                            return v;
                        }
                    }
                    Some(Ok(_)) => continue,
                    other => panic!("the DevTools socket ended: {other:?}"),
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("chromium did not answer {method} within {DEADLINE:?}"));
        if let Some(e) = answer.get("error") {
            panic!("chromium refused {method}: {e}");
        }
        answer["result"].clone()
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Kills the browser if starting it fails half-way.
struct Killed(Option<Child>);

impl Drop for Killed {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The browser's DevTools WebSocket URL, from the `DevToolsActivePort` file
/// it writes into its profile (the port on the first line, the path on the
/// second) once it listens.
async fn devtools_endpoint(profile: &Path, child: &mut Child) -> String {
    let file = profile.join("DevToolsActivePort");
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Ok(text) = std::fs::read_to_string(&file) {
            let mut lines = text.lines();
            if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                return format!("ws://127.0.0.1:{}{}", port.trim(), path.trim());
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(profile.join("chromium.log")).unwrap_or_default();
            panic!("chromium exited ({status}) before it listened:\n{log}");
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "chromium did not open its DevTools port within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
