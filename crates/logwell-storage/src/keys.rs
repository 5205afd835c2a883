//! Encryption at rest. A master key lives in the data directory's keyring (`keyring`, created on
//! first start with mode 0600); each log group gets a random 256-bit data key when it is created,
//! kept in the catalog only wrapped (AES-256-GCM) by the master key; the group's segments are
//! encrypted with its data key by Parquet modular encryption (every column and the footer, AES-GCM),
//! so a segment is unreadable without the keyring, wherever the object store keeps it. The
//! write-ahead log's frames are sealed with AES-256-GCM under a key derived from the master key
//! ([`WalCipher`]), bound to their LSN.

use parquet::encryption::decrypt::FileDecryptionProperties;
use parquet::encryption::encrypt::FileEncryptionProperties;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The keyring's file name in the data directory.
pub const KEYRING_FILE: &str = "keyring";
/// What a wrapped key starts with: the version of the wrapping, and the master key that made it.
const WRAP_PREFIX: &str = "lw1";

/// A group's data key: 32 random bytes, never written anywhere unwrapped.
#[derive(Clone)]
pub struct DataKey(Arc<[u8; 32]>);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(** redacted **)")
    }
}

impl PartialEq for DataKey {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl DataKey {
    /// How a segment of the group is written.
    pub fn encryption(&self) -> Arc<FileEncryptionProperties> {
        FileEncryptionProperties::builder(self.0.to_vec())
            .build()
            .expect("a 256-bit footer key is valid")
    }

    /// How a segment of the group is read.
    pub fn decryption(&self) -> Arc<FileDecryptionProperties> {
        FileDecryptionProperties::builder(self.0.to_vec())
            .build()
            .expect("a 256-bit footer key is valid")
    }

    /// A fresh random key.
    pub fn random() -> Result<DataKey, KeyError> {
        let mut key = [0u8; 32];
        SystemRandom::new()
            .fill(&mut key)
            .map_err(|_| KeyError::Unwrap("no randomness".into()))?;
        Ok(DataKey(Arc::new(key)))
    }

    /// The key of 32 raw bytes (what a KMS Decrypt returns).
    pub fn from_bytes(bytes: &[u8]) -> Option<DataKey> {
        let key: [u8; 32] = bytes.try_into().ok()?;
        Some(DataKey(Arc::new(key)))
    }

    /// The raw key (what a KMS Encrypt wraps).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0[..]
    }

    /// The key in hex (tests compare it with what is on disk).
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("keyring {path}: {reason}")]
    Keyring { path: PathBuf, reason: String },
    #[error("a data key cannot be unwrapped: {0}")]
    Unwrap(String),
}

/// The master keys of a data directory: the current one wraps new data keys; older ones (after a
/// rotation) still unwrap the keys they wrapped.
pub struct Keyring {
    path: PathBuf,
    /// (id, key), newest last.
    masters: Vec<(String, LessSafeKey)>,
    /// The same keys' bytes (the WAL key is derived from them).
    raw: Vec<(String, [u8; 32])>,
    rng: SystemRandom,
    /// Unwrapped data keys, by wrapped text.
    cache: Mutex<HashMap<String, DataKey>>,
    /// Made by this open (there was no keyring file).
    pub created: bool,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("path", &self.path)
            .field("keys", &self.masters.len())
            .finish()
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

impl Keyring {
    /// Opens the keyring file at `path`, creating it with a fresh master key (mode 0600) if it
    /// does not exist. Its lines are `ID HEX-KEY`, the current key last.
    pub fn open_or_create(path: &Path) -> Result<Keyring, KeyError> {
        let path = path.to_path_buf();
        let fail = |reason: String| KeyError::Keyring {
            path: path.clone(),
            reason,
        };
        let rng = SystemRandom::new();
        let created = !path.exists();
        if created {
            let line = Keyring::new_line(&rng).map_err(fail)?;
            write_private(&path, &line).map_err(|e| fail(e.to_string()))?;
        }
        let text = std::fs::read_to_string(&path).map_err(|e| fail(e.to_string()))?;
        let mut masters = Vec::new();
        let mut raw = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let (id, key) = line
                .trim()
                .split_once(' ')
                .ok_or_else(|| fail("a line is not `ID HEX-KEY`".into()))?;
            let key = unhex(key.trim())
                .filter(|k| k.len() == 32)
                .ok_or_else(|| fail(format!("key {id} is not 64 hex digits")))?;
            raw.push((
                id.to_string(),
                key.clone().try_into().expect("32 bytes checked"),
            ));
            let key = UnboundKey::new(&AES_256_GCM, &key).map_err(|e| fail(e.to_string()))?;
            masters.push((id.to_string(), LessSafeKey::new(key)));
        }
        if masters.is_empty() {
            return Err(fail("holds no key".into()));
        }
        Ok(Keyring {
            path,
            masters,
            raw,
            rng,
            cache: Mutex::default(),
            created,
        })
    }

