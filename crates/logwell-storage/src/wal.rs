//! The write-ahead log: checksummed records, group commit, replay and truncation.
//!
//! One thread owns the open file. Appends queue up (in a bounded queue: a full queue makes
//! callers wait) while it is busy with the previous fsync, so many concurrent PutLogEvents calls
//! share one `fdatasync` (group commit). A record is acknowledged only after the fsync that
//! covers it returned and the record was applied.
//!
//! The writer thread also applies each durable record (through the `apply` callback), in LSN
//! order, before acknowledging it. Readers therefore never see a later record without the earlier
//! ones, which keeps position-based pagination tokens from skipping events.
//!
//! Frame: `len u32 | crc32c u32 | lsn u64 | group_first u64 | group_last u64 | payload[len]`,
//! little-endian; the CRC covers everything after itself. The group fields are the first and last
//! LSN of the group commit the frame was written in: a power cut can tear only the last group (its
//! fsync never returned), and its pages may reach the disk in any order, so replay must know
//! which frames belong to it. A file `wal-<F>.log` holds records F, F+1, ... with no gaps: a failed write
//! is cut off and its LSNs are reused, and when it cannot be cut off the writer starts a new file
//! named by the reused LSN, which supersedes whatever the old file holds from that LSN on.
//!
//! Replay is honest about damage: only a torn tail of the newest file (or a tail superseded by
//! the next file) can be unacknowledged, so anything else unreadable, or a gap in the LSNs, stops
//! start-up with the file and offset; [`ReplayMode::Salvage`] keeps every readable record and
//! reports what it dropped instead.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

const HEADER: usize = 32;
/// Largest payload a frame may declare (a PutLogEvents batch is at most ~1 MiB).
const MAX_PAYLOAD: usize = 64 << 20;
/// Appends that may wait for the writer at once; more make their callers wait.
const QUEUE_DEPTH: usize = 1024;

enum Cmd {
    Append(Vec<u8>, oneshot::Sender<io::Result<u64>>),
    Rotate(oneshot::Sender<io::Result<u64>>),
}

