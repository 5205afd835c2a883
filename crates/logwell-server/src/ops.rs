//! The log group, stream, event and tag operations: each applies AWS's rules to its typed
//! request, calls the engine and returns its typed response (`crate::operations` routes to them).

use crate::{tokens, App};
use logwell_filter::FilterPattern;
use logwell_model::api::*;
use logwell_model::{validate, ApiError};
use logwell_storage::{NewGroup, Scan, StreamFilter};

pub(crate) async fn delete_log_group(app: &App, r: LogGroupNameRequest) -> Result<Empty, ApiError> {
    let name = group_name(r.log_group_name, r.log_group_identifier)?;
    app.engine.delete_group(&name).await?;
    Ok(Empty {})
}

pub(crate) async fn create_log_stream(app: &App, r: LogStreamRequest) -> Result<Empty, ApiError> {
    let g = group_name(r.log_group_name, r.log_group_identifier)?;
    validate::log_stream_name(&r.log_stream_name, "logStreamName")?;
    app.engine.create_stream(&g, &r.log_stream_name).await?;
    Ok(Empty {})
}

pub(crate) async fn delete_log_stream(app: &App, r: LogStreamRequest) -> Result<Empty, ApiError> {
    let g = group_name(r.log_group_name, r.log_group_identifier)?;
    validate::log_stream_name(&r.log_stream_name, "logStreamName")?;
    app.engine.delete_stream(&g, &r.log_stream_name).await?;
    Ok(Empty {})
}

pub(crate) async fn put_retention_policy(
    app: &App,
    r: PutRetentionPolicyRequest,
) -> Result<Empty, ApiError> {
    validate::log_group_name(&r.log_group_name, "logGroupName")?;
    validate::retention_days(r.retention_in_days)?;
    app.engine
        .set_retention(&r.log_group_name, Some(r.retention_in_days))
        .await?;
    Ok(Empty {})
}

pub(crate) async fn delete_retention_policy(
    app: &App,
    r: LogGroupNameRequest,
) -> Result<Empty, ApiError> {
    let g = group_name(r.log_group_name, r.log_group_identifier)?;
    app.engine.set_retention(&g, None).await?;
    Ok(Empty {})
}

pub(crate) async fn tag_resource(app: &App, r: TagResourceRequest) -> Result<Empty, ApiError> {
    let g = group_from_arn(&r.resource_arn)?;
    validate::tags(&r.tags)?;
    app.engine.tag_group(&g, r.tags).await?;
    Ok(Empty {})
}

pub(crate) async fn untag_resource(app: &App, r: UntagResourceRequest) -> Result<Empty, ApiError> {
    let g = group_from_arn(&r.resource_arn)?;
    app.engine.untag_group(&g, r.tag_keys).await?;
    Ok(Empty {})
}

pub(crate) async fn list_tags_for_resource(
    app: &App,
    r: ListTagsForResourceRequest,
) -> Result<ListTagsForResourceResponse, ApiError> {
    let g = group_from_arn(&r.resource_arn)?;
    Ok(ListTagsForResourceResponse {
        tags: app.engine.group_tags(&g)?,
    })
}

pub(crate) async fn tag_log_group(app: &App, r: TagLogGroupRequest) -> Result<Empty, ApiError> {
    validate::log_group_name(&r.log_group_name, "logGroupName")?;
    validate::tags(&r.tags)?;
    app.engine.tag_group(&r.log_group_name, r.tags).await?;
    Ok(Empty {})
}

pub(crate) async fn untag_log_group(app: &App, r: UntagLogGroupRequest) -> Result<Empty, ApiError> {
    validate::log_group_name(&r.log_group_name, "logGroupName")?;
    app.engine.untag_group(&r.log_group_name, r.tags).await?;
    Ok(Empty {})
}

pub(crate) async fn list_tags_log_group(
    app: &App,
    r: LogGroupNameRequest,
) -> Result<ListTagsForResourceResponse, ApiError> {
    let g = group_name(r.log_group_name, r.log_group_identifier)?;
    Ok(ListTagsForResourceResponse {
        tags: app.engine.group_tags(&g)?,
    })
}

