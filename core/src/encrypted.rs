//! End-to-end encrypted columns: values of the columns a schema marks
//! `"encrypted"` are sealed on the device before a push and opened after a
//! pull, so the server (and whoever runs it) holds only ciphertext. The
//! merge compares clocks only, so sync converges on values it cannot read.
//!
//! - **Cipher**: XChaCha20-Poly1305 (RustCrypto's `chacha20poly1305`), a
//!   random 24-byte nonce per value (so random nonces never repeat in
//!   practice), 32-byte keys.
//! - **Associated data** binds each value to its place: the server
//!   database's id (`_erth_meta.db_id`), the table, the row id, the column,
//!   the column's clock and the key id. A server that moves a value to
//!   another cell or row, or pairs an old value with a newer clock, or
//!   flips a byte, makes the value fail authentication: the row is
//!   quarantined (never applied), the others sync.
//! - **Wire form**: `TEXT` `e1.<base64url: key id (4 bytes) | nonce | ciphertext+tag>`;
//!   the plaintext is a type byte (`i`, `r`, `t`, `b`) and the value
//!   (integers and reals as 8 little-endian bytes). NULL stays NULL: the
//!   server sees which values are NULL. Tombstones hold no data (their
//!   values are cleared by the merge) and are not sealed.
//! - **Keys** ([`ColumnKeys`]): the first key seals, every key opens; a
//!   key's id is the first 4 bytes of SHA-256 of `"erth column key" | key`,
//!   so a device with another key meets an id it does not have: a typed
//!   error ([`Error::UnknownColumnKey`]) that stops the sync before it
//!   writes anything, and the same sync with the right key works.
//!
//! Called by the push (`sync::push_tx`, [`seal_row`]) and the pull
//! (`sync::pull`, [`open_row`]); the local file holds plaintext (encryption
//! at rest is a separate matter).

use crate::error::{Error, Result};
use crate::hlc::Timestamp;
use crate::row::SyncRow;
use crate::schema::TableDef;
use crate::value::SqlValue;
use base64::Engine;
use chacha20poly1305::aead::{Aead, AeadInOut, KeyInit, Payload};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use std::io::Write;

pub use crate::schema::SEALED_PREFIX;
const NONCE: usize = 24;
/// Poly1305's tag, at the end of a sealed value.
const TAG: usize = 16;
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The keys of a replica's encrypted columns: the first seals new values,
/// each opens the values sealed with it (key rotation: put the new key
/// first and keep the old ones while old values remain). `Debug` shows
/// the key ids only.
#[derive(Clone)]
pub struct ColumnKeys {
    keys: Vec<(u32, XChaCha20Poly1305)>,
}

impl ColumnKeys {
    /// Keys of 32 bytes each, the sealing one first.
    ///
    /// Errors: [`Error::InvalidInput`] for no key, or one of another length.
    pub fn new(keys: &[Vec<u8>]) -> Result<ColumnKeys> {
        if keys.is_empty() {
            return Err(Error::InvalidInput(
                "column keys: give at least one key".into(),
            ));
        }
        let keys = keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let cipher = XChaCha20Poly1305::new_from_slice(k).map_err(|_| {
                    Error::InvalidInput(format!(
                        "column key {i} is {} bytes; a key is 32 bytes",
                        k.len()
                    ))
                })?;
                Ok((key_id(k), cipher))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(ColumnKeys { keys })
    }