/// Handle to the log; cheap to share.
pub struct Wal {
    stats: Arc<WalStats>,
    tx: mpsc::Sender<Cmd>,
    dir: PathBuf,
    last_lsn: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn file_name(first_lsn: u64) -> String {
    format!("wal-{first_lsn:020}.log")
}

fn parse_name(name: &str) -> Option<u64> {
    name.strip_prefix("wal-")?
        .strip_suffix(".log")?
        .parse()
        .ok()
}

/// WAL files in `dir`, oldest first, with the first LSN each holds.
pub fn files(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    fs::create_dir_all(dir)?;
    list(dir)
}

fn list(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if let Some(lsn) = entry.file_name().to_str().and_then(parse_name) {
            out.push((lsn, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// How replay treats damage that is not a torn tail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayMode {
    /// Refuse: damage or a gap means acknowledged records would be lost.
    Strict,
    /// Keep every readable record and report what was dropped (`logwell serve --recover`).
    Salvage,
}

/// What replay read.
#[derive(Debug, Default)]
pub struct Replayed {
    /// Records with an LSN above the checkpoint, in LSN order.
    pub records: Vec<(u64, Vec<u8>)>,
    /// The highest LSN found in any file (0 if none).
    pub last_lsn: u64,
    /// The LSN the next appended record must get: past every record and every file name.
    pub next_lsn: u64,
    /// Salvage mode: what was dropped, one line each (file, offset, bytes or LSNs).
    pub dropped: Vec<String>,
}

/// An intact frame: its LSN, the last LSN of its group, where it ends.
#[derive(Debug, Clone, Copy)]
struct Frame {
    lsn: u64,
    group_first: u64,
    group_last: u64,
    end: usize,
}

/// The frame at `pos`, if it is whole and its checksum holds.
fn frame_at(buf: &[u8], pos: usize) -> Option<Frame> {
    if pos + HEADER > buf.len() {
        return None;
    }
    let len = u32::from_le_bytes(buf[pos..pos + 4].try_into().unwrap()) as usize;
    if len > MAX_PAYLOAD {
        return None;
    }
    let crc = u32::from_le_bytes(buf[pos + 4..pos + 8].try_into().unwrap());
    let end = pos + HEADER + len;
    if end > buf.len() || crc32c::crc32c(&buf[pos + 8..end]) != crc {
        return None;
    }
    Some(Frame {
        lsn: u64::from_le_bytes(buf[pos + 8..pos + 16].try_into().unwrap()),
        group_first: u64::from_le_bytes(buf[pos + 16..pos + 24].try_into().unwrap()),
        group_last: u64::from_le_bytes(buf[pos + 24..pos + 32].try_into().unwrap()),
        end,
    })
}

/// Every intact frame from `from` on (with an LSN in `lsns`), reading on after each and
/// re-synchronising after damage.
fn frames_from(buf: &[u8], from: usize, lsns: std::ops::Range<u64>) -> Vec<Frame> {
    let mut out = Vec::new();
    let mut at = resync(buf, from, lsns.clone());
    while let Some(p) = at {
        let f = frame_at(buf, p).expect("resync finds intact frames");
        out.push(f);
        at = match frame_at(buf, f.end) {
            Some(_) => Some(f.end),
            None => resync(buf, f.end + 1, lsns.clone()),
        };
    }
    out
}

/// The offset of the next intact frame after `from` with an LSN in `lsns`, if any.
fn resync(buf: &[u8], from: usize, lsns: std::ops::Range<u64>) -> Option<usize> {
    // No more records can follow than frames fit in the rest of the file: a cheap bound that
    // keeps the checksum off almost every offset of a damaged file.
    let most = (buf.len().saturating_sub(from) / HEADER) as u64;
    let lsns = lsns.start..lsns.end.min(lsns.start.saturating_add(most + 1));
    (from..buf.len().saturating_sub(HEADER - 1)).find(|&p| {
        let lsn = u64::from_le_bytes(buf[p + 8..p + 16].try_into().unwrap());
        lsns.contains(&lsn) && frame_at(buf, p).is_some()
    })
}

/// Whether `buf` starts with a frame of the format before group fields (16-byte header), which
/// this version cannot read: its records must not pass for a torn tail.
fn is_old_format(buf: &[u8]) -> bool {
    const OLD_HEADER: usize = 16;
    if buf.len() < OLD_HEADER || frame_at(buf, 0).is_some() {
        return false;
    }
    let len = u32::from_le_bytes(buf[0..4].try_into().unwrap()) as usize;
    let crc = u32::from_le_bytes(buf[4..8].try_into().unwrap());
    len <= MAX_PAYLOAD
        && OLD_HEADER + len <= buf.len()
        && crc32c::crc32c(&buf[8..OLD_HEADER + len]) == crc
}

fn damaged(msg: String) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{msg}; acknowledged records would be lost, so start-up stops here. Run `logwell serve --recover` to keep every readable record and report what is dropped"),
    )
}

/// Reads every record with an LSN above `after` (the checkpoint the catalog covers).
pub fn replay(dir: &Path, after: u64, mode: ReplayMode) -> io::Result<Replayed> {
    fs::create_dir_all(dir)?;
    let files = list(dir)?;
    let mut out = Replayed::default();
    // The next LSN the log must hold to continue without a gap from the checkpoint.
    let mut expected = after + 1;
    for (i, (first, path)) in files.iter().enumerate() {
        let newest = i + 1 == files.len();
        // A later file starting at an LSN supersedes this file's records from that LSN on.
        let until = files.get(i + 1).map_or(u64::MAX, |(f, _)| *f);
        let mut buf = Vec::new();
        File::open(path)?.read_to_end(&mut buf)?;
        let name = path.display();
        if is_old_format(&buf) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{name} was written by an earlier logwell (WAL frames without group fields); start that version once and stop it cleanly, which publishes everything and leaves an empty log, then upgrade"),
            ));
        }
        if *first > expected && mode == ReplayMode::Strict {
            let what = if i == 0 {
                format!("the write-ahead log does not continue from the catalog's checkpoint (LSN {after}): its oldest file {name} starts at LSN {first}")
            } else {
                format!("the write-ahead log has a gap before {name}: records {expected} to {} are missing", first - 1)
            };
            return Err(damaged(what));
        } else if *first > expected {
            out.dropped.push(format!(
                "{name}: records {expected} to {} missing (gap in the log)",
                first - 1
            ));
        }
        let mut lsn_next = *first;
        let mut pos = 0;
        // The group of the last intact frame (a file starts at a group boundary).
        let (mut group_first, mut group_last) = (*first, first.saturating_sub(1));
        while pos < buf.len() && lsn_next < until {
            match frame_at(&buf, pos) {
                Some(f) if f.lsn == lsn_next => {
                    out.last_lsn = out.last_lsn.max(f.lsn);
                    if f.lsn >= expected {
                        out.records.push((f.lsn, buf[pos + HEADER..f.end].to_vec()));
                        expected = f.lsn + 1;
                    }
                    lsn_next += 1;
                    (group_first, group_last) = (f.group_first, f.group_last);
                    pos = f.end;
                }
                found => {
                    // Unreadable (or out of sequence) from `pos`. Torn tail, or damage?
                    let next = resync(&buf, pos + 1, lsn_next..until);
                    // In the newest file, damage followed only by intact frames of the group the
                    // damage is in is the last group, torn by a power cut: its fsync never
                    // returned, so none of it was acknowledged.
                    let torn_group = if newest && next.is_some() {
                        let after = frames_from(&buf, pos + 1, lsn_next..until);
                        let g = after[0].group_first;
                        (g <= lsn_next && after.iter().all(|f| f.group_first == g)).then_some(g)
                    } else {
                        None
                    };
                    let torn =
                        (next.is_none() && (newest || until == lsn_next)) || torn_group.is_some();
                    if torn {
                        tracing::warn!(file = %name, offset = pos, "WAL: torn tail ignored (never acknowledged)");
                        // The torn group's intact first records were not acknowledged either.
                        let start = match torn_group {
                            Some(g) => Some(g),
                            None => (group_last >= lsn_next).then_some(group_first),
                        };
                        if let Some(start) = start {
                            out.records.retain(|(l, _)| *l < start);
                            expected = expected.min(start.max(after + 1));
                            out.last_lsn = out.last_lsn.min(start.saturating_sub(1));
                        }
                        break;
                    }
                    let next_lsn =
                        next.map(|n| u64::from_le_bytes(buf[n + 8..n + 16].try_into().unwrap()));
                    // Lost LSNs the checkpoint already covers do not matter.
                    if next_lsn.unwrap_or(until) <= expected {
                        match (next, next_lsn) {
                            (Some(n), Some(l)) => {
                                pos = n;
                                lsn_next = l;
                                continue;
                            }
                            _ => break,
                        }
                    }
                    let what = match (found, next) {
                        (Some(f), _) => format!("{name} at offset {pos}: record {} where {lsn_next} was expected", f.lsn),
                        (None, Some(n)) => format!("{name} is corrupt at offset {pos} ({} unreadable bytes before an intact record)", n - pos),
                        (None, None) => format!("{name} is corrupt at offset {pos}: records {lsn_next} to {} are unreadable", until - 1),
                    };
                    if mode == ReplayMode::Strict {
                        return Err(damaged(what));
                    }
                    out.dropped.push(what);
                    match (next, next_lsn) {
                        (Some(n), Some(l)) => {
                            pos = n;
                            lsn_next = l;
                        }
                        _ => break,
                    }
                }
            }
        }
    }
    out.next_lsn = (out.last_lsn + 1).max(files.last().map_or(0, |(f, _)| *f));
    Ok(out)
}

