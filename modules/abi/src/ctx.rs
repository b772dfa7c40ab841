use abi_stable::std_types::{RSlice, RStr};
use serde::Serialize;

use crate::{
    ffi::{HostCtxBox, HostCtx_TO},
    Error, Protocol,
};

/// Log levels a module can use through [`Ctx::log`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Level {
    /// Very verbose detail.
    Trace = 0,
    /// Debugging detail.
    Debug = 1,
    /// Normal operation.
    Info = 2,
    /// Something odd that the module handled.
    Warn = 3,
    /// Something failed.
    Error = 4,
}

impl Level {
    /// The level for a wire value; unknown values map to `Info`.
    pub fn from_u8(v: u8) -> Level {
        match v {
            0 => Level::Trace,
            1 => Level::Debug,
            3 => Level::Warn,
            4 => Level::Error,
            _ => Level::Info,
        }
    }
}

/// What module code may call back into the host: logging, metrics, events
/// and messages to other modules.
///
/// A module library has its own copy of every static, so calling `tracing` or
/// `metrics` macros directly in a module talks to nobody. Use the context.
#[derive(Clone)]
pub struct Ctx {
    host: HostCtxBox,
}

impl Ctx {
    /// Wraps the host's context object. Used by the generated code and by
    /// hosts that test module code in process.
    pub fn from_host(host: HostCtxBox) -> Self {
        Ctx { host }
    }

    /// The module's name.
    pub fn module(&self) -> &str {
        self.host.module().as_str()
    }

    /// This instance's index (0-based).
    pub fn instance(&self) -> u32 {
        self.host.instance()
    }

    /// Logs through the host's `tracing` subscriber, tagged with the module.
    pub fn log(&self, level: Level, message: impl AsRef<str>) {
        self.host.log(level as u8, RStr::from_str(message.as_ref()));
    }

    /// Logs at debug level.
    pub fn debug(&self, message: impl AsRef<str>) {
        self.log(Level::Debug, message);
    }

    /// Logs at info level.
    pub fn info(&self, message: impl AsRef<str>) {
        self.log(Level::Info, message);
    }

    /// Logs at warn level.
    pub fn warn(&self, message: impl AsRef<str>) {
        self.log(Level::Warn, message);
    }

    /// Logs at error level.
    pub fn error(&self, message: impl AsRef<str>) {
        self.log(Level::Error, message);
    }

    /// Adds `delta` to the counter `name` (labelled with the module by the host).
    pub fn counter(&self, name: &str, delta: u64) {
        self.host.counter(RStr::from_str(name), delta);
    }

    /// Sets the gauge `name` (labelled with the module by the host).
    pub fn gauge(&self, name: &str, value: f64) {
        self.host.gauge(RStr::from_str(name), value);
    }

    /// Publishes an application event on the host's event bus.
    ///
    /// # Errors
    /// When the payload cannot be serialized to JSON.
    pub fn publish<T: Serialize + ?Sized>(&self, topic: &str, payload: &T) -> Result<(), Error> {
        let json = serde_json::to_string(payload)
            .map_err(|e| Error::msg(format!("cannot encode event {topic}: {e}")))?;
        self.host
            .publish(RStr::from_str(topic), RStr::from_str(&json));
        Ok(())
    }

    /// Sends (casts) a message to another module, typed by its protocol.
    ///
    /// # Errors
    /// When the message cannot be encoded or the module is not running.
    pub fn send<P: Protocol>(&self, module: &str, msg: &P::Msg) -> Result<(), Error> {
        let bytes = rmp_serde::to_vec_named(msg)
            .map_err(|e| Error::msg(format!("cannot encode a message to {module}: {e}")))?;
        self.host
            .send(RStr::from_str(module), RSlice::from_slice(&bytes))
            .into_result()
            .map_err(Error::from)
    }

    /// Sends (casts) a message to one instance of a module: `instance`
    /// modulo the module's instance count, so `ctx.instance() + 1` on the
    /// module's own name is the next instance in a ring. [`Ctx::send`]
    /// instead picks the instance from this instance's index.
    ///
    /// # Errors
    /// When the message cannot be encoded, the module is not running, or the
    /// host is older than this method.
    pub fn send_to<P: Protocol>(
        &self,
        module: &str,
        instance: u32,
        msg: &P::Msg,
    ) -> Result<(), Error> {
        let bytes = rmp_serde::to_vec_named(msg)
            .map_err(|e| Error::msg(format!("cannot encode a message to {module}: {e}")))?;
        self.host
            .send_to(RStr::from_str(module), instance, RSlice::from_slice(&bytes))
            .into_result()
            .map_err(Error::from)
    }

    /// Sends (casts) a message to the actor of `key` in a keyed module
    /// (`keyed = true` in its config), activating it if it is not live:
    /// `ctx.send_key::<cart_proto::Proto>("cart", "user-42", &msg)`.
    ///
    /// # Errors
    /// When the message cannot be encoded, the module is not running or not
    /// keyed, its live limit (`max_live`) is reached, or the host is older
    /// than this method.
    pub fn send_key<P: Protocol>(
        &self,
        module: &str,
        key: impl Into<crate::Key>,
        msg: &P::Msg,
    ) -> Result<(), Error> {
        let bytes = rmp_serde::to_vec_named(msg)
            .map_err(|e| Error::msg(format!("cannot encode a message to {module}: {e}")))?;
        let key = key.into();
        self.host
            .send_key(
                RStr::from_str(module),
                RSlice::from_slice(key.as_bytes()),
                RSlice::from_slice(&bytes),
            )
            .into_result()
            .map_err(Error::from)
    }
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("module", &self.module())
            .field("instance", &self.instance())
            .finish()
    }
}

// Keep the generated type name reachable for hosts implementing the context.
#[doc(hidden)]
pub type __HostCtxTo<'a, P> = HostCtx_TO<'a, P>;
