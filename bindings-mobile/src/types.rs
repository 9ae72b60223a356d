//! The records and enums Kotlin and Swift see, and their conversions from
//! the core types. Field names are snake_case here; UniFFI turns them into
//! camelCase (`authToken`, `isCompleted`, ...).

use std::fmt;

/// How to open a database: where the local file is and, optionally, which
/// server to sync with.
///
/// Its `Debug`/`Display` (and so Kotlin's `toString()` and Swift's
/// `description`/`debugDescription`) never show the token, and show the URL
/// without an `authToken` query parameter.
#[derive(Clone, PartialEq, Eq, uniffi::Record)]
#[uniffi::export(Debug, Display)]
pub struct ErthConfig {
    /// Path of the local SQLite file (created if missing). One open handle
    /// per file at a time.
    pub path: String,
    /// Server URL: `libsql://host`, `https://host`, or `http://` for local
    /// and private development servers. `None`: local-only until
    /// `setRemote` is called.
    #[uniffi(default = None)]
    pub url: Option<String>,
    /// Bearer token for the server (also accepted as an `authToken` query
    /// parameter of `url`).
    #[uniffi(default = None)]
    pub auth_token: Option<String>,
    /// Allow `http://` to public hosts (the token would travel in clear text).
    #[uniffi(default = false)]
    pub allow_insecure_http: bool,
}

impl fmt::Display for ErthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = self.url.as_deref().map(|url| {
            erth_core::Endpoint::parse(url, true)
                .map(|(endpoint, _token)| endpoint.display_url())
                .unwrap_or_else(|_| "<invalid URL>".to_owned())
        });
        f.debug_struct("ErthConfig")
            .field("path", &self.path)
            .field("url", &url)
            .field(
                "auth_token",
                &self.auth_token.as_ref().map(|_| "<redacted>"),
            )
            .field("allow_insecure_http", &self.allow_insecure_http)
            .finish()
    }
}

impl fmt::Debug for ErthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl ErthConfig {
    /// The core configuration (defaults for everything the mobile API does not expose).
    pub(crate) fn to_core(&self) -> erth_core::Config {
        erth_core::Config {
            url: self.url.clone(),
            auth_token: self.auth_token.clone(),
            allow_insecure_http: self.allow_insecure_http,
            ..erth_core::Config::default()
        }
    }
}

/// One todo.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Todo {
    /// UUIDv7, lowercase hyphenated.
    pub id: String,
    pub title: String,
    pub is_completed: bool,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    /// Milliseconds since the Unix epoch of the newest change.
    pub updated_at: i64,
}

impl From<erth_core::Todo> for Todo {
    fn from(t: erth_core::Todo) -> Self {
        Todo {
            id: t.id,
            title: t.title,
            is_completed: t.is_completed,
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

/// What one `sync()` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct SyncReport {
    /// Local rows sent to the server.
    pub pushed: u64,
    /// Server rows received.
    pub pulled: u64,
    pub duration_ms: u64,
}

impl From<erth_core::SyncReport> for SyncReport {
    fn from(r: erth_core::SyncReport) -> Self {
        SyncReport {
            pushed: r.pushed,
            pulled: r.pulled,
            duration_ms: r.duration_ms,
        }
    }
}

/// Where a database stands.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SyncStatus {
    /// Rows with local changes the server has not acknowledged yet.
    pub pending_changes: u64,
    /// Wall-clock ms of the last successful sync.
    pub last_sync_at_ms: Option<u64>,
    /// The last sync's error message, cleared by a successful sync.
    pub last_error: Option<String>,
    /// A sync is running right now.
    pub syncing: bool,
    /// The server URL, without credentials.
    pub remote_url: Option<String>,
    /// Set when the server sent clocks further ahead than the allowed drift (by how much).
    pub clock_ahead_ms: Option<u64>,
}

impl From<erth_core::SyncStatus> for SyncStatus {
    fn from(s: erth_core::SyncStatus) -> Self {
        SyncStatus {
            pending_changes: s.pending_changes,
            last_sync_at_ms: s.last_sync_at_ms,
            last_error: s.last_error,
            syncing: s.syncing,
            remote_url: s.remote_url,
            clock_ahead_ms: s.clock_ahead_ms,
        }
    }
}

/// Who made a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum ChangeOrigin {
    /// A write through this database handle.
    Local,
    /// Rows pulled from the server by `sync()`.
    Remote,
}

/// Rows of one table that changed (already committed when listeners hear of it).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ChangeEvent {
    /// Table name (`todos`).
    pub table: String,
    /// Ids of the changed rows.
    pub ids: Vec<String>,
    pub origin: ChangeOrigin,
}

impl From<&erth_core::ChangeEvent> for ChangeEvent {
    fn from(e: &erth_core::ChangeEvent) -> Self {
        ChangeEvent {
            table: e.table.clone(),
            ids: e.ids.clone(),
            origin: match e.origin {
                erth_core::ChangeOrigin::Local => ChangeOrigin::Local,
                erth_core::ChangeOrigin::Remote => ChangeOrigin::Remote,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_output_never_shows_the_token() {
        let config = ErthConfig {
            path: "/data/todos.db".into(),
            url: Some("libsql://db.example.io?authToken=url-s3cret&x=1".into()),
            auth_token: Some("field-s3cret".into()),
            allow_insecure_http: false,
        };
        for text in [format!("{config}"), format!("{config:?}")] {
            assert!(!text.contains("s3cret"), "{text}");
            assert!(text.contains("/data/todos.db"), "{text}");
            assert!(text.contains("https://db.example.io/?x=1"), "{text}");
            assert!(text.contains("<redacted>"), "{text}");
        }
        let bad = ErthConfig {
            url: Some("not a url s3cret".into()),
            auth_token: None,
            ..config
        };
        let text = bad.to_string();
        assert!(
            !text.contains("s3cret") && text.contains("<invalid URL>"),
            "{text}"
        );
        assert!(text.contains("auth_token: None"), "{text}");
    }

    #[test]
    fn config_maps_onto_core_defaults() {
        let core = ErthConfig {
            path: "p".into(),
            url: Some("http://127.0.0.1:1".into()),
            auth_token: Some("t".into()),
            allow_insecure_http: true,
        }
        .to_core();
        assert_eq!(core.url.as_deref(), Some("http://127.0.0.1:1"));
        assert_eq!(core.auth_token.as_deref(), Some("t"));
        assert!(core.allow_insecure_http);
        assert_eq!(core.tables.len(), erth_core::Config::default().tables.len());
    }
}
