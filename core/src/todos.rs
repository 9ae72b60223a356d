//! The typed todo API of the original design, a thin layer over the generic
//! row API of [`Database`] and the built-in `todos` table.

use crate::db::Database;
use crate::error::{Error, Result};
use crate::row::SyncRow;
use crate::value::SqlValue;

const TABLE: &str = "todos";

/// One todo as apps see it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Todo {
    pub id: String,
    pub title: String,
    pub is_completed: bool,
    /// ms since the epoch.
    pub created_at: i64,
    /// ms since the epoch of the newest change.
    pub updated_at: i64,
}

impl TryFrom<SyncRow> for Todo {
    type Error = Error;

    fn try_from(row: SyncRow) -> Result<Todo> {
        match (row.values.first(), row.values.get(1)) {
            (Some(SqlValue::Text(title)), Some(SqlValue::Integer(done))) => Ok(Todo {
                id: row.id,
                title: title.clone(),
                is_completed: *done != 0,
                created_at: row.created_at,
                updated_at: row.updated_at,
            }),
            _ => Err(Error::InvalidInput(format!("row {} is not a todo", row.id))),
        }
    }
}

impl Database {
    /// Adds a todo; returns it.
    pub async fn add_todo(&self, title: &str) -> Result<Todo> {
        let id = self.insert(TABLE, &[("title", title.into())]).await?;
        self.get_todo(&id).await
    }

    /// Live todos, newest first.
    pub async fn list_active_todos(&self) -> Result<Vec<Todo>> {
        self.list_live(TABLE)
            .await?
            .into_iter()
            .map(Todo::try_from)
            .collect()
    }

    /// The todo with that id; `NotFound` when unknown or deleted.
    pub async fn get_todo(&self, id: &str) -> Result<Todo> {
        match self.get_row(TABLE, id).await? {
            Some(row) if !row.is_deleted => Todo::try_from(row),
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
}
