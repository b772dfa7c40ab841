//! # molt-abi: what a molt module is written against
//!
//! A molt module is a `cdylib` crate that implements [`Module`] for its state
//! type and calls [`export_module!`] once. The macro generates the ABI-stable
//! root module the host loads (an abi_stable prefix type, so fields can be
//! appended later) and a behaviour object whose every entry point runs inside
//! `catch_unwind`: a panic in module code becomes an error value and never
//! unwinds across the FFI boundary (which would kill the host process).
//!
//! Messages, replies, configuration and state cross the boundary as msgpack
//! with named fields (rmp-serde), so adding a field with `#[serde(default)]`
//! needs no migration code.
//!
//! A protocol (its `Msg` and `Reply` enums, [`Protocol`]) lives in a small
//! crate shared with the applications; its typed requests ([`Request`],
//! declared with [`requests!`]) give each message the exact type of its
//! reply without changing what crosses the boundary.
//!
//! This crate depends on neither tokio nor ractor: module libraries stay small
//! and never carry a second async runtime.
//!
//! ```
//! use molt_abi::{Ctx, Error, Module};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! pub struct Counter { total: i64 }
//!
//! impl Module for Counter {
//!     const NAME: &'static str = "counter";
//!     const CODE_VERSION: &'static str = "1.0.0";
//!     const STATE_VERSION: u32 = 1;
//!     type Config = ();
//!     type Msg = i64;
//!     type Reply = i64;
//!
//!     fn init(_config: (), _ctx: &Ctx) -> Result<Self, Error> {
//!         Ok(Counter { total: 0 })
//!     }
//!     fn handle(&mut self, add: i64, _ctx: &Ctx) -> Result<i64, Error> {
//!         self.total += add;
//!         Ok(self.total)
//!     }
//! }
//! // In the cdylib crate: molt_abi::export_module!(Counter);
//! ```

#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

mod address;
mod ctx;
mod encode;
mod error;
mod export;
pub mod ffi;
pub mod index;
mod module;
mod protocol;
mod reply;
mod request;
pub mod state;

pub use address::{Address, Key, Target};
pub use ctx::{Ctx, Level};
pub use error::{Error, ErrorKind};
pub use module::Module;
pub use protocol::Protocol;
pub use reply::{Answer, ReplyToken};
pub use request::{request_name, Request, WrongReply};

/// Items the [`export_module!`] macro expands to. Not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::export::root_module;
    pub use abi_stable::library::{
        __call_root_module_loader, CheckTypeLayout, LibHeader, RootModuleResult,
    };
}

/// The name of the symbol holding a library's root module header, as
/// abi_stable mangles it. The export macro writes this symbol by hand so that
/// module crates need no direct abi_stable dependency; a test checks that it
/// matches `abi_stable::library::ROOT_MODULE_LOADER_NAME`.
pub const ROOT_SYMBOL: &str = "_1as_0lib_1header_0root_bmodule_bloader";

#[cfg(test)]
mod tests {
    #[test]
    fn root_symbol_matches_abi_stable() {
        assert_eq!(
            super::ROOT_SYMBOL,
            abi_stable::library::ROOT_MODULE_LOADER_NAME
        );
    }
}