/// Resolves `logGroupName` / `logGroupIdentifier`, exactly one of which must be given.
fn group_name(name: Option<String>, identifier: Option<String>) -> Result<String, ApiError> {
    match (name, identifier) {
        (Some(n), None) => {
            validate::log_group_name(&n, "logGroupName")?;
            Ok(n)
        }
        (None, Some(id)) => {
            let n = logwell_model::group_name_from_identifier(&id).to_string();
            validate::log_group_name(&n, "logGroupIdentifier")?;
            Ok(n)
        }
        (Some(_), Some(_)) => Err(ApiError::invalid(
            "LogGroup name and LogGroup ARN are mutually exclusive parameters.",
        )),
        (None, None) => Err(ApiError::invalid(
            "Should provide either name or ARN of a log group.",
        )),
    }
}

/// The tagging APIs name a log group by its ARN.
fn group_from_arn(arn: &str) -> Result<String, ApiError> {
    if !arn.starts_with("arn:") || !arn.contains(":log-group:") {
        return Err(ApiError::invalid(format!(
            "Invalid resourceArn '{arn}': expected arn:aws:logs:REGION:ACCOUNT:log-group:NAME"
        )));
    }
    let name = logwell_model::group_name_from_identifier(arn).to_string();
    validate::log_group_name(&name, "resourceArn")?;
    Ok(name)
}

pub(crate) async fn create_log_group(
    app: &App,
    r: CreateLogGroupRequest,
) -> Result<Empty, ApiError> {
    validate::new_log_group_name(&r.log_group_name)?;
    if let Some(k) = &r.kms_key_id {
        crate::kms_keys::check_key_id(k)?;
    }
    if let Some(t) = &r.tags {
        validate::tags(t)?;
    }
    if let Some(c) = &r.log_group_class {
        if !matches!(c.as_str(), "STANDARD" | "INFREQUENT_ACCESS" | "DELIVERY") {
            return Err(ApiError::constraint(
                c,
                "logGroupClass",
                "satisfy enum value set: [STANDARD, INFREQUENT_ACCESS, DELIVERY]",
            ));
        }
    }
    // A group whose creation fails after its key is wrapped leaves only a ciphertext behind.
    let data_key = match &r.kms_key_id {
        Some(k) if !app.engine.group_exists(&r.log_group_name) => {
            let arn =
                logwell_model::log_group_arn_bare(&app.region, &app.account_id, &r.log_group_name);
            Some(app.engine.new_kms_data_key(k, &arn).await?)
        }
        _ => None,
    };
    app.engine
        .create_group(NewGroup {
            name: r.log_group_name,
            kms_key_id: r.kms_key_id,
            data_key,
            class: r.log_group_class,
            tags: r.tags.unwrap_or_default(),
            deletion_protection: r.deletion_protection_enabled.unwrap_or(false),
        })
        .await?;
    Ok(Empty {})
}

pub(crate) async fn describe_log_groups(
    app: &App,
    r: DescribeLogGroupsRequest,
) -> Result<DescribeLogGroupsResponse, ApiError> {
    let limit = validate::describe_limit(r.limit)?;
    if r.log_group_name_prefix.is_some() && r.log_group_name_pattern.is_some() {
        return Err(ApiError::invalid(
            "LogGroup name prefix and LogGroup name pattern are mutually exclusive parameters.",
        ));
    }
    if r.log_group_identifiers.is_some()
        && (r.log_group_name_prefix.is_some() || r.log_group_name_pattern.is_some())
    {
        return Err(ApiError::invalid(
            "logGroupIdentifiers cannot be combined with logGroupNamePrefix or logGroupNamePattern.",
        ));
    }
    // An ARN keeps its account: another account's group is not listed as this one's.
    let ids: Option<Vec<String>> = r.log_group_identifiers.as_ref().map(|v| {
        v.iter()
            .filter(|i| {
                i.strip_prefix("arn:")
                    .and_then(|a| a.split(':').nth(3))
                    .is_none_or(|account| account == app.account_id)
            })
            .map(|i| logwell_model::group_name_from_identifier(i).to_string())
            .collect()
    });
    if let Some(t) = &r.next_token {
        // Tokens are the name of the last group returned.
        validate::log_group_name(t, "nextToken").map_err(|_| ApiError::bad_token())?;
    }
    let pattern_only = r.log_group_name_pattern.is_some();
    let mut out = Vec::new();
    let mut next_token = None;
    for g in app.engine.list_groups() {
        if let Some(t) = &r.next_token {
            if g.name.as_str() <= t.as_str() {
                continue;
            }
        }
        if r.log_group_name_prefix
            .as_ref()
            .is_some_and(|p| !g.name.starts_with(p.as_str()))
            || r.log_group_name_pattern
                .as_ref()
                .is_some_and(|p| !g.name.contains(p.as_str()))
            || r.log_group_class.as_ref().is_some_and(|c| *c != g.class)
            || ids.as_ref().is_some_and(|ids| !ids.contains(&g.name))
        {
            continue;
        }
        if out.len() == limit {
            next_token = out.last().map(|l: &LogGroup| l.log_group_name.clone());
            break;
        }
        let arn = logwell_model::log_group_arn(&app.region, &app.account_id, &g.name);
        out.push(if pattern_only {
            LogGroup {
                log_group_name: g.name,
                creation_time: g.creation_time,
                arn,
                ..Default::default()
            }
        } else {
            LogGroup {
                log_group_arn: Some(logwell_model::log_group_arn_bare(
                    &app.region,
                    &app.account_id,
                    &g.name,
                )),
                log_group_name: g.name,
                creation_time: g.creation_time,
                retention_in_days: g.retention_days,
                metric_filter_count: Some(0),
                arn,
                stored_bytes: Some(g.stored_bytes as i64),
                kms_key_id: g.kms_key_id,
                log_group_class: Some(g.class),
                deletion_protection_enabled: Some(g.deletion_protection),
                data_protection_status: g.data_protection.then(|| "ACTIVATED".to_string()),
            }
        });
    }
    Ok(DescribeLogGroupsResponse {
        log_groups: out,
        next_token,
    })
}

