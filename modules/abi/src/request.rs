//! Typed requests (issue #9 §5): one type per message a protocol accepts,
//! each naming the exact type of its reply, on top of the protocol's single
//! `Msg` and `Reply` enums.
//!
//! The wire stays what it was: a request becomes its protocol's `Msg`
//! ([`Request::into_msg`]) before it is encoded, and the module answers with
//! its protocol's `Reply`, which [`Request::from_reply`] narrows to the
//! request's own reply type. So a library still has one entry point (bytes
//! in, bytes out), old and new library versions interoperate as before, and
//! `call(Msg)` stays a valid way to send the same message.

use std::fmt;

use crate::Protocol;

/// A message of protocol [`Request::Protocol`] whose reply has one known
/// type: `kv_proto::Get { key }` answers `Option<String>`, where the
/// protocol's `Reply` enum has every variant of every message.
///
/// Implement it with [`requests!`](crate::requests) (a table in the proto
/// crate), or by hand for a mapping the table cannot express. A request
/// belongs to exactly one protocol (its wire enum), so the protocol is an
/// associated type: `handle.request(Get { .. })`, `ctx.request(&to, Get {
/// .. }, 7)` and `answer.decode::<Get>()` need no turbofish for it.
///
/// A reply of another variant is an error value ([`WrongReply`]), never a
/// panic: the library answering may be another version than the one the
/// caller was built with.
///
/// # Examples
/// A hand-written request (what [`requests!`](crate::requests) writes):
/// ```
/// use molt_abi::{Protocol, Request, WrongReply};
/// use serde::{Deserialize, Serialize};
///
/// struct Proto;
/// #[derive(Serialize, Deserialize, Debug)]
/// enum Msg { Get { key: String } }
/// #[derive(Serialize, Deserialize, Debug, PartialEq)]
/// enum Reply { Ok, Value(Option<String>) }
/// impl Protocol for Proto {
///     type Msg = Msg;
///     type Reply = Reply;
/// }
///
/// /// Reads a key.
/// struct Get { key: String }
///
/// impl Request for Get {
///     type Protocol = Proto;
///     type Reply = Option<String>;
///     fn into_msg(self) -> Msg {
///         Msg::Get { key: self.key }
///     }
///     fn from_reply(reply: Reply) -> Result<Option<String>, WrongReply<Reply>> {
///         match reply {
///             Reply::Value(value) => Ok(value),
///             other => Err(WrongReply::new(other)),
///         }
///     }
/// }
///
/// assert!(matches!(Get { key: "a".into() }.into_msg(), Msg::Get { key } if key == "a"));
/// assert_eq!(Get::from_reply(Reply::Value(None)).unwrap(), None);
/// assert_eq!(Get::from_reply(Reply::Ok).unwrap_err().reply, Reply::Ok);
/// ```
pub trait Request: Sized {
    /// The protocol this request is a message of.
    type Protocol: Protocol;
    /// What the module's reply to this request is, once narrowed.
    type Reply;

    /// The protocol message this request is sent as.
    fn into_msg(self) -> <Self::Protocol as Protocol>::Msg;

    /// Narrows the protocol's reply to this request's reply.
    ///
    /// # Errors
    /// [`WrongReply`] holding the reply when it is a variant this request
    /// does not answer with (another library version, or a bug).
    fn from_reply(
        reply: <Self::Protocol as Protocol>::Reply,
    ) -> Result<Self::Reply, WrongReply<<Self::Protocol as Protocol>::Reply>>;
}

/// A reply of a variant the request does not answer with, handed back
/// whole so the caller can see (or still use) what the module answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrongReply<R> {
    /// What the module answered.
    pub reply: R,
}

impl<R> WrongReply<R> {
    /// The reply `reply` was not the one expected.
    pub fn new(reply: R) -> Self {
        WrongReply { reply }
    }

    /// The reply, taken back.
    pub fn into_reply(self) -> R {
        self.reply
    }
}

impl<R: fmt::Debug> fmt::Display for WrongReply<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unexpected reply {:?}", self.reply)
    }
}

impl<R: fmt::Debug> std::error::Error for WrongReply<R> {}

/// The name of request type `R` for error messages (`kv_proto::Get`).
pub fn request_name<R: Request>() -> &'static str {
    std::any::type_name::<R>()
}

