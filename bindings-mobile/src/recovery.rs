//! Recovery phrases for the keys of encrypted columns, forwarded from
//! [`erth_core::recovery`] (BIP-39 English words; the key is HKDF-SHA256 of
//! BIP-39's seed). Kotlin `newRecoveryPhrase()` and
//! `columnKeyFromRecoveryPhrase(phrase)`, Swift the same names, Python
//! `erth_sync.new_recovery_phrase()` and `column_key_from_recovery_phrase`.

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