    fn new_line(rng: &SystemRandom) -> Result<String, String> {
        let mut key = [0u8; 32];
        let mut id = [0u8; 4];
        rng.fill(&mut key)
            .map_err(|_| "no randomness".to_string())?;
        rng.fill(&mut id).map_err(|_| "no randomness".to_string())?;
        Ok(format!("{} {}\n", hex(&id), hex(&key)))
    }

    /// Adds a new current master key: data keys wrapped from now on use it; `rewrap` moves old
    /// wrapped keys to it. The file is replaced atomically and stays 0600.
    pub fn rotate(&mut self) -> Result<(), KeyError> {
        let fail = |reason: String| KeyError::Keyring {
            path: self.path.clone(),
            reason,
        };
        let old = std::fs::read_to_string(&self.path).map_err(|e| fail(e.to_string()))?;
        let line = Keyring::new_line(&self.rng).map_err(fail)?;
        let tmp = self.path.with_extension("new");
        let _ = std::fs::remove_file(&tmp);
        write_private(&tmp, &format!("{old}{line}")).map_err(|e| fail(e.to_string()))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| fail(e.to_string()))?;
        sync_parent(&self.path).map_err(|e| fail(e.to_string()))?;
        *self = Keyring::open_or_create(&self.path.clone())?;
        Ok(())
    }

    /// A new data key and its wrapped form (what the catalog keeps).
    pub fn new_data_key(&self) -> Result<(DataKey, String), KeyError> {
        let mut key = [0u8; 32];
        self.rng
            .fill(&mut key)
            .map_err(|_| KeyError::Unwrap("no randomness".into()))?;
        let key = DataKey(Arc::new(key));
        let wrapped = self.wrap(&key)?;
        self.cache
            .lock()
            .unwrap()
            .insert(wrapped.clone(), key.clone());
        Ok((key, wrapped))
    }

    /// `lw1:<master id>:<hex nonce>:<hex ciphertext and tag>`.
    pub fn wrap(&self, key: &DataKey) -> Result<String, KeyError> {
        let (id, master) = self.masters.last().expect("a keyring holds a key");
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| KeyError::Unwrap("no randomness".into()))?;
        let mut sealed = key.0.to_vec();
        master
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(id.as_bytes()),
                &mut sealed,
            )
            .map_err(|_| KeyError::Unwrap("sealing failed".into()))?;
        Ok(format!(
            "{WRAP_PREFIX}:{id}:{}:{}",
            hex(&nonce),
            hex(&sealed)
        ))
    }

    /// The data key a wrapped text holds.
    pub fn unwrap(&self, wrapped: &str) -> Result<DataKey, KeyError> {
        if let Some(k) = self.cache.lock().unwrap().get(wrapped) {
            return Ok(k.clone());
        }
        let bad = |why: &str| KeyError::Unwrap(why.to_string());
        let mut parts = wrapped.split(':');
        let (Some(WRAP_PREFIX), Some(id), Some(nonce), Some(sealed), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(bad("not a wrapped key"));
        };
        let (_, master) = self
            .masters
            .iter()
            .find(|(i, _)| i == id)
            .ok_or_else(|| bad(&format!("master key {id} is not in the keyring")))?;
        let nonce: [u8; NONCE_LEN] = unhex(nonce)
            .and_then(|n| n.try_into().ok())
            .ok_or_else(|| bad("bad nonce"))?;
        let mut sealed = unhex(sealed).ok_or_else(|| bad("bad ciphertext"))?;
        let plain = master
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(id.as_bytes()),
                &mut sealed,
            )
            .map_err(|_| bad("the master key does not open it"))?;
        let key: [u8; 32] = plain.try_into().map_err(|_| bad("bad key length"))?;
        let key = DataKey(Arc::new(key));
        self.cache
            .lock()
            .unwrap()
            .insert(wrapped.to_string(), key.clone());
        Ok(key)
    }

    /// Seals and opens WAL frames with keys derived from the master keys (the current one seals).
    pub fn wal_cipher(&self) -> WalCipher {
        let rng = SystemRandom::new();
        let (id, bytes) = self.raw.last().expect("a keyring holds a key").clone();
        let sealing = Sealing::new(&rng, id, bytes);
        WalCipher {
            masters: self.raw.clone(),
            sealing: Mutex::new(sealing),
            opening: Mutex::default(),
            rng,
        }
    }

    /// Whether `wrapped` was wrapped by the current master key.
    pub fn is_current(&self, wrapped: &str) -> bool {
        let id = &self.masters.last().expect("a keyring holds a key").0;
        wrapped.split(':').nth(1) == Some(id.as_str())
    }
}

