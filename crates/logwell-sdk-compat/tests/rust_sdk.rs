//! The AWS SDK for Rust, pointed at an in-process logwell server, sees CloudWatch Logs.

use aws_sdk_cloudwatchlogs as cwl;
use cwl::config::{BehaviorVersion, Credentials, Region};
use cwl::types::InputLogEvent;

async fn start_server() -> (String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = logwell_server::ServerConfig::default();
    cfg.storage.data_dir = dir.path().to_path_buf();
    let app = logwell_server::App::open(&cfg).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(logwell_server::serve(listener, app, std::future::pending()));
    (format!("http://{addr}"), dir)
}

fn client(endpoint: &str) -> cwl::Client {
    let conf = cwl::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "AKIDEXAMPLE",
            "secret",
            None,
            None,
            "static",
        ))
        .build();
    cwl::Client::from_conf(conf)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_sdk_creates_puts_reads_and_gets_typed_errors() {
    let (endpoint, _dir) = start_server().await;
    let c = client(&endpoint);
    c.create_log_group()
        .log_group_name("/sdk/app")
        .tags("team", "core")
        .send()
        .await
        .unwrap();
    c.create_log_stream()
        .log_group_name("/sdk/app")
        .log_stream_name("host-1")
        .send()
        .await
        .unwrap();

    let base = now_ms() - 60_000;
    let events: Vec<InputLogEvent> = (0..1000)
        .map(|i| {
            let level = if i % 10 == 0 { "ERROR" } else { "INFO" };
            InputLogEvent::builder()
                .timestamp(base + i)
                .message(format!("{level} request {i}"))
                .build()
                .unwrap()
        })
        .collect();
    let put = c
        .put_log_events()
        .log_group_name("/sdk/app")
        .log_stream_name("host-1")
        .set_log_events(Some(events))
        .send()
        .await
        .unwrap();
    assert!(put.rejected_log_events_info().is_none());

    let got = c
        .get_log_events()
        .log_group_name("/sdk/app")
        .log_stream_name("host-1")
        .start_from_head(true)
        .send()
        .await
        .unwrap();
    let msgs: Vec<&str> = got.events().iter().map(|e| e.message().unwrap()).collect();
    assert_eq!(msgs.len(), 1000);
    assert_eq!(msgs[0], "ERROR request 0");
    assert_eq!(msgs[999], "INFO request 999");

    let filtered = c
        .filter_log_events()
        .log_group_name("/sdk/app")
        .filter_pattern("ERROR")
        .send()
        .await
        .unwrap();
    assert_eq!(filtered.events().len(), 100);
    assert!(filtered
        .events()
        .iter()
        .all(|e| e.log_stream_name() == Some("host-1") && e.event_id().is_some()));

    c.put_retention_policy()
        .log_group_name("/sdk/app")
        .retention_in_days(30)
        .send()
        .await
        .unwrap();
    let groups = c
        .describe_log_groups()
        .log_group_name_prefix("/sdk")
        .send()
        .await
        .unwrap();
    let g = &groups.log_groups()[0];
    assert_eq!(g.retention_in_days(), Some(30));
    let arn = g.log_group_arn().unwrap().to_string();
    assert_eq!(
        arn,
        "arn:aws:logs:us-east-1:000000000000:log-group:/sdk/app"
    );
    let tags = c
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(
        tags.tags().unwrap().get("team").map(String::as_str),
        Some("core")
    );

    let streams = c
        .describe_log_streams()
        .log_group_name("/sdk/app")
        .send()
        .await
        .unwrap();
    assert_eq!(
        streams.log_streams()[0].last_event_timestamp(),
        Some(base + 999)
    );

    // Errors arrive as the SDK's typed exceptions.
    let dup = c
        .create_log_group()
        .log_group_name("/sdk/app")
        .send()
        .await
        .unwrap_err();
    assert!(dup
        .into_service_error()
        .is_resource_already_exists_exception());
    let missing = c
        .get_log_events()
        .log_group_name("/sdk/app")
        .log_stream_name("nope")
        .send()
        .await
        .unwrap_err();
    assert!(missing
        .into_service_error()
        .is_resource_not_found_exception());
    let unordered = c
        .put_log_events()
        .log_group_name("/sdk/app")
        .log_stream_name("host-1")
        .log_events(
            InputLogEvent::builder()
                .timestamp(base + 5)
                .message("b")
                .build()
                .unwrap(),
        )
        .log_events(
            InputLogEvent::builder()
                .timestamp(base)
                .message("a")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_err();
    assert!(unordered
        .into_service_error()
        .is_invalid_parameter_exception());
}

/// The SDK sends StartLiveTail to `stream-<host>` and has no switch to turn that off; for a
/// local endpoint this interceptor takes the prefix off again (`../shared/reference/clients.md`
/// 1.5, and the README's Live Tail section).
#[derive(Debug)]
struct StripHostPrefix;

impl cwl::config::Intercept for StripHostPrefix {
    fn name(&self) -> &'static str {
        "StripHostPrefix"
    }
    fn modify_before_signing(
        &self,
        ctx: &mut cwl::config::interceptors::BeforeTransmitInterceptorContextMut<'_>,
        _rc: &cwl::config::RuntimeComponents,
        _cfg: &mut cwl::config::ConfigBag,
    ) -> Result<(), cwl::error::BoxError> {
        let req = ctx.request_mut();
        let uri = req.uri().to_string();
        if let Some(rest) = uri.strip_prefix("http://stream-") {
            req.set_uri(format!("http://{rest}"))?;
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_sdk_live_tail_receives_events_put_during_the_session() {
    use cwl::types::StartLiveTailResponseStream as Ev;
    let (endpoint, _dir) = start_server().await;
    let c = client(&endpoint);
    c.create_log_group()
        .log_group_name("/sdk/tail")
        .send()
        .await
        .unwrap();
    for s in ["web-1", "db-1"] {
        c.create_log_stream()
            .log_group_name("/sdk/tail")
            .log_stream_name(s)
            .send()
            .await
            .unwrap();
    }
    let tail_client =
        cwl::Client::from_conf(c.config().to_builder().interceptor(StripHostPrefix).build());
    let mut out = tail_client
        .start_live_tail()
        .log_group_identifiers("arn:aws:logs:us-east-1:000000000000:log-group:/sdk/tail")
        .log_stream_name_prefixes("web-")
        .log_event_filter_pattern("{ $.level = \"error\" }")
        .send()
        .await
        .unwrap();
    match out.response_stream.recv().await.unwrap() {
        Some(Ev::SessionStart(s)) => assert!(s.session_id().is_some()),
        other => panic!("expected sessionStart, got {other:?}"),
    }
    for (stream, level) in [("web-1", "info"), ("db-1", "error"), ("web-1", "error")] {
        c.put_log_events()
            .log_group_name("/sdk/tail")
            .log_stream_name(stream)
            .log_events(
                InputLogEvent::builder()
                    .timestamp(now_ms())
                    .message(format!(r#"{{"level":"{level}","from":"{stream}"}}"#))
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
    }
    let mut got = Vec::new();
    while got.is_empty() {
        match out.response_stream.recv().await.unwrap() {
            Some(Ev::SessionUpdate(u)) => {
                assert_eq!(u.session_metadata().map(|m| m.sampled()), Some(false));
                got.extend(u.session_results().iter().map(|e| {
                    (
                        e.log_stream_name().unwrap().to_string(),
                        e.message().unwrap().to_string(),
                    )
                }));
            }
            other => panic!("expected sessionUpdate, got {other:?}"),
        }
    }
    assert_eq!(
        got,
        [(
            "web-1".to_string(),
            r#"{"level":"error","from":"web-1"}"#.to_string()
        )]
    );
}

/// A clock 20 minutes slow.
#[derive(Debug)]
struct SlowClock;

impl aws_smithy_async::time::TimeSource for SlowClock {
    fn now(&self) -> std::time::SystemTime {
        std::time::SystemTime::now() - std::time::Duration::from_secs(20 * 60)
    }
}

/// Changes the body after it was signed: a replay of the request with another payload.
#[derive(Debug)]
struct TamperBody;

impl cwl::config::Intercept for TamperBody {
    fn name(&self) -> &'static str {
        "TamperBody"
    }
    fn modify_before_transmit(
        &self,
        ctx: &mut cwl::config::interceptors::BeforeTransmitInterceptorContextMut<'_>,
        _rc: &cwl::config::RuntimeComponents,
        _cfg: &mut cwl::config::ConfigBag,
    ) -> Result<(), cwl::error::BoxError> {
        let req = ctx.request_mut();
        let body = req.body().bytes().unwrap_or_default();
        let changed = String::from_utf8_lossy(body).replace("/sdk/signed", "/sdk/xxxxxx");
        *req.body_mut() = aws_smithy_types::body::SdkBody::from(changed);
        Ok(())
    }
}

/// With credentials configured, the Rust SDK's signatures verify (its signed header set includes
/// `content-length` and `x-amz-user-agent`), and a wrong secret, an unknown key, a body changed
/// after signing and a slow clock get AWS's errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_sdk_signatures_are_verified_when_credentials_are_configured() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = logwell_server::ServerConfig::default();
    cfg.storage.data_dir = dir.path().to_path_buf();
    cfg.auth.credentials = vec![logwell_auth::Credential {
        access_key_id: "AKIDEXAMPLE".into(),
        secret_access_key: "secret".into(),
        account_id: cfg.account_id.clone(),
        user: "sdk".into(),
        session_token: None,
        expires: None,
        policy: None,
        parsed_policy: None,
    }];
    let app = logwell_server::App::open(&cfg).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(logwell_server::serve(listener, app, std::future::pending()));

    let c = client(&endpoint);
    c.create_log_group()
        .log_group_name("/sdk/signed")
        .send()
        .await
        .unwrap();
    c.create_log_stream()
        .log_group_name("/sdk/signed")
        .log_stream_name("s")
        .send()
        .await
        .unwrap();
    c.put_log_events()
        .log_group_name("/sdk/signed")
        .log_stream_name("s")
        .log_events(
            InputLogEvent::builder()
                .timestamp(now_ms())
                .message("signed")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    // No retries: an SDK that corrects its clock from the server's Date header would succeed on
    // a second attempt, and this is about the first one being refused.
    let signed = |key: &str, secret: &str| {
        cwl::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(&endpoint)
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new(key, secret, None, None, "static"))
            .retry_config(cwl::config::retry::RetryConfig::disabled())
    };
    for (key, secret, expected) in [
        ("AKIDEXAMPLE", "not-the-secret", "InvalidSignatureException"),
        ("AKIDUNKNOWN", "secret", "UnrecognizedClientException"),
    ] {
        let err = cwl::Client::from_conf(signed(key, secret).build())
            .describe_log_groups()
            .send()
            .await
            .unwrap_err();
        let code = cwl::error::ProvideErrorMetadata::code(&err).map(String::from);
        assert_eq!(code.as_deref(), Some(expected), "{err:?}");
    }
    let tampered = cwl::Client::from_conf(
        signed("AKIDEXAMPLE", "secret")
            .interceptor(TamperBody)
            .build(),
    );
    let err = tampered
        .delete_log_group()
        .log_group_name("/sdk/signed")
        .send()
        .await
        .unwrap_err();
    let code = cwl::error::ProvideErrorMetadata::code(&err).map(String::from);
    assert_eq!(
        code.as_deref(),
        Some("InvalidSignatureException"),
        "{err:?}"
    );
    let skewed = cwl::Client::from_conf(
        signed("AKIDEXAMPLE", "secret")
            .time_source(SlowClock)
            .build(),
    );
    let err = skewed.describe_log_groups().send().await.unwrap_err();
    let code = cwl::error::ProvideErrorMetadata::code(&err).map(String::from);
    let message = cwl::error::ProvideErrorMetadata::message(&err)
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        code.as_deref(),
        Some("InvalidSignatureException"),
        "{err:?}"
    );
    assert!(message.starts_with("Signature expired"), "{message}");
    // Neither changed anything.
    let groups = c.describe_log_groups().send().await.unwrap();
    let names: Vec<_> = groups
        .log_groups()
        .iter()
        .filter_map(|g| g.log_group_name())
        .collect();
    assert!(names.contains(&"/sdk/signed"), "{names:?}");
}