    /// Keys given as text, the sealing one first: each is 64 hex digits
    /// (32 bytes) or a recovery phrase (words separated by whitespace,
    /// [`crate::recovery::key_from_recovery_phrase`]). How the npm package
    /// and the CLI take them.
    ///
    /// Errors: [`Error::InvalidInput`] naming the key's place (from 1),
    /// never its text; no key.
    pub fn from_text<S: AsRef<str>>(keys: &[S]) -> Result<ColumnKeys> {
        let bytes = keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let k = k.as_ref().trim();
                if crate::recovery::is_phrase(k) {
                    return crate::recovery::key_from_recovery_phrase(k)
                        .map(|key| key.to_vec())
                        .map_err(|e| match e {
                            Error::InvalidInput(why) => {
                                Error::InvalidInput(format!("column key {}: {why}", i + 1))
                            }
                            other => other,
                        });
                }
                crate::value::from_hex(k)
                    .filter(|b| b.len() == 32)
                    .ok_or_else(|| {
                        Error::InvalidInput(format!(
                            "column key {} is neither 64 hex digits (32 bytes) nor a recovery phrase",
                            i + 1
                        ))
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        ColumnKeys::new(&bytes)
    }

    /// The id of each key, in order (the sealing one first).
    pub fn ids(&self) -> Vec<u32> {
        self.keys.iter().map(|(id, _)| *id).collect()
    }

    fn get(&self, id: u32) -> Option<&XChaCha20Poly1305> {
        self.keys.iter().find(|(k, _)| *k == id).map(|(_, c)| c)
    }
}

impl std::fmt::Debug for ColumnKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<String> = self.ids().iter().map(|id| format!("{id:08x}")).collect();
        f.debug_struct("ColumnKeys").field("ids", &ids).finish()
    }
}

/// A key's id: the first 4 bytes of SHA-256 of `"erth column key" | key`.
fn key_id(key: &[u8]) -> u32 {
    let digest = Sha256::new()
        .chain_update(b"erth column key")
        .chain_update(key)
        .finalize();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// The key id of a sealed value's text, if it is one.
pub(crate) fn sealed_key_id(text: &str) -> Option<u32> {
    let body = text.strip_prefix(SEALED_PREFIX)?;
    // The id is the first 4 bytes: the first 6 base64 characters hold them.
    let head = B64.decode(body.get(..8)?).ok()?;
    Some(u32::from_be_bytes([
        *head.first()?,
        *head.get(1)?,
        *head.get(2)?,
        *head.get(3)?,
    ]))
}

/// Where a value lives: what its associated data binds it to.
struct Place<'a> {
    db: &'a str,
    table: &'a str,
    id: &'a str,
    column: &'a str,
    clock: &'a Timestamp,
}

impl Place<'_> {
    fn aad(&self, key: u32) -> Vec<u8> {
        let mut out = Vec::with_capacity(160);
        for part in ["erth-e2e-v1", self.db, self.table, self.id, self.column] {
            out.extend_from_slice(part.as_bytes());
            out.push(0);
        }
        // The clock's text form (`Timestamp`'s `Display`), written in place.
        let _ = write!(out, "{}", self.clock);
        out.push(0);
        out.extend_from_slice(&key.to_be_bytes());
        out
    }
}

fn plaintext(value: &SqlValue) -> Vec<u8> {
    let (tag, body): (u8, &[u8]) = match value {
        SqlValue::Integer(i) => (b'i', &i.to_le_bytes()),
        SqlValue::Real(r) => (b'r', &r.to_le_bytes()),
        SqlValue::Text(t) => (b't', t.as_bytes()),
        SqlValue::Blob(b) => (b'b', b),
        SqlValue::Null => (b'n', &[]),
    };
    let mut out = Vec::with_capacity(1 + body.len() + TAG);
    out.push(tag);
    out.extend_from_slice(body);
    out
}

fn value_of(plain: &[u8]) -> std::result::Result<SqlValue, String> {
    let eight = |b: &[u8]| <[u8; 8]>::try_from(b).map_err(|_| "a number is not 8 bytes".to_owned());
    match plain.split_first() {
        Some((b'i', b)) => Ok(SqlValue::Integer(i64::from_le_bytes(eight(b)?))),
        Some((b'r', b)) => Ok(SqlValue::Real(f64::from_le_bytes(eight(b)?))),
        Some((b't', b)) => String::from_utf8(b.to_vec())
            .map(SqlValue::Text)
            .map_err(|_| "a text is not UTF-8".to_owned()),
        Some((b'b', b)) => Ok(SqlValue::Blob(b.to_vec())),
        _ => Err("an unknown value type".to_owned()),
    }
}

