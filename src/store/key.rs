//! The store key: the 256-bit key that seals TOTP secrets at rest.
//!
//! It comes from a file (`[store] key_file`, mode 0600 or stricter) or from a systemd
//! credential (`LoadCredentialEncrypted=store-key:…`, read from `$CREDENTIALS_DIRECTORY`).
//! There is no default and no fallback: without a key the daemon does not start.
//!
//! On disk the key is 64 hex characters (optionally followed by a newline), which is what
//! `portvakt store keygen` writes, or exactly 32 raw bytes (what `systemd-creds` or
//! `head -c 32 /dev/urandom` produce).

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Length of the key in bytes.
pub const KEY_BYTES: usize = 32;

/// Environment variable systemd sets to the unit's private credentials directory.
pub const CREDENTIALS_DIRECTORY: &str = "CREDENTIALS_DIRECTORY";

/// Why a key could not be loaded or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file could not be opened, read or written.
    #[error("store key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The key file can be read by group or others.
    #[error(
        "store key file {path} has mode {mode:04o}, which lets group or others read it; \
         run `chmod 600 {path}`"
    )]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file holds neither 64 hex characters nor 32 raw bytes.
    #[error(
        "store key file {path} must hold 64 hexadecimal characters or exactly 32 bytes \
         (it holds {len} bytes)"
    )]
    Format {
        /// The file.
        path: PathBuf,
        /// How many bytes it held (the content is never shown).
        len: usize,
    },
    /// `$CREDENTIALS_DIRECTORY` is not set: the unit has no `LoadCredential=`.
    #[error(
        "store key credential {name:?} requested, but $CREDENTIALS_DIRECTORY is not set \
         (is LoadCredentialEncrypted= in the unit?)"
    )]
    NoCredentials {
        /// The credential name asked for.
        name: String,
    },
    /// The credential name is not a plain file name.
    #[error("invalid credential name {0:?}")]
    CredentialName(String),
    /// The OS random number generator failed.
    #[error("the operating system's random number generator failed: {0}")]
    Random(getrandom::Error),
}

/// A 256-bit store key. Wiped on drop; `Debug` shows nothing of it.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct StoreKey {
    bytes: [u8; KEY_BYTES],
}

impl StoreKey {
    /// Reads a key file, refusing one that group or others may read.
    ///
    /// The mode is checked on the opened file (not the path), so a file swapped in between
    /// the check and the read cannot slip through.
    pub fn from_file(path: &Path) -> Result<Self, KeyError> {
        let io_err = |source| KeyError::Io {
            path: path.to_owned(),
            source,
        };
        let file = File::open(path).map_err(io_err)?;
        let mode = file.metadata().map_err(io_err)?.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(KeyError::Permissions {
                path: path.to_owned(),
                mode,
            });
        }
        Self::read_from(file, path)
    }

    /// Reads the systemd credential `name` from `$CREDENTIALS_DIRECTORY`.
    ///
    /// The mode is not checked here: systemd places credentials in a directory only the
    /// unit can enter, on a non-swappable file system, and chooses their modes itself.
    pub fn from_credential(name: &str) -> Result<Self, KeyError> {
        if name.is_empty() || name == "." || name == ".." || name.contains('/') {
            return Err(KeyError::CredentialName(name.to_owned()));
        }
        let dir =
            std::env::var_os(CREDENTIALS_DIRECTORY).ok_or_else(|| KeyError::NoCredentials {
                name: name.to_owned(),
            })?;
        Self::from_credential_in(Path::new(&dir), name)
    }

    /// [`StoreKey::from_credential`] with the directory given (tests cannot set the
    /// environment without `unsafe`).
    fn from_credential_in(dir: &Path, name: &str) -> Result<Self, KeyError> {
        let path = dir.join(name);
        let file = File::open(&path).map_err(|source| KeyError::Io {
            path: path.clone(),
            source,
        })?;
        Self::read_from(file, &path)
    }

    /// A fresh key from the operating system's CSPRNG.
    pub fn generate() -> Result<Self, KeyError> {
        let mut key = Self {
            bytes: [0; KEY_BYTES],
        };
        getrandom::fill(&mut key.bytes).map_err(KeyError::Random)?;
        Ok(key)
    }

    /// Builds a key from raw bytes (tests, and keys handed over by other code).
    pub fn from_bytes(bytes: [u8; KEY_BYTES]) -> Self {
        Self { bytes }
    }

    /// The key as 64 lowercase hex characters, the key-file format. Wiped on drop.
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.bytes))
    }

    /// Writes the key as hex to a new file with mode 0600. Refuses to overwrite a file:
    /// replacing a key would make every sealed secret unreadable.
    pub fn write_new_file(&self, path: &Path) -> Result<(), KeyError> {
        let io_err = |source| KeyError::Io {
            path: path.to_owned(),
            source,
        };
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(io_err)?;
        // `mode` is filtered by the umask, which can only remove bits; set it exactly anyway.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(io_err)?;
        let mut line = self.to_hex();
        line.push('\n');
        file.write_all(line.as_bytes()).map_err(io_err)?;
        file.sync_all().map_err(io_err)
    }

    /// The raw key, for the AEAD only.
    pub(crate) fn as_bytes(&self) -> &[u8; KEY_BYTES] {
        &self.bytes
    }

    fn read_from(file: File, path: &Path) -> Result<Self, KeyError> {
        // Read one byte more than the longest valid form (64 hex + "\r\n") to detect
        // oversized files without reading an arbitrary amount.
        let mut buf = Zeroizing::new(Vec::with_capacity(67));
        file.take(67)
            .read_to_end(&mut buf)
            .map_err(|source| KeyError::Io {
                path: path.to_owned(),
                source,
            })?;
        Self::parse(&buf).ok_or_else(|| KeyError::Format {
            path: path.to_owned(),
            len: buf.len(),
        })
    }

    /// Parses 32 raw bytes, or 64 hex characters with an optional trailing newline.
    fn parse(buf: &[u8]) -> Option<Self> {
        let mut key = Self {
            bytes: [0; KEY_BYTES],
        };
        if buf.len() == KEY_BYTES {
            key.bytes.copy_from_slice(buf);
            return Some(key);
        }
        let text = buf
            .strip_suffix(b"\n")
            .map_or(buf, |b| b.strip_suffix(b"\r").unwrap_or(b));
        hex::decode_to_slice(text, &mut key.bytes).ok()?;
        Some(key)
    }
}