/// Applies a durable record (its LSN and payload) to in-memory state; false when the record no
/// longer applies (its stream was deleted first), which its append then reports.
pub type ApplyFn = Box<dyn FnMut(u64, &[u8]) -> bool + Send>;

/// Sees each applied record once its append has been answered (live consumers: the tap), so
/// what it does never delays an acknowledgement.
pub type AckedFn = Box<dyn FnMut(u64, &[u8]) + Send>;

/// The error an append gets when its record was durable but did not apply.
pub const NOT_APPLIED: &str = "record did not apply";

/// What the WAL has done since it opened, for metrics: group commits (each one write and one
/// fsync), their total time, and the bytes they wrote.
#[derive(Debug, Default)]
pub struct WalStats {
    pub commits: AtomicU64,
    pub commit_nanos: AtomicU64,
    pub bytes: AtomicU64,
}

struct Writer {
    /// Seals each frame's payload (encryption at rest); None writes them plain.
    cipher: Option<Arc<crate::keys::WalCipher>>,
    stats: Arc<WalStats>,
    apply: ApplyFn,
    acked: Option<AckedFn>,
    dir: PathBuf,
    file: Option<File>,
    len: u64,
    next_lsn: u64,
    last_lsn: Arc<AtomicU64>,
}

impl Writer {
    fn open_new(&mut self) -> io::Result<()> {
        let path = self.dir.join(file_name(self.next_lsn));
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&path)?;
        sync_dir(&self.dir)?;
        self.file = Some(file);
        self.len = 0;
        Ok(())
    }

    /// Writes and fsyncs a group of records; on failure nothing of the group is kept.
    fn commit(&mut self, payloads: &[Vec<u8>]) -> io::Result<u64> {
        // Fault tests: a slow ("sleep(ms)") or failing ("return") fsync.
        fail::fail_point!("wal::commit", |_| Err(io::Error::other(
            "injected WAL failure"
        )));
        if self.file.is_none() {
            self.open_new()?;
        }
        // Sealing adds under 64 bytes a frame (magic, key id, salt, nonce, tag).
        let total: usize = payloads.iter().map(|p| p.len() + HEADER + 64).sum();
        let mut buf = Vec::with_capacity(total);
        let mut lsn = self.next_lsn;
        let group_first = self.next_lsn.to_le_bytes();
        let group_last = (self.next_lsn + payloads.len() as u64 - 1).to_le_bytes();
        for p in payloads {
            let lsn_bytes = lsn.to_le_bytes();
            let frame = buf.len();
            // Length and CRC are filled in once the payload (sealed in place, if sealed) is in.
            buf.extend_from_slice(&[0u8; 8]);
            buf.extend_from_slice(&lsn_bytes);
            buf.extend_from_slice(&group_first);
            buf.extend_from_slice(&group_last);
            let body = buf.len();
            match &self.cipher {
                Some(c) => c.seal_into(lsn, p, &mut buf)?,
                None => buf.extend_from_slice(p),
            }
            let len = (buf.len() - body) as u32;
            let crc = crc32c::crc32c(&buf[frame + 8..]);
            buf[frame..frame + 4].copy_from_slice(&len.to_le_bytes());
            buf[frame + 4..frame + 8].copy_from_slice(&crc.to_le_bytes());
            lsn += 1;
        }
        let file = self.file.as_mut().unwrap();
        let started = std::time::Instant::now();
        let result = file.write_all(&buf).and_then(|_| {
            // Fault tests: frames written, then the fsync fails.
            fail::fail_point!("wal::fsync", |_| Err(io::Error::other(
                "injected fsync failure"
            )));
            file.sync_data()
        });
        match result {
            Ok(()) => {
                self.stats.commits.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .commit_nanos
                    .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
                self.stats
                    .bytes
                    .fetch_add(buf.len() as u64, Ordering::Relaxed);
                self.len += buf.len() as u64;
                self.next_lsn = lsn;
                self.last_lsn.store(lsn - 1, Ordering::Release);
                Ok(lsn - payloads.len() as u64)
            }
            Err(e) => {
                // Cut the partial write off and reuse its LSNs, so the log stays gap-free; if
                // even that fails, the next commit starts a new file named by the reused LSN,
                // which supersedes the unacknowledged frames left in this one.
                let good = self.len;
                use std::io::Seek;
                let cut = file
                    .set_len(good)
                    .and_then(|_| file.sync_data())
                    .and_then(|_| file.seek(io::SeekFrom::Start(good)).map(|_| ()));
                if cut.is_err() {
                    // Supersede the uncut frames at once, so a crash before the next commit
                    // cannot replay records whose writers were told they failed.
                    self.file = None;
                    let _ = self.open_new();
                }
                Err(e)
            }
        }
    }

    fn run(mut self, mut rx: mpsc::Receiver<Cmd>) {
        while let Some(first) = rx.blocking_recv() {
            let mut cmds = vec![first];
            while let Ok(c) = rx.try_recv() {
                cmds.push(c);
                if cmds.len() >= 4096 {
                    break;
                }
            }
            let mut payloads = Vec::new();
            let mut waiters = Vec::new();
            for cmd in cmds {
                match cmd {
                    Cmd::Append(p, tx) => {
                        payloads.push(p);
                        waiters.push(tx);
                    }
                    Cmd::Rotate(tx) => {
                        self.flush_group(&mut payloads, &mut waiters);
                        let last = self.next_lsn - 1;
                        let r = self.open_new().map(|_| last);
                        if r.is_err() {
                            self.file = None;
                        }
                        let _ = tx.send(r);
                    }
                }
            }
            self.flush_group(&mut payloads, &mut waiters);
        }
    }

    fn flush_group(
        &mut self,
        payloads: &mut Vec<Vec<u8>>,
        waiters: &mut Vec<oneshot::Sender<io::Result<u64>>>,
    ) {
        if payloads.is_empty() {
            return;
        }
        match self.commit(payloads) {
            Ok(first) => {
                let mut applied = Vec::with_capacity(payloads.len());
                for (i, (p, w)) in payloads.iter().zip(waiters.drain(..)).enumerate() {
                    let lsn = first + i as u64;
                    let ok = (self.apply)(lsn, p);
                    applied.push(ok);
                    let result = if ok {
                        Ok(lsn)
                    } else {
                        Err(io::Error::other(NOT_APPLIED))
                    };
                    let _ = w.send(result);
                }
                if let Some(acked) = &mut self.acked {
                    for (i, p) in payloads.iter().enumerate() {
                        if applied[i] {
                            acked(first + i as u64, p);
                        }
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "WAL write failed");
                for w in waiters.drain(..) {
                    let _ = w.send(Err(io::Error::new(e.kind(), e.to_string())));
                }
            }
        }
        payloads.clear();
    }
}