/// `row` of `def` with the values of its encrypted columns sealed for the
/// server database `db` (unchanged for a tombstone, NULLs stay NULL).
///
/// Errors: [`Error::Storage`]-free; the system's random source failing
/// is an [`Error::InvalidInput`] naming it (it does not happen in practice).
pub(crate) fn seal_row(
    def: &TableDef,
    keys: &ColumnKeys,
    db: &str,
    mut row: SyncRow,
) -> Result<SyncRow> {
    if row.is_deleted {
        return Ok(row);
    }
    let Some((key, cipher)) = keys.keys.first() else {
        return Ok(row);
    };
    for (i, col) in def.columns.iter().enumerate() {
        if !col.encrypted || matches!(row.values[i], SqlValue::Null) {
            continue;
        }
        let place = Place {
            db,
            table: &def.name,
            id: &row.id,
            column: &col.name,
            clock: &row.clocks[i],
        };
        let mut nonce = [0u8; NONCE];
        getrandom::fill(&mut nonce)
            .map_err(|e| Error::InvalidInput(format!("no random source for a nonce: {e}")))?;
        let sealed = cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: &plaintext(&row.values[i]),
                    aad: &place.aad(*key),
                },
            )
            .map_err(|_| Error::InvalidInput("a value could not be sealed".into()))?;
        let mut wire = Vec::with_capacity(4 + NONCE + sealed.len());
        wire.extend_from_slice(&key.to_be_bytes());
        wire.extend_from_slice(&nonce);
        wire.extend_from_slice(&sealed);
        row.values[i] = SqlValue::Text(format!("{SEALED_PREFIX}{}", B64.encode(wire)));
    }
    Ok(row)
}

