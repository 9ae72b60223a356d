//! A row too large for any page: one that alone did not arrive (the answer
//! timed out, or the server refused to build or send it: `SQLITE_TOOBIG`
//! past sqld's 5,000,000-byte string limit, `RESPONSE_TOO_LARGE` past its
//! 10 MB answer limit). Such a row travels another way: its small columns
//! in one request, and each `TEXT` or `BLOB` value in pieces
//! (`substr(value, start, n)`, characters of text or bytes of a blob), at
//! most [`MAX_PIECE_BYTES`] on the wire each, so any value the engine
//! accepts (up to 5 MB; a control character is 6 bytes as JSON) can be
//! pulled from any server. Every request names the row by its `_seq`: a
//! row that changed meanwhile has moved on (no rows come back), and is
//! pulled later at its new `_seq`.

use super::pull_sql::Quarantined;
use super::Syncer;
use crate::error::{clip, Error, Result};
use crate::row::SyncRow;
use crate::schema::{q, SqlType, TableDef};
use crate::value::{SqlValue, Statement};

/// The most one piece may take on the wire: a text character is at most 12
/// bytes as JSON (a 4-byte character escaped as two `\u` pairs), a blob byte
/// 4/3 in base64.
const MAX_PIECE_BYTES: usize = 4_800_000;
/// Characters of text per piece at first ([`MAX_PIECE_BYTES`] / 12).
const TEXT_PIECE: usize = MAX_PIECE_BYTES / 12;
/// Bytes of a blob per piece at first.
const BLOB_PIECE: usize = MAX_PIECE_BYTES / 4 * 3;
/// The smallest piece (in characters or bytes) a timed-out piece is halved to.
const MIN_PIECE: usize = 16 * 1024;