impl fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StoreKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    fn write(dir: &Path, name: &str, content: &[u8], mode: u32) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    fn expected() -> [u8; 32] {
        std::array::from_fn(|i| i as u8)
    }

    #[test]
    fn reads_hex_with_and_without_newline_and_raw_bytes() {
        let dir = tempfile::tempdir().unwrap();
        for (name, content) in [
            ("plain", HEX.to_owned()),
            ("newline", format!("{HEX}\n")),
            ("crlf", format!("{HEX}\r\n")),
            ("upper", HEX.to_uppercase()),
        ] {
            let path = write(dir.path(), name, content.as_bytes(), 0o600);
            assert_eq!(
                StoreKey::from_file(&path).unwrap().as_bytes(),
                &expected(),
                "{name}"
            );
        }
        let raw = write(dir.path(), "raw", &expected(), 0o400);
        assert_eq!(StoreKey::from_file(&raw).unwrap().as_bytes(), &expected());
    }

    #[test]
    fn refuses_group_or_world_readable_files() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o644, 0o640, 0o604, 0o660, 0o602] {
            let path = write(dir.path(), "key", HEX.as_bytes(), mode);
            let err = StoreKey::from_file(&path).unwrap_err();
            assert!(
                matches!(err, KeyError::Permissions { mode: m, .. } if m == mode),
                "{mode:o}"
            );
            let message = err.to_string();
            assert!(message.contains(&path.display().to_string()), "{message}");
            assert!(message.contains(&format!("{mode:04o}")), "{message}");
        }
    }

    #[test]
    fn refuses_malformed_content_without_showing_it() {
        let dir = tempfile::tempdir().unwrap();
        let cases: [&[u8]; 6] = [
            b"",
            b"00",
            &HEX.as_bytes()[..63],
            b"zz0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
            b"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f00\n",
            &[0x41; 33],
        ];
        for content in cases {
            let path = write(dir.path(), "key", content, 0o600);
            let err = StoreKey::from_file(&path).unwrap_err();
            assert!(matches!(err, KeyError::Format { .. }), "{content:?}: {err}");
            assert!(!err.to_string().contains("0a0b"), "{err}");
        }
        let missing = StoreKey::from_file(&dir.path().join("nope")).unwrap_err();
        assert!(matches!(missing, KeyError::Io { .. }));
    }

    #[test]
    fn generated_key_round_trips_through_a_new_0600_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.key");
        let key = StoreKey::generate().unwrap();
        key.write_new_file(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            StoreKey::from_file(&path).unwrap().as_bytes(),
            key.as_bytes()
        );
        // Never overwrites.
        let other = StoreKey::generate().unwrap();
        assert!(matches!(
            other.write_new_file(&path),
            Err(KeyError::Io { .. })
        ));
        assert_eq!(
            StoreKey::from_file(&path).unwrap().as_bytes(),
            key.as_bytes()
        );
        assert_ne!(other.as_bytes(), key.as_bytes());
    }

    #[test]
    fn credential_names_are_plain_file_names() {
        for name in ["", ".", "..", "../etc/shadow", "a/b"] {
            assert!(
                matches!(
                    StoreKey::from_credential(name),
                    Err(KeyError::CredentialName(_))
                ),
                "{name}"
            );
        }
    }

    #[test]
    fn credential_is_read_from_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        // systemd may hand over a raw 32-byte credential with mode 0440; that is fine here.
        write(dir.path(), "store-key", &expected(), 0o440);
        let key = StoreKey::from_credential_in(dir.path(), "store-key").unwrap();
        assert_eq!(key.as_bytes(), &expected());
        let missing = StoreKey::from_credential_in(dir.path(), "other").unwrap_err();
        assert!(matches!(missing, KeyError::Io { .. }));
    }

    #[test]
    fn debug_is_redacted() {
        let key = StoreKey::from_bytes([0xab; 32]);
        let shown = format!("{key:?}");
        assert!(!shown.contains("ab") && !shown.contains("171"), "{shown}");
    }
}
