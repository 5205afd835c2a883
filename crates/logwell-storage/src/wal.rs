//! The write-ahead log: checksummed records, group commit, replay and truncation.
//!
//! One thread owns the open file. Appends queue up while it is busy with the previous fsync, so
//! many concurrent PutLogEvents calls share one `fdatasync` (group commit). A record is
//! acknowledged only after the fsync that covers it returned and the record was applied.
//!
//! The writer thread also applies each durable record (through the `apply` callback), in LSN
//! order, before acknowledging it. Readers therefore never see a later record without the earlier
//! ones, which keeps position-based pagination tokens from skipping events.
//!
//! Frame: `len u32 | crc32c u32 | lsn u64 | payload[len]`, little-endian; the CRC covers the LSN
//! and the payload. Replay stops reading a file at the first torn or corrupt frame, which can
//! only be an unacknowledged tail.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use tokio::sync::oneshot;

const HEADER: usize = 16;

enum Cmd {
    Append(Vec<u8>, oneshot::Sender<io::Result<u64>>),
    Rotate(oneshot::Sender<io::Result<u64>>),
}

/// Handle to the log; cheap to share.
pub struct Wal {
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

/// WAL files in `dir`, oldest first, with the first LSN each may hold.
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

/// Reads every intact record with an LSN above `after`, in LSN order.
pub fn replay(dir: &Path, after: u64) -> io::Result<Vec<(u64, Vec<u8>)>> {
    fs::create_dir_all(dir)?;
    let mut out = Vec::new();
    for (_, path) in list(dir)? {
        let mut buf = Vec::new();
        File::open(&path)?.read_to_end(&mut buf)?;
        let mut pos = 0;
        while pos + HEADER <= buf.len() {
            let len = u32::from_le_bytes(buf[pos..pos + 4].try_into().unwrap()) as usize;
            let crc = u32::from_le_bytes(buf[pos + 4..pos + 8].try_into().unwrap());
            let end = pos + HEADER + len;
            if end > buf.len() || crc32c::crc32c(&buf[pos + 8..end]) != crc {
                tracing::warn!(file = %path.display(), offset = pos, "WAL: torn or corrupt tail ignored");
                break;
            }
            let lsn = u64::from_le_bytes(buf[pos + 8..pos + 16].try_into().unwrap());
            if lsn > after {
                out.push((lsn, buf[pos + HEADER..end].to_vec()));
            }
            pos = end;
        }
    }
    out.sort_by_key(|(lsn, _)| *lsn);
    Ok(out)
}

/// Applies a durable record (its LSN and payload) to in-memory state.
pub type ApplyFn = Box<dyn FnMut(u64, &[u8]) + Send>;

struct Writer {
    apply: ApplyFn,
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
        if self.file.is_none() {
            self.open_new()?;
        }
        let total: usize = payloads.iter().map(|p| p.len() + HEADER).sum();
        let mut buf = Vec::with_capacity(total);
        let mut lsn = self.next_lsn;
        for p in payloads {
            let lsn_bytes = lsn.to_le_bytes();
            let crc = crc32c::crc32c_append(crc32c::crc32c(&lsn_bytes), p);
            buf.extend_from_slice(&(p.len() as u32).to_le_bytes());
            buf.extend_from_slice(&crc.to_le_bytes());
            buf.extend_from_slice(&lsn_bytes);
            buf.extend_from_slice(p);
            lsn += 1;
        }
        let file = self.file.as_mut().unwrap();
        let result = file.write_all(&buf).and_then(|_| file.sync_data());
        match result {
            Ok(()) => {
                self.len += buf.len() as u64;
                self.next_lsn = lsn;
                self.last_lsn.store(lsn - 1, Ordering::Release);
                Ok(lsn - payloads.len() as u64)
            }
            Err(e) => {
                // The failed LSNs are never reused, even if their frames could not be cut off.
                self.next_lsn = lsn;
                // Cut the partial write off so later records are not hidden behind garbage;
                // if even that fails, start a fresh file on the next commit.
                let good = self.len;
                if file.set_len(good).and_then(|_| file.sync_data()).is_err() {
                    self.file = None;
                } else {
                    use std::io::Seek;
                    let _ = file.seek(io::SeekFrom::Start(good));
                }
                Err(e)
            }
        }
    }

