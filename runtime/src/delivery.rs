//! The message an instance is handling, as its module's context sees it:
//! who sent it (`ctx.sender()`) and, for a call, the reply port a handler
//! may keep open (`ctx.reply_later()`). The module actor sets it around
//! every delivery; the context reads it. Shared by the actor and the
//! instance's [`crate::host_ctx::HostContext`] (one per actor, kept across
//! reloads and restarts in place).

use std::sync::{Arc, Mutex};

use molt_abi::Address;

use crate::replies::{self, ReplyPort};

/// The sender of a message: the address of the module actor that sent it,
/// or none (an application handle, HTTP, the CLI).
pub(crate) type Origin = Option<Arc<Address>>;

#[derive(Default)]
struct Current {
    sender: Origin,
    /// The call's reply port, until the handler returns or keeps it open.
    port: Option<ReplyPort>,
    /// The token of the call, when the handler kept it open.
    kept: Option<u64>,
    /// Whether a message is being handled (`reply_later` needs one).
    active: bool,
}

/// What a delivery left when its handler returned.
pub(crate) struct Ended {
    /// The reply port, unless the handler kept the call open.
    pub port: Option<ReplyPort>,
    /// The token, when the handler kept the call open.
    pub kept: Option<u64>,
}

/// One instance's current delivery.
#[derive(Default, Clone)]
pub(crate) struct Delivery(Arc<Mutex<Current>>);

impl Delivery {
    fn lock(&self) -> std::sync::MutexGuard<'_, Current> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A message from `sender` is handed to the module (`port`: a call's).
    pub(crate) fn begin(&self, sender: Origin, port: Option<ReplyPort>) {
        *self.lock() = Current {
            sender,
            port,
            kept: None,
            active: true,
        };
    }

    /// The handler returned.
    pub(crate) fn end(&self) -> Ended {
        let c = std::mem::take(&mut *self.lock());
        Ended {
            port: c.port,
            kept: c.kept,
        }
    }

    /// The sender of the message being handled.
    pub(crate) fn sender(&self) -> Origin {
        self.lock().sender.clone()
    }

    /// Moves the call's reply port to the host's table of open calls and
    /// returns its token.
    pub(crate) fn keep_open(&self) -> Result<u64, &'static str> {
        let mut c = self.lock();
        if !c.active {
            return Err("reply_later is only possible while handling a message");
        }
        let Some(port) = c.port.take() else {
            return Err(if c.kept.is_some() {
                "this call was already kept open (use the token reply_later returned)"
            } else {
                "the message being handled is not a call (a cast or an answer): nobody waits \
                 for its reply"
            });
        };
        let token = replies::hold(port);
        c.kept = Some(token);
        Ok(token)
    }
}
