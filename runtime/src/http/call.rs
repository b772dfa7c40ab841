//! `POST /modules/{name}/call` and `/cast` (issue #10 §1): a message to a
//! module from outside, as JSON. Messages are msgpack with named fields
//! (what `rmp_serde::to_vec_named` writes for the typed handles), so the
//! JSON body is transcoded to msgpack and the reply back to JSON; the
//! module itself decodes it, and a message it cannot decode answers 400
//! with the module's decode error (which names the expected field or
//! variant).

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::errors::ApiError;
use super::routes::AppState;
use crate::error::{CallError, Error};
use crate::raw_handle::RawHandle;

/// The query of `call` and `cast`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Routing {
    /// The instance to send to (modulo the instance count); default: the
    /// next one in round-robin order.
    instance: Option<usize>,
    /// The key of a keyed module's actor to send to (activated if it is
    /// not live).
    key: Option<String>,
}

/// The answer of `POST /modules/{name}/cast` (202): the message is queued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CastAccepted {
    /// The module.
    pub module: String,
    /// The instance whose mailbox holds the message (0 for a keyed actor).
    pub instance: usize,
    /// The key of the keyed actor whose mailbox holds the message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

pub(crate) async fn call(
    State(st): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    query: Result<Query<Routing>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (handle, msg) = prepare(&st, name, query, body)?;
    let reply = handle
        .call_bytes(msg, handle.default_timeout())
        .await
        .map_err(call_error)?;
    let json = rmp_serde::from_slice::<serde_json::Value>(&reply).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "bad_reply",
            format!(
                "module {}: the reply cannot be shown as JSON: {e}",
                handle.module()
            ),
        )
    })?;
    Ok(Json(json))
}

pub(crate) async fn cast(
    State(st): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    query: Result<Query<Routing>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<CastAccepted>), ApiError> {
    let (handle, msg) = prepare(&st, name, query, body)?;
    handle.cast_bytes(msg).map_err(call_error)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(CastAccepted {
            module: handle.module().to_string(),
            instance: handle.instance(),
            key: handle
                .key()
                .map(|k| String::from_utf8_lossy(k).into_owned()),
        }),
    ))
}

/// The handle to send through and the message as msgpack.
fn prepare(
    st: &AppState,
    name: Result<Path<String>, PathRejection>,
    query: Result<Query<Routing>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(RawHandle, Vec<u8>), ApiError> {
    let Path(name) = name?;
    let Query(routing) = query?;
    let body = body?;
    let handle = st
        .modules
        .handle(&name)
        .ok_or_else(|| ApiError::from(Error::UnknownModule(name.clone())))?;
    let handle = match (routing.instance, routing.key) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "give instance or key, not both (a keyed module's actors are named by key)",
            ))
        }
        (Some(i), None) => handle.on_instance(i),
        (None, Some(key)) => handle.on_key(key.as_bytes()),
        (None, None) => handle,
    };
    Ok((handle, json_to_msgpack(&body)?))
}

/// The JSON body as msgpack with named fields: `{"Put": {"key": "a"}}` is
/// the enum variant `Put { key: "a" }`, `"Dump"` the unit variant `Dump`.
pub(crate) fn json_to_msgpack(body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the message must be JSON (e.g. {{\"Put\": {{\"key\": \"a\", \"value\": \"1\"}}}} or \"Dump\"): {e}"
        ))
    })?;
    rmp_serde::to_vec_named(&value)
        .map_err(|e| ApiError::bad_request(format!("the message cannot be encoded: {e}")))
}

/// A failed send as an answer: a message the module could not decode is
/// 400 (`bad_message`, with the module's decode error), any other handler
/// error 422 (`handler`, with the module's error kind as `cause`), no reply
/// in time 504, a module that stopped 503.
fn call_error(e: CallError) -> ApiError {
    let text = e.to_string();
    match e {
        CallError::Handler {
            kind: molt_abi::ErrorKind::BadInput,
            ..
        } => ApiError::new(StatusCode::BAD_REQUEST, "bad_message", text),
        CallError::Handler { kind, .. } => {
            let mut err = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "handler", text);
            err.body.cause = Some(kind.as_str().to_string());
            err
        }
        CallError::Timeout { .. } => ApiError::new(StatusCode::GATEWAY_TIMEOUT, "timeout", text),
        CallError::NotRunning(_) | CallError::NoActor(_) => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_running", text)
        }
        CallError::Codec { .. } => ApiError::bad_request(text),
        // HTTP sends the protocol's message, never a typed request.
        CallError::WrongReply { .. } => ApiError::new(StatusCode::BAD_GATEWAY, "wrong_reply", text),
        CallError::NotKeyed(_) | CallError::KeyRequired(_) => ApiError::bad_request(text),
        CallError::TooManyLive { .. } => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "too_many_live", text)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Deserialize, Serialize)]
    enum Msg {
        Put { key: String, value: String },
        Dump,
    }

    #[test]
    fn json_transcodes_to_named_msgpack_enums() {
        let put: Msg = rmp_serde::from_slice(
            &json_to_msgpack(br#"{"Put": {"key": "a", "value": "1"}}"#).unwrap(),
        )
        .unwrap();
        assert_eq!(
            put,
            Msg::Put {
                key: "a".into(),
                value: "1".into()
            }
        );
        let dump: Msg = rmp_serde::from_slice(&json_to_msgpack(br#""Dump""#).unwrap()).unwrap();
        assert_eq!(dump, Msg::Dump);
        let e = json_to_msgpack(b"{Put").unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        let back: serde_json::Value =
            rmp_serde::from_slice(&rmp_serde::to_vec_named(&put).unwrap()).unwrap();
        assert_eq!(back, serde_json::json!({"Put": {"key": "a", "value": "1"}}));
    }
}
