//! Recovery phrases for the keys of encrypted columns: a person can write
//! down 24 words instead of 64 hex digits, and type them on a new device.
//!
//! - **Phrase**: BIP-39 (Bitcoin Improvement Proposal 39, the phrase format
//!   of most wallets), English word list, through the `bip39` crate. A new
//!   phrase holds 256 bits from the system's random source and BIP-39's
//!   8-bit checksum (24 words); any valid BIP-39 English phrase of 12 to 24
//!   words is accepted. The checksum catches most typos: a phrase that
//!   fails it is refused instead of giving another key.
//! - **Key derivation**: BIP-39's seed (PBKDF2-HMAC-SHA512, 2,048
//!   iterations, salt `"mnemonic"`, BIP-39 §"From mnemonic to seed"), then
//!   HKDF-SHA256 (RFC 5869) with the info `"erth-sync column key v1"` to
//!   the 32-byte key. A phrase is random, not chosen by a person, so a
//!   slow memory-hard function (Argon2) would add nothing against guessing:
//!   2^128 to 2^256 phrases are out of reach either way.
//!
//! Called by the faces (and [`crate::encrypted::ColumnKeys::from_text`]);
//! the key it gives is an ordinary column key.

use crate::error::{Error, Result};
use bip39::{Language, Mnemonic};
use hkdf::Hkdf;
use sha2::Sha256;

/// The HKDF info that makes a phrase's seed into a column key.
const INFO: &[u8] = b"erth-sync column key v1";
/// The HKDF info that makes a phrase's seed into a file key
/// ([`crate::file_key`]): another info, so one phrase gives two keys that
/// do not reveal each other.
const FILE_INFO: &[u8] = b"erth-sync file key v1";

/// A new recovery phrase: 24 lowercase English BIP-39 words separated by
/// single spaces (256 random bits and an 8-bit checksum).
///
/// Errors: [`Error::InvalidInput`] if the system's random source fails
/// (it does not in practice).
pub fn new_recovery_phrase() -> Result<String> {
    let mut entropy = [0u8; 32];
    getrandom::fill(&mut entropy)
        .map_err(|e| Error::InvalidInput(format!("the system's random source failed: {e}")))?;
    let phrase = Mnemonic::from_entropy_in(Language::English, &entropy)
        .map_err(|e| Error::InvalidInput(format!("recovery phrase: {e}")))?;
    Ok(phrase.words().collect::<Vec<_>>().join(" "))
}

/// Whether `text` looks like a phrase (several words) rather than a key in
/// hex: what [`crate::encrypted::ColumnKeys::from_text`] asks.
pub(crate) fn is_phrase(text: &str) -> bool {
    text.split_whitespace().nth(1).is_some()
}

/// The 32-byte column key of a recovery phrase (see the module's docs for
/// the derivation). Case and the whitespace between words do not matter.
///
/// Errors: [`Error::InvalidInput`] for a phrase that is not BIP-39 English
/// (a word count other than 12, 15, 18, 21 or 24, a word not in the list,
/// naming its place from 1, or a failed checksum); the message never shows
/// the phrase or a word of it.
pub fn key_from_recovery_phrase(phrase: &str) -> Result<[u8; 32]> {
    derive(phrase, INFO)
}

/// The 32-byte file key ([`crate::file_key::FileKey`]) of a recovery
/// phrase: the same seed as [`key_from_recovery_phrase`], HKDF info
/// `"erth-sync file key v1"`. Errors: as [`key_from_recovery_phrase`].
pub fn file_key_from_recovery_phrase(phrase: &str) -> Result<[u8; 32]> {
    derive(phrase, FILE_INFO)
}

