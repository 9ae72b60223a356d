//! [`SyncRow`]: one full row as it travels between a replica and the server,
//! and the validation every row from outside must pass before it touches a
//! database (types, nullability, sizes, ids, clocks).

use crate::hlc::Timestamp;
use crate::schema::TableDef;
use crate::value::SqlValue;

/// One row with every synced column; `values` and `clocks` follow the
/// [`TableDef`] order (`clocks` has one more entry: `is_deleted`'s).
#[derive(Debug, Clone, PartialEq)]
pub struct SyncRow {
    pub id: String,
    pub values: Vec<SqlValue>,
    pub is_deleted: bool,
    pub created_at: i64,
    pub updated_at: i64,
    pub clocks: Vec<Timestamp>,
}

impl SyncRow {
    /// Reads a row selected with [`TableDef::row_column_list`], validating
    /// every field; `cells` may carry extra trailing columns (`_seq`, `_dirty`).
    pub fn from_cells(def: &TableDef, cells: &[SqlValue]) -> Result<SyncRow, String> {
        let n = def.columns.len();
        let expected = 1 + n + 3 + n + 1;
        if cells.len() < expected {
            return Err(format!("expected {expected} columns, got {}", cells.len()));
        }
        let id = match &cells[0] {
            SqlValue::Text(t) => t.clone(),
            other => return Err(format!("id is {}, not TEXT", other.type_name())),
        };
        crate::ids::parse_id(&id)?;
        let values = cells[1..=n].to_vec();
        for (c, v) in def.columns.iter().zip(&values) {
            c.check(v).map_err(|e| format!("row {id}: {e}"))?;
        }
        let int = |i: usize, name: &str| -> Result<i64, String> {
            cells[i]
                .as_i64()
                .ok_or_else(|| format!("row {id}: {name} is {}, not INTEGER", cells[i].type_name()))
        };
        let is_deleted = match int(1 + n, "is_deleted")? {
            0 => false,
            1 => true,
            other => return Err(format!("row {id}: is_deleted is {other}, not 0 or 1")),
        };
        let created_at = int(2 + n, "created_at")?;
        let updated_at = int(3 + n, "updated_at")?;
        if created_at < 0 || updated_at < 0 {
            return Err(format!("row {id}: negative timestamp"));
        }
        let mut clocks = Vec::with_capacity(n + 1);
        for (i, col) in def.mergeable().enumerate() {
            let text = cells[4 + n + i]
                .as_str()
                .ok_or_else(|| format!("row {id}: clock of {col} is not TEXT"))?;
            clocks.push(
                Timestamp::parse(text).map_err(|e| format!("row {id}: clock of {col}: {e}"))?,
            );
        }
        Ok(SyncRow {
            id,
            values,
            is_deleted,
            created_at,
            updated_at,
            clocks,
        })
    }

    /// The row's cells in [`TableDef::row_columns`] order.
    pub fn to_cells(&self) -> Vec<SqlValue> {
        let mut out = Vec::with_capacity(5 + 2 * self.values.len());
        out.push(SqlValue::Text(self.id.clone()));
        out.extend(self.values.iter().cloned());
        out.push(SqlValue::from(self.is_deleted));
        out.push(SqlValue::Integer(self.created_at));
        out.push(SqlValue::Integer(self.updated_at));
        out.extend(self.clocks.iter().map(|c| SqlValue::Text(c.to_string())));
        out
    }

    /// This row with every user column cleared (see
    /// [`crate::schema::ColumnDef::cleared`]): what a tombstone holds.
    pub fn cleared(mut self, def: &TableDef) -> SyncRow {
        for (v, c) in self.values.iter_mut().zip(&def.columns) {
            *v = c.cleared();
        }
        self
    }

    /// Whether this row is a tombstone that still holds user data (written
    /// by an earlier release, or a column its writer did not declare).
    pub fn is_uncleared_tombstone(&self, def: &TableDef) -> bool {
        self.is_deleted
            && self
                .values
                .iter()
                .zip(&def.columns)
                .any(|(v, c)| *v != c.cleared())
    }

    /// The newest clock of the row.
    pub fn max_clock(&self) -> Option<Timestamp> {
        self.clocks.iter().max().copied()
    }

    /// Approximate encoded size, for chunking requests.
    pub fn approx_size(&self) -> usize {
        self.values.iter().map(SqlValue::approx_size).sum::<usize>() + 60 * (self.clocks.len() + 4)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hlc::NodeId;
    use crate::schema::todos_table;

    pub(crate) fn sample() -> SyncRow {
        let clk = Timestamp {
            hlc: 1 << 20,
            node: NodeId(9),
        };
        SyncRow {
            id: crate::ids::new_id(),
            values: vec!["a".into(), SqlValue::Integer(0)],
            is_deleted: false,
            created_at: 16,
            updated_at: 16,
            clocks: vec![clk; 3],
        }
    }

    #[test]
    fn cells_round_trip() {
        let def = todos_table();
        let row = sample();
        let mut cells = row.to_cells();
        assert_eq!(cells.len(), def.row_columns().len());
        cells.push(SqlValue::Integer(5)); // a trailing _seq is allowed
        assert_eq!(SyncRow::from_cells(&def, &cells).unwrap(), row);
    }

    #[test]
    fn hostile_rows_are_refused() {
        let def = todos_table();
        let good = sample().to_cells();
        let mut cases: Vec<(usize, SqlValue)> = vec![
            (0, "not-an-id".into()),
            (0, SqlValue::Integer(1)),
            (1, SqlValue::Null),
            (1, SqlValue::Integer(3)),
            (2, "x".into()),
            (3, SqlValue::Integer(2)),
            (4, SqlValue::Integer(-1)),
            (5, SqlValue::Real(1.0)),
            (6, "zzzz".into()),
            (8, SqlValue::Null),
        ];
        cases.push((
            1,
            SqlValue::Text("x".repeat(crate::schema::MAX_VALUE_BYTES + 1)),
        ));
        for (i, v) in cases {
            let mut cells = good.clone();
            cells[i] = v.clone();
            assert!(
                SyncRow::from_cells(&def, &cells).is_err(),
                "cell {i} = {v:?} accepted"
            );
        }
        assert!(SyncRow::from_cells(&def, &good[..5]).is_err());
    }
}
