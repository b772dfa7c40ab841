//! The supervisor's side of reloads and rollbacks: refusing what cannot run,
//! starting the coordinator task, and recording its outcome (table,
//! history, events, metrics).

use super::modules::encode_config;
use super::*;
use crate::keyed::reload::KeyedOutcome;

/// What the protocol is asked to do for one module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Request {
    /// Swap to a library (a new one, or the configured path rebuilt).
    Reload,
    /// Go back to a kept version, down-migrating the state or not.
    Rollback {
        /// Start the kept library with a fresh state.
        reset_state: bool,
        /// The code version to return to; default: the previous one.
        to: Option<String>,
    },
}

impl Request {
    fn action(&self) -> Action {
        match self {
            Request::Reload => Action::Reload,
            Request::Rollback { .. } => Action::Rollback,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Request::Reload => "reload",
            Request::Rollback { .. } => "rollback",
        }
    }

    fn is_reload(&self) -> bool {
        matches!(self, Request::Reload)
    }
}

impl From<Trigger> for LibrarySource {
    fn from(t: Trigger) -> Self {
        match t {
            Trigger::Admin => LibrarySource::Admin,
            Trigger::Http => LibrarySource::Http,
            Trigger::Watch => LibrarySource::Watch,
            Trigger::Config => LibrarySource::Config,
            Trigger::Dev => LibrarySource::Dev,
            Trigger::Node => LibrarySource::Node,
            Trigger::Rollout => LibrarySource::Rollout,
        }
    }
}

pub(crate) struct ReloadDone {
    module: String,
    request: Request,
    trigger: Trigger,
    asked: String,
    new_config: Option<(serde_json::Value, Arc<Vec<u8>>)>,
    new_path: Option<PathBuf>,
    /// A rollback: the index in the version stack it returns to.
    back_to: Option<usize>,
    at: SystemTime,
    outcome: reload::Outcome,
    /// A keyed module's live actors: their pauses and the keys not switched.
    keyed: KeyedOutcome,
    reply: RpcReplyPort<Result<ReloadReport, Error>>,
}

impl Supervisor {
    /// Records a reload or rollback attempt of a module: the history (and
    /// its audit file) and `molt_reloads_total`, always together.
    fn record(st: &mut SupState, entry: HistoryEntry) {
        crate::metrics::reload_finished(&entry.module, entry.outcome);
        st.history.push(entry);
    }

    pub(super) fn refuse(
        st: &mut SupState,
        module: &str,
        action: Action,
        trigger: Trigger,
        from: String,
        error: &Error,
    ) {
        Self::record(
            st,
            HistoryEntry {
                id: 0,
                at: SystemTime::now(),
                module: module.to_string(),
                action,
                trigger,
                from,
                to: String::new(),
                outcome: Outcome::Refused,
                phase: None,
                error: Some(error.to_string()),
                pause_us: 0,
                restored: None,
                keys_kept_passivated: 0,
            },
        );
    }