impl Syncer<'_> {
    /// The row of `def` at `_seq` `seq`, fetched by itself in pieces, with
    /// its `_seq`; `None` when it changed (moved to a later `_seq`) meanwhile.
    ///
    /// A row that breaks the layout comes back as [`Quarantined`] (with
    /// why), like a page's.
    ///
    /// Errors: a piece that does not arrive even at [`MIN_PIECE`] fails
    /// with its error (the sync stops; nothing is skipped).
    pub(super) async fn pull_large_row(
        &self,
        def: &TableDef,
        seq: i64,
    ) -> Result<Option<std::result::Result<SyncRow, Quarantined>>> {
        let Some((mut cells, large)) = self.large_row_frame(def, seq).await? else {
            return Ok(None);
        };
        for (i, (kind, len)) in large {
            let Some(value) = self
                .large_value(def, &def.columns[i].name, kind, seq, len)
                .await?
            else {
                return Ok(None);
            };
            // User values start after the id.
            cells[1 + i] = value;
        }
        match SyncRow::from_cells(def, &cells) {
            Ok(row) => Ok(Some(self.open_one(def, row, seq)?)),
            Err(reason) => Ok(Some(Err(Quarantined {
                seq,
                id: match cells.first() {
                    Some(SqlValue::Text(t)) => clip(t, 64),
                    Some(other) => format!("({})", other.type_name()),
                    None => String::new(),
                },
                reason,
            }))),
        }
    }

    /// The row's cells with its `TEXT` and `BLOB` values left out (NULL),
    /// and for each of those, by user column index, the value's kind and
    /// length (characters of text, bytes of a blob). `None`: no row there.
    #[allow(clippy::type_complexity)]
    async fn large_row_frame(
        &self,
        def: &TableDef,
        seq: i64,
    ) -> Result<Option<(Vec<SqlValue>, Vec<(usize, (SqlType, i64))>)>> {
        // User values (after the id) that are text or a blob are left out.
        let mut columns: Vec<String> = def
            .row_columns()
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let c = q(c);
                if (1..=def.columns.len()).contains(&i) {
                    format!("CASE WHEN typeof({c}) IN ('text', 'blob') THEN NULL ELSE {c} END")
                } else {
                    c
                }
            })
            .collect();
        for col in &def.columns {
            let c = q(&col.name);
            columns.push(format!("typeof({c}), length({c})"));
        }
        let frame = self
            .remote
            .client
            .execute(Statement::new(
                format!(
                    "SELECT {} FROM {} WHERE \"_seq\" = ?",
                    columns.join(", "),
                    q(&def.name)
                ),
                vec![SqlValue::Integer(seq)],
            ))
            .await?;
        let Some(mut cells) = frame.rows.into_iter().next() else {
            return Ok(None);
        };
        let width = def.row_columns().len();
        if cells.len() != width + 2 * def.columns.len() {
            return Err(Error::Protocol(format!(
                "a large row of {} came back with {} columns",
                def.name,
                cells.len()
            )));
        }
        let extras = cells.split_off(width);
        let large = extras
            .chunks(2)
            .enumerate()
            .filter_map(|(i, pair)| {
                let kind = match pair[0].as_str()? {
                    "text" => SqlType::Text,
                    "blob" => SqlType::Blob,
                    _ => return None,
                };
                Some((i, (kind, pair[1].as_i64()?)))
            })
            .collect();
        Ok(Some((cells, large)))
    }

    /// One `TEXT` or `BLOB` value of `column` (`len` characters or bytes),
    /// in pieces; `None` when the row moved on meanwhile.
    async fn large_value(
        &self,
        def: &TableDef,
        column: &str,
        sql_type: SqlType,
        seq: i64,
        len: i64,
    ) -> Result<Option<SqlValue>> {
        let mut piece = if sql_type == SqlType::Text {
            TEXT_PIECE
        } else {
            BLOB_PIECE
        };
        // The length comes from the server: one the engine would never
        // accept (negative, or over its value limit) is not asked for in
        // pieces (a hostile `i64::MAX` would be requests without end).
        let max = crate::schema::MAX_VALUE_BYTES as i64;
        let invalid = |what: String| Error::InvalidRemoteRow {
            table: def.name.clone(),
            reason: format!("column {column}: {what}"),
        };
        if !(0..=max).contains(&len) {
            return Err(invalid(format!(
                "the server gives its value a length of {len}, beyond the engine's limit of {max} bytes"
            )));
        }
        let (mut text, mut bytes) = (String::new(), Vec::new());
        let mut start = 1i64;
        while start <= len {
            let stmt = Statement::new(
                format!(
                    "SELECT substr({}, ?, ?) FROM {} WHERE \"_seq\" = ?",
                    q(column),
                    q(&def.name)
                ),
                vec![
                    SqlValue::Integer(start),
                    SqlValue::Integer(piece as i64),
                    SqlValue::Integer(seq),
                ],
            );
            let part = match self.remote.client.execute(stmt).await {
                Ok(rows) => rows
                    .rows
                    .into_iter()
                    .next()
                    .and_then(|r| r.into_iter().next()),
                Err(e) if e.is_timeout() && piece > MIN_PIECE => {
                    piece = (piece / 2).max(MIN_PIECE);
                    tracing::debug!(table = %def.name, column, piece, "a piece of a large value timed out; asking for less");
                    continue;
                }
                Err(e) => return Err(e),
            };
            match part {
                Some(SqlValue::Text(t)) if sql_type == SqlType::Text => text.push_str(&t),
                Some(SqlValue::Blob(b)) if sql_type == SqlType::Blob => bytes.extend(b),
                None => return Ok(None),
                Some(other) => {
                    return Err(Error::InvalidRemoteRow {
                        table: def.name.clone(),
                        reason: format!(
                            "column {column}: a piece of its value is {}, not {}",
                            other.type_name(),
                            sql_type.sql()
                        ),
                    })
                }
            }
            if text.len() + bytes.len() > max as usize {
                return Err(invalid(format!("its value grew past {max} bytes")));
            }
            start = start.saturating_add(piece as i64);
        }
        Ok(Some(if sql_type == SqlType::Text {
            SqlValue::Text(text)
        } else {
            SqlValue::Blob(bytes)
        }))
    }
}
