//! The integration tests, as one test binary.
//!
//! Each file of `tests/` is a module here, named after the guarantee or
//! surface it tests (`cargo test --test suite reload_zero_loss::` runs one).
//! One binary instead of one per file: each test binary links the whole
//! runtime (tens of MB), and forty of them filled CI's disk and spent most of
//! the build in the linker. Tests that change process-wide state (the metrics
//! recorder, the mapped-library count, an environment variable a fixture
//! reads) stay binaries of their own: see `[[test]]` in Cargo.toml.

mod common;

mod address_resolved_every_send;
mod address_survives_reload;
mod admin_calls_bounded;
mod admin_listener_limits;
mod answer_the_sender;
mod ask_between_modules;
mod audit_file_robust;
mod call_from_outside;
mod cli;
mod cli_first_run;
// The cluster tests need the `cluster` feature (on by default).
#[cfg(feature = "cluster")]
mod cluster_cookie;
#[cfg(feature = "cluster")]
mod cluster_events;
#[cfg(feature = "cluster")]
mod cluster_forgets_lost_peers;
mod cluster_frozen_node;
#[cfg(feature = "cluster")]
mod cluster_membership;
#[cfg(feature = "cluster")]
mod cluster_versions_follow_reloads;
mod concurrent_reloads;
mod config_check_validates_modules;
mod config_diff;
mod config_file;
mod config_source_wins;
mod copy_dir_not_trusted;
mod dashboard_in_browser;
mod dev_mode;
mod dev_mode_honours_cargo_config;
mod drop_panic_contained;
mod dry_run_never_touches_serving;
mod dry_run_surfaces;
mod event_order;
mod events_over_websocket;
mod example_shop;
mod explicit_rollback;
mod fault_injection;
mod fifo_never_hangs;
mod forced_reload;
mod handler_panic;
mod handling_figures;
mod history_audit;
mod http_admin;
mod keyed_activation;
mod keyed_actors_get_events;
mod keyed_limits;
mod keyed_order_under_reload;
mod keyed_reload_all_or_nothing;
mod keyed_reload_keeps_serving;
mod keyed_reset_rollback;
mod keyed_snapshots_migrate_on_activation;
mod keyed_status;
mod keyed_switch_failure_keeps_snapshot;
mod library_checked_before_copy;
mod library_dirs_strict;
mod module_context;
mod molt_new_scaffold;
mod no_own_verify_keeps_round_trip;
mod properties;
mod reload_zero_loss;
#[cfg(feature = "cluster")]
mod remote_ask_answered;
#[cfg(feature = "cluster")]
mod remote_send_in_order;
#[cfg(feature = "cluster")]
mod remote_send_to_unreachable_errors;
mod reply_later;
mod restart_keeps_checkpoint;
mod rollback_on_failure;
mod rollback_restores_library;
mod rollout_commits_everywhere;
mod rollout_gate_rolls_back;
mod rollout_library_checked;
mod rollout_node_lost;
mod rollout_rollback_failure_reported;
mod round_trip_reads_each_state_once;
mod run_builds_once;
mod savina;
mod scale_keeps_order;
mod send_error_returns_message;
mod send_to_gone_actor_errors;
mod shutdown_drains;
mod stale_copies_cleaned;
mod token_files_safe;
mod two_phase_commit;
mod two_phase_never_splits;
mod typed_requests;
mod upgrade_downgrade;
mod version_stack;
mod watch_reload;
mod watch_survives_dir_recreate;