impl Wal {
    /// Opens the log for appending; the first record written gets `next_lsn`. Every durable
    /// record goes through `apply`, in LSN order, before its append returns.
    pub fn open(dir: &Path, next_lsn: u64, apply: ApplyFn) -> io::Result<Wal> {
        Wal::open_observed(dir, next_lsn, apply, None)
    }

    /// [`Wal::open`], with `acked` seeing each applied record after its append was answered.
    pub fn open_observed(
        dir: &Path,
        next_lsn: u64,
        apply: ApplyFn,
        acked: Option<AckedFn>,
    ) -> io::Result<Wal> {
        Wal::open_sealed(dir, next_lsn, apply, acked, None)
    }

    /// [`Wal::open_observed`], sealing every frame's payload with `cipher` (replay hands sealed
    /// payloads back as they are: open them with the same cipher).
    pub fn open_sealed(
        dir: &Path,
        next_lsn: u64,
        apply: ApplyFn,
        acked: Option<AckedFn>,
        cipher: Option<Arc<crate::keys::WalCipher>>,
    ) -> io::Result<Wal> {
        fs::create_dir_all(dir)?;
        let last_lsn = Arc::new(AtomicU64::new(next_lsn.saturating_sub(1)));
        let stats = Arc::new(WalStats::default());
        let mut writer = Writer {
            cipher,
            stats: stats.clone(),
            apply,
            acked,
            dir: dir.to_path_buf(),
            file: None,
            len: 0,
            next_lsn,
            last_lsn: last_lsn.clone(),
        };
        writer.open_new()?;
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let thread = std::thread::Builder::new()
            .name("logwell-wal".into())
            .spawn(move || writer.run(rx))?;
        Ok(Wal {
            stats,
            tx,
            dir: dir.to_path_buf(),
            last_lsn,
            thread: Some(thread),
        })
    }