    pub(super) fn start_reload(
        myself: &ActorRef<SupervisorMsg>,
        st: &mut SupState,
        module: String,
        request: Request,
        options: ReloadOptions,
        reply: RpcReplyPort<Result<ReloadReport, Error>>,
    ) {
        let action = request.action();
        let Some(entry) = st.table.get_mut(&module) else {
            let _ = reply.send(Err(Error::UnknownModule(module)));
            return;
        };
        let from = entry.current.code_version.clone();
        if entry.reloading {
            let err = Error::ReloadInProgress(module.clone());
            Self::refuse(st, &module, action, options.trigger, from, &err);
            let _ = reply.send(Err(err));
            return;
        }
        // A forced reload replaces hung pool instances: not defined for
        // keyed actors yet.
        let unsupported = match &request {
            _ if entry.keyed.is_none() => None,
            Request::Reload if options.force => Some("a forced reload"),
            _ => None,
        };
        if let Some(what) = unsupported {
            let err = Error::NotForKeyed {
                module: module.clone(),
                what,
            };
            Self::refuse(st, &module, action, options.trigger, from, &err);
            let _ = reply.send(Err(err));
            return;
        }
        let mut back_to = None;
        let mut new_path = options.library.clone();
        let mut new_config = match &options.config {
            Some(value) => match encode_config(&module, value) {
                Ok(bytes) => Some((value.clone(), bytes)),
                Err(e) => {
                    Self::refuse(st, &module, action, options.trigger, from, &e);
                    let _ = reply.send(Err(e));
                    return;
                }
            },
            None => None,
        };
        // A reload to a library with an older state version is a downgrade too:
        // `reload::run` decides once the library is loaded (docs/semantics.md
        // "Rollback and forced reloads").
        let (source, mode, asked) = match &request {
            Request::Reload => {
                let path = options
                    .library
                    .clone()
                    .unwrap_or_else(|| entry.spec.library.clone());
                (
                    Source::Path(path.clone()),
                    SwapMode::Upgrade,
                    path.display().to_string(),
                )
            }
            Request::Rollback { reset_state, to } => {
                let (index, version) = match entry.versions.find(to.as_deref()) {
                    Ok(i) => (i, entry.versions.get(i).cloned().expect("found")),
                    Err(reason) => {
                        let err = Error::RollbackRefused {
                            module: module.clone(),
                            reason,
                        };
                        Self::refuse(st, &module, action, options.trigger, from, &err);
                        let _ = reply.send(Err(err));
                        return;
                    }
                };
                // Back to an older state version: the serving code
                // down-migrates, in one swap however far back. To the same
                // or a newer one: the kept library migrates the state as in
                // any upgrade. The kept version's path and config come back
                // with it.
                let mode = if *reset_state {
                    SwapMode::Reset
                } else if version.lib.state_version < entry.current.state_version {
                    SwapMode::Downgrade {
                        to: version.lib.state_version,
                    }
                } else {
                    SwapMode::Upgrade
                };
                back_to = Some(index);
                new_path = Some(version.library.clone());
                new_config = Some((version.config_value.clone(), version.config.clone()));
                let asked = version.lib.code_version.clone();
                (Source::Loaded(version.lib), mode, asked)
            }
        };
        entry.reloading = true;
        let plan = Plan {
            module: module.clone(),
            bus: st.bus.clone(),
            from: from.clone(),
            source,
            config: new_config
                .as_ref()
                .map(|(_, b)| b.clone())
                .unwrap_or_else(|| entry.config.clone()),
            mode,
            from_state: entry.current.state_version,
            routes: entry.slot.routes.load().as_ref().clone(),
            limits: st.limits.clone(),
            loader: st.loader.clone(),
            voters: None,
            force: (options.force && request == Request::Reload).then(|| {
                Self::respawn(
                    myself,
                    Arc::from(st.node.as_str()),
                    st.bus.clone(),
                    st.directory.clone(),
                    st.limits.clone(),
                    &module,
                    entry.slot.clone(),
                )
            }),
        };
        let me = myself.clone();
        let at = SystemTime::now();
        let trigger = options.trigger;
        let keyed = entry.keyed.clone();
        tokio::spawn(async move {
            let mut plan = plan;
            // A keyed module: its live actors vote beside the template
            // instance, serving on meanwhile; nothing activates or passivates
            // until the decision; a commit then switches them over
            // (`crate::keyed::reload`).
            let frozen = match &keyed {
                Some(k) => {
                    let frozen = k.freeze().await;
                    plan.voters = Some(frozen.voters());
                    Some(frozen)
                }
                None => None,
            };
            let config = plan.config.clone();
            let requested = plan.mode;
            let outcome = reload::run_guarded(plan).await;
            let keyed = match frozen {
                Some(frozen) => {
                    let to = match (&outcome.result, &outcome.target) {
                        (Ok(_), Some(lib)) => Some((lib.clone(), config)),
                        _ => None,
                    };
                    frozen.finish(to, requested).await
                }
                None => KeyedOutcome::default(),
            };
            let done = ReloadDone {
                module,
                request,
                trigger,
                asked,
                new_config,
                new_path,
                back_to,
                at,
                outcome,
                keyed,
                reply,
            };
            let sent = me.send_message(SupervisorMsg::Internal(InternalMsg(Internal::ReloadDone(
                Box::new(done),
            ))));
            // The supervisor is gone: tell the caller.
            if let Err(ractor::MessagingErr::SendErr(SupervisorMsg::Internal(InternalMsg(
                Internal::ReloadDone(d),
            )))) = sent
            {
                let _ = d.reply.send(Err(Error::NodeDown));
            }
        });
    }

