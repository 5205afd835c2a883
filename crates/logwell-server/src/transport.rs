//! The wire: awsJson1_1 framing (`X-Amz-Target: Logs_20140328.<Operation>`, JSON bodies), the
//! AWS error shape (`__type`, `message`, `x-amzn-errortype`), request ids, and AWS event-stream
//! frames (`application/vnd.amazon.eventstream`) for streaming responses. Every operation's
//! request is decoded and its response encoded here, one way for all.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use logwell_model::{ApiError, ErrorKind};
use serde::Serialize;

pub(crate) const TARGET_PREFIX: &str = "Logs_20140328.";
pub(crate) const JSON_CT: &str = "application/x-amz-json-1.1";

/// Decodes a request body (an empty body is `{}`), with AWS's errors for a missing member or
/// malformed JSON.
pub(crate) fn decode<'a, T: serde::Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    let body = if body.iter().all(|b| b.is_ascii_whitespace()) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(serde_error)
}

fn serde_error(e: serde_json::Error) -> ApiError {
    let msg = e.to_string();
    if let Some(field) = msg
        .strip_prefix("missing field `")
        .and_then(|r| r.split('`').next())
    {
        return ApiError::constraint("null", field, "not be null");
    }
    ApiError::new(
        ErrorKind::SerializationException,
        format!("Could not parse the request body: {msg}"),
    )
}

/// Encodes a response body.
pub(crate) fn encode<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("response serialises")
}

/// A successful response.
pub(crate) fn json_response(json: String) -> Response {
    let mut r = (StatusCode::OK, json).into_response();
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static(JSON_CT));
    r
}

/// An error as AWS sends it: its HTTP status, `__type` and `message` (and a query's compile
/// error location).
pub(crate) fn error_response(e: &ApiError) -> Response {
    let status = StatusCode::from_u16(e.kind.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut body = serde_json::json!({"__type": e.kind.type_name(), "message": e.message});
    if let Some((start, end)) = e.location {
        body["queryCompileError"] = serde_json::json!({
            "location": {"startCharOffset": start, "endCharOffset": end},
            "message": e.message,
        });
    }
    let mut r = (status, body.to_string()).into_response();
    let h = r.headers_mut();
    h.insert("content-type", HeaderValue::from_static(JSON_CT));
    if let Ok(v) = HeaderValue::from_str(e.kind.type_name()) {
        h.insert("x-amzn-errortype", v);
    }
    r
}

pub(crate) fn with_request_id(mut response: Response) -> Response {
    let id =
        HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()).expect("uuid is a valid header");
    response.headers_mut().insert("x-amzn-requestid", id);
    response
}

pub(crate) fn throttled() -> ApiError {
    ApiError::new(ErrorKind::Throttling, "Rate exceeded")
}

pub(crate) const EVENT_STREAM_CT: &str = "application/vnd.amazon.eventstream";

/// One event-stream message: an `event` of `event_type` (or, with `exception`, an exception of
/// that type) carrying `payload` as JSON.
pub(crate) fn stream_frame<T: Serialize>(kind: FrameKind, name: &str, payload: &T) -> bytes::Bytes {
    json_frame(
        kind,
        name,
        serde_json::to_vec(payload).expect("event serialises"),
    )
}

/// [`stream_frame`] of a payload already serialised to JSON.
pub(crate) fn json_frame(kind: FrameKind, name: &str, json: Vec<u8>) -> bytes::Bytes {
    use aws_smithy_types::event_stream::{Header, HeaderValue as H, Message};
    let (message_type, type_header) = match kind {
        FrameKind::Event => ("event", ":event-type"),
        FrameKind::Exception => ("exception", ":exception-type"),
    };
    let message = Message::new(json)
        .add_header(Header::new(":message-type", H::String(message_type.into())))
        .add_header(Header::new(type_header, H::String(name.to_string().into())))
        .add_header(Header::new(
            ":content-type",
            H::String("application/json".into()),
        ));
    let mut out = Vec::new();
    aws_smithy_eventstream::frame::write_message_to(&message, &mut out)
        .expect("event-stream frame encodes");
    out.into()
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum FrameKind {
    Event,
    Exception,
}

/// A streaming response: `frames` as an HTTP/1.1 chunked event stream.
pub(crate) fn event_stream_response(
    frames: impl futures::Stream<Item = bytes::Bytes> + Send + 'static,
) -> Response {
    use futures::StreamExt;
    let body = axum::body::Body::from_stream(frames.map(Ok::<_, std::convert::Infallible>));
    let mut r = (StatusCode::OK, body).into_response();
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static(EVENT_STREAM_CT));
    r
}

/// A streaming response of Server-Sent Events (`text/event-stream`), never cached or buffered
/// by proxies.
pub(crate) fn server_sent_events_response(
    events: impl futures::Stream<Item = bytes::Bytes> + Send + 'static,
) -> Response {
    let mut r = event_stream_response(events);
    let h = r.headers_mut();
    h.insert(
        "content-type",
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert("cache-control", HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    r
}
