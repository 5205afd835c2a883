//! `anomaly`: which patterns behave unusually within the query's time range.
//!
//! CloudWatch documents five kinds of anomaly but not how they are found, so the rules here are
//! logwell's own, kept simple enough to state in one line each. The events of the range are
//! split in two halves by time: the earlier half is the baseline, the later half is checked
//! against it.
//!
//! - **New pattern**: the pattern's first event is in the later half.
//! - **Pattern frequency**: one tenth of the range holds at least 5 events of the pattern and at
//!   least 3 times the median count of the ten tenths.
//! - **Token variation**: a dynamic token that took at most 5 distinct values in the baseline
//!   (which has at least 10 events) takes a value never seen before.
//! - **Numerical token**: a numeric token with more than 5 values (not a category) averages, in a
//!   later tenth holding at least 3 events, more than 3 standard deviations and more than 10%
//!   away from its baseline mean (at least 10 baseline values).
//! - **HTTP error code**: a token whose values are all HTTP status codes (100-599) shows 4xx/5xx
//!   codes in at least 3 later events, in a share at least twice and 5 points above the baseline's.
//!
//! Each pattern keeps a [`Profile`] while the query scans: per fine time bucket, its event count
//! and per token the values (up to 16 distinct) and the numeric moments. Buckets widen (doubling)
//! so a profile never holds more than 2,048 of them, whatever the range.

use crate::pattern;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Distinct values a token keeps before it counts as an open-ended value (an id, a latency).
const MAX_VALUES: usize = 16;
/// Fine time buckets a profile keeps at most.
const MAX_BUCKETS: i64 = 2048;
/// The tenths of the range that frequencies and averages are compared over.
const BINS: usize = 10;

/// Count, sum and sum of squares of numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
struct Moments {
    n: u64,
    sum: f64,
    squares: f64,
}

impl Moments {
    fn add(&mut self, other: &Moments) {
        self.n += other.n;
        self.sum += other.sum;
        self.squares += other.squares;
    }
    fn mean(&self) -> f64 {
        self.sum / self.n as f64
    }
    /// Population standard deviation.
    fn std_dev(&self) -> f64 {
        let m = self.mean();
        (self.squares / self.n as f64 - m * m).max(0.0).sqrt()
    }
}

/// One value of a token: when it was first seen and how often, per bucket.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct ValueSeen {
    first: i64,
    counts: BTreeMap<i64, u64>,
}

/// One dynamic token of a pattern (`<Number-2>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct TokenProfile {
    kind: String,
    /// Every distinct value, until there are more than [`MAX_VALUES`] (then None).
    values: Option<BTreeMap<String, ValueSeen>>,
    /// Per bucket, while every value is a number.
    numbers: Option<BTreeMap<i64, Moments>>,
}

/// What one pattern's events looked like over time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// Bucket width in ms (1 s doubled as needed); bucket `b` covers `[b*width, (b+1)*width)`.
    width: i64,
    first: i64,
    last: i64,
    counts: BTreeMap<i64, u64>,
    tokens: Vec<TokenProfile>,
}

impl Default for Profile {
    fn default() -> Self {
        Profile {
            width: 1000,
            first: i64::MAX,
            last: i64::MIN,
            counts: BTreeMap::new(),
            tokens: Vec::new(),
        }
    }
}

fn merge_counts(into: &mut BTreeMap<i64, u64>, from: &BTreeMap<i64, u64>) {
    for (b, n) in from {
        *into.entry(*b).or_default() += n;
    }
}

fn rebucket<V: Default>(
    map: BTreeMap<i64, V>,
    factor: i64,
    add: impl Fn(&mut V, &V),
) -> BTreeMap<i64, V> {
    let mut out: BTreeMap<i64, V> = BTreeMap::new();
    for (b, v) in map {
        add(out.entry(b.div_euclid(factor)).or_default(), &v);
    }
    out
}

impl Profile {
    /// Records one event of the pattern.
    pub fn add(&mut self, ts: i64, text: &str) {
        self.first = self.first.min(ts);
        self.last = self.last.max(ts);
        let b = ts.div_euclid(self.width);
        *self.counts.entry(b).or_default() += 1;
        for (i, (kind, value)) in pattern::token_values(text).into_iter().enumerate() {
            if i == self.tokens.len() {
                self.tokens.push(TokenProfile {
                    kind: kind.to_string(),
                    values: Some(BTreeMap::new()),
                    numbers: Some(BTreeMap::new()),
                });
            }
            let token = &mut self.tokens[i];
            if let Some(values) = &mut token.values {
                let seen = values.entry(value.to_string()).or_insert(ValueSeen {
                    first: ts,
                    counts: BTreeMap::new(),
                });
                seen.first = seen.first.min(ts);
                *seen.counts.entry(b).or_default() += 1;
                if values.len() > MAX_VALUES {
                    token.values = None;
                }
            }
            if let Some(numbers) = &mut token.numbers {
                // Values whose square or sums overflow are not worth averaging (and JSON cannot
                // carry infinities): such a token is not numeric.
                match value.parse::<f64>() {
                    Ok(x) if (x * x).is_finite() => {
                        let m = numbers.entry(b).or_default();
                        m.n += 1;
                        m.sum += x;
                        m.squares += x * x;
                        if !m.squares.is_finite() {
                            token.numbers = None;
                        }
                    }
                    _ => token.numbers = None,
                }
            }
        }
        self.bound();
    }