    /// Appends a record and waits until it is on disk; returns its LSN.
    pub async fn append(&self, payload: Vec<u8>) -> io::Result<u64> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Append(payload, tx))
            .await
            .map_err(|_| io::Error::other("WAL writer stopped"))?;
        rx.await
            .map_err(|_| io::Error::other("WAL writer stopped"))?
    }

    /// Starts a new file; returns the last LSN in the files before it.
    pub async fn rotate(&self) -> io::Result<u64> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Rotate(tx))
            .await
            .map_err(|_| io::Error::other("WAL writer stopped"))?;
        rx.await
            .map_err(|_| io::Error::other("WAL writer stopped"))?
    }

    /// Commits, their time and bytes since the WAL opened.
    pub fn stats(&self) -> &Arc<WalStats> {
        &self.stats
    }

    /// The LSN of the last durable record.
    pub fn last_lsn(&self) -> u64 {
        self.last_lsn.load(Ordering::Acquire)
    }

    /// Deletes the files whose records all have LSNs up to `upto` (they are in segments now).
    pub fn remove_upto(&self, upto: u64) -> io::Result<usize> {
        let files = list(&self.dir)?;
        let mut removed = 0;
        for pair in files.windows(2) {
            let (_, path) = &pair[0];
            let (next_first, _) = pair[1];
            if next_first <= upto + 1 {
                fs::remove_file(path)?;
                removed += 1;
            }
        }
        if removed > 0 {
            sync_dir(&self.dir)?;
        }
        Ok(removed)
    }

    /// Total bytes of WAL files on disk.
    pub fn disk_bytes(&self) -> u64 {
        list(&self.dir)
            .map(|files| {
                files
                    .iter()
                    .filter_map(|(_, p)| fs::metadata(p).ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        // Closing the channel ends the writer thread after it drains what is queued.
        let (tx, _) = mpsc::channel(1);
        drop(std::mem::replace(&mut self.tx, tx));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noop() -> ApplyFn {
        Box::new(|_, _| true)
    }

    fn strict(dir: &Path, after: u64) -> io::Result<Vec<(u64, Vec<u8>)>> {
        replay(dir, after, ReplayMode::Strict).map(|r| r.records)
    }

    /// Writes records `first..=last` ("r<lsn>") into one file per `split` records.
    async fn write_files(dir: &Path, last: u64, split: u64) {
        let wal = Wal::open(dir, 1, noop()).unwrap();
        for lsn in 1..=last {
            assert_eq!(
                wal.append(format!("r{lsn}").into_bytes()).await.unwrap(),
                lsn
            );
            if lsn % split == 0 && lsn < last {
                wal.rotate().await.unwrap();
            }
        }
    }

    #[tokio::test]
    async fn appends_replay_in_order_and_torn_tails_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        {
            let wal = Wal::open(dir.path(), 1, noop()).unwrap();
            assert_eq!(wal.append(b"one".to_vec()).await.unwrap(), 1);
            assert_eq!(wal.append(b"two".to_vec()).await.unwrap(), 2);
        }
        // A torn write: half a frame at the end of the file.
        let path = dir.path().join(file_name(1));
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[200, 0, 0, 0, 1, 2]).unwrap();
        let got = strict(dir.path(), 0).unwrap();
        assert_eq!(got, vec![(1, b"one".to_vec()), (2, b"two".to_vec())]);
        assert_eq!(strict(dir.path(), 1).unwrap(), vec![(2, b"two".to_vec())]);
        assert_eq!(
            replay(dir.path(), 0, ReplayMode::Strict).unwrap().next_lsn,
            3
        );

        // Reopening continues after the last LSN in a new file, and old files can be dropped.
        let wal = Wal::open(dir.path(), 3, noop()).unwrap();
        assert_eq!(wal.append(b"three".to_vec()).await.unwrap(), 3);
        assert_eq!(wal.rotate().await.unwrap(), 3);
        assert_eq!(wal.append(b"four".to_vec()).await.unwrap(), 4);
        assert_eq!(wal.remove_upto(3).unwrap(), 2);
        assert_eq!(strict(dir.path(), 3).unwrap(), vec![(4, b"four".to_vec())]);
    }

    #[tokio::test]
    async fn a_corrupt_last_record_of_the_newest_file_is_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        write_files(dir.path(), 2, 100).await;
        let path = dir.path().join(file_name(1));
        let mut bytes = fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n - 1] ^= 0xff;
        fs::write(&path, bytes).unwrap();
        assert_eq!(strict(dir.path(), 0).unwrap(), vec![(1, b"r1".to_vec())]);
    }

    #[tokio::test]
    async fn corruption_in_the_middle_stops_replay_and_salvage_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        write_files(dir.path(), 5, 100).await;
        let path = dir.path().join(file_name(1));
        let mut bytes = fs::read(&path).unwrap();
        // Record 2 starts after record 1's frame (header + 2 bytes); flip a payload byte.
        bytes[2 * HEADER + 2] ^= 0xff;
        fs::write(&path, &bytes).unwrap();
        let err = strict(dir.path(), 0).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(&file_name(1)) && msg.contains(&format!("offset {}", HEADER + 2)),
            "{msg}"
        );
        assert!(msg.contains("--recover"), "{msg}");
        // Before the checkpoint, the same damage does not matter.
        assert_eq!(strict(dir.path(), 2).unwrap().len(), 3);
        let r = replay(dir.path(), 0, ReplayMode::Salvage).unwrap();
        let lsns: Vec<u64> = r.records.iter().map(|(l, _)| *l).collect();
        assert_eq!(lsns, vec![1, 3, 4, 5]);
        assert_eq!(r.dropped.len(), 1, "{:?}", r.dropped);
        assert_eq!(r.next_lsn, 6);
    }

    #[tokio::test]
    async fn a_missing_middle_file_or_a_gap_after_the_checkpoint_stops_replay() {
        let dir = tempfile::tempdir().unwrap();
        write_files(dir.path(), 9, 3).await;
        fs::remove_file(dir.path().join(file_name(4))).unwrap();
        let msg = strict(dir.path(), 0).unwrap_err().to_string();
        assert!(msg.contains("records 4 to 6 are missing"), "{msg}");
        // Covered by the checkpoint: nothing is missing.
        assert_eq!(strict(dir.path(), 6).unwrap().len(), 3);
        let r = replay(dir.path(), 0, ReplayMode::Salvage).unwrap();
        assert_eq!(r.records.len(), 6);
        assert_eq!(r.dropped.len(), 1);
        // The oldest file starts after the checkpoint's next record.
        fs::remove_file(dir.path().join(file_name(1))).unwrap();
        let msg = strict(dir.path(), 0).unwrap_err().to_string();
        assert!(
            msg.contains("does not continue from the catalog's checkpoint"),
            "{msg}"
        );
    }

    #[tokio::test]
    async fn a_newer_file_supersedes_an_unacknowledged_tail_of_the_one_before() {
        let dir = tempfile::tempdir().unwrap();
        write_files(dir.path(), 3, 100).await;
        // As after a failed write that could not be cut off: the writer went on in a new file
        // from the reused LSN 3, so the old file's record 3 was never acknowledged.
        let wal = Wal::open(dir.path(), 3, noop()).unwrap();
        assert_eq!(wal.append(b"new3".to_vec()).await.unwrap(), 3);
        drop(wal);
        let got = strict(dir.path(), 0).unwrap();
        assert_eq!(
            got,
            vec![
                (1, b"r1".to_vec()),
                (2, b"r2".to_vec()),
                (3, b"new3".to_vec())
            ]
        );
    }

    #[test]
    fn a_wal_of_the_earlier_format_is_refused_not_taken_for_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        // `len | crc | lsn | payload`, the format before group fields.
        let (lsn, payload) = (1u64.to_le_bytes(), b"old record");
        let crc = crc32c::crc32c_append(crc32c::crc32c(&lsn), payload);
        let mut frame = (payload.len() as u32).to_le_bytes().to_vec();
        frame.extend_from_slice(&crc.to_le_bytes());
        frame.extend_from_slice(&lsn);
        frame.extend_from_slice(payload);
        fs::write(dir.path().join(file_name(1)), &frame).unwrap();
        let msg = strict(dir.path(), 0).unwrap_err().to_string();
        assert!(msg.contains("earlier logwell"), "{msg}");
    }

    /// A writer over `dir` whose groups the test chooses (one commit, one group).
    fn writer(dir: &Path, next_lsn: u64) -> Writer {
        let mut w = Writer {
            cipher: None,
            stats: Default::default(),
            apply: noop(),
            acked: None,
            dir: dir.to_path_buf(),
            file: None,
            len: 0,
            next_lsn,
            last_lsn: Arc::new(AtomicU64::new(0)),
        };
        w.open_new().unwrap();
        w
    }

    fn group(lsns: std::ops::RangeInclusive<u64>) -> Vec<Vec<u8>> {
        lsns.map(|l| format!("r{l}").into_bytes()).collect()
    }

    #[test]
    fn a_power_cut_that_tears_the_middle_of_the_last_group_is_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = writer(dir.path(), 1);
        w.commit(&group(1..=2)).unwrap();
        w.commit(&group(3..=5)).unwrap();
        let path = dir.path().join(file_name(1));
        let mut bytes = fs::read(&path).unwrap();
        // Record 4 (the middle of the last group) never reached the disk; 5 did.
        bytes[3 * (HEADER + 2) + HEADER] ^= 0xff;
        fs::write(&path, &bytes).unwrap();
        let got: Vec<u64> = strict(dir.path(), 0).unwrap().iter().map(|r| r.0).collect();
        assert_eq!(got, vec![1, 2], "the torn group is dropped whole");
        // The same damage in a group that a later group follows was fsynced: real damage.
        w.commit(&group(6..=6)).unwrap();
        let msg = strict(dir.path(), 0).unwrap_err().to_string();
        assert!(msg.contains("corrupt at offset"), "{msg}");
    }

    #[tokio::test]
    async fn concurrent_appends_share_commits_and_get_distinct_lsns() {
        let dir = tempfile::tempdir().unwrap();
        let applied = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = applied.clone();
        let wal = Arc::new(
            Wal::open(
                dir.path(),
                1,
                Box::new(move |lsn, _| {
                    sink.lock().unwrap().push(lsn);
                    true
                }),
            )
            .unwrap(),
        );
        let mut tasks = Vec::new();
        for i in 0..200u32 {
            let wal = wal.clone();
            let applied = applied.clone();
            tasks.push(tokio::spawn(async move {
                let lsn = wal.append(i.to_le_bytes().to_vec()).await.unwrap();
                // Applied before acknowledged.
                assert!(applied.lock().unwrap().contains(&lsn));
                lsn
            }));
        }
        let mut lsns = Vec::new();
        for t in tasks {
            lsns.push(t.await.unwrap());
        }
        lsns.sort();
        assert_eq!(lsns, (1..=200).collect::<Vec<_>>());
        // Applied strictly in LSN order, whatever order the callers woke up in.
        assert_eq!(*applied.lock().unwrap(), (1..=200).collect::<Vec<_>>());
        assert_eq!(strict(dir.path(), 0).unwrap().len(), 200);
    }

    #[tokio::test]
    async fn a_record_that_does_not_apply_is_not_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(dir.path(), 1, Box::new(|_, p| p != b"orphan")).unwrap();
        assert_eq!(wal.append(b"ok".to_vec()).await.unwrap(), 1);
        let err = wal.append(b"orphan".to_vec()).await.unwrap_err();
        assert_eq!(err.to_string(), NOT_APPLIED);
    }
}