pub(crate) async fn describe_log_streams(
    app: &App,
    r: DescribeLogStreamsRequest,
) -> Result<DescribeLogStreamsResponse, ApiError> {
    let g = group_name(r.log_group_name, r.log_group_identifier)?;
    let limit = validate::describe_limit(r.limit)?;
    let by_time = match r.order_by.as_deref() {
        None | Some("LogStreamName") => false,
        Some("LastEventTime") => true,
        Some(o) => {
            return Err(ApiError::constraint(
                o,
                "orderBy",
                "satisfy enum value set: [LogStreamName, LastEventTime]",
            ))
        }
    };
    if by_time && r.log_stream_name_prefix.is_some() {
        return Err(ApiError::invalid(
            "Cannot order by LastEventTime with a logStreamNamePrefix.",
        ));
    }
    let mut streams = app.engine.list_streams(&g)?;
    if let Some(p) = &r.log_stream_name_prefix {
        streams.retain(|(n, _)| n.starts_with(p.as_str()));
    }
    if by_time {
        streams.sort_by(|a, b| {
            a.1.last_event_ts
                .cmp(&b.1.last_event_ts)
                .then_with(|| a.0.cmp(&b.0))
        });
    }
    if r.descending.unwrap_or(false) {
        streams.reverse();
    }
    // Tokens hold the sort key of the last stream returned, so streams created, deleted or
    // re-ordered between pages cause neither duplicates nor gaps.
    let key = |name: &str, s: &logwell_storage::catalog::StreamMeta| -> (i64, String) {
        let ts = if by_time {
            s.last_event_ts.unwrap_or(i64::MIN)
        } else {
            0
        };
        (ts, name.to_string())
    };
    let descending = r.descending.unwrap_or(false);
    let after = match &r.next_token {
        None => None,
        Some(t) => {
            let rest = t.strip_prefix("s/").ok_or_else(ApiError::bad_token)?;
            let (ts, name) = rest.split_once(':').ok_or_else(ApiError::bad_token)?;
            Some((
                ts.parse::<i64>().map_err(|_| ApiError::bad_token())?,
                name.to_string(),
            ))
        }
    };
    let mut rest = streams
        .iter()
        .filter(|(n, s)| match &after {
            None => true,
            Some(a) if descending => key(n, s) < *a,
            Some(a) => key(n, s) > *a,
        })
        .peekable();
    let mut page = Vec::new();
    let mut last_key = None;
    while page.len() < limit {
        let Some((name, s)) = rest.next() else { break };
        last_key = Some(key(name, s));
        page.push(LogStream {
            arn: logwell_model::log_stream_arn(&app.region, &app.account_id, &g, name),
            log_stream_name: name.clone(),
            creation_time: s.creation_time,
            first_event_timestamp: s.first_event_ts,
            last_event_timestamp: s.last_event_ts,
            last_ingestion_time: s.last_ingestion_time,
            stored_bytes: 0,
        });
    }
    let next_token = match (rest.peek(), last_key) {
        (Some(_), Some((ts, name))) => Some(format!("s/{ts}:{name}")),
        _ => None,
    };
    Ok(DescribeLogStreamsResponse {
        log_streams: page,
        next_token,
    })
}

