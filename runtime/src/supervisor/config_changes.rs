//! Applying a configuration change: validate, diff against the running
//! configuration, reject it whole or apply each change through the admin
//! messages, then record it.

use super::*;

pub(crate) struct ConfigDone {
    at: SystemTime,
    trigger: Trigger,
    report: ConfigReport,
    reply: RpcReplyPort<Result<ConfigReport, Error>>,
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
        let plan = diff::plan(&Self::running_config(st), &config);
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
        st.applying_config = true;
        // Unbounded: the supervisor's own task must not give up on it.
        let admin = Admin::new(myself.clone(), None);
        let me = myself.clone();
        let at = SystemTime::now();
        tokio::spawn(async move {
            let mut changes = Vec::with_capacity(plan.changes.len());
            for change in plan.changes {
                let result = apply_change(&admin, &change)
                    .await
                    .map_err(|e| e.to_string());
                changes.push((change, result));
            }
            let done = ConfigDone {
                at,
                trigger,
                report: ConfigReport { changes },
                reply,
            };
            let _ = me.send_message(SupervisorMsg::Internal(InternalMsg(Internal::ConfigDone(
                Box::new(done),
            ))));
        });
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
        });
        let _ = reply.send(Err(e));
    }

    pub(super) fn finish_config(st: &mut SupState, done: ConfigDone) {
        st.applying_config = false;
        let ConfigDone {
            at,
            trigger,
            report,
            reply,
        } = done;
        let applied: Vec<String> = report
            .changes
            .iter()
            .filter(|(_, r)| r.is_ok())
            .map(|(c, _)| c.describe())
            .collect();
        let failed: Vec<String> = report
            .changes
            .iter()
            .filter_map(|(c, r)| r.as_ref().err().map(|e| format!("{}: {e}", c.describe())))
            .collect();
        st.history.push(HistoryEntry {
            id: 0,
            at,
            module: String::new(),
            action: Action::ApplyConfig,
            trigger,
            from: String::new(),
            to: applied.join("; "),
            outcome: if failed.is_empty() {
                Outcome::Committed
            } else {
                Outcome::RolledBack
            },
            phase: None,
            error: (!failed.is_empty()).then(|| failed.join("; ")),
            pause_us: 0,
            restored: None,
        });
        tracing::info!(target: "molt::supervisor", applied = applied.len(), failed = failed.len(), "configuration change applied");
        st.bus.publish(Event::ConfigApplied {
            changes: applied,
            failed,
        });
        let _ = reply.send(Ok(report));
    }
}