/// What a sealed WAL payload starts with (a plain one starts with its record tag, 1 or 2).
const SEALED_MAGIC: &[u8; 4] = b"LWE2";
/// Bytes of the salt a WAL frame key is derived with.
const SALT_LEN: usize = 16;
/// Frames sealed under one derived key before a new salt is drawn: far below the 2^32 random
/// 96-bit nonces AES-GCM allows per key.
const FRAMES_PER_KEY: u64 = 1 << 30;

/// A WAL frame key: HKDF of a master key with a salt.
fn frame_key(master: &[u8; 32], salt: &[u8; SALT_LEN]) -> LessSafeKey {
    let prk =
        ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, b"logwell write-ahead log").extract(master);
    let info: [&[u8]; 2] = [b"wal frame key v2", salt];
    let okm = prk
        .expand(&info, &AES_256_GCM)
        .expect("an AES-256 key length");
    LessSafeKey::new(UnboundKey::from(okm))
}

/// The key frames are sealed with now: a fresh salt each start and every [`FRAMES_PER_KEY`].
struct Sealing {
    id: String,
    master: [u8; 32],
    salt: [u8; SALT_LEN],
    key: LessSafeKey,
    sealed: u64,
}

impl Sealing {
    fn new(rng: &SystemRandom, id: String, master: [u8; 32]) -> Sealing {
        let mut salt = [0u8; SALT_LEN];
        rng.fill(&mut salt).expect("the system has randomness");
        let key = frame_key(&master, &salt);
        Sealing {
            id,
            master,
            salt,
            key,
            sealed: 0,
        }
    }
}

/// Seals WAL payloads: `LWE2 | id length u8 | master key id | salt (16) | nonce (12) |
/// ciphertext and tag`. The key is derived from the master key and the salt; the nonce is
/// random; the frame's LSN is the associated data, so a frame cannot be read, changed or moved
/// to another position without the keyring.
pub struct WalCipher {
    /// (id, bytes) of every master key, the current one last.
    masters: Vec<(String, [u8; 32])>,
    sealing: Mutex<Sealing>,
    /// Keys derived for opening, by (master id, salt).
    opening: Mutex<HashMap<(String, [u8; SALT_LEN]), Arc<LessSafeKey>>>,
    rng: SystemRandom,
}

impl WalCipher {
    pub fn is_sealed(payload: &[u8]) -> bool {
        payload.starts_with(SEALED_MAGIC)
    }

    pub fn seal(&self, lsn: u64, payload: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(payload.len() + 64);
        self.seal_into(lsn, payload, &mut out)?;
        Ok(out)
    }

    /// Appends the sealed frame of `payload` to `out`, encrypting it where it lands (the WAL
    /// writer seals straight into its commit buffer, with no copy of its own).
    pub fn seal_into(&self, lsn: u64, payload: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
        let mut sealing = self.sealing.lock().unwrap();
        if sealing.sealed >= FRAMES_PER_KEY {
            *sealing = Sealing::new(&self.rng, sealing.id.clone(), sealing.master);
        }
        sealing.sealed += 1;
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| std::io::Error::other("no randomness"))?;
        let id = sealing.id.as_bytes();
        out.reserve(payload.len() + 5 + id.len() + SALT_LEN + NONCE_LEN + 16);
        out.extend_from_slice(SEALED_MAGIC);
        out.push(id.len() as u8);
        out.extend_from_slice(id);
        out.extend_from_slice(&sealing.salt);
        out.extend_from_slice(&nonce);
        let start = out.len();
        out.extend_from_slice(payload);
        let tag = sealing
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(lsn.to_le_bytes()),
                &mut out[start..],
            )
            .map_err(|_| std::io::Error::other("sealing a WAL frame failed"))?;
        out.extend_from_slice(tag.as_ref());
        Ok(())
    }

    pub fn open(&self, lsn: u64, sealed: &[u8]) -> std::io::Result<Vec<u8>> {
        let bad = |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, why.to_string());
        let rest = sealed
            .strip_prefix(SEALED_MAGIC)
            .ok_or_else(|| bad("not a sealed WAL frame"))?;
        let (&n, rest) = rest.split_first().ok_or_else(|| bad("truncated"))?;
        if rest.len() < n as usize + SALT_LEN + NONCE_LEN + 16 {
            return Err(bad("truncated sealed WAL frame"));
        }
        let (id, rest) = rest.split_at(n as usize);
        let (salt, rest) = rest.split_at(SALT_LEN);
        let (nonce, body) = rest.split_at(NONCE_LEN);
        let id = std::str::from_utf8(id).map_err(|_| bad("bad master key id"))?;
        let salt: [u8; SALT_LEN] = salt.try_into().expect("SALT_LEN bytes");
        let key = {
            let mut opening = self.opening.lock().unwrap();
            match opening.get(&(id.to_string(), salt)) {
                Some(k) => k.clone(),
                None => {
                    let (_, master) =
                        self.masters.iter().find(|(i, _)| i == id).ok_or_else(|| {
                            bad("the WAL frame's master key is not in the keyring")
                        })?;
                    let k = Arc::new(frame_key(master, &salt));
                    opening.insert((id.to_string(), salt), k.clone());
                    k
                }
            }
        };
        let mut body = body.to_vec();
        let plain = key
            .open_in_place(
                Nonce::try_assume_unique_for_key(nonce).map_err(|_| bad("bad nonce"))?,
                Aad::from(lsn.to_le_bytes()),
                &mut body,
            )
            .map_err(|_| bad("a WAL frame does not open with the keyring's keys"))?;
        let len = plain.len();
        body.truncate(len);
        Ok(body)
    }
}

