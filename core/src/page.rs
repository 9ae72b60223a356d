//! The wire shape of pull pages and size probes: SQL that has the server
//! build each answer as **one JSON text cell** (`json_group_array` of
//! `json_array` rows), and the decoder that turns that cell back into rows
//! of [`SqlValue`]s. Called by [`crate::sync`]'s pull.
//!
//! Why: as Hrana rows, every value travels as a `{"type": ..., "value": ...}`
//! object, which for the built-in `todos` is about 463 bytes a row and was
//! the largest local cost of a fresh pull (decoding 10,000 rows took most of
//! the 90 ms spent locally; BENCHMARKS.md of 2026-11-30). As one JSON array
//! the same rows are about 208 bytes each, decoded in one pass.
//!
//! JSON holds text, integers and NULL exactly (SQLite and tursodb print
//! 64-bit integers in full), so a table whose user columns are all `TEXT` or
//! `INTEGER` ([`json_pages`]) is pulled this way. A `REAL` could come back
//! rounded (SQLite's JSON prints 15 significant digits before 3.45) and
//! JSON cannot hold a `BLOB` at all, so tables with such columns keep Hrana
//! rows. Either way every row is validated the same way afterwards
//! ([`crate::row::SyncRow::from_cells`]).
//!
//! Row order: the decoded rows are sorted by `_seq`, so a server that
//! aggregates out of the subquery's order loses nothing.

use crate::error::{Error, Result};
use crate::schema::{SqlType, TableDef};
use crate::value::{Rows, SqlValue};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use std::fmt;

/// Whether `def`'s rows travel as one JSON cell (see the module docs).
pub fn json_pages(def: &TableDef) -> bool {
    def.columns
        .iter()
        .all(|c| matches!(c.sql_type, SqlType::Text | SqlType::Integer))
}

/// Wraps a `SELECT` of `columns` (comma-separated, already quoted) so that
/// the server answers with one row holding one JSON array of row arrays.
pub fn as_one_cell(columns: &str, select: &str) -> String {
    format!("SELECT json_group_array(json_array({columns})) FROM ({select})")
}

/// The rows in the one JSON cell of `answer` (an [`as_one_cell`] query),
/// sorted by their cell `seq_at` (`_seq`); each row must hold `width`
/// cells. A server answer of another shape is an [`Error::Protocol`].
pub fn decode(
    table: &str,
    answer: &Rows,
    width: usize,
    seq_at: usize,
) -> Result<Vec<Vec<SqlValue>>> {
    let bad = |why: String| Error::Protocol(format!("pull page of {table}: {why}"));
    let text = match answer.rows.as_slice() {
        [row] => match row.as_slice() {
            [SqlValue::Text(t)] => t,
            [other] => {
                return Err(bad(format!(
                    "the page is {}, not JSON text",
                    other.type_name()
                )))
            }
            cells => return Err(bad(format!("{} cells instead of one", cells.len()))),
        },
        rows => return Err(bad(format!("{} rows instead of one", rows.len()))),
    };
    let JsonRows(mut rows) =
        serde_json::from_str(text).map_err(|e| bad(format!("not a JSON array of rows ({e})")))?;
    if let Some(r) = rows.iter().find(|r| r.len() != width) {
        return Err(bad(format!(
            "a row has {} cells, expected {width}",
            r.len()
        )));
    }
    rows.sort_by_key(|r| r.get(seq_at).and_then(SqlValue::as_i64));
    Ok(rows)
}

/// `[[cell, ...], ...]` straight into rows, without an intermediate
/// `serde_json::Value`.
struct JsonRows(Vec<Vec<SqlValue>>);

impl<'de> de::Deserialize<'de> for JsonRows {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Outer;
        impl<'de> Visitor<'de> for Outer {
            type Value = JsonRows;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of rows")
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<JsonRows, A::Error> {
                let mut rows = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(JsonRow(row)) = seq.next_element()? {
                    rows.push(row);
                }
                Ok(JsonRows(rows))
            }
        }
        d.deserialize_seq(Outer)
    }
}

