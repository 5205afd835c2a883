//! `logwell tail`: stored events since a moment (FilterLogEvents), then, with `--follow`, live
//! ones (StartLiveTail), in the spirit of `aws logs tail --follow`.
//!
//! The seam: the live session starts first, so every event applied after that moment reaches it;
//! the scrollback is read next and holds every event applied before. Events applied in between
//! are in both: the scrollback's events are counted by content, and the live copies of those
//! are skipped, exactly as many times as the scrollback showed them.

use anyhow::{Context, Result};
use logwell_client::{Client, TailMessage};
use logwell_model::api::{FilterLogEventsRequest, FilterLogEventsResponse};
use logwell_model::api_tail::{LiveTailSessionLogEvent, StartLiveTailRequest};
use std::collections::HashMap;
use std::io::{IsTerminal, Write};

/// How events are printed.
#[derive(Clone, Copy, Debug, PartialEq, clap::ValueEnum)]
pub enum Format {
    /// Time and message.
    Short,
    /// Time, group, stream and message.
    Detailed,
    /// One JSON object per event (messages that are JSON pretty-printed inside it).
    Json,
}

/// When to colour lines by level.
#[derive(Clone, Copy, Debug, PartialEq, clap::ValueEnum)]
pub enum Color {
    Auto,
    Always,
    Never,
}

pub struct TailOptions {
    pub groups: Vec<String>,
    /// Scrollback start (epoch ms).
    pub since_ms: i64,
    pub follow: bool,
    pub filter: Option<String>,
    pub stream_prefix: Option<String>,
    pub format: Format,
    pub color: Color,
}

/// One event to print.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Event {
    group: String,
    stream: String,
    timestamp: i64,
    ingestion_time: i64,
    message: String,
}

struct Printer {
    format: Format,
    color: bool,
    out: std::io::StdoutLock<'static>,
}

impl Printer {
    fn print(&mut self, e: &Event) -> Result<()> {
        let time = crate::format_ms(e.timestamp);
        let line = match self.format {
            Format::Short => format!("{time} {}", e.message),
            Format::Detailed => format!("{time} {} {} {}", e.group, e.stream, e.message),
            Format::Json => {
                let message = serde_json::from_str::<serde_json::Value>(&e.message)
                    .ok()
                    .filter(|v| v.is_object() || v.is_array())
                    .unwrap_or_else(|| serde_json::Value::String(e.message.clone()));
                serde_json::to_string_pretty(&serde_json::json!({
                    "timestamp": time,
                    "logGroup": e.group,
                    "logStream": e.stream,
                    "ingestionTime": crate::format_ms(e.ingestion_time),
                    "message": message,
                }))?
            }
        };
        let colour = if self.color {
            level_colour(&e.message)
        } else {
            None
        };
        match colour {
            Some(c) => writeln!(self.out, "\x1b[{c}m{line}\x1b[0m")?,
            None => writeln!(self.out, "{line}")?,
        }
        Ok(())
    }
}

/// The ANSI colour of a line by the first level word in it: errors red, warnings yellow,
/// debug and trace dim.
fn level_colour(message: &str) -> Option<&'static str> {
    let head: String = message
        .chars()
        .take(200)
        .collect::<String>()
        .to_ascii_uppercase();
    for word in head.split(|c: char| !c.is_ascii_alphabetic()) {
        match word {
            "ERROR" | "ERR" | "FATAL" | "CRITICAL" | "PANIC" | "SEVERE" => return Some("31"),
            "WARN" | "WARNING" => return Some("33"),
            "DEBUG" | "TRACE" => return Some("2"),
            _ => {}
        }
    }
    None
}

fn identifier_group(identifier: &str) -> &str {
    // Live results carry `ACCOUNT:GROUP`; requests may name groups by ARN.
    let name = logwell_model::group_name_from_identifier(identifier);
    match name.split_once(':') {
        Some((account, rest)) if account.chars().all(|c| c.is_ascii_digit()) => rest,
        _ => name,
    }
}