/// Writes `text` to a new file only its owner can read.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    sync_parent(path)
}

/// Makes a file's creation or rename durable: a lost keyring entry loses the data.
fn sync_parent(path: &Path) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    std::fs::File::open(dir.unwrap_or(Path::new(".")))?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn wal_frames_open_only_with_their_lsn_and_keyring() {
        let dir = tempfile::tempdir().unwrap();
        let ring = Keyring::open_or_create(&dir.path().join(KEYRING_FILE)).unwrap();
        let sealer = ring.wal_cipher();
        let frame = sealer.seal(7, b"\x02payload text").unwrap();
        assert!(WalCipher::is_sealed(&frame));
        assert!(!frame.windows(7).any(|w| w == b"payload"));
        // Another process (another salt) opens it; the same frame under another LSN does not.
        let reader = Keyring::open_or_create(&dir.path().join(KEYRING_FILE))
            .unwrap()
            .wal_cipher();
        assert_eq!(reader.open(7, &frame).unwrap(), b"\x02payload text");
        assert!(reader.open(8, &frame).is_err());
        let mut tampered = frame.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(reader.open(7, &tampered).is_err());
        // Two seals of the same payload differ (random nonce).
        assert_ne!(sealer.seal(7, b"x").unwrap(), sealer.seal(7, b"x").unwrap());
    }

    #[test]
    fn keys_wrap_unwrap_survive_reopen_and_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let ring = Keyring::open_or_create(&dir.path().join(KEYRING_FILE)).unwrap();
        let mode = std::fs::metadata(dir.path().join(KEYRING_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let (key, wrapped) = ring.new_data_key().unwrap();
        assert!(!wrapped.contains(&key.to_hex()));
        // A reopened keyring (no cache) unwraps it.
        let mut again = Keyring::open_or_create(&dir.path().join(KEYRING_FILE)).unwrap();
        assert_eq!(again.unwrap(&wrapped).unwrap(), key);
        // A changed byte does not open.
        let mut tampered = wrapped.clone();
        let last = tampered.pop().unwrap();
        tampered.push(if last == '0' { '1' } else { '0' });
        assert!(Keyring::open_or_create(&dir.path().join(KEYRING_FILE))
            .unwrap()
            .unwrap(&tampered)
            .is_err());
        // Rotation: old wraps still open; new wraps use the new key.
        again.rotate().unwrap();
        assert!(!again.is_current(&wrapped));
        assert_eq!(again.unwrap(&wrapped).unwrap(), key);
        let rewrapped = again.wrap(&key).unwrap();
        assert!(again.is_current(&rewrapped));
        assert_eq!(
            Keyring::open_or_create(&dir.path().join(KEYRING_FILE))
                .unwrap()
                .unwrap(&rewrapped)
                .unwrap(),
            key
        );
        // Another data directory's keyring cannot open it.
        let other = tempfile::tempdir().unwrap();
        assert!(Keyring::open_or_create(&other.path().join(KEYRING_FILE))
            .unwrap()
            .unwrap(&wrapped)
            .is_err());
    }
}
