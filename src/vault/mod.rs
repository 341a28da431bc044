//! The vault: the master key, AES-256-GCM sealing of credential values, key rotation, and
//! the redactor.
//!
//! This is the only module that decrypts. A plaintext value leaves it only to be put into
//! an agent's environment; it is never logged, stored or returned by the API.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

pub use crate::model::Sealed;
use crate::store::Store;

mod redact;
pub use redact::Redactor;

/// Environment variable that carries the master key.
pub const MASTER_KEY_VAR: &str = "AIOPS_MASTER_KEY";

/// What can go wrong with keys and sealed values.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error(
        "{source_name} must be 32 bytes encoded as base64 (44 characters); generate one with `aiops keygen`"
    )]
    MalformedKey { source_name: String },
    #[error(
        "the master key from {source_name} does not match the key this store's secrets are encrypted with (key version {version}); set AIOPS_MASTER_KEY or the key file to that key"
    )]
    WrongKey { source_name: String, version: i64 },
    #[error(
        "no master key: set AIOPS_MASTER_KEY (generate one with `aiops keygen`) or create the key file {path}"
    )]
    MissingKey { path: PathBuf },
    #[error(
        "a sealed value failed to decrypt: it was tampered with, moved to another row, or sealed with another key"
    )]
    Decrypt,
    #[error("key file {path}: {error}")]
    KeyFile {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// A 256-bit master key. Its `Debug` output hides the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct MasterKey([u8; 32]);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// A new random key.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// Parses base64 text; `source_name` says where it came from, for the error.
    pub fn from_base64(text: &str, source_name: &str) -> Result<Self, VaultError> {
        let malformed = || VaultError::MalformedKey {
            source_name: source_name.to_string(),
        };
        let bytes = BASE64.decode(text.trim()).map_err(|_| malformed())?;
        Ok(Self(bytes.try_into().map_err(|_| malformed())?))
    }

    /// The key as base64 text.
    pub fn to_base64(&self) -> String {
        BASE64.encode(self.0)
    }

    /// A value that identifies this key without revealing it.
    pub fn check_value(&self) -> String {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(b"aiops vault key check v1");
        hex::encode(mac.finalize().into_bytes())
    }

    /// Derives a key for another purpose (link signing, ...) so the master key itself is
    /// used only for sealing.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(b"aiops derive v1:");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Encrypts `plaintext` with a fresh random nonce; `aad` binds it to its place.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Sealed {
        let cipher = Aes256Gcm::new_from_slice(&self.0).expect("32-byte key");
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let ciphertext = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        Sealed {
            ciphertext,
            nonce: nonce.to_vec(),
        }
    }

    /// Decrypts a sealed value; fails if it was changed, moved (other `aad`) or sealed
    /// under another key.
    pub fn open(&self, aad: &[u8], sealed: &Sealed) -> Result<Vec<u8>, VaultError> {
        if sealed.nonce.len() != 12 {
            return Err(VaultError::Decrypt);
        }
        let cipher = Aes256Gcm::new_from_slice(&self.0).expect("32-byte key");
        cipher
            .decrypt(
                Nonce::from_slice(&sealed.nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad,
                },
            )
            .map_err(|_| VaultError::Decrypt)
    }
}

/// Where the master key came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Env,
    File(PathBuf),
}

impl KeySource {
    fn name(&self) -> String {
        match self {
            KeySource::Env => MASTER_KEY_VAR.to_string(),
            KeySource::File(path) => path.display().to_string(),
        }
    }
}