    /// Folds another profile of the same pattern into this one.
    pub fn merge(&mut self, mut other: Profile) {
        if other.counts.is_empty() {
            return;
        }
        while other.width < self.width {
            other.coarsen();
        }
        while self.width < other.width {
            self.coarsen();
        }
        self.first = self.first.min(other.first);
        self.last = self.last.max(other.last);
        merge_counts(&mut self.counts, &other.counts);
        for (i, theirs) in other.tokens.into_iter().enumerate() {
            if i == self.tokens.len() {
                self.tokens.push(theirs);
                continue;
            }
            let ours = &mut self.tokens[i];
            ours.values = match (ours.values.take(), theirs.values) {
                (Some(mut a), Some(b)) => {
                    for (v, seen) in b {
                        let e = a.entry(v).or_insert(ValueSeen {
                            first: seen.first,
                            counts: BTreeMap::new(),
                        });
                        e.first = e.first.min(seen.first);
                        merge_counts(&mut e.counts, &seen.counts);
                    }
                    (a.len() <= MAX_VALUES).then_some(a)
                }
                _ => None,
            };
            ours.numbers = match (ours.numbers.take(), theirs.numbers) {
                (Some(mut a), Some(b)) => {
                    for (k, m) in b {
                        a.entry(k).or_default().add(&m);
                    }
                    a.values().all(|m| m.squares.is_finite()).then_some(a)
                }
                _ => None,
            };
        }
        self.bound();
    }

    /// Widens buckets until the profile spans at most [`MAX_BUCKETS`].
    fn bound(&mut self) {
        while let (Some(lo), Some(hi)) = (self.counts.keys().next(), self.counts.keys().last()) {
            if hi - lo < MAX_BUCKETS {
                break;
            }
            self.coarsen();
        }
    }

    fn coarsen(&mut self) {
        self.width *= 2;
        self.counts = rebucket(std::mem::take(&mut self.counts), 2, |a, b| *a += b);
        for t in &mut self.tokens {
            if let Some(values) = &mut t.values {
                for seen in values.values_mut() {
                    seen.counts = rebucket(std::mem::take(&mut seen.counts), 2, |a, b| *a += b);
                }
            }
            if let Some(numbers) = t.numbers.take() {
                let numbers = rebucket(numbers, 2, Moments::add);
                t.numbers = numbers
                    .values()
                    .all(|m| m.squares.is_finite())
                    .then_some(numbers);
            }
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a profile serializes")
    }

    pub fn from_json(text: &str) -> Option<Profile> {
        serde_json::from_str(text).ok()
    }

    /// Rough heap size, for DataFusion's memory accounting.
    pub fn size(&self) -> usize {
        let per_bucket = 48;
        let mut n = self.counts.len() * per_bucket;
        for t in &self.tokens {
            if let Some(values) = &t.values {
                n += values
                    .iter()
                    .map(|(v, s)| v.len() + 64 + s.counts.len() * per_bucket)
                    .sum::<usize>();
            }
            if let Some(numbers) = &t.numbers {
                n += numbers.len() * (per_bucket + 16);
            }
        }
        n + std::mem::size_of::<Profile>()
    }
}

/// What `anomaly` reports for one pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// When the unusual behaviour started (epoch ms).
    pub at: i64,
    /// The kinds found, in a fixed order, joined by ", ".
    pub kinds: String,
    /// `HIGH`, `MEDIUM` or `LOW`.
    pub priority: &'static str,
    pub description: String,
}

const PRIORITIES: [&str; 3] = ["LOW", "MEDIUM", "HIGH"];

fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string())
        .unwrap_or_else(|| ms.to_string())
}

fn num(x: f64) -> String {
    // Two decimals are enough to read; integral values print without them.
    let r = (x * 100.0).round() / 100.0;
    logwell_fields::number(r)
}

fn is_status(v: &str) -> bool {
    v.len() == 3 && v.parse::<u16>().is_ok_and(|c| (100..=599).contains(&c))
}

