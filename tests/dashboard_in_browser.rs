//! The dashboard (`GET /`) in a real browser: a headless Chromium (Debian's
//! `chromium`, driven over the DevTools protocol) opens the page of a node
//! started here. The page lists the modules; a reload clicked without the
//! token is shown refused and changes nothing; with the token entered, a
//! dry run says what would happen and changes nothing, and the reload
//! reaches the node (its status shows the new version) and its
//! event shows up in the page's live feed. The token is kept for the tab
//! only (sessionStorage). For a node in a cluster the page shows the
//! members and the last rollout coordinated there, and follows both.
//!
//! Needs `chromium` (`apt-get install -y chromium`; `.ci/run` installs it):
//! without it the test fails, saying so.

use crate::common;
use crate::common::chromium::Chromium;

use std::time::Duration;

use molt::ModuleSpec;

const TOKEN: &str = "test-token-dashboard-0123456789abcdef";

/// The text of the element `selector`, as a script expression.
fn text_of(selector: &str) -> String {
    format!("((document.querySelector({selector:?}) || {{}}).textContent || '')")
}

fn click(selector: &str) -> String {
    format!("document.querySelector({selector:?}).click(), true")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_from_the_page_reaches_the_node() {
    let f = common::fixtures();
    // The module's configured library: rebuilt (replaced) below, then
    // reloaded from the page, as an operator would.
    let libs = common::scratch_dir();
    let live = libs.path().join("libcounter_live.so");
    std::fs::copy(&f.counter, &live).unwrap();
    let mut config = common::config("dashboard", &[libs.path()]);
    // The page reloads it, not the watcher.
    config.hot_reload = false;
    let node = molt::Node::start(config.module(ModuleSpec::new("counter", &live)))
        .await
        .expect("node starts");
    let (server, client) = common::serve_admin(&node, TOKEN).await;
    let url = format!("http://{}/", server.local_addr());

    let mut page = Chromium::open(&url).await;
    let row = r#"tr[data-module="counter"]"#;
    page.wait_for(
        &format!("{} === '1.0.0'", text_of(&format!("{row} td.version"))),
        "the counter module at 1.0.0 in the modules table",
        &text_of("#modules"),
    )
    .await;
    page.wait_for(
        "document.getElementById('live').className === 'on'",
        "the live event stream connected",
        &text_of("#live"),
    )
    .await;

    // The library is rebuilt: v2 replaces the configured file.
    let staged = libs.path().join("libcounter_live.so.new");
    std::fs::copy(&f.counter_v2, &staged).unwrap();
    std::fs::rename(&staged, &live).unwrap();

    // Without the token: refused, shown, nothing reloaded.
    page.eval(&click(&format!(r#"{row} button[data-action="reload"]"#)))
        .await
        .unwrap();
    let shown = page
        .wait_for(
            &format!(
                "document.getElementById('notice').className === 'error' && {}",
                text_of("#notice")
            ),
            "the reload refused without the token",
            &text_of("#notice"),
        )
        .await;
    let shown = shown.as_str().unwrap_or_default().to_string();
    assert!(
        shown.contains("refused") && shown.contains("401") && shown.contains("token"),
        "{shown}"
    );
    assert_eq!(
        client.module("counter").await.unwrap().code_version,
        "1.0.0"
    );
    assert!(
        node.history().await.unwrap().is_empty(),
        "nothing was tried"
    );

    // The token, entered once, kept for the tab only.
    page.eval(&format!(
        "document.getElementById('token').value = {TOKEN:?}, {}",
        click("#token-save")
    ))
    .await
    .unwrap();
    let stored = page
        .eval("[sessionStorage.getItem('molt.admin_token'), localStorage.length]")
        .await
        .unwrap();
    assert_eq!(stored, serde_json::json!([TOKEN, 0]));

    page.wait_for(
        &format!(r#"!document.querySelector('{row} button[data-action="reload"]').disabled"#),
        "the reload button enabled again",
        &text_of("#notice"),
    )
    .await;
    // A dry run first: the page says what would happen, nothing changes.
    page.eval(&click(&format!(r#"{row} button[data-action="dry-run"]"#)))
        .await
        .unwrap();
    let rehearsed = page
        .wait_for(
            &format!(
                "{0}.includes('dry run of counter') && {0}",
                text_of("#notice")
            ),
            "the dry run's answer",
            &text_of("#notice"),
        )
        .await;
    let rehearsed = rehearsed.as_str().unwrap_or_default().to_string();
    assert!(
        rehearsed.contains("would commit 1.0.0 → 2.0.0"),
        "{rehearsed}"
    );
    assert_eq!(
        client.module("counter").await.unwrap().code_version,
        "1.0.0"
    );
    page.wait_for(
        &format!(r#"!document.querySelector('{row} button[data-action="reload"]').disabled"#),
        "the reload button enabled again",
        &text_of("#notice"),
    )
    .await;
    page.eval(&click(&format!(r#"{row} button[data-action="reload"]"#)))
        .await
        .unwrap();

    // It reaches the node...
    let deadline = tokio::time::Instant::now() + common::chromium::DEADLINE;
    loop {
        let m = client.module("counter").await.unwrap();
        if m.code_version == "2.0.0" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the reload clicked in the page never reached the node (still {}; page says {:?})",
            m.code_version,
            page.eval(&text_of("#notice")).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // ...and its event shows up in the page's feed, the table follows.
    let event = page
        .wait_for(
            &text_of(r#"#feed li[data-kind="module.reloaded"]"#),
            "the module.reloaded event in the live feed",
            &text_of("#feed"),
        )
        .await;
    let event = event.as_str().unwrap_or_default().to_string();
    assert!(
        event.contains("name=counter") && event.contains("to=2.0.0"),
        "{event}"
    );
    page.wait_for(
        &format!("{} === '2.0.0'", text_of(&format!("{row} td.version"))),
        "the counter module at 2.0.0 in the modules table",
        &text_of("#modules"),
    )
    .await;
    page.wait_for(
        &format!("{}.includes('1.0.0 → 2.0.0')", text_of("#history")),
        "the reload in the history table",
        &text_of("#history"),
    )
    .await;

    drop(page);
    server.shutdown().await;
    node.shutdown().await;
}

/// On an address that is not loopback the page itself is served without
/// the token (it holds no data, and a browser cannot send a bearer header
/// when it opens a URL), while what it reads needs the token as ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_is_open_its_data_is_not() {
    let f = common::fixtures();
    let node = common::start("dashboard-open", ModuleSpec::new("counter", &f.counter)).await;
    let server = molt::http::serve(&node, "0.0.0.0:0".parse().unwrap(), Some(TOKEN.into()))
        .await
        .expect("the admin server starts");
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], server.local_addr().port()));
    let within = common::chromium::DEADLINE;
    let http = reqwest::Client::new();
    for (path, kind) in [
        ("/", "text/html"),
        ("/dashboard.js", "text/javascript"),
        ("/dashboard.css", "text/css"),
    ] {
        let r = http
            .get(format!("http://{addr}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let headers = r.headers();
        assert!(
            headers["content-type"].to_str().unwrap().starts_with(kind),
            "{path}"
        );
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));
    }
    let (code, _) = common::http_get(addr, "/status", within).expect("an answer");
    assert_eq!(code, 401);
    server.shutdown().await;
    node.shutdown().await;
}

/// For a node in a cluster the page shows the members (reachable or not,
/// each one's module versions) and the last rollout coordinated there with
/// its steps, and follows them live: two `molt` processes, a rollout from
/// the CLI, then one node killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_and_its_last_rollout_on_the_page() {
    use common::cluster::{all_reachable, ClusterNode, JOINED_WITHIN};
    let (dir, a, mut b) = tokio::task::spawn_blocking(|| {
        let dir = common::scratch_dir();
        let lib = &common::fixtures().counter;
        let mut a = ClusterNode::new(dir.path(), "a", lib, &[], "");
        a.start();
        let mut b = ClusterNode::new(dir.path(), "b", lib, &[a.listen], "");
        b.start();
        for n in [&a, &b] {
            n.await_view("a and b reachable", JOINED_WITHIN, |v| {
                all_reachable(v, &["a", "b"])
            });
        }
        (dir, a, b)
    })
    .await
    .unwrap();
    let admin = a.admin.unwrap();
    let mut page = Chromium::open(&format!("http://{admin}/")).await;
    let member = |node: &str, cell: &str| text_of(&format!(r#"tr[data-node="{node}"] td.{cell}"#));
    page.wait_for(
        &format!(
            "!document.getElementById('cluster-section').hidden && {} === 'this node' \
             && {} === 'reachable' && {} === 'counter 1.0.0' && {}.includes('none yet')",
            member("a", "state"),
            member("b", "state"),
            member("b", "versions"),
            text_of("#rollout"),
        ),
        "a and b in the cluster table, b reachable on counter 1.0.0, no rollout yet",
        &text_of("#cluster-section"),
    )
    .await;

    // A rollout from the CLI: the page shows it, step by step.
    let v2 = common::fixtures().counter_v2.clone();
    let runtime_dir = dir.path().to_path_buf();
    let (a, (status, out)) = tokio::task::spawn_blocking(move || {
        let args = [
            "--gate-window-ms",
            "300",
            "--min-handled",
            "0",
            "--wave-watch-ms",
            "300",
        ];
        let ran = common::rollout::run_rollout_of("counter", &a, &runtime_dir, &v2, &args);
        (a, ran)
    })
    .await
    .unwrap();
    assert!(status.success(), "{out}");
    let shown = page
        .wait_for(
            &format!(
                "document.querySelector('#rollout p.head') && \
                 document.querySelector('#rollout p.head').dataset.outcome === 'committed' \
                 && {} === 'counter 2.0.0' && {}",
                member("b", "versions"),
                text_of("#rollout"),
            ),
            "the committed rollout, and b on counter 2.0.0",
            &text_of("#cluster-section"),
        )
        .await;
    let shown = shown.as_str().unwrap_or_default().to_string();
    for step in ["canary", "gate", "wave 1", "commit", "1.0.0 → 2.0.0"] {
        assert!(shown.contains(step), "no {step:?} in: {shown}");
    }
    let steps = page
        .eval("[...document.querySelectorAll('#rollout tr[data-step]')].map((r) => r.dataset.step)")
        .await
        .unwrap();
    assert_eq!(
        steps,
        serde_json::json!(["check", "canary", "gate", "wave 1", "commit"])
    );

    // b killed: the page shows it unreachable.
    b.process = None; // kill -9 on drop
    page.wait_for(
        &format!("{} === 'UNREACHABLE'", member("b", "state")),
        "b unreachable",
        &text_of("#members"),
    )
    .await;
    drop(a);
}