/// Reads the master key from `AIOPS_MASTER_KEY`, else from `key_file`; None when neither exists.
pub fn read_master_key(key_file: &Path) -> Result<Option<(MasterKey, KeySource)>, VaultError> {
    if let Ok(text) = std::env::var(MASTER_KEY_VAR) {
        return Ok(Some((
            MasterKey::from_base64(&text, MASTER_KEY_VAR)?,
            KeySource::Env,
        )));
    }
    match std::fs::read_to_string(key_file) {
        Ok(text) => {
            let source = KeySource::File(key_file.to_path_buf());
            Ok(Some((
                MasterKey::from_base64(&text, &source.name())?,
                source,
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(VaultError::KeyFile {
            path: key_file.to_path_buf(),
            error,
        }),
    }
}

/// Writes `key` to `path` with mode 0600, durably, replacing any file there atomically.
pub fn write_key_file(path: &Path, key: &MasterKey) -> Result<(), VaultError> {
    let io = |error| VaultError::KeyFile {
        path: path.to_path_buf(),
        error,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp).map_err(io)?;
    writeln!(file, "{}", key.to_base64()).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok(())
}

/// Path where a rotation parks the new key until the database commits.
fn next_key_path(key_file: &Path) -> PathBuf {
    let mut name = key_file.as_os_str().to_owned();
    name.push(".next");
    PathBuf::from(name)
}

/// The unlocked vault: the master key and the key version it corresponds to in the store.
#[derive(Clone, Debug)]
pub struct Vault {
    key: MasterKey,
    version: i64,
}

/// Associated data of a credential: its scope and name, so a ciphertext copied to another
/// row does not decrypt.
pub fn credential_aad(project_id: Option<i64>, name: &str) -> Vec<u8> {
    let scope = project_id.map_or_else(|| "global".to_string(), |id| format!("project:{id}"));
    format!("aiops/credential/{scope}/{name}").into_bytes()
}

impl Vault {
    /// A redactor for these named secret values that also always redacts the master key
    /// (in its text and binary forms), so no agent output can carry it into the store.
    pub fn redactor(&self, secrets: impl IntoIterator<Item = (String, String)>) -> Redactor {
        Redactor::new(secrets).with_binary_secret("master_key", &self.key.0, &self.key.to_base64())
    }

    /// Checks `key` against the store and returns the unlocked vault. On a store with no
    /// key yet, `key` becomes version 1. A rotation interrupted after its commit is
    /// finished here (the parked next key is promoted).
    pub async fn unlock(
        store: &Store,
        key: MasterKey,
        source: &KeySource,
    ) -> Result<Self, VaultError> {
        let Some((version, check)) = store.current_vault_key().await? else {
            if store.insert_first_vault_key(&key.check_value()).await? {
                return Ok(Self { key, version: 1 });
            }
            // Another process recorded the first key at the same moment: check against it.
            let (version, check) = store
                .current_vault_key()
                .await?
                .ok_or(VaultError::Decrypt)?;
            if check == key.check_value() {
                return Ok(Self { key, version });
            }
            return Err(VaultError::WrongKey {
                source_name: "the master key".into(),
                version,
            });
        };
        if check == key.check_value() {
            return Ok(Self { key, version });
        }
        if let KeySource::File(path) = source {
            let next = next_key_path(path);
            if let Ok(text) = std::fs::read_to_string(&next) {
                let next_key = MasterKey::from_base64(&text, &next.display().to_string())?;
                if next_key.check_value() == check {
                    std::fs::rename(&next, path).map_err(|error| VaultError::KeyFile {
                        path: path.clone(),
                        error,
                    })?;
                    tracing::warn!(key_file = %path.display(), "finished an interrupted key rotation");
                    return Ok(Self {
                        key: next_key,
                        version,
                    });
                }
            }
        }
        Err(VaultError::WrongKey {
            source_name: source.name(),
            version,
        })
    }

    /// The key version new seals use.
    pub fn key_version(&self) -> i64 {
        self.version
    }

    /// Seals a credential value for its row.
    pub fn seal_credential(&self, project_id: Option<i64>, name: &str, value: &str) -> Sealed {
        self.key
            .seal(&credential_aad(project_id, name), value.as_bytes())
    }

    /// Opens a credential value. Callers put it straight into an agent environment.
    pub fn open_credential(
        &self,
        project_id: Option<i64>,
        name: &str,
        sealed: &Sealed,
    ) -> Result<String, VaultError> {
        let bytes = self.key.open(&credential_aad(project_id, name), sealed)?;
        String::from_utf8(bytes).map_err(|_| VaultError::Decrypt)
    }

    /// A key derived for `purpose`, e.g. signing approval links.
    pub fn derived_key(&self, purpose: &str) -> [u8; 32] {
        self.key.derive(purpose)
    }

    /// Re-encrypts every credential under a new key in one transaction and returns the
    /// new vault. With a key file the new key is written beside it first and moved into
    /// place after the commit, so a crash at any point leaves a key that opens the store.
    pub async fn rotate(
        &self,
        store: &Store,
        source: &KeySource,
    ) -> Result<(Vault, MasterKey), VaultError> {
        let new_key = MasterKey::generate();
        let parked = match source {
            KeySource::File(path) => {
                let next = next_key_path(path);
                write_key_file(&next, &new_key)?;
                Some((next, path.clone()))
            }
            KeySource::Env => None,
        };
        let new_version = self.version + 1;
        store
            .reseal_all_credentials(
                new_version,
                &new_key.check_value(),
                |project_id, name, sealed| {
                    let aad = credential_aad(project_id, name);
                    let plain = self.key.open(&aad, sealed)?;
                    Ok::<_, VaultError>(new_key.seal(&aad, &plain))
                },
            )
            .await?;
        if let Some((next, path)) = parked {
            std::fs::rename(&next, &path).map_err(|error| VaultError::KeyFile { path, error })?;
        }
        Ok((
            Vault {
                key: new_key.clone(),
                version: new_version,
            },
            new_key,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_and_open_round_trip_with_fresh_nonces() {
        let key = MasterKey::generate();
        let a = key.seal(b"row-1", b"secret");
        let b = key.seal(b"row-1", b"secret");
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.ciphertext, b.ciphertext);
        assert_eq!(key.open(b"row-1", &a).unwrap(), b"secret");
    }

    #[test]
    fn moved_or_tampered_ciphertext_fails() {
        let key = MasterKey::generate();
        let sealed = key.seal(b"row-1", b"secret");
        assert!(matches!(
            key.open(b"row-2", &sealed),
            Err(VaultError::Decrypt)
        ));
        let mut tampered = sealed.clone();
        tampered.ciphertext[0] ^= 1;
        assert!(matches!(
            key.open(b"row-1", &tampered),
            Err(VaultError::Decrypt)
        ));
        assert!(matches!(
            MasterKey::generate().open(b"row-1", &sealed),
            Err(VaultError::Decrypt)
        ));
    }

    #[test]
    fn malformed_key_names_the_fix() {
        let err = MasterKey::from_base64("short", MASTER_KEY_VAR)
            .unwrap_err()
            .to_string();
        assert!(err.contains("aiops keygen"), "{err}");
        let key = MasterKey::generate();
        assert_eq!(MasterKey::from_base64(&key.to_base64(), "x").unwrap(), key);
        assert_eq!(format!("{key:?}"), "MasterKey(..)");
    }
}