pub(crate) async fn put_log_events(
    app: &App,
    r: PutLogEventsRequest<'_>,
) -> Result<PutLogEventsResponse, ApiError> {
    validate::log_group_name(&r.log_group_name, "logGroupName")?;
    validate::log_stream_name(&r.log_stream_name, "logStreamName")?;
    let outcome = app
        .engine
        .put_events(&r.log_group_name, &r.log_stream_name, &r.log_events)
        .await?;
    if outcome.accepted > 0 {
        let bytes: usize = r
            .log_events
            .iter()
            .map(|e| e.message.len() + logwell_model::EVENT_OVERHEAD_BYTES)
            .sum();
        // Rejected events (too old or too new) are rare: their share of the bytes is estimated.
        let accepted_bytes = bytes * outcome.accepted / r.log_events.len().max(1);
        app.telemetry
            .ingested(outcome.accepted as u64, accepted_bytes as u64);
        crate::data_protection::audit(app, &r.log_group_name, &r.log_events);
    }
    Ok(PutLogEventsResponse {
        // Deprecated and ignored by AWS, but old clients still read it.
        next_sequence_token: Some(format!("{:056}", logwell_model::now_millis())),
        rejected_log_events_info: outcome.rejected,
    })
}

fn check_limit(limit: Option<i64>) -> Result<usize, ApiError> {
    validate::limit(limit, 10_000, 10_000)
}

/// Responses carry at most 1 MiB of events (message bytes plus 26 per event).
fn cap_bytes<T>(rows: &mut Vec<T>, size: impl Fn(&T) -> usize) {
    let mut total = 0;
    let keep = rows
        .iter()
        .position(|r| {
            total += size(r) + logwell_model::EVENT_OVERHEAD_BYTES;
            total > logwell_model::MAX_BATCH_BYTES
        })
        .unwrap_or(rows.len());
    rows.truncate(keep.max(1).min(rows.len()));
}

pub(crate) async fn get_log_events(
    app: &App,
    r: GetLogEventsRequest,
) -> Result<GetLogEventsResponse, ApiError> {
    let g = group_name(r.log_group_name, r.log_group_identifier)?;
    validate::log_stream_name(&r.log_stream_name, "logStreamName")?;
    let limit = check_limit(r.limit)?;
    app.engine.stream(&g, &r.log_stream_name)?;
    let token = r.next_token.as_deref().map(tokens::decode).transpose()?;
    let mut scan = Scan {
        streams: StreamFilter::Names(vec![r.log_stream_name.clone()]),
        start: r.start_time,
        end: r.end_time,
        limit,
        ..Default::default()
    };
    match token {
        Some(('f', key)) => scan.after = Some(key),
        Some(('b', key)) => {
            scan.before = Some(key);
            scan.newest_first = true;
        }
        Some(_) => return Err(ApiError::bad_token()),
        None => scan.newest_first = !r.start_from_head.unwrap_or(false),
    }
    // Rows come nearest-first; the byte cap keeps the nearest.
    let mut rows = app.engine.scan(&g, &scan).await?;
    let protection = crate::data_protection::protection(app, &g, r.unmask == Some(true));
    if protection.is_masked() {
        for row in &mut rows {
            protection.mask_string(&mut row.message);
        }
    }
    cap_bytes(&mut rows, |e| e.message.len());
    if scan.newest_first {
        rows.reverse();
    }
    let (forward, backward) = match (rows.first(), rows.last()) {
        (Some(first), Some(last)) => (
            tokens::encode('f', last.key()),
            tokens::encode('b', first.key()),
        ),
        _ => match token {
            Some((_, key)) => (tokens::encode('f', key), tokens::encode('b', key)),
            None => {
                let start = (i64::MIN, i64::MIN);
                (tokens::encode('f', start), tokens::encode('b', start))
            }
        },
    };
    let events = rows
        .into_iter()
        .map(|e| OutputLogEvent {
            timestamp: e.timestamp,
            message: e.message,
            ingestion_time: e.ingestion_time,
        })
        .collect();
    Ok(GetLogEventsResponse {
        events,
        next_forward_token: forward,
        next_backward_token: backward,
    })
}

