//! The message an instance is handling, as its module's context sees it:
//! who sent it (`ctx.sender()`) and, for a call, the reply port a handler
//! may keep open (`ctx.reply_later()`). The module actor runs every
//! delivery through [`Runner::run`]; the context reads it. Shared by the
//! actor and the instance's [`crate::host_ctx::HostContext`] (one per
//! actor, kept across reloads and restarts in place).
//!
//! No lock per message (issue #11 §1): the delivery lives on the stack of
//! the thread running the handler (a handler is one synchronous call into
//! the library), published to that thread only, through a thread-local.
//! The context's calls made on that thread read it directly; a call from
//! another thread (the context is `Send + Sync`, a module may hand it to a
//! thread of its own) sees no message being handled: no sender, and
//! `reply_later` is an error saying why (`docs/semantics.md`, "Addresses").

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use crate::replies::{self, ReplyPort};
use crate::routes::Routes;
use crate::sender::Sender;

/// The sender of a message: the address of the module actor that sent it
/// (no reference count per message for an instance's: [`Sender`]), or none
/// (an application handle, HTTP, the CLI).
pub(crate) type Origin = Option<Sender>;

/// One message being handled: on the stack of the thread handling it, for
/// as long as its handler runs.
struct Frame {
    /// The [`Delivery`] this frame belongs to (its identity).
    owner: *const Owner,
    sender: Origin,
    /// The call's reply port, until the handler returns or keeps it open.
    port: Cell<Option<ReplyPort>>,
    /// The token of the call, when the handler kept it open.
    kept: Cell<Option<u64>>,
    /// The routes of the [`Runner`] running this frame (it outlives it).
    routes: *const RefCell<Routes>,
}

thread_local! {
    /// The frame of the delivery this thread is running, if any.
    static CURRENT: Cell<*const Frame> = const { Cell::new(std::ptr::null()) };
}

/// Puts the frame that was current back when a delivery ends (also when
/// its handler unwinds).
struct Restore(*const Frame);

impl Drop for Restore {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.0));
    }
}

/// What a delivery left when its handler returned.
pub(crate) struct Ended {
    /// The reply port, unless the handler kept the call open.
    pub port: Option<ReplyPort>,
    /// The token, when the handler kept the call open.
    pub kept: Option<u64>,
}

/// The identity of one instance's deliveries (a frame names its owner).
#[derive(Default)]
struct Owner;

/// One instance's deliveries as its context sees them: the one running on
/// the calling thread, if any.
#[derive(Default, Clone)]
pub(crate) struct Delivery(Arc<Owner>);

/// The actor's side of its deliveries: runs them, one at a time (it is not
/// `Sync`), and keeps the routes its handlers resolved by address.
pub(crate) struct Runner {
    delivery: Delivery,
    routes: RefCell<Routes>,
}

impl Runner {
    /// Runs the deliveries its context reads through `delivery`.
    pub(crate) fn new(delivery: Delivery) -> Self {
        Runner {
            delivery,
            routes: RefCell::default(),
        }
    }

    /// Runs `handle`, the module's handler of a message from `sender`
    /// (`port`: a call's reply port), as this instance's delivery: what the
    /// context says about the message being handled while it runs, on this
    /// thread. Returns the handler's result and what the delivery left.
    pub(crate) fn run<R>(
        &self,
        sender: Origin,
        port: Option<ReplyPort>,
        handle: impl FnOnce() -> R,
    ) -> (R, Ended) {
        let frame = Frame {
            owner: self.delivery.id(),
            sender,
            port: Cell::new(port),
            kept: Cell::new(None),
            routes: &self.routes,
        };
        let restore = Restore(CURRENT.with(|c| c.replace(&frame)));
        let result = handle();
        drop(restore);
        let ended = Ended {
            port: frame.port.take(),
            kept: frame.kept.get(),
        };
        (result, ended)
    }
}

impl Delivery {
    fn id(&self) -> *const Owner {
        Arc::as_ptr(&self.0)
    }

    /// Calls `f` with this instance's delivery running on the calling
    /// thread, if any.
    fn with_frame<R>(&self, f: impl FnOnce(Option<&Frame>) -> R) -> R {
        CURRENT.with(|c| {
            // SAFETY: a non-null pointer in `CURRENT` was set by `run` on
            // this thread to a frame on this thread's stack, and `run` puts
            // the previous value back (its `Restore`, also on unwind) before
            // that frame goes away; the frame is only read through shared
            // references (its mutable parts are `Cell`s), on this thread.
            let frame = unsafe { c.get().as_ref() };
            f(frame.filter(|frame| std::ptr::eq(frame.owner, self.id())))
        })
    }

