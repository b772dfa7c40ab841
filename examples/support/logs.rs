//! Logging for the examples.
//!
//! Shared by the examples (`live_swap`, `soak`), each including it with
//! `#[path = "support/logs.rs"] mod logs;`.

/// Logs to stderr (stdout is the story), filtered by `RUST_LOG`, else by
/// `default` (an `EnvFilter` directive such as `info`).
pub fn init_tracing(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
