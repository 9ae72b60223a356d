//! Keys: recovery phrases for the keys of encrypted columns and of the
//! local file, forwarded from [`erth_core::recovery`] (BIP-39 English
//! words; each key is HKDF-SHA256 of BIP-39's seed, with its own info), and
//! [`change_file_key`] from [`erth_core::file_key`]. Kotlin
//! `newRecoveryPhrase()`, `columnKeyFromRecoveryPhrase(phrase)`,
//! `fileKeyFromRecoveryPhrase(phrase)`, `changeFileKey(path, old, new)`;
//! Swift the same names; Python snake_case.

use crate::error::{guard_sync, ErthError};

/// A new recovery phrase: 24 lowercase English BIP-39 words separated by
/// single spaces (256 random bits). Show it to the person to write down;
/// [`column_key_from_recovery_phrase`] gives its column key on any device.
#[uniffi::export]
pub fn new_recovery_phrase() -> Result<String, ErthError> {
    guard_sync(|| Ok(erth_core::recovery::new_recovery_phrase()?))
}

/// The 32-byte column key of a recovery phrase (case and spacing do not
/// matter), for `ErthConfig.columnKeys`.
///
/// Errors: `InvalidInput` for a phrase that is not BIP-39 English (word
/// count, a word not in the list, a failed checksum); the message never
/// shows the phrase.
#[uniffi::export]
pub fn column_key_from_recovery_phrase(phrase: String) -> Result<Vec<u8>, ErthError> {
    guard_sync(|| Ok(erth_core::recovery::key_from_recovery_phrase(&phrase)?.to_vec()))
}

/// The 32-byte file key of a recovery phrase, for `ErthConfig.fileKey`: not
/// the phrase's column key (another HKDF info), so one phrase can give
/// both. Errors: as [`column_key_from_recovery_phrase`].
#[uniffi::export]
pub fn file_key_from_recovery_phrase(phrase: String) -> Result<Vec<u8>, ErthError> {
    guard_sync(|| Ok(erth_core::recovery::file_key_from_recovery_phrase(&phrase)?.to_vec()))
}

/// Rewrites the local file at `path` from `old_key` to `new_key` (each 32
/// bytes, or `None` for a plain file): encrypts a plain file, decrypts one,
/// or changes its key, keeping every row and the sync state. The file must
/// be closed (every `ErthDb` on it, in any process).
///
/// Errors: `WrongKey` if `old_key` does not open the file (unchanged);
/// `DatabaseLocked` while it is open; `InvalidInput` for a key that is not
/// 32 bytes; `Storage` for I/O errors (the old file stays).
#[uniffi::export]
pub fn change_file_key(
    path: String,
    old_key: Option<Vec<u8>>,
    new_key: Option<Vec<u8>>,
) -> Result<(), ErthError> {
    guard_sync(|| {
        let key = |k: Option<Vec<u8>>| {
            k.as_deref()
                .map(erth_core::file_key::FileKey::from_slice)
                .transpose()
        };
        Ok(erth_core::file_key::change_file_key(
            &path,
            key(old_key)?.as_ref(),
            key(new_key)?.as_ref(),
        )?)
    })
}