struct JsonRow(Vec<SqlValue>);

impl<'de> de::Deserialize<'de> for JsonRow {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Row;
        impl<'de> Visitor<'de> for Row {
            type Value = JsonRow;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a row (an array of cells)")
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<JsonRow, A::Error> {
                let mut cells = Vec::with_capacity(seq.size_hint().unwrap_or(16));
                while let Some(JsonCell(cell)) = seq.next_element()? {
                    cells.push(cell);
                }
                Ok(JsonRow(cells))
            }
        }
        d.deserialize_seq(Row)
    }
}

struct JsonCell(SqlValue);

impl<'de> de::Deserialize<'de> for JsonCell {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Cell;
        impl Visitor<'_> for Cell {
            type Value = JsonCell;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, a 64-bit integer, a number or null")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<JsonCell, E> {
                Ok(JsonCell(SqlValue::Text(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> std::result::Result<JsonCell, E> {
                Ok(JsonCell(SqlValue::Text(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<JsonCell, E> {
                Ok(JsonCell(SqlValue::Integer(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<JsonCell, E> {
                i64::try_from(v)
                    .map(|v| JsonCell(SqlValue::Integer(v)))
                    .map_err(|_| E::custom(format!("integer {v} is beyond 64 bits")))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<JsonCell, E> {
                Ok(JsonCell(SqlValue::Real(v)))
            }
            fn visit_unit<E: de::Error>(self) -> std::result::Result<JsonCell, E> {
                Ok(JsonCell(SqlValue::Null))
            }
        }
        d.deserialize_any(Cell)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn cell(text: &str) -> Rows {
        Rows {
            columns: vec!["page".into()],
            rows: vec![vec![SqlValue::Text(text.into())]],
        }
    }

    #[test]
    fn decodes_every_json_scalar_exactly_and_sorts_by_seq() {
        let rows = decode(
            "t",
            &cell(r#"[["b\u0000\"é🦀", 9223372036854775807, null, 2], ["a", -9223372036854775808, 1.5, 1]]"#),
            4,
            3,
        )
        .unwrap();
        assert_eq!(
            rows,
            vec![
                vec![
                    "a".into(),
                    SqlValue::Integer(i64::MIN),
                    SqlValue::Real(1.5),
                    SqlValue::Integer(1)
                ],
                vec![
                    "b\0\"é🦀".into(),
                    SqlValue::Integer(i64::MAX),
                    SqlValue::Null,
                    SqlValue::Integer(2)
                ],
            ]
        );
        assert_eq!(
            decode("t", &cell("[]"), 4, 3).unwrap(),
            Vec::<Vec<SqlValue>>::new()
        );
        // A size probe's rows: `[_seq, bytes]`, ordered by `_seq`.
        let probe = decode("t", &cell("[[2, 10], [1, 500]]"), 2, 0).unwrap();
        assert_eq!(probe[0], vec![SqlValue::Integer(1), SqlValue::Integer(500)]);
    }

    #[test]
    fn other_shapes_are_protocol_errors() {
        let wrong = [
            cell("[[1, 2]]"),
            cell("[[1, 2, 3, 9223372036854775808]]"),
            cell("[[true, 1, 2, 3]]"),
            cell("[[[1], 1, 2, 3]]"),
            cell("{\"a\": 1}"),
            cell("[[1, 2, 3, 4]"),
            Rows {
                columns: vec![],
                rows: vec![],
            },
            Rows {
                columns: vec!["page".into()],
                rows: vec![vec![SqlValue::Integer(1)]],
            },
        ];
        for answer in &wrong {
            match decode("t", answer, 4, 3) {
                Err(Error::Protocol(m)) => assert!(m.starts_with("pull page of t: "), "{m}"),
                other => panic!("{answer:?} gave {other:?}"),
            }
        }
    }
}
