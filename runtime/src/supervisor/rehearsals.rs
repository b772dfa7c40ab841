//! The supervisor's side of a rehearsal (a dry run of a reload): it reads
//! what the rehearsal needs from the table and runs it in a task of its own.
//! A rehearsal changes nothing in the table, writes no history entry and
//! counts as no reload in the metrics; the task publishes `module.rehearsed`.

use super::modules::encode_config;
use super::*;
use crate::rehearsal::{self, RehearsalReport};

impl Supervisor {
    pub(super) fn start_rehearsal(
        st: &mut SupState,
        module: String,
        options: ReloadOptions,
        reply: RpcReplyPort<Result<RehearsalReport, Error>>,
    ) {
        let Some(entry) = st.table.get(&module) else {
            let _ = reply.send(Err(Error::UnknownModule(module)));
            return;
        };
        // A rehearsal during a reload would rehearse on a state about to
        // change hands: refused, as a second reload is.
        if entry.reloading {
            let _ = reply.send(Err(Error::ReloadInProgress(module)));
            return;
        }
        let config = match &options.config {
            Some(value) => match encode_config(&module, value) {
                Ok(bytes) => bytes,
                Err(e) => {
                    let _ = reply.send(Err(e));
                    return;
                }
            },
            None => entry.config.clone(),
        };
        let plan = rehearsal::Plan {
            module: module.clone(),
            bus: st.bus.clone(),
            from: entry.current.clone(),
            library: options
                .library
                .clone()
                .unwrap_or_else(|| entry.spec.library.clone()),
            config,
            routes: entry.slot.routes.load().as_ref().clone(),
            limits: st.limits.clone(),
            loader: st.loader.clone(),
        };
        tracing::info!(target: "molt::supervisor", module = %module, library = %plan.library.display(), "rehearsing a reload (dry run)");
        tokio::spawn(async move {
            let _ = reply.send(rehearsal::run(plan).await);
        });
    }
}
