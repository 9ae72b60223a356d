//! The npm face's shape of SQL values and result rows (feature `js`): how
//! they serialize through `serde-wasm-bindgen` (with
//! `serialize_missing_as_null` and `serialize_maps_as_objects`), and their
//! TypeScript declarations, emitted with the records' (which derive theirs).
//!
//! A row is a plain object keyed by column name (of two columns with one
//! name, the last one wins): INTEGER → `number` when it is a safe integer
//! (`Number.isSafeInteger`), else `bigint` (nothing is rounded); REAL →
//! `number`; TEXT → `string`; BLOB → `Uint8Array`; NULL → `null`.

use crate::value::{Rows, SqlValue};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TS_VALUES: &str = r#"
/** A value in a row: INTEGER → `number` when safe (`Number.isSafeInteger`), else `bigint`. */
export type SqlValue = null | number | bigint | string | Uint8Array;
/** A result row: column name → value (of two columns with one name, the last one wins). */
export type Row = Record<string, SqlValue>;
"#;

/// Largest integer a JS `number` holds exactly (`Number.MAX_SAFE_INTEGER`).
const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

impl Serialize for SqlValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            SqlValue::Null => s.serialize_none(),
            SqlValue::Integer(i) if (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(i) => {
                s.serialize_i64(*i)
            }
            // serde-wasm-bindgen makes every i128 a `bigint`.
            SqlValue::Integer(i) => s.serialize_i128(i128::from(*i)),
            SqlValue::Real(r) => s.serialize_f64(*r),
            SqlValue::Text(t) => s.serialize_str(t),
            // A `Uint8Array`.
            SqlValue::Blob(b) => s.serialize_bytes(b),
        }
    }
}

/// One row of [`Rows`], as a map from column name to value.
struct Row<'a> {
    columns: &'a [String],
    cells: &'a [SqlValue],
}

impl Serialize for Row<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.columns.len()))?;
        for (column, cell) in self.columns.iter().zip(self.cells) {
            map.serialize_entry(column, cell)?;
        }
        map.end()
    }
}

/// An array of row objects.
impl Serialize for Rows {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.rows.len()))?;
        for cells in &self.rows {
            seq.serialize_element(&Row {
                columns: &self.columns,
                cells,
            })?;
        }
        seq.end()
    }
}