    fn run(mut self, rx: mpsc::Receiver<Cmd>) {
        while let Ok(first) = rx.recv() {
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
                for (i, p) in payloads.iter().enumerate() {
                    (self.apply)(first + i as u64, p);
                }
                for (i, w) in waiters.drain(..).enumerate() {
                    let _ = w.send(Ok(first + i as u64));
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
        fs::create_dir_all(dir)?;
        let last_lsn = Arc::new(AtomicU64::new(next_lsn.saturating_sub(1)));
        let mut writer = Writer {
            apply,
            dir: dir.to_path_buf(),
            file: None,
            len: 0,
            next_lsn,
            last_lsn: last_lsn.clone(),
        };
        writer.open_new()?;
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("logwell-wal".into())
            .spawn(move || writer.run(rx))?;
        Ok(Wal {
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
            .map_err(|_| io::Error::other("WAL writer stopped"))?;
        rx.await
            .map_err(|_| io::Error::other("WAL writer stopped"))?
    }

    /// Starts a new file; returns the last LSN in the files before it.
    pub async fn rotate(&self) -> io::Result<u64> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Rotate(tx))
            .map_err(|_| io::Error::other("WAL writer stopped"))?;
        rx.await
            .map_err(|_| io::Error::other("WAL writer stopped"))?
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
        let (tx, _) = mpsc::channel();
        drop(std::mem::replace(&mut self.tx, tx));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn appends_replay_in_order_and_torn_tails_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        {
            let wal = Wal::open(dir.path(), 1, Box::new(|_, _| {})).unwrap();
            assert_eq!(wal.append(b"one".to_vec()).await.unwrap(), 1);
            assert_eq!(wal.append(b"two".to_vec()).await.unwrap(), 2);
        }
        // A torn write: half a frame at the end of the file.
        let path = dir.path().join(file_name(1));
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[200, 0, 0, 0, 1, 2]).unwrap();
        let got = replay(dir.path(), 0).unwrap();
        assert_eq!(got, vec![(1, b"one".to_vec()), (2, b"two".to_vec())]);
        assert_eq!(replay(dir.path(), 1).unwrap(), vec![(2, b"two".to_vec())]);

        // Reopening continues after the last LSN in a new file, and old files can be dropped.
        let wal = Wal::open(dir.path(), 3, Box::new(|_, _| {})).unwrap();
        assert_eq!(wal.append(b"three".to_vec()).await.unwrap(), 3);
        assert_eq!(wal.rotate().await.unwrap(), 3);
        assert_eq!(wal.append(b"four".to_vec()).await.unwrap(), 4);
        assert_eq!(wal.remove_upto(3).unwrap(), 2);
        assert_eq!(replay(dir.path(), 0).unwrap(), vec![(4, b"four".to_vec())]);
    }

    #[tokio::test]
    async fn corrupt_record_is_not_replayed() {
        let dir = tempfile::tempdir().unwrap();
        {
            let wal = Wal::open(dir.path(), 1, Box::new(|_, _| {})).unwrap();
            wal.append(b"good".to_vec()).await.unwrap();
            wal.append(b"flip".to_vec()).await.unwrap();
        }
        let path = dir.path().join(file_name(1));
        let mut bytes = fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n - 1] ^= 0xff;
        fs::write(&path, bytes).unwrap();
        assert_eq!(replay(dir.path(), 0).unwrap(), vec![(1, b"good".to_vec())]);
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
                Box::new(move |lsn, _| sink.lock().unwrap().push(lsn)),
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
        assert_eq!(replay(dir.path(), 0).unwrap().len(), 200);
    }
}
