//! Live tail sessions from `logwell-tail`, in two framings: StartLiveTail as an AWS event stream
//! (`initial-response`, which botocore requires first, `sessionStart`, then `sessionUpdate`s), and
//! `GET /live-tail` as Server-Sent Events for browsers and `curl -N`. Either runs until the
//! session times out, the server stops or the client goes away (which drops the session and frees
//! its place).

use crate::transport::{event_stream_response, json_frame, stream_frame, FrameKind};
use crate::App;
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use logwell_model::api::Empty;
use logwell_model::api_tail::StartLiveTailRequest;
use logwell_model::ApiError;
use logwell_tail::{Next, Session};
use std::time::Duration;

pub(crate) fn start(app: &App, request: StartLiveTailRequest) -> Result<Response, ApiError> {
    let session = app.tails.start(request)?;
    let opening = [
        stream_frame(FrameKind::Event, "initial-response", &Empty {}),
        stream_frame(FrameKind::Event, "sessionStart", &session.start),
    ];
    let updates = messages(session, json_frame);
    Ok(event_stream_response(
        futures::stream::iter(opening).chain(updates),
    ))
}

/// How long a client may stop reading (without closing) before its session ends.
const STALLED: Duration = Duration::from_secs(30);

/// A session's messages after `sessionStart`, each framed by `frame(kind, name, json)`. The
/// session runs in a task of its own: it ends at once when the client goes away, and when the
/// client stops reading for [`STALLED`], so neither holds a session's place.
fn messages(
    mut session: Session,
    frame: fn(FrameKind, &str, Vec<u8>) -> Bytes,
) -> impl futures::Stream<Item = Bytes> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    tokio::spawn(async move {
        loop {
            let next = tokio::select! {
                n = session.next() => n,
                _ = tx.closed() => return,
            };
            let exception = |name: &str, message: &str| {
                frame(
                    FrameKind::Exception,
                    name,
                    serde_json::json!({ "message": message })
                        .to_string()
                        .into_bytes(),
                )
            };
            let (bytes, last) = match next {
                Next::Update(u) => (
                    frame(
                        FrameKind::Event,
                        "sessionUpdate",
                        serde_json::to_vec(&u).expect("updates serialise"),
                    ),
                    false,
                ),
                Next::Timeout => (
                    exception(
                        "SessionTimeoutException",
                        "The Live Tail session reached its maximum duration.",
                    ),
                    true,
                ),
                Next::Closed => (
                    exception(
                        "SessionStreamingException",
                        "The Live Tail session ended: the server is shutting down.",
                    ),
                    true,
                ),
            };
            if tx.send_timeout(bytes, STALLED).await.is_err() || last {
                return;
            }
        }
    });
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) })
}

/// `GET /live-tail?group=A&group=B&stream=PREFIX&filter=PATTERN`: the same session as
/// StartLiveTail (groups as names or ARNs, also comma-separated), as Server-Sent Events named
/// after CloudWatch's stream events: `sessionStart`, `sessionUpdate`, and an exception's name
/// when the session ends. Errors before the stream are the API's JSON errors.
pub(crate) fn server_sent_events(app: &App, query: &str) -> Result<Response, ApiError> {
    let mut request = StartLiveTailRequest::default();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "group" => request.log_group_identifiers.extend(
                value
                    .split(',')
                    .filter(|g| !g.is_empty())
                    .map(str::to_string),
            ),
            "stream" if !value.is_empty() => request
                .log_stream_name_prefixes
                .get_or_insert_with(Vec::new)
                .push(value.into_owned()),
            "filter" if !value.trim().is_empty() => {
                request.log_event_filter_pattern = Some(value.into_owned())
            }
            _ => {}
        }
    }
    let session = app.tails.start(request)?;
    let start = sse_event(
        FrameKind::Event,
        "sessionStart",
        serde_json::to_vec(&session.start).expect("sessionStart serialises"),
    );
    let updates = messages(session, sse_event);
    Ok(crate::transport::server_sent_events_response(
        futures::stream::iter([start]).chain(updates),
    ))
}

fn sse_event(_: FrameKind, name: &str, json: Vec<u8>) -> Bytes {
    // JSON has no raw newlines, so one `data:` line holds it.
    let mut out = format!("event: {name}\ndata: ").into_bytes();
    out.extend_from_slice(&json);
    out.extend_from_slice(b"\n\n");
    out.into()
}
