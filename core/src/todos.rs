//! The typed todo API of the original design, a thin layer over the generic
//! row API of [`Database`] and the built-in `todos` table.

use crate::db::Database;
use crate::error::{Error, Result};
use crate::row::SyncRow;
use crate::store::{StoreError, StoreErrorKind};
use crate::value::{SqlValue, Statement};

const TABLE: &str = "todos";

/// One todo as apps see it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
#[cfg_attr(
    feature = "js",
    derive(serde::Serialize, tsify::Tsify),
    serde(rename_all = "camelCase")
)]
pub struct Todo {
    /// UUIDv7, lowercase hyphenated.
    pub id: String,
    pub title: String,
    #[cfg_attr(feature = "js", serde(rename = "completed"))]
    pub is_completed: bool,
    /// ms since the epoch.
    pub created_at: i64,
    /// ms since the epoch of the newest change.
    pub updated_at: i64,
}

impl Database {
    /// Adds a todo; returns it.
    pub async fn add_todo(&self, title: &str) -> Result<Todo> {
        let row = self.insert_row(TABLE, &[("title", title.into())]).await?;
        self.todo_from_row(row)
    }

    /// Live todos, newest first.
    pub async fn list_active_todos(&self) -> Result<Vec<Todo>> {
        // Only the five columns a Todo shows: no clocks to parse.
        let rows = self
            .store
            .query(&Statement::plain(format!(
                "SELECT \"id\", \"title\", \"is_completed\", \"created_at\", \"updated_at\" \
                 FROM \"_erth_rows_todos\" WHERE \"is_deleted\" = 0 AND {} \
                 ORDER BY \"created_at\" DESC, \"id\" DESC",
                self.table(TABLE)?.visible_sql()
            )))
            .await?;
        rows.rows.into_iter().map(todo_from_cells).collect()
    }

    /// The todo with that id; `NotFound` when unknown or deleted.
    pub async fn get_todo(&self, id: &str) -> Result<Todo> {
        match self.get_row(TABLE, id).await? {
            Some(row) if !row.is_deleted => self.todo_from_row(row),
            _ => Err(Error::NotFound {
                table: TABLE.into(),
                id: id.into(),
            }),
        }
    }

    /// Renames a todo; returns it.
    pub async fn rename_todo(&self, id: &str, title: &str) -> Result<Todo> {
        self.update(TABLE, id, &[("title", title.into())]).await?;
        self.get_todo(id).await
    }

    /// Marks a todo completed or not; returns it.
    pub async fn set_todo_completed(&self, id: &str, completed: bool) -> Result<Todo> {
        self.update(TABLE, id, &[("is_completed", completed.into())])
            .await?;
        self.get_todo(id).await
    }

    /// Deletes a todo (tombstone); `false` when missing or already deleted.
    pub async fn delete_todo(&self, id: &str) -> Result<bool> {
        self.delete(TABLE, id).await
    }

    /// A todos row as a [`Todo`], finding `title` and `is_completed` by
    /// name: an app's schema may declare the table's columns in any order.
    fn todo_from_row(&self, row: SyncRow) -> Result<Todo> {
        let def = self.table(TABLE)?;
        let value = |name: &str| {
            def.columns
                .iter()
                .position(|c| c.name == name)
                .and_then(|i| row.values.get(i))
        };
        match (value("title"), value("is_completed")) {
            (Some(SqlValue::Text(title)), Some(SqlValue::Integer(done))) => Ok(Todo {
                title: title.clone(),
                is_completed: *done != 0,
                id: row.id,
                created_at: row.created_at,
                updated_at: row.updated_at,
            }),
            _ => Err(Error::InvalidInput(format!("row {} is not a todo", row.id))),
        }
    }
}

fn todo_from_cells(cells: Vec<SqlValue>) -> Result<Todo> {
    match <[SqlValue; 5]>::try_from(cells) {
        Ok(
            [SqlValue::Text(id), SqlValue::Text(title), SqlValue::Integer(done), SqlValue::Integer(created_at), SqlValue::Integer(updated_at)],
        ) => Ok(Todo {
            id,
            title,
            is_completed: done != 0,
            created_at,
            updated_at,
        }),
        _ => Err(Error::Storage(StoreError::new(
            StoreErrorKind::Corrupt,
            "a todos row has unexpected types",
        ))),
    }
}
