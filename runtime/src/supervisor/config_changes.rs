//! Applying a configuration change: validate, diff against the configuration
//! last declared (not the running modules: an admin reload of a module stays
//! until an edit touches that module), reject it whole or apply it whole —
//! each change through the admin messages, and when one fails, the ones
//! applied before it undone in reverse — then record what happened.

use super::*;

pub(crate) struct ConfigDone {
    at: SystemTime,
    trigger: Trigger,
    /// The configuration to declare when every change applied.
    config: NodeConfig,
    report: ConfigReport,
    reply: RpcReplyPort<Result<ConfigReport, Error>>,
}

/// How to take back one applied change.
#[derive(Debug, Clone)]
enum Undo {
    /// A reload: roll back one step (its version stack restores the
    /// library, path and config it replaced).
    Rollback(String),
    /// A scaling: back to the instance count before it (instances that a
    /// scale-down stopped come back fresh: their state is gone).
    Scale(String, u32),
    /// An addition: remove the module.
    Remove(String),
    /// A removal cannot be taken back (its instances drained and stopped);
    /// removals go last, so nothing after one can fail.
    Impossible,
}

pub(super) async fn apply_change(admin: &Admin, change: &Change) -> Result<(), Error> {
    match change {
        Change::Added { spec } => admin.add_module(spec.clone()).await,
        Change::Removed { module } => admin.remove_module(module).await,
        Change::Reload {
            module,
            library,
            config,
        } => admin
            .reload(
                module,
                ReloadOptions {
                    library: library.clone(),
                    config: config.clone(),
                    trigger: Trigger::Config,
                    force: false,
                },
            )
            .await
            .map(|_| ()),
        Change::Instances { module, to, .. } => admin.scale(module, *to).await,
    }
}

async fn undo_change(admin: &Admin, undo: &Undo) -> Result<(), Error> {
    match undo {
        Undo::Rollback(module) => admin
            .rollback_by(module, false, Trigger::Config)
            .await
            .map(|_| ()),
        Undo::Scale(module, to) => admin.scale(module, *to).await,
        Undo::Remove(module) => admin.remove_module(module).await,
        Undo::Impossible => Err(Error::Config(
            "a removed module cannot be restored (its instances were stopped)".into(),
        )),
    }
}

/// Applies `changes` in order; on the first failure, undoes the applied
/// ones in reverse.
async fn apply_all(admin: &Admin, changes: Vec<(Change, Undo)>) -> ConfigReport {
    let mut report = ConfigReport {
        changes: Vec::with_capacity(changes.len()),
        undone: Vec::new(),
    };
    let mut applied: Vec<(Change, Undo)> = Vec::new();
    for (change, undo) in changes {
        let result = apply_change(admin, &change)
            .await
            .map_err(|e| e.to_string());
        let failed = result.is_err();
        report.changes.push((change.clone(), result));
        if failed {
            break;
        }
        applied.push((change, undo));
    }
    if report.all_applied() {
        return report;
    }
    for (change, undo) in applied.into_iter().rev() {
        let result = undo_change(admin, &undo).await.map_err(|e| e.to_string());
        if let Err(e) = &result {
            tracing::error!(target: "molt::supervisor", "configuration change: cannot undo {}: {e}", change.describe());
        }
        report.undone.push((change, result));
    }
    report
}

impl Supervisor {
    pub(super) fn apply_config(
        myself: &ActorRef<SupervisorMsg>,
        st: &mut SupState,
        config: NodeConfig,
        trigger: Trigger,
        reply: RpcReplyPort<Result<ConfigReport, Error>>,
    ) {
        if let Err(e) = config.validate() {
            return Self::reject_config(st, e, trigger, reply);
        }
        if st.applying_config {
            let e = Error::Config("another configuration change is being applied".into());
            return Self::reject_config(st, e, trigger, reply);
        }
        let plan = diff::plan(&st.declared, &config);
        if !plan.is_applicable() {
            return Self::reject_config(
                st,
                Error::ConfigRejected {
                    keys: plan.restart_keys,
                },
                trigger,
                reply,
            );
        }
        let changes = Self::against_running(st, plan.changes);
        st.applying_config = true;
        // Unbounded: the supervisor's own task must not give up on it.
        let admin = Admin::new(myself.clone(), None);
        let me = myself.clone();
        let at = SystemTime::now();
        tokio::spawn(async move {
            let report = apply_all(&admin, changes).await;
            let done = ConfigDone {
                at,
                trigger,
                config,
                report,
                reply,
            };
            let _ = me.send_message(SupervisorMsg::Internal(InternalMsg(Internal::ConfigDone(
                Box::new(done),
            ))));
        });
    }