    /// Calls `f` with the sender of the message being handled on the calling
    /// thread (none from another thread, or outside a delivery).
    pub(crate) fn with_sender<R>(&self, f: impl FnOnce(Option<&Sender>) -> R) -> R {
        self.with_frame(|frame| f(frame.and_then(|frame| frame.sender.as_ref())))
    }

    /// Calls `f` with the routes of the actor whose delivery runs on the
    /// calling thread (none from another thread, outside a delivery, or
    /// while they are in use).
    pub(crate) fn with_routes<R>(&self, f: impl FnOnce(Option<&mut Routes>) -> R) -> R {
        self.with_frame(|frame| {
            // SAFETY: the frame's runner outlives the frame (`run` borrows
            // it for the frame's whole life), and is not `Sync`: its routes
            // are only reached from this thread.
            let routes = frame.map(|frame| unsafe { &*frame.routes });
            match routes.and_then(|r| r.try_borrow_mut().ok()) {
                Some(mut routes) => f(Some(&mut routes)),
                None => f(None),
            }
        })
    }

    /// Moves the call's reply port to the host's table of open calls and
    /// returns its token.
    pub(crate) fn keep_open(&self) -> Result<u64, &'static str> {
        self.with_frame(|frame| {
            let Some(frame) = frame else {
                return Err(
                    "reply_later is only possible while handling a message, on the \
                            thread that runs the handler",
                );
            };
            let Some(port) = frame.port.take() else {
                return Err(if frame.kept.get().is_some() {
                    "this call was already kept open (use the token reply_later returned)"
                } else {
                    "the message being handled is not a call (a cast or an answer): nobody \
                     waits for its reply"
                });
            };
            let token = replies::hold(port);
            frame.kept.set(Some(token));
            Ok(token)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use molt_abi::Address;

    fn sender() -> Origin {
        Some(Sender::of(Address::instance("n", "m", 3)))
    }

    fn seen(d: &Delivery) -> Option<Address> {
        d.with_sender(|s| s.map(|a| (**a).clone()))
    }

    #[test]
    fn the_sender_is_seen_during_the_delivery_only() {
        let d = Delivery::default();
        assert_eq!(seen(&d), None);
        let (inside, _) = Runner::new(d.clone()).run(sender(), None, || seen(&d));
        assert_eq!(inside, Some(Address::instance("n", "m", 3)));
        assert_eq!(seen(&d), None);
    }

    #[test]
    fn another_instance_or_thread_sees_no_delivery() {
        let (d, other) = (Delivery::default(), Delivery::default());
        let ((by_other, on_thread), _) = Runner::new(d.clone()).run(sender(), None, || {
            let d2 = d.clone();
            let on_thread = std::thread::spawn(move || seen(&d2)).join().unwrap();
            (seen(&other), on_thread)
        });
        assert_eq!(by_other, None);
        assert_eq!(on_thread, None);
    }

    #[test]
    fn a_kept_call_leaves_its_token_and_no_port() {
        let d = Delivery::default();
        let (port, _rx) = tokio::sync::oneshot::channel();
        let runner = Runner::new(d.clone());
        let (token, ended) = runner.run(None, Some(port), || {
            let token = d.keep_open().unwrap();
            assert!(d.keep_open().unwrap_err().contains("already kept open"));
            token
        });
        assert!(ended.port.is_none());
        assert_eq!(ended.kept, Some(token));
        assert!(d
            .keep_open()
            .unwrap_err()
            .contains("only possible while handling"));
        let (_, ended) = runner.run(None, None, || {
            assert!(d.keep_open().unwrap_err().contains("not a call"));
        });
        assert!(ended.port.is_none() && ended.kept.is_none());
    }

    #[test]
    fn a_handler_that_unwinds_leaves_no_delivery_behind() {
        let d = Delivery::default();
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Runner::new(d.clone()).run(sender(), None, || panic!("handler"))
        }));
        assert!(unwound.is_err());
        assert_eq!(seen(&d), None);
    }
}