pub(crate) async fn filter_log_events(
    app: &App,
    r: FilterLogEventsRequest,
) -> Result<FilterLogEventsResponse, ApiError> {
    let g = group_name(r.log_group_name, r.log_group_identifier)?;
    let limit = check_limit(r.limit)?;
    let streams = match (r.log_stream_names, r.log_stream_name_prefix) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "logStreamNames and logStreamNamePrefix are mutually exclusive parameters.",
            ))
        }
        (Some(names), None) => {
            if names.is_empty() || names.len() > 100 {
                return Err(ApiError::constraint(
                    &format!("{} names", names.len()),
                    "logStreamNames",
                    "have length between 1 and 100",
                ));
            }
            for n in &names {
                validate::log_stream_name(n, "logStreamNames")?;
            }
            StreamFilter::Names(names)
        }
        (None, Some(p)) => StreamFilter::Prefix(p),
        (None, None) => StreamFilter::All,
    };
    if let (Some(s), Some(e)) = (r.start_time, r.end_time) {
        if s > e {
            return Err(ApiError::invalid(
                "startTime must be less than or equal to endTime.",
            ));
        }
    }
    let pattern = match r.filter_pattern.as_deref() {
        Some(p) => Some(FilterPattern::parse(p).map_err(|e| ApiError::invalid(e.to_string()))?),
        None => None,
    };
    let token = r.next_token.as_deref().map(tokens::decode).transpose()?;
    let newest_first = match token {
        Some(('F', _)) => false,
        Some(('B', _)) => true,
        Some(_) => return Err(ApiError::bad_token()),
        None => !r.start_from_head.unwrap_or(true),
    };
    let mut scan = Scan {
        streams,
        start: r.start_time,
        end: r.end_time.map(|e| e.saturating_add(1)),
        newest_first,
        limit: limit + 1,
        ..Default::default()
    };
    if let Some((_, key)) = token {
        if newest_first {
            scan.before = Some(key);
        } else {
            scan.after = Some(key);
        }
    }
    // The pattern runs as a DataFusion filter over segments and memtable.
    let mut rows = app
        .queries
        .querier()
        .filter_events(
            &g,
            &scan,
            r.filter_pattern.as_deref().zip(pattern.as_ref()),
            r.unmask == Some(true),
        )
        .await
        .map_err(crate::queries::to_api)?;
    let more = rows.len() > limit;
    rows.truncate(limit);
    let before_cap = rows.len();
    cap_bytes(&mut rows, |e| e.message.len());
    let next_token = (more || rows.len() < before_cap)
        .then(|| {
            rows.last()
                .map(|l| tokens::encode(if newest_first { 'B' } else { 'F' }, l.key()))
        })
        .flatten();
    let events = rows
        .into_iter()
        .map(|e| FilteredLogEvent {
            log_stream_name: e.stream,
            timestamp: e.timestamp,
            message: e.message,
            ingestion_time: e.ingestion_time,
            event_id: format!("{:056}", e.seq),
        })
        .collect();
    Ok(FilterLogEventsResponse {
        events,
        searched_log_streams: Vec::new(),
        next_token,
    })
}

pub(crate) async fn test_metric_filter(
    _: &App,
    r: TestMetricFilterRequest,
) -> Result<TestMetricFilterResponse, ApiError> {
    let n = r.log_event_messages.len();
    if !(1..=50).contains(&n) {
        return Err(ApiError::constraint(
            &format!("{n} messages"),
            "logEventMessages",
            "have length between 1 and 50",
        ));
    }
    let pattern =
        FilterPattern::parse(&r.filter_pattern).map_err(|e| ApiError::invalid(e.to_string()))?;
    let matches = r
        .log_event_messages
        .into_iter()
        .enumerate()
        .filter_map(|(i, message)| {
            let values = pattern.extract(&message)?;
            Some(MetricFilterMatch {
                event_number: i as i64 + 1,
                event_message: message,
                extracted_values: values.into_iter().collect(),
            })
        })
        .collect();
    Ok(TestMetricFilterResponse { matches })
}
