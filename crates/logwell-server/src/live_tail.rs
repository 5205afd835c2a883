//! StartLiveTail: a session from `logwell-tail`, sent as an AWS event stream: `initial-response`
//! (botocore requires it first), `sessionStart`, then `sessionUpdate`s until the session times
//! out, the server stops or the client goes away (which drops the session and frees its place).

use crate::transport::{event_stream_response, stream_frame, FrameKind};
use crate::App;
use axum::response::Response;
use futures::StreamExt;
use logwell_model::api::Empty;
use logwell_model::api_tail::StartLiveTailRequest;
use logwell_model::ApiError;
use logwell_tail::Next;

pub(crate) fn start(app: &App, request: StartLiveTailRequest) -> Result<Response, ApiError> {
    let session = app.tails.start(request)?;
    let opening = [
        stream_frame(FrameKind::Event, "initial-response", &Empty {}),
        stream_frame(FrameKind::Event, "sessionStart", &session.start),
    ];
    let updates = futures::stream::unfold(Some(session), |session| async move {
        let mut session = session?;
        let exception = |name: &str, message: &str| {
            stream_frame(
                FrameKind::Exception,
                name,
                &serde_json::json!({ "message": message }),
            )
        };
        Some(match session.next().await {
            Next::Update(u) => (
                stream_frame(FrameKind::Event, "sessionUpdate", &u),
                Some(session),
            ),
            Next::Timeout => (
                exception(
                    "SessionTimeoutException",
                    "The Live Tail session reached its maximum duration.",
                ),
                None,
            ),
            Next::Closed => (
                exception(
                    "SessionStreamingException",
                    "The Live Tail session ended: the server is shutting down.",
                ),
                None,
            ),
        })
    });
    Ok(event_stream_response(
        futures::stream::iter(opening).chain(updates),
    ))
}