/// Judges one pattern's profile. `lo..=hi` is the time span of every event the patterns came
/// from (the first and last event of the query's input); `severity` the pattern's label.
pub fn evaluate(p: &Profile, lo: i64, hi: i64, severity: Option<&str>) -> Option<Finding> {
    if hi <= lo || p.counts.is_empty() {
        return None;
    }
    let mid = lo + (hi - lo) / 2;
    let bin_len = (hi - lo + 1) as f64 / BINS as f64;
    let bin_of = |b: &i64| -> usize {
        let t = (b * p.width).clamp(lo, hi);
        (((t - lo) as f64 / bin_len) as usize).min(BINS - 1)
    };
    let bin_start = |i: usize| lo + (i as f64 * bin_len) as i64;
    let bin_end = |i: usize| lo + ((i + 1) as f64 * bin_len) as i64 - 1;
    let later = |b: &i64| b * p.width >= mid;
    let base_priority = match severity {
        Some("Error") => 2,
        Some("Warning") => 1,
        _ => 0,
    };

    let mut found: Vec<(i64, &str, usize, String)> = Vec::new();
    let baseline_events: u64 = p
        .counts
        .iter()
        .filter(|(b, _)| !later(b))
        .map(|e| e.1)
        .sum();

    if p.first >= mid {
        let n: u64 = p.counts.values().sum();
        found.push((
            p.first,
            "New pattern",
            base_priority,
            format!("new pattern: first seen at {}, {n} events", time(p.first)),
        ));
    } else {
        let mut bins = [0u64; BINS];
        for (b, n) in &p.counts {
            bins[bin_of(b)] += n;
        }
        let mut sorted = bins;
        sorted.sort_unstable();
        let median = (sorted[BINS / 2 - 1] + sorted[BINS / 2]) as f64 / 2.0;
        let floor = median.max(1.0);
        let peak = (0..BINS)
            .filter(|&i| bins[i] >= 5 && bins[i] as f64 >= 3.0 * floor)
            .max_by(|&a, &b| bins[a].cmp(&bins[b]).then(b.cmp(&a)));
        if let Some(i) = peak {
            let ratio = bins[i] as f64 / floor;
            let priority = (base_priority + usize::from(ratio >= 10.0)).min(2);
            found.push((
                bin_start(i),
                "Pattern frequency",
                priority,
                format!(
                    "{} events from {} to {}, {}x the median of {} per tenth of the range",
                    bins[i],
                    time(bin_start(i)),
                    time(bin_end(i)),
                    num(ratio),
                    num(median)
                ),
            ));
        }
    }

    for (i, token) in p.tokens.iter().enumerate() {
        let label = format!("<{}-{}>", token.kind, i + 1);
        if token.kind == "Time" {
            continue;
        }
        if let Some(values) = &token.values {
            if token.kind == "Number" && values.keys().all(|v| is_status(v)) {
                let (mut err_before, mut all_before, mut err_after, mut all_after) = (0, 0, 0, 0);
                let mut codes: Vec<&str> = Vec::new();
                let mut since = i64::MAX;
                for (v, seen) in values {
                    let error = v.as_str() >= "400";
                    for (b, n) in &seen.counts {
                        if later(b) {
                            all_after += n;
                            if error {
                                err_after += n;
                                since = since.min((b * p.width).max(mid).max(seen.first));
                                if !codes.contains(&v.as_str()) {
                                    codes.push(v);
                                }
                            }
                        } else {
                            all_before += n;
                            err_before += u64::from(error) * n;
                        }
                    }
                }
                let share = |e: u64, a: u64| if a == 0 { 0.0 } else { e as f64 / a as f64 };
                let (before, after) = (share(err_before, all_before), share(err_after, all_after));
                if err_after >= 3 && after >= 2.0 * before && after - before >= 0.05 {
                    let server = codes.iter().any(|c| c.starts_with('5'));
                    found.push((
                        since,
                        "HTTP error code",
                        if server { 2 } else { base_priority.max(1) },
                        format!(
                            "status {label} was {} in {err_after} of {all_after} events since {} ({}% against {}% before)",
                            codes.join(", "),
                            time(mid),
                            num(after * 100.0),
                            num(before * 100.0)
                        ),
                    ));
                }
                continue;
            }
            let usual: Vec<&str> = values
                .iter()
                .filter(|(_, s)| s.first < mid)
                .map(|(v, _)| v.as_str())
                .collect();
            let new: Vec<(&str, i64)> = values
                .iter()
                .filter(|(_, s)| s.first >= mid)
                .map(|(v, s)| (v.as_str(), s.first))
                .collect();
            if usual.len() <= 5 {
                // A category: new values are the news, not their magnitude.
                if baseline_events >= 10 && !usual.is_empty() && !new.is_empty() {
                    let at = new.iter().map(|(_, t)| *t).min().unwrap_or(mid);
                    let names: Vec<&str> = new.iter().map(|(v, _)| *v).collect();
                    found.push((
                        at,
                        "Token variation",
                        base_priority,
                        format!(
                            "{label} took new values {} (before: {})",
                            names.join(", "),
                            usual.join(", ")
                        ),
                    ));
                }
                continue;
            }
        }
        let Some(numbers) = &token.numbers else {
            continue;
        };
        let mut base = Moments::default();
        let mut bins = [Moments::default(); BINS];
        for (b, m) in numbers {
            if later(b) {
                bins[bin_of(b)].add(m);
            } else {
                base.add(m);
            }
        }
        if base.n < 10 {
            continue;
        }
        let (mean, sd) = (base.mean(), base.std_dev());
        let worst = (0..BINS)
            .filter(|&i| bins[i].n >= 3)
            .map(|i| (i, (bins[i].mean() - mean).abs()))
            .filter(|&(_, d)| d > 3.0 * sd && d > 0.1 * mean.abs())
            .max_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((i, _)) = worst {
            found.push((
                bin_start(i).max(mid),
                "Numerical token",
                base_priority,
                format!(
                    "{label} averaged {} from {} to {} against {} (standard deviation {}) before",
                    num(bins[i].mean()),
                    time(bin_start(i).max(mid)),
                    time(bin_end(i)),
                    num(mean),
                    num(sd)
                ),
            ));
        }
    }

    if found.is_empty() {
        return None;
    }
    const ORDER: [&str; 5] = [
        "New pattern",
        "Pattern frequency",
        "Token variation",
        "Numerical token",
        "HTTP error code",
    ];
    found.sort_by_key(|f| ORDER.iter().position(|k| *k == f.1));
    let mut kinds: Vec<&str> = found.iter().map(|f| f.1).collect();
    kinds.dedup();
    Some(Finding {
        at: found.iter().map(|f| f.0).min().unwrap_or(mid),
        kinds: kinds.join(", "),
        priority: PRIORITIES[found.iter().map(|f| f.2).max().unwrap_or(0)],
        description: found
            .iter()
            .map(|f| f.3.as_str())
            .collect::<Vec<_>>()
            .join("; "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn profile(events: &[(i64, String)]) -> Profile {
        let mut p = Profile::default();
        for (t, m) in events {
            p.add(*t, m);
        }
        p
    }

    #[test]
    fn buckets_widen_and_merging_matches_adding() {
        let events: Vec<(i64, String)> = (0..5000)
            .map(|i| (i * 7_919, format!("took {} ms", i % 50)))
            .collect();
        let whole = profile(&events);
        assert!(whole.counts.len() as i64 <= MAX_BUCKETS);
        assert!(whole.width > 1000);
        let (a, b) = events.split_at(1234);
        let mut merged = profile(b);
        merged.merge(profile(a));
        assert_eq!(merged, whole);
        assert_eq!(whole.counts.values().sum::<u64>(), 5000);
        let back = Profile::from_json(&whole.to_json()).unwrap();
        assert_eq!(back, whole);
    }

    #[test]
    fn numbers_too_large_to_average_leave_the_profile_readable() {
        let events: Vec<(i64, String)> = (0..20)
            .map(|i| (i * MIN, format!("value {}e200 seen", i % 3 + 1)))
            .collect();
        let p = profile(&events);
        assert!(p.tokens[0].numbers.is_none());
        let mut merged = Profile::from_json(&p.to_json()).expect("readable");
        merged.merge(p.clone());
        assert_eq!(merged.counts.values().sum::<u64>(), 40);
    }

    #[test]
    fn steady_pattern_is_not_an_anomaly() {
        let events: Vec<(i64, String)> = (0..60)
            .map(|i| (i * MIN, format!("user u-{} logged in", i % 3)))
            .collect();
        assert_eq!(evaluate(&profile(&events), 0, 59 * MIN, None), None);
    }

    #[test]
    fn a_burst_is_a_frequency_anomaly() {
        let mut events: Vec<(i64, String)> = (0..100)
            .map(|i| (i * MIN, "cache miss".to_string()))
            .collect();
        events.extend((0..30).map(|i| (80 * MIN + i * 1000, "cache miss".to_string())));
        let f = evaluate(&profile(&events), 0, 99 * MIN, Some("Warning")).unwrap();
        assert_eq!(f.kinds, "Pattern frequency");
        assert_eq!(f.priority, "MEDIUM");
        // The eighth tenth of 0..=99 min starts at 79.2 min.
        assert_eq!(f.at, 4_752_000);
    }
}
