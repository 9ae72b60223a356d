//! The records and enums the hosts see. Field names are snake_case here;
//! UniFFI turns them into camelCase for Kotlin and Swift (`authToken`,
//! `isCompleted`, ...).
//!
//! Everything the engine returns or takes is the core's own type, re-exported
//! below: `erth-core`'s feature `uniffi` puts the UniFFI derives on them (they
//! live in the `erth_core` UniFFI namespace), so a field added to the core
//! reaches Kotlin, Swift and Python with no change here.
//!
//! Defined here, because it cannot be shared that way: [`ErthConfig`], the
//! open options. The core's [`erth_core::Config`] holds what is no FFI type
//! (`TableDef`s, a `RetryPolicy`, `usize` sizes) and no path; a host gives the
//! file path and the schema as JSON text (the format every face uses,
//! [`erth_core::schema::json`]). The error ([`crate::ErthError`]) is the
//! other one, for the reason given in [`crate::error`].

pub use erth_core::purge::{PurgeReport, TablePurge};
pub use erth_core::status::QuarantinedRow;
pub use erth_core::subscription::SyncSubscription;
pub use erth_core::{
    AutoSyncOptions, ChangeEvent, ChangeOrigin, ErrorKind, ExecuteResult, RejectedRow, Rows,
    SqlValue, Statement, SyncReport, SyncStatus, TableRefusal, Todo,
};
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
    /// Allow plain `http://` to hosts other than this machine (127.0.0.1,
    /// ::1, localhost): the token would travel in clear text (the
    /// encryption key never does).
    #[uniffi(default = false)]
    pub allow_insecure_http: bool,
    /// The synced tables, as the schema's JSON text (`{"tables": {"notes":
    /// {"columns": {"title": {"type": "text", "notNull": true}}}}}`, see
    /// the README). `None`: the built-in `todos` table. A schema that is
    /// not additive over the file's gives `SchemaChange`; a malformed one
    /// `InvalidInput`.
    #[uniffi(default = None)]
    pub schema: Option<String>,
    /// The key of a Turso database encrypted with your own key, sent as
    /// `x-turso-encryption-key` on every request to `url`'s origin only
    /// (never over plain `http://` to another machine); never logged or
    /// shown.
    #[uniffi(default = None)]
    pub encryption_key: Option<String>,
    /// Sync in the background (`AutoSyncOptions()`: 500 ms after the last
    /// local write, every 30 s, at once when `setOnline(true)`), reporting
    /// in `status()`. `None`: only when `sync()` is called.
    #[uniffi(default = None)]
    pub auto_sync: Option<AutoSyncOptions>,
    /// How long one request to the server may take (ms) before it fails
    /// with `Network`: a server that accepts connections and never answers
    /// costs one request timeout. `None`: 30,000.
    #[uniffi(default = None)]
    pub request_timeout_ms: Option<u64>,
    /// The most one sync may take (ms), after which it stops with
    /// `Network`, keeping what it committed (the next sync resumes).
    /// `0`: no limit. `None`: 600,000 (10 minutes).
    #[uniffi(default = None)]
    pub sync_timeout_ms: Option<u64>,
    /// How long a read or write waits (ms) for a writer before failing
    /// with `DatabaseLocked`: another open write transaction of this
    /// handle (`writeTransaction`), or another process's write lock on the
    /// file. `None`: 5,000.
    #[uniffi(default = None)]
    pub lock_timeout_ms: Option<u64>,
    /// The keys of the schema's end-to-end encrypted columns (`"encrypted":
    /// true`): 32 bytes each, the one that seals new values first (the
    /// others still open old values). Required when a column is encrypted
    /// (`InvalidInput` otherwise); never logged or shown.
    #[uniffi(default = [])]
    pub column_keys: Vec<Vec<u8>>,
    /// The 32-byte key of the local file, encrypted at rest (SQLCipher 4;
    /// `fileKeyFromRecoveryPhrase` gives one from a phrase): a new file is
    /// created encrypted, an existing one must have this key (`WrongKey`
    /// otherwise, the file untouched); `changeFileKey` converts a file.
    /// `None`: a plain file. Never logged or shown.
    #[uniffi(default = None)]
    pub file_key: Option<Vec<u8>>,
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
            .field(
                "schema",
                &self.schema.as_ref().map(|s| format!("<{} bytes>", s.len())),
            )
            .field(
                "encryption_key",
                &self.encryption_key.as_ref().map(|_| "<redacted>"),
            )
            .field("auto_sync", &self.auto_sync)
            .field("request_timeout_ms", &self.request_timeout_ms)
            .field("sync_timeout_ms", &self.sync_timeout_ms)
            .field("lock_timeout_ms", &self.lock_timeout_ms)
            .field(
                "column_keys",
                &format!("<{} keys redacted>", self.column_keys.len()),
            )
            .field("file_key", &self.file_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl fmt::Debug for ErthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl ErthConfig {
    /// The core configuration (defaults for everything the bindings do not
    /// expose). Errors: `InvalidSchema` (so `InvalidInput`) for a malformed schema.
    pub(crate) fn to_core(&self) -> erth_core::Result<erth_core::Config> {
        let defaults = erth_core::Config::default();
        let config = erth_core::Config {
            url: self.url.clone(),
            auth_token: self.auth_token.clone(),
            allow_insecure_http: self.allow_insecure_http,
            encryption_key: self.encryption_key.clone(),
            auto_sync: self.auto_sync,
            request_timeout_ms: self
                .request_timeout_ms
                .unwrap_or(defaults.request_timeout_ms),
            sync_timeout_ms: self.sync_timeout_ms.unwrap_or(defaults.sync_timeout_ms),
            lock_timeout_ms: self.lock_timeout_ms.unwrap_or(defaults.lock_timeout_ms),
            column_keys: if self.column_keys.is_empty() {
                None
            } else {
                Some(erth_core::encrypted::ColumnKeys::new(&self.column_keys)?)
            },
            file_key: self
                .file_key
                .as_deref()
                .map(erth_core::file_key::FileKey::from_slice)
                .transpose()?,
            ..defaults
        };
        match &self.schema {
            Some(schema) => config.with_schema_json(schema),
            None => Ok(config),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_output_never_shows_the_token_or_the_key() {
        let config = ErthConfig {
            path: "/data/todos.db".into(),
            url: Some("libsql://db.example.io?authToken=url-s3cret&x=1".into()),
            auth_token: Some("field-s3cret".into()),
            allow_insecure_http: false,
            schema: None,
            encryption_key: Some("key-s3cret".into()),
            auto_sync: None,
            request_timeout_ms: None,
            sync_timeout_ms: None,
            lock_timeout_ms: None,
            column_keys: Vec::new(),
            file_key: None,
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
        let mut config = ErthConfig {
            path: "p".into(),
            url: Some("http://127.0.0.1:1".into()),
            auth_token: Some("t".into()),
            allow_insecure_http: true,
            schema: None,
            encryption_key: Some("k".into()),
            auto_sync: Some(AutoSyncOptions::default()),
            request_timeout_ms: None,
            sync_timeout_ms: None,
            lock_timeout_ms: None,
            column_keys: Vec::new(),
            file_key: None,
        };
        let core = config.to_core().expect("no schema");
        assert!(core.column_keys.is_none());
        let keyed = ErthConfig {
            column_keys: vec![vec![9; 32]],
            ..config.clone()
        };
        assert_eq!(
            keyed
                .to_core()
                .expect("a key")
                .column_keys
                .map(|k| k.ids().len()),
            Some(1)
        );
        assert!(!format!("{keyed}").contains("9, 9"), "{keyed}");
        let short = ErthConfig {
            column_keys: vec![vec![9; 31]],
            ..config.clone()
        };
        assert!(short.to_core().is_err());
        let at_rest = ErthConfig {
            file_key: Some(vec![171; 32]),
            ..config.clone()
        };
        assert_eq!(
            at_rest.to_core().expect("a file key").file_key,
            Some(erth_core::file_key::FileKey::from_bytes([171; 32]))
        );
        for text in [format!("{at_rest}"), format!("{at_rest:?}")] {
            assert!(!text.contains("171"), "{text}");
            assert!(text.contains("file_key: Some(\"<redacted>\")"), "{text}");
        }
        let short_file_key = ErthConfig {
            file_key: Some(vec![1; 16]),
            ..config.clone()
        };
        assert_eq!(
            short_file_key.to_core().map(|_| ()).map_err(|e| e.kind()),
            Err(erth_core::ErrorKind::InvalidInput)
        );
        let defaults = erth_core::Config::default();
        assert_eq!(core.request_timeout_ms, defaults.request_timeout_ms);
        assert_eq!(core.sync_timeout_ms, defaults.sync_timeout_ms);
        assert_eq!(core.lock_timeout_ms, defaults.lock_timeout_ms);
        let timed = ErthConfig {
            request_timeout_ms: Some(1_500),
            sync_timeout_ms: Some(0),
            lock_timeout_ms: Some(250),
            ..config.clone()
        }
        .to_core()
        .expect("no schema");
        assert_eq!(
            (
                timed.request_timeout_ms,
                timed.sync_timeout_ms,
                timed.lock_timeout_ms
            ),
            (1_500, 0, 250)
        );
        assert_eq!(core.auto_sync, Some(AutoSyncOptions::default()));
        assert_eq!(core.url.as_deref(), Some("http://127.0.0.1:1"));
        assert_eq!(core.auth_token.as_deref(), Some("t"));
        assert_eq!(core.encryption_key.as_deref(), Some("k"));
        assert!(core.allow_insecure_http);
        assert_eq!(core.tables, erth_core::Config::default().tables);

        config.schema =
            Some(r#"{"tables": {"notes": {"columns": {"body": {"type": "text"}}}}}"#.into());
        let core = config.to_core().expect("valid schema");
        assert_eq!(core.tables.len(), 1);
        assert_eq!(core.tables[0].name, "notes");

        config.schema =
            Some(r#"{"tables": {"notes": {"columns": {"id": {"type": "text"}}}}}"#.into());
        let err = config.to_core().expect_err("id is the engine's column");
        assert_eq!(err.kind(), erth_core::ErrorKind::InvalidInput);
    }
}