    pub(super) fn finish_reload(st: &mut SupState, done: ReloadDone) {
        let ReloadDone {
            module,
            request,
            trigger,
            asked,
            new_config,
            new_path,
            back_to,
            at,
            outcome,
            keyed,
            reply,
        } = done;
        let restored = Self::forced_restores(st, &module, &outcome);
        let Some(entry) = st.table.get_mut(&module) else {
            let _ = reply.send(Err(Error::UnknownModule(module)));
            return;
        };
        entry.reloading = false;
        let from = entry.current.code_version.clone();
        let mut record = HistoryEntry {
            id: 0,
            at,
            module: module.clone(),
            action: request.action(),
            trigger,
            from: from.clone(),
            to: outcome
                .target
                .as_ref()
                .map(|l| l.code_version.clone())
                .unwrap_or(asked),
            outcome: Outcome::Committed,
            phase: None,
            error: None,
            pause_us: 0,
            restored: None,
            keys_kept_passivated: 0,
        };
        let result = match outcome.result {
            Ok(committed) => {
                record.restored = restored.clone();
                let target = outcome.target.expect("a committed reload has a target");
                let pauses_us: Vec<u64> = committed
                    .pauses
                    .iter()
                    .chain(&keyed.pauses)
                    .map(|d| d.as_micros() as u64)
                    .collect();
                record.keys_kept_passivated =
                    keyed.failures.iter().filter(|f| f.passivated).count() as u64;
                let pause_us = pauses_us.iter().copied().max().unwrap_or(0);
                record.pause_us = pause_us;
                // The new serving version: the target library, with the path
                // and config asked for (a rollback: the kept version's).
                let mut serving = entry.serving();
                serving.lib = target.clone();
                if let Some(path) = new_path {
                    serving.library = path;
                }
                if let Some((value, bytes)) = new_config {
                    serving.config_value = value;
                    serving.config = bytes;
                }
                serving.source = if back_to.is_some() {
                    LibrarySource::Rollback
                } else {
                    trigger.into()
                };
                match back_to {
                    // The version returned to and every newer one leave
                    // the stack: a second rollback goes one step further.
                    Some(index) => entry.versions.back_to(index),
                    None => entry
                        .versions
                        .push(entry.serving(), st.limits.versions_kept),
                }
                entry.serve(serving);
                let to = target.code_version.clone();
                tracing::info!(target: "molt::supervisor", module = %module, %from, %to, pause_us, "{} committed", request.name());
                st.bus.publish(match &request {
                    Request::Reload => Event::ModuleReloaded {
                        name: module.clone(),
                        from: from.clone(),
                        to: to.clone(),
                        pause_us,
                    },
                    Request::Rollback { reset_state, .. } => Event::ModuleRolledBack {
                        name: module.clone(),
                        from: from.clone(),
                        to: to.clone(),
                        reset_state: *reset_state,
                    },
                });
                Ok(ReloadReport {
                    module: module.clone(),
                    from,
                    to,
                    state_version: target.state_version,
                    pauses_us,
                    load_us: if request.is_reload() {
                        target.load_time.as_micros() as u64
                    } else {
                        0
                    },
                    restored,
                    switch_failures: keyed.failures,
                })
            }
            Err(failure) => {
                record.phase = Some(failure.phase);
                record.error = Some(failure.error.clone());
                record.outcome = if failure.phase == Phase::Prepare {
                    Outcome::Rejected
                } else {
                    Outcome::RolledBack
                };
                tracing::warn!(target: "molt::supervisor", module = %module, phase = %failure.phase, "{} failed, {from} keeps serving: {}", request.name(), failure.error);
                st.bus.publish(Event::ModuleReloadFailed {
                    name: module.clone(),
                    phase: failure.phase,
                    error: failure.error.clone(),
                });
                if !request.is_reload() && failure.kind == Some(ErrorKind::CannotDowngrade) {
                    record.outcome = Outcome::Refused;
                    Err(Error::RollbackRefused {
                        module: module.clone(),
                        reason: format!(
                            "{}; roll back with reset_state to start {} with a fresh state",
                            failure.error, record.to
                        ),
                    })
                } else if let Some(e) = outcome.load_error {
                    Err(e)
                } else {
                    Err(Error::ReloadFailed {
                        module: module.clone(),
                        phase: failure.phase,
                        error: failure.error,
                        from,
                    })
                }
            }
        };
        Self::record(st, record);
        let _ = reply.send(result);
    }

    pub(super) fn record_failure(st: &mut SupState, module: String, phase: Phase, error: String) {
        let from = st
            .table
            .get(&module)
            .map(|e| e.current.code_version.clone())
            .unwrap_or_default();
        tracing::warn!(target: "molt::supervisor", module = %module, phase = %phase, "reload failed, {from} keeps serving: {error}");
        st.bus.publish(Event::ModuleReloadFailed {
            name: module.clone(),
            phase,
            error: error.clone(),
        });
        Self::record(
            st,
            HistoryEntry {
                id: 0,
                at: SystemTime::now(),
                module,
                action: Action::Reload,
                trigger: Trigger::Dev,
                from,
                to: String::new(),
                outcome: Outcome::Rejected,
                phase: Some(phase),
                error: Some(error),
                pause_us: 0,
                restored: None,
                keys_kept_passivated: 0,
            },
        );
    }
}