/// Declares a protocol's typed requests from one table: a struct per
/// request, and its [`Request`] impl mapping it to its `Msg` variant and its
/// `Reply` variant to the exact reply type.
///
/// ```text
/// molt_abi::requests! {
///     Proto {
///         /// doc comment and attributes of the struct
///         Name { field: Type, .. } -> ReplyType { Msg::Variant, Reply::Pattern => value }
///         Name(Type)               -> ReplyType { Msg::Variant, Reply::Pattern => value }
///         Name                     -> ReplyType { Msg::Variant, Reply::Pattern => value }
///     }
/// }
/// ```
///
/// Each line reads "request `Name` with these fields answers `ReplyType`: it
/// is sent as `Msg::Variant` (with the same fields, in a braced variant; the
/// one value, in a tuple variant; nothing, in a unit variant) and the reply
/// `Reply::Pattern` gives `value`". Any other reply variant is a
/// [`WrongReply`]. The structs are `pub` with `pub` fields and derive `Debug`
/// and `Clone`; put more derives or attributes above a line. Fields need no
/// doc comment (they are the variant's; `missing_docs` is allowed on them)
/// but may have one. A request the
/// table cannot express (a tuple variant of several values, a field renamed
/// on the wire) is an `impl Request` written by hand next to it.
///
/// # Examples
/// ```
/// use molt_abi::{Protocol, Request};
/// use serde::{Deserialize, Serialize};
///
/// pub struct Proto;
/// impl Protocol for Proto {
///     type Msg = Msg;
///     type Reply = Reply;
/// }
/// #[derive(Serialize, Deserialize, Debug)]
/// pub enum Msg { Put { key: String, value: String }, Get { key: String }, Add(i64), Len }
/// #[derive(Serialize, Deserialize, Debug, PartialEq)]
/// pub enum Reply { Ok, Value(Option<String>), Total(i64), Count(u64) }
///
/// molt_abi::requests! {
///     Proto {
///         /// Sets a key.
///         Put { key: String, value: String } -> () { Msg::Put, Reply::Ok => () }
///         /// Reads a key: its value, if it is set.
///         #[derive(PartialEq)]
///         Get { key: String } -> Option<String> { Msg::Get, Reply::Value(value) => value }
///         /// Adds to the total; answers the new total.
///         Add(i64) -> i64 { Msg::Add, Reply::Total(total) => total }
///         /// How many keys are set.
///         Len -> u64 { Msg::Len, Reply::Count(n) => n }
///     }
/// }
///
/// let msg = Get { key: "a".into() }.into_msg();
/// assert!(matches!(msg, Msg::Get { ref key } if key == "a"));
/// assert!(matches!(Add(2).into_msg(), Msg::Add(2)));
/// assert_eq!(Get::from_reply(Reply::Value(Some("1".into()))).unwrap(), Some("1".into()));
/// assert_eq!(Len::from_reply(Reply::Count(3)).unwrap(), 3);
/// // Another variant is an error holding the reply, not a panic.
/// assert_eq!(Add::from_reply(Reply::Ok).unwrap_err().reply, Reply::Ok);
/// ```
#[macro_export]
macro_rules! requests {
    ($proto:ty { $($table:tt)* }) => {
        $crate::__requests_items! { ($proto) $($table)* }
    };
}

