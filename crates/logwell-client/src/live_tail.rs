//! StartLiveTail from the client side: the request, then the AWS event stream read frame by
//! frame (`aws-smithy-eventstream`) into typed messages.

use crate::{Client, ClientError};
use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use aws_smithy_types::event_stream::{HeaderValue, Message};
use bytes::{Buf, BytesMut};
use logwell_model::api_tail::{LiveTailSessionStart, LiveTailSessionUpdate, StartLiveTailRequest};

/// What a live tail stream says.
#[derive(Debug, Clone, PartialEq)]
pub enum TailMessage {
    Start(LiveTailSessionStart),
    Update(LiveTailSessionUpdate),
}

/// An open live tail. Dropping it closes the connection, which ends the session.
pub struct LiveTail {
    response: reqwest::Response,
    buffer: BytesMut,
    decoder: MessageFrameDecoder,
}

impl Client {
    /// StartLiveTail: errors in the request come back here, before any stream.
    pub async fn start_live_tail(
        &self,
        request: &StartLiveTailRequest,
    ) -> Result<LiveTail, ClientError> {
        let body = serde_json::to_vec(request).expect("requests serialise");
        let response = self.post("StartLiveTail", body).await?;
        Ok(LiveTail {
            response,
            buffer: BytesMut::new(),
            decoder: MessageFrameDecoder::new(),
        })
    }
}

impl LiveTail {
    /// The next message; `None` when the server closed the stream. A session timeout or a
    /// server error in the stream is an [`ClientError::Api`] with CloudWatch's exception name.
    pub async fn next(&mut self) -> Result<Option<TailMessage>, ClientError> {
        loop {
            if let Some(message) = self.frame()? {
                let header = |name: &str| {
                    message
                        .headers()
                        .iter()
                        .find(|h| h.name().as_str() == name)
                        .and_then(|h| match h.value() {
                            HeaderValue::String(s) => Some(s.as_str().to_string()),
                            _ => None,
                        })
                };
                let payload = message.payload();
                let decode = |e: serde_json::Error| ClientError::Decode(e.to_string());
                match (header(":message-type").as_deref(), header(":event-type")) {
                    (Some("exception"), _) => {
                        let v: serde_json::Value =
                            serde_json::from_slice(payload).unwrap_or_default();
                        return Err(ClientError::Api {
                            type_name: header(":exception-type").unwrap_or_default(),
                            message: v["message"].as_str().unwrap_or_default().to_string(),
                            status: 200,
                        });
                    }
                    (_, Some(t)) if t == "sessionStart" => {
                        return Ok(Some(TailMessage::Start(
                            serde_json::from_slice(payload).map_err(decode)?,
                        )))
                    }
                    (_, Some(t)) if t == "sessionUpdate" => {
                        return Ok(Some(TailMessage::Update(
                            serde_json::from_slice(payload).map_err(decode)?,
                        )))
                    }
                    // `initial-response` and anything newer than this client.
                    _ => continue,
                }
            }
            match self.response.chunk().await {
                Ok(Some(chunk)) => self.buffer.extend_from_slice(&chunk),
                Ok(None) => return Ok(None),
                Err(e) => return Err(ClientError::Decode(e.to_string())),
            }
        }
    }

    fn frame(&mut self) -> Result<Option<Message>, ClientError> {
        if !self.buffer.has_remaining() {
            return Ok(None);
        }
        match self.decoder.decode_frame(&mut self.buffer) {
            Ok(DecodedFrame::Complete(m)) => Ok(Some(m)),
            Ok(DecodedFrame::Incomplete) => Ok(None),
            Err(e) => Err(ClientError::Decode(format!("event stream: {e}"))),
        }
    }
}