/// The stored events of `group` from `since_ms` on, oldest first.
async fn scrollback(client: &Client, group: &str, opts: &TailOptions) -> Result<Vec<Event>> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let request = FilterLogEventsRequest {
            log_group_identifier: Some(group.to_string()),
            log_stream_name_prefix: opts.stream_prefix.clone(),
            start_time: Some(opts.since_ms),
            filter_pattern: opts.filter.clone(),
            next_token: token.take(),
            ..Default::default()
        };
        let page: FilterLogEventsResponse = client
            .call("FilterLogEvents", &request)
            .await
            .with_context(|| format!("reading {group}"))?;
        out.extend(page.events.into_iter().map(|e| Event {
            group: identifier_group(group).to_string(),
            stream: e.log_stream_name,
            timestamp: e.timestamp,
            ingestion_time: e.ingestion_time,
            message: e.message,
        }));
        match page.next_token {
            Some(t) => token = Some(t),
            None => return Ok(out),
        }
    }
}

pub async fn tail(client: &Client, opts: TailOptions) -> Result<()> {
    let stdout = std::io::stdout();
    let color = match opts.color {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => stdout.is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    let mut printer = Printer {
        format: opts.format,
        color,
        out: stdout.lock(),
    };
    // The live session first: from here on nothing applied can be missed.
    let mut live = if opts.follow {
        let several = opts.groups.len() > 1;
        let request = StartLiveTailRequest {
            log_group_identifiers: opts.groups.clone(),
            // One group can filter streams at the server; several are filtered here.
            log_stream_name_prefixes: opts
                .stream_prefix
                .clone()
                .filter(|_| !several)
                .map(|p| vec![p]),
            log_event_filter_pattern: opts.filter.clone(),
            ..Default::default()
        };
        let mut session = client.start_live_tail(&request).await?;
        match session.next().await? {
            Some(TailMessage::Start(_)) => {}
            other => anyhow::bail!("the live tail did not start: {other:?}"),
        }
        // Read the session while the scrollback is fetched, so that the server never sees a
        // reader that fell behind (it would sample). A session sends at most 500 events a
        // second, so what waits here stays small.
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let m = session.next().await;
                let end = !matches!(m, Ok(Some(_)));
                if tx.send(m).is_err() || end {
                    return;
                }
            }
        });
        Some(rx)
    } else {
        None
    };
    let mut events = Vec::new();
    for g in &opts.groups {
        events.extend(scrollback(client, g, &opts).await?);
    }
    events.sort_by_key(|e| e.timestamp);
    for e in &events {
        printer.print(e)?;
    }
    printer.out.flush()?;
    let Some(mut live) = live.take() else {
        return Ok(());
    };
    // What the live session may show again: the scrollback's events, counted by content (the
    // session started before the scrollback was read; identical events count separately).
    let mut shown: HashMap<Event, usize> = HashMap::new();
    for e in events {
        *shown.entry(e).or_default() += 1;
    }
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let message = tokio::select! {
            m = live.recv() => match m {
                Some(m) => m?,
                None => return Ok(()),
            },
            _ = &mut ctrl_c => return Ok(()),
        };
        let update = match message {
            Some(TailMessage::Update(u)) => u,
            Some(TailMessage::Start(_)) => continue,
            None => return Ok(()),
        };
        if update.session_metadata.sampled {
            eprintln!(
                "[logwell tail: more events arrived than a session shows; some were left out]"
            );
        }
        for LiveTailSessionLogEvent {
            log_stream_name,
            log_group_identifier,
            message,
            timestamp,
            ingestion_time,
        } in update.session_results
        {
            if opts
                .stream_prefix
                .as_deref()
                .is_some_and(|p| !log_stream_name.starts_with(p))
            {
                continue;
            }
            let e = Event {
                group: identifier_group(&log_group_identifier).to_string(),
                stream: log_stream_name,
                timestamp,
                ingestion_time,
                message,
            };
            if let Some(n) = shown.get_mut(&e) {
                *n -= 1;
                if *n == 0 {
                    shown.remove(&e);
                }
                continue;
            }
            printer.print(&e)?;
        }
        printer.out.flush()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_colour_lines_and_identifiers_name_groups() {
        assert_eq!(level_colour("2024-05-19 ERROR boom"), Some("31"));
        assert_eq!(level_colour(r#"{"level":"warn","msg":"x"}"#), Some("33"));
        assert_eq!(level_colour("INFO terrorism report"), None);
        assert_eq!(identifier_group("000000000000:/app/web"), "/app/web");
        assert_eq!(
            identifier_group("arn:aws:logs:us-east-1:1:log-group:/app/web"),
            "/app/web"
        );
        assert_eq!(identifier_group("/app/web"), "/app/web");
    }
}