/// One line of a [`requests!`] table at a time. Not part of the public API.
#[doc(hidden)]
#[macro_export]
macro_rules! __requests_items {
    (($proto:ty)) => {};
    // Braced fields: sent as a braced variant with the same field names.
    (($proto:ty)
        $(#[$meta:meta])*
        $name:ident { $($(#[$fmeta:meta])* $field:ident : $fty:ty),* $(,)? }
        -> $reply:ty { $msg:path, $rpat:pat => $rval:expr $(,)? }
        $($rest:tt)*
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone)]
        pub struct $name {
            $($(#[$fmeta])* #[allow(missing_docs)] pub $field: $fty,)*
        }
        $crate::__request_impl! { $proto, $name, $reply, $rpat => $rval,
            |this| { let $name { $($field),* } = this; $msg { $($field),* } } }
        $crate::__requests_items! { ($proto) $($rest)* }
    };
    // One unnamed value: sent as a tuple variant of that value.
    (($proto:ty)
        $(#[$meta:meta])*
        $name:ident ( $(#[$fmeta:meta])* $fty:ty $(,)? )
        -> $reply:ty { $msg:path, $rpat:pat => $rval:expr $(,)? }
        $($rest:tt)*
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone)]
        pub struct $name($(#[$fmeta])* #[allow(missing_docs)] pub $fty);
        $crate::__request_impl! { $proto, $name, $reply, $rpat => $rval,
            |this| { $msg(this.0) } }
        $crate::__requests_items! { ($proto) $($rest)* }
    };
    // No fields: sent as a unit variant.
    (($proto:ty)
        $(#[$meta:meta])*
        $name:ident
        -> $reply:ty { $msg:path, $rpat:pat => $rval:expr $(,)? }
        $($rest:tt)*
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, Default)]
        pub struct $name;
        $crate::__request_impl! { $proto, $name, $reply, $rpat => $rval,
            |this| { let _ = this; $msg } }
        $crate::__requests_items! { ($proto) $($rest)* }
    };
}

/// The [`Request`] impl of one [`requests!`] line. Not part of the public API.
#[doc(hidden)]
#[macro_export]
macro_rules! __request_impl {
    ($proto:ty, $name:ident, $reply:ty, $rpat:pat => $rval:expr, |$this:ident| $into:block) => {
        impl $crate::Request for $name {
            type Protocol = $proto;
            type Reply = $reply;

            fn into_msg(self) -> <$proto as $crate::Protocol>::Msg {
                let $this = self;
                $into
            }

            fn from_reply(
                reply: <$proto as $crate::Protocol>::Reply,
            ) -> ::core::result::Result<
                $reply,
                $crate::WrongReply<<$proto as $crate::Protocol>::Reply>,
            > {
                #[allow(unreachable_patterns)]
                match reply {
                    $rpat => ::core::result::Result::Ok($rval),
                    other => ::core::result::Result::Err($crate::WrongReply::new(other)),
                }
            }
        }
    };
}

#[cfg(test)]
#[allow(unreachable_pub)] // the macro writes `pub` structs; these are test-only
mod tests {
    use serde::{Deserialize, Serialize};

    use crate::{Protocol, Request, WrongReply};

    pub struct Proto;
    impl Protocol for Proto {
        type Msg = Msg;
        type Reply = Reply;
    }

    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
    pub enum Msg {
        Put { key: String, value: String },
        Get { key: String },
        Add(i64),
        Dump,
    }

    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
    pub enum Reply {
        Ok,
        Value(Option<String>),
        Total(i64),
        Version { code: String, state: u32 },
    }

    /// A protocol with a single reply variant: the "other" arm the macro
    /// writes is unreachable there and must still compile without warnings.
    pub struct One;
    impl Protocol for One {
        type Msg = Msg;
        type Reply = OnlyTotal;
    }
    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
    pub enum OnlyTotal {
        Total(i64),
    }

    mod table {
        use super::{Msg, Proto, Reply};

        crate::requests! {
            Proto {
                /// Sets a key.
                Put { key: String, value: String, } -> () { Msg::Put, Reply::Ok => () }
                /// Reads a key.
                #[derive(PartialEq, Eq)]
                Get {
                    /// The key.
                    key: String
                } -> Option<String> { Msg::Get, Reply::Value(value) => value }
                /// Adds.
                Add(i64) -> i64 { Msg::Add, Reply::Total(n) => n, }
                /// A reply with several fields, narrowed to a tuple.
                Dump -> (String, u32) { Msg::Dump, Reply::Version { code, state } => (code, state) }
            }
        }
    }

    mod single {
        use super::{Msg, One, OnlyTotal};

        crate::requests! {
            One {
                /// Adds; the protocol has one reply variant.
                Add(i64) -> i64 { Msg::Add, OnlyTotal::Total(n) => n }
            }
        }
    }

    use table::{Add, Dump, Get, Put};

    /// Encodes the request's message and decodes the module's reply the
    /// way the host does (msgpack with named fields), then narrows it.
    fn round_trip<R: Request<Protocol = Proto>>(
        req: R,
        answer: impl FnOnce(Msg) -> Reply,
    ) -> Result<R::Reply, WrongReply<Reply>> {
        let bytes = rmp_serde::to_vec_named(&req.into_msg()).unwrap();
        let msg: Msg = rmp_serde::from_slice(&bytes).unwrap();
        let bytes = rmp_serde::to_vec_named(&answer(msg)).unwrap();
        R::from_reply(rmp_serde::from_slice(&bytes).unwrap())
    }

    #[test]
    fn each_kind_of_line_maps_to_its_variant_and_back() {
        let put = Put {
            key: "a".into(),
            value: "1".into(),
        };
        let got = round_trip(put, |m| {
            assert_eq!(
                m,
                Msg::Put {
                    key: "a".into(),
                    value: "1".into()
                }
            );
            Reply::Ok
        });
        assert_eq!(got, Ok(()));

        let get = Get { key: "a".into() };
        assert_eq!(get.clone(), get, "extra derives apply");
        let got = round_trip(get, |m| {
            assert_eq!(m, Msg::Get { key: "a".into() });
            Reply::Value(Some("1".into()))
        });
        assert_eq!(got, Ok(Some("1".to_string())));

        let got = round_trip(Add(5), |m| {
            assert_eq!(m, Msg::Add(5));
            Reply::Total(7)
        });
        assert_eq!(got, Ok(7));

        let got = round_trip(Dump, |m| {
            assert_eq!(m, Msg::Dump);
            Reply::Version {
                code: "2.0.0".into(),
                state: 2,
            }
        });
        assert_eq!(got, Ok(("2.0.0".to_string(), 2)));
    }

    #[test]
    fn another_variant_is_handed_back_as_wrong_reply() {
        let got = round_trip(Get { key: "a".into() }, |_| Reply::Total(3));
        assert_eq!(got, Err(WrongReply::new(Reply::Total(3))));
        assert_eq!(
            got.unwrap_err().to_string(),
            "unexpected reply Total(3)",
            "the reply is named"
        );
    }

    #[test]
    fn a_single_variant_reply_needs_no_other_arm() {
        assert_eq!(
            <single::Add as Request>::from_reply(OnlyTotal::Total(4)),
            Ok(4)
        );
        assert!(matches!(single::Add(1).into_msg(), Msg::Add(1)));
    }

    #[test]
    fn the_request_name_is_its_path() {
        assert!(crate::request_name::<Get>().ends_with("table::Get"));
    }
}