/// `row` of `def` pulled from the server database `db`, with the values of
/// its encrypted columns opened. `Ok(Err(reason))`: the row is refused
/// (quarantined): a value that fails authentication (moved, replayed with
/// another clock, altered), is not sealed, or opens to the wrong type.
///
/// Errors: [`Error::UnknownColumnKey`] for a value sealed with a key this
/// replica does not have (a wrong or missing key: the sync stops).
pub(crate) fn open_row(
    def: &TableDef,
    keys: &ColumnKeys,
    db: &str,
    mut row: SyncRow,
) -> Result<std::result::Result<SyncRow, String>> {
    if row.is_deleted {
        return Ok(Ok(row));
    }
    for (i, col) in def.columns.iter().enumerate() {
        if !col.encrypted {
            continue;
        }
        let sealed = match &row.values[i] {
            SqlValue::Null => continue,
            SqlValue::Text(t) if t.starts_with(SEALED_PREFIX) => &t[SEALED_PREFIX.len()..],
            other => {
                return Ok(Err(format!(
                    "row {}: {} is encrypted, but the server holds a plain {}",
                    row.id,
                    col.name,
                    other.type_name()
                )))
            }
        };
        let refuse = |why: &str| format!("row {}: {}: {why}", row.id, col.name);
        let Ok(mut wire) = B64.decode(sealed) else {
            return Ok(Err(refuse("the sealed value is not base64")));
        };
        if wire.len() < 4 + NONCE + TAG {
            return Ok(Err(refuse("the sealed value is too short")));
        }
        let key = u32::from_be_bytes([wire[0], wire[1], wire[2], wire[3]]);
        let Some(cipher) = keys.get(key) else {
            return Err(Error::UnknownColumnKey {
                table: def.name.clone(),
                key_id: format!("{key:08x}"),
            });
        };
        let place = Place {
            db,
            table: &def.name,
            id: &row.id,
            column: &col.name,
            clock: &row.clocks[i],
        };
        // Opened in place: `key id | nonce | ciphertext | tag`.
        let (head, body) = wire.split_at_mut(4 + NONCE);
        let (plain, tag) = body.split_at_mut(body.len() - TAG);
        let (Ok(nonce), Ok(tag)) = (XNonce::try_from(&head[4..]), Tag::try_from(&*tag)) else {
            return Ok(Err(refuse("the sealed value is too short")));
        };
        if cipher
            .decrypt_inout_detached(&nonce, &place.aad(key), plain.into(), &tag)
            .is_err()
        {
            return Ok(Err(refuse(
                "the value fails authentication (altered, moved from another cell, or paired with another clock)",
            )));
        }
        let value = match value_of(plain) {
            Ok(v) => v,
            Err(why) => return Ok(Err(refuse(&why))),
        };
        if let Err(e) = col.check_plain(&value) {
            return Ok(Err(refuse(&e)));
        }
        row.values[i] = value;
    }
    Ok(Ok(row))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hlc::{NodeId, Timestamp};

    fn clock(hlc: u64) -> Timestamp {
        Timestamp {
            hlc,
            node: NodeId(1),
        }
    }
    use crate::schema::{ColumnDef, SqlType};

    fn def() -> TableDef {
        let mut secret = ColumnDef::new("secret", SqlType::Text).nullable();
        secret.encrypted = true;
        let mut n = ColumnDef::new("n", SqlType::Integer).nullable();
        n.encrypted = true;
        TableDef::new(
            "notes",
            vec![secret, n, ColumnDef::new("plain", SqlType::Text).nullable()],
        )
        .unwrap()
    }

    fn row(id: &str, secret: &str, at: u64) -> SyncRow {
        SyncRow {
            id: id.into(),
            values: vec![secret.into(), SqlValue::Integer(-7), "visible".into()],
            is_deleted: false,
            created_at: 1,
            updated_at: 2,
            clocks: vec![clock(at), clock(at), clock(at), clock(at)],
        }
    }

    const A: &str = "0190a3b4-0000-7000-8000-000000000001";
    const B: &str = "0190a3b4-0000-7000-8000-000000000002";

    /// Values sealed by an earlier build (the wire form and associated
    /// data of format `e1`): a later build opens them, so a change to how a
    /// value is sealed or its place is bound cannot strand data on servers.
    #[test]
    fn values_sealed_by_an_earlier_build_still_open() {
        let keys = ColumnKeys::new(&[vec![7; 32]]).unwrap();
        let mut sealed = row(A, "", 5);
        sealed.values[0] =
            "e1.XesAh5LV2ovCuBfKb_Nt86NDvowIQ6df3XLvuVnjMkP2k4tTarG8KS31hxe024-WFriGIAU5zw".into();
        sealed.values[1] =
            "e1.XesAh_l-VRMKESmEBpMWAay0jkY8lATYp5WvVxT6GcHN4NKD11D6_EFUDetl-jmFyXzVrDk".into();
        let opened = open_row(&def(), &keys, "42", sealed.clone()).unwrap();
        assert_eq!(opened, Ok(row(A, "top secret", 5)));
        // The same bytes bound to another clock do not.
        sealed.clocks[0] = clock(6);
        assert!(open_row(&def(), &keys, "42", sealed).unwrap().is_err());
    }

    #[test]
    fn sealed_values_open_only_in_their_place() {
        let keys = ColumnKeys::new(&[vec![7; 32]]).unwrap();
        let def = def();
        let sealed = seal_row(&def, &keys, "42", row(A, "top secret", 5)).unwrap();
        let SqlValue::Text(wire) = &sealed.values[0] else {
            panic!()
        };
        assert!(wire.starts_with(SEALED_PREFIX) && !wire.contains("secret"));
        assert_eq!(sealed_key_id(wire), Some(keys.ids()[0]));
        assert_eq!(sealed_key_id("e1.x"), None);
        assert_eq!(sealed_key_id("plain text"), None);
        assert_eq!(sealed.values[2], SqlValue::Text("visible".into()));
        let opened = open_row(&def, &keys, "42", sealed.clone())
            .unwrap()
            .unwrap();
        assert_eq!(opened, row(A, "top secret", 5));
        // Another database, row, clock or column: refused.
        assert!(open_row(&def, &keys, "43", sealed.clone())
            .unwrap()
            .is_err());
        let mut moved = sealed.clone();
        moved.id = B.into();
        assert!(open_row(&def, &keys, "42", moved).unwrap().is_err());
        let mut replayed = sealed.clone();
        replayed.clocks[0] = clock(9);
        assert!(open_row(&def, &keys, "42", replayed).unwrap().is_err());
        let mut swapped = sealed.clone();
        swapped.values.swap(0, 1);
        assert!(open_row(&def, &keys, "42", swapped).unwrap().is_err());
        // A flipped byte; a plain value where a sealed one belongs.
        let mut flipped = sealed.clone();
        let mut bytes = B64.decode(&wire[SEALED_PREFIX.len()..]).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        flipped.values[0] = SqlValue::Text(format!("{SEALED_PREFIX}{}", B64.encode(bytes)));
        assert!(open_row(&def, &keys, "42", flipped).unwrap().is_err());
        assert!(open_row(&def, &keys, "42", row(A, "plain", 5))
            .unwrap()
            .is_err());
        // Another key: a typed error, not a quarantine.
        let other = ColumnKeys::new(&[vec![8; 32]]).unwrap();
        assert!(matches!(
            open_row(&def, &other, "42", sealed.clone()),
            Err(Error::UnknownColumnKey { .. })
        ));
        // Rotation: the new key seals, both open.
        let rotated = ColumnKeys::new(&[vec![8; 32], vec![7; 32]]).unwrap();
        assert!(open_row(&def, &rotated, "42", sealed).unwrap().is_ok());
        let newer = seal_row(&def, &rotated, "42", row(A, "newer", 6)).unwrap();
        assert!(matches!(
            open_row(&def, &keys, "42", newer.clone()),
            Err(Error::UnknownColumnKey { .. })
        ));
        assert_eq!(
            open_row(&def, &rotated, "42", newer).unwrap().unwrap(),
            row(A, "newer", 6)
        );
    }

    #[test]
    fn nulls_and_tombstones_are_not_sealed_and_keys_are_checked() {
        let keys = ColumnKeys::new(&[vec![1; 32]]).unwrap();
        let def = def();
        let mut r = row(A, "x", 3);
        r.values[0] = SqlValue::Null;
        let sealed = seal_row(&def, &keys, "1", r.clone()).unwrap();
        assert_eq!(sealed.values[0], SqlValue::Null);
        let mut dead = row(A, "x", 3);
        dead.is_deleted = true;
        assert_eq!(seal_row(&def, &keys, "1", dead.clone()).unwrap(), dead);
        assert!(ColumnKeys::new(&[]).is_err());
        let hex = "01".repeat(32);
        assert_eq!(
            ColumnKeys::from_text(&[format!(" {hex} ")]).unwrap().ids(),
            keys.ids()
        );
        let bad = ColumnKeys::from_text(&[hex.as_str(), "abcd"])
            .unwrap_err()
            .to_string();
        assert!(
            bad.contains("column key 2") && !bad.contains("abcd"),
            "{bad}"
        );
        assert!(ColumnKeys::from_text::<&str>(&[]).is_err());
        let phrase = crate::recovery::new_recovery_phrase().unwrap();
        let key = crate::recovery::key_from_recovery_phrase(&phrase).unwrap();
        assert_eq!(
            ColumnKeys::from_text(&[phrase.as_str(), hex.as_str()])
                .unwrap()
                .ids(),
            ColumnKeys::new(&[key.to_vec(), vec![1; 32]]).unwrap().ids()
        );
        let typo = ColumnKeys::from_text(&[hex.clone(), format!("{phrase} abandon")])
            .unwrap_err()
            .to_string();
        assert!(
            typo.contains("column key 2: recovery phrase refused"),
            "{typo}"
        );
        assert!(ColumnKeys::new(&[vec![1; 31]]).is_err());
        let shown = format!("{keys:?}");
        assert!(shown.starts_with("ColumnKeys { ids: [\"") && !shown.contains("[1, 1"));
        assert_ne!(key_id(&[1; 32]), key_id(&[2; 32]));
    }
}
