//! Encryption at rest of a replica's file: the [`FileKey`] an app
//! gives at open ([`crate::Config::file_key`]), and [`change_file_key`],
//! which encrypts a plain file, decrypts an encrypted one or changes its
//! key.
//!
//! - **Format**: SQLCipher 4 (the native SQLite is SQLCipher, built by
//!   `libsqlite3-sys`'s `bundled-sqlcipher-vendored-openssl`): every page of
//!   the file and of its write-ahead log (`-wal`) is encrypted with
//!   AES-256-CBC under a random per-page IV and authenticated with
//!   HMAC-SHA512; page 1 starts with a random 16-byte salt instead of
//!   SQLite's header. The `-shm` index holds no row data. What a reader of
//!   the disk still learns: the file's size (its page count) and when it
//!   changes.
//! - **Key**: 32 bytes used as SQLCipher's raw key (`PRAGMA key =
//!   "x'…'"`), so opening costs no PBKDF2: the key is random, or derived
//!   from a recovery phrase (HKDF-SHA256 with the info
//!   `"erth-sync file key v1"`, see [`crate::recovery`]), never a password.
//!   One phrase can give both keys: the column key's info differs, so the
//!   two keys do not reveal each other.
//! - **Wrong key**: checked by a read before anything is written, so a
//!   wrong or missing key fails with [`Error::WrongFileKey`] and leaves the
//!   file's bytes as they were.
//!
//! The browser's store uses the same format (its SQLite is SQLCipher too,
//! from `sqlite-wasm-rs`): a key given at open encrypts the OPFS file, and
//! `store::browser::change_file_key` is [`change_file_key`] there.

use crate::error::{Error, Result};

/// The 32-byte key of a replica file encrypted at rest. `Debug` never shows
/// it.
#[derive(Clone, PartialEq, Eq)]
pub struct FileKey([u8; 32]);

impl FileKey {
    /// A key from 32 bytes (e.g. from the platform's keystore).
    pub fn from_bytes(bytes: [u8; 32]) -> FileKey {
        FileKey(bytes)
    }

    /// A key from 32 bytes in a slice (what the faces pass).
    ///
    /// Errors: [`Error::InvalidInput`] if `bytes` is not 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<FileKey> {
        let key: [u8; 32] = bytes.try_into().map_err(|_| {
            Error::InvalidInput(format!("a file key is 32 bytes, not {} bytes", bytes.len()))
        })?;
        Ok(FileKey(key))
    }

    /// A key from text: 64 hex digits, or a recovery phrase (12–24 BIP-39
    /// English words, [`crate::recovery`]) from which the file key is
    /// derived. Surrounding whitespace is ignored.
    ///
    /// Errors: [`Error::InvalidInput`] naming what is wrong, never showing
    /// the text.
    pub fn from_text(text: &str) -> Result<FileKey> {
        let text = text.trim();
        if text.is_empty() {
            return Err(Error::InvalidInput("the file key is empty".into()));
        }
        if crate::recovery::is_phrase(text) {
            let key = crate::recovery::file_key_from_recovery_phrase(text).map_err(|e| {
                Error::InvalidInput(format!(
                    "a file key is 64 hex digits or a recovery phrase; read as a phrase: {}",
                    e.to_string().trim_start_matches("invalid input: ")
                ))
            })?;
            return Ok(FileKey(key));
        }
        let bytes = crate::value::from_hex(text).ok_or_else(|| {
            Error::InvalidInput(
                "a file key is 64 hex digits or a recovery phrase; this text is neither".into(),
            )
        })?;
        FileKey::from_slice(&bytes)
    }

    /// The key's bytes (handed to SQLCipher).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for FileKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FileKey(<redacted>)")
    }
}

/// Rewrites the replica file at `path` from key `old` to key `new`, where
/// `None` is a plain file: encrypts a plain file, decrypts an encrypted
/// one, or changes the key. Every row, clock and sync state is kept (the
/// `user_version` migration counter included); the next open takes `new`.
///
/// How: under an exclusive lock on the file, its WAL is checkpointed, its
/// contents are copied into `<path>.erth-rekey` with SQLCipher's
/// `sqlcipher_export` (written under `new`, then synced), and that file is
/// renamed over `path` while the lock is still held. A crash before the
/// rename leaves the old file as it was (a leftover `.erth-rekey` file is
/// removed by the next call); after it, the new file is complete.
///
/// Errors: [`Error::WrongFileKey`] if `old` does not open the file (its
/// bytes unchanged); [`Error::DatabaseLocked`] if the file is open, in this
/// process or another (close every `Database` on it first: the file is
/// replaced, so an open handle would keep writing to the old one);
/// [`Error::Storage`] for I/O errors (the old file stays).
#[cfg(not(target_arch = "wasm32"))]
pub fn change_file_key(
    path: impl AsRef<std::path::Path>,
    old: Option<&FileKey>,
    new: Option<&FileKey>,
) -> Result<()> {
    let path = path.as_ref();
    let _claim = crate::store::sqlite::FileClaim::take(path).map_err(|e| {
        if e.is_locked() {
            Error::DatabaseLocked(crate::error::LockHolder::ThisProcess {
                path: path.display().to_string(),
            })
        } else {
            e.into()
        }
    })?;
    crate::store::sqlite::rekey_file(path, old.map(FileKey::as_bytes), new.map(FileKey::as_bytes))
        .map_err(Error::from)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_file_key_comes_from_hex_or_a_phrase_and_never_shows() {
        let hex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        let key = FileKey::from_text(&format!("  {hex}\n")).unwrap();
        assert_eq!(crate::value::to_hex(key.as_bytes()), hex);
        assert_eq!(format!("{key:?}"), "FileKey(<redacted>)");
        assert_eq!(
            FileKey::from_text(" \n").unwrap_err().to_string(),
            "invalid input: the file key is empty"
        );
        let words = FileKey::from_text("this is not a key").unwrap_err();
        assert!(
            words
                .to_string()
                .contains("64 hex digits or a recovery phrase"),
            "{words}"
        );
        for bad in ["00ff", "zz", &format!("{hex}00")] {
            let e = FileKey::from_text(bad).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidInput, "{e}");
            assert!(!e.to_string().contains(bad), "{e}");
        }
        let phrase = crate::recovery::new_recovery_phrase().unwrap();
        let from_phrase = FileKey::from_text(&phrase).unwrap();
        let column = crate::recovery::key_from_recovery_phrase(&phrase).unwrap();
        assert_ne!(
            from_phrase.as_bytes(),
            &column,
            "one phrase gives two unrelated keys"
        );
        assert_eq!(FileKey::from_text(&phrase).unwrap(), from_phrase);
    }
}