    /// The declared changes as they apply to the running modules, each with
    /// its undo: a removal of a module not running (an admin removed it) is
    /// already done; a scaling goes from the running instance count.
    fn against_running(st: &SupState, changes: Vec<Change>) -> Vec<(Change, Undo)> {
        changes
            .into_iter()
            .filter_map(|change| {
                let running = st.table.get(change.module());
                match change {
                    Change::Removed { .. } if running.is_none() => None,
                    Change::Removed { .. } => Some((change, Undo::Impossible)),
                    Change::Added { ref spec } => {
                        let undo = Undo::Remove(spec.name.clone());
                        Some((change, undo))
                    }
                    Change::Reload { ref module, .. } => {
                        let undo = Undo::Rollback(module.clone());
                        Some((change, undo))
                    }
                    Change::Instances { module, to, from } => {
                        let from = running.map_or(from, |e| e.spec.instances);
                        (from != to).then(|| {
                            let undo = Undo::Scale(module.clone(), from);
                            (Change::Instances { module, from, to }, undo)
                        })
                    }
                }
            })
            .collect()
    }

    pub(super) fn reject_config(
        st: &mut SupState,
        e: Error,
        trigger: Trigger,
        reply: RpcReplyPort<Result<ConfigReport, Error>>,
    ) {
        tracing::warn!(target: "molt::supervisor", "configuration change rejected: {e}");
        st.bus.publish(Event::ConfigRejected {
            error: e.to_string(),
        });
        st.history.push(HistoryEntry {
            id: 0,
            at: SystemTime::now(),
            module: String::new(),
            action: Action::ApplyConfig,
            trigger,
            from: String::new(),
            to: String::new(),
            outcome: Outcome::Refused,
            phase: None,
            error: Some(e.to_string()),
            pause_us: 0,
            restored: None,
            keys_kept_passivated: 0,
        });
        let _ = reply.send(Err(e));
    }

    /// Records a configuration change: applied whole (the new config is the
    /// declared one now), or failed with every applied change undone
    /// (`rolled_back`; the history's error names the failure and each undo,
    /// and any change that could not be undone).
    pub(super) fn finish_config(st: &mut SupState, done: ConfigDone) {
        st.applying_config = false;
        let ConfigDone {
            at,
            trigger,
            config,
            report,
            reply,
        } = done;
        let ok = report.all_applied();
        let mut kept: Vec<String> = Vec::new();
        let mut failed: Vec<String> = Vec::new();
        for (change, result) in &report.changes {
            match result {
                Err(e) => failed.push(format!("{}: {e}", change.describe())),
                Ok(()) if ok => kept.push(change.describe()),
                Ok(()) => {}
            }
        }
        for (change, result) in &report.undone {
            match result {
                Ok(()) => failed.push(format!(
                    "{}: undone (a later change failed)",
                    change.describe()
                )),
                Err(e) => {
                    kept.push(change.describe());
                    failed.push(format!(
                        "{}: applied, and could not be undone: {e}",
                        change.describe()
                    ));
                }
            }
        }
        if ok {
            st.declared = config;
        }
        st.history.push(HistoryEntry {
            id: 0,
            at,
            module: String::new(),
            action: Action::ApplyConfig,
            trigger,
            from: String::new(),
            to: kept.join("; "),
            outcome: if ok {
                Outcome::Committed
            } else {
                Outcome::RolledBack
            },
            phase: None,
            error: (!failed.is_empty()).then(|| failed.join("; ")),
            pause_us: 0,
            restored: None,
            keys_kept_passivated: 0,
        });
        if ok {
            tracing::info!(target: "molt::supervisor", applied = kept.len(), "configuration change applied");
        } else {
            tracing::warn!(target: "molt::supervisor", "configuration change failed and was undone: {}", failed.join("; "));
        }
        st.bus.publish(Event::ConfigApplied {
            changes: kept,
            failed,
        });
        let _ = reply.send(Ok(report));
    }
}