fn derive(phrase: &str, info: &[u8]) -> Result<[u8; 32]> {
    let words = phrase.to_lowercase();
    let mnemonic = Mnemonic::parse_in_normalized(Language::English, &words).map_err(|e| {
        let why = match e {
            bip39::Error::BadWordCount(n) => {
                format!("it has {n} words; a phrase has 12, 15, 18, 21 or 24")
            }
            bip39::Error::UnknownWord(i) => {
                format!("word {} is not in the BIP-39 English word list", i + 1)
            }
            bip39::Error::InvalidChecksum => {
                "its checksum does not match: a word is mistyped or out of order".to_owned()
            }
            _ => "it is not a BIP-39 English phrase".to_owned(),
        };
        Error::InvalidInput(format!("recovery phrase refused: {why}"))
    })?;
    let seed = mnemonic.to_seed_normalized("");
    let mut key = [0u8; 32];
    Hkdf::<Sha256>::new(None, &seed)
        .expand(info, &mut key)
        .map_err(|_| Error::InvalidInput("recovery phrase: key derivation failed".into()))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// BIP-39's published test vector (entropy 0x00…00, 24 words): its
    /// seed with passphrase "TREZOR" is the spec's; our key (empty
    /// passphrase, then HKDF) is pinned to an independent computation.
    const ZERO_24: &str = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon art";

    #[test]
    fn the_bip39_vector_derives_the_spec_seed_and_a_pinned_key() {
        let m = Mnemonic::parse_in_normalized(Language::English, ZERO_24).unwrap();
        let seed = m.to_seed_normalized("TREZOR");
        assert_eq!(
            crate::value::to_hex(&seed[..8]),
            "bda85446c6841370",
            "BIP-39 vector: entropy 00…00, passphrase TREZOR"
        );
        let key = key_from_recovery_phrase(ZERO_24).unwrap();
        assert_eq!(
            crate::value::to_hex(&key),
            crate::value::to_hex(&key_from_recovery_phrase(&ZERO_24.to_uppercase()).unwrap())
        );
        assert_eq!(crate::value::to_hex(&key), PINNED_KEY);
        assert_eq!(
            crate::value::to_hex(&file_key_from_recovery_phrase(ZERO_24).unwrap()),
            PINNED_FILE_KEY
        );
    }

    /// As [`PINNED_KEY`], with the info `"erth-sync file key v1"`.
    const PINNED_FILE_KEY: &str =
        "bbd606a5441588c9400fdcb674216796d12532f0478de20ee1a91d4da8afa7f0";

    /// The same derivation computed outside Rust (Python's hashlib:
    /// `pbkdf2_hmac("sha512", phrase, b"mnemonic", 2048)`, then HKDF-SHA256
    /// by hand with a zero salt and the info above).
    const PINNED_KEY: &str = "5f9e73245584375afeaa4f0249b988d845847f1343a08a0823fd04e91f8add71";

    #[test]
    fn new_phrases_are_24_listed_words_that_give_different_keys() {
        let a = new_recovery_phrase().unwrap();
        let b = new_recovery_phrase().unwrap();
        assert_eq!(a.split(' ').count(), 24);
        assert_ne!(a, b);
        let spaced = format!("  {}\n", a.replace(' ', "   "));
        assert_eq!(
            key_from_recovery_phrase(&a).unwrap(),
            key_from_recovery_phrase(&spaced).unwrap()
        );
        assert_ne!(
            key_from_recovery_phrase(&a).unwrap(),
            key_from_recovery_phrase(&b).unwrap()
        );
        assert!(is_phrase(&a) && !is_phrase(&"ab".repeat(32)));
    }

    #[test]
    fn a_mistyped_phrase_is_refused_without_showing_it() {
        let good = new_recovery_phrase().unwrap();
        let words: Vec<&str> = good.split(' ').collect();
        let mut swapped = words.clone();
        // Two different words swapped: the checksum fails (or, rarely,
        // the words are equal; pick two that differ).
        let j = (1..24).find(|&j| words[j] != words[0]).unwrap();
        swapped.swap(0, j);
        let unknown = format!("{} zzzzzz", words[..23].join(" "));
        let short = words[..23].join(" ");
        for (bad, expect) in [
            (swapped.join(" "), ""),
            (unknown, "word 24 is not in"),
            (short, "it has 23 words"),
            ("correct horse battery staple".to_owned(), "it has 4 words"),
        ] {
            let e = key_from_recovery_phrase(&bad).unwrap_err();
            let text = e.to_string();
            assert!(text.contains("recovery phrase refused"), "{text}");
            assert!(text.contains(expect), "{text}");
            let bad_words: Vec<&str> = bad.split(' ').collect();
            for pair in bad_words.windows(2) {
                let shown = pair.join(" ");
                assert!(!text.contains(&shown), "the error shows {shown:?}: {text}");
            }
        }
    }
}
