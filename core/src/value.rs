//! SQL values, statements and result sets: the common currency of the local
//! stores ([`crate::store`]) and the Hrana client ([`crate::hrana`]).
//!
//! Statements only ever carry positional arguments (`?`), which every server
//! we target binds the same way.

/// One SQLite value.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum SqlValue {
    Null,
    /// A 64-bit signed integer (exact over the whole range).
    Integer(i64),
    /// A finite IEEE 754 double (NaN and infinities are refused on write).
    Real(f64),
    /// UTF-8 text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

impl SqlValue {
    /// The value as an integer, if it is one.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            SqlValue::Integer(v) => Some(*v),
            _ => None,
        }
    }

    /// The value as text, if it is text.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            SqlValue::Text(v) => Some(v),
            _ => None,
        }
    }

    /// SQLite's name of the value's storage class, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            SqlValue::Null => "NULL",
            SqlValue::Integer(_) => "INTEGER",
            SqlValue::Real(_) => "REAL",
            SqlValue::Text(_) => "TEXT",
            SqlValue::Blob(_) => "BLOB",
        }
    }

    /// Approximate encoded size in bytes, used to keep requests under server limits.
    pub fn approx_size(&self) -> usize {
        match self {
            SqlValue::Null | SqlValue::Integer(_) | SqlValue::Real(_) => 24,
            SqlValue::Text(v) => v.len() + 24,
            SqlValue::Blob(v) => v.len() * 4 / 3 + 24,
        }
    }
}

/// Lowercase hex of `bytes` (how blobs appear in JSON on every face).
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes of lowercase hex text; `None` for anything else (odd length,
/// uppercase, other characters).
pub fn from_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect()
}

impl From<i32> for SqlValue {
    fn from(v: i32) -> Self {
        SqlValue::Integer(v.into())
    }
}

impl From<f64> for SqlValue {
    fn from(v: f64) -> Self {
        SqlValue::Real(v)
    }
}

impl From<Vec<u8>> for SqlValue {
    fn from(v: Vec<u8>) -> Self {
        SqlValue::Blob(v)
    }
}

impl From<&[u8]> for SqlValue {
    fn from(v: &[u8]) -> Self {
        SqlValue::Blob(v.to_vec())
    }
}

/// `None` is NULL.
impl<T: Into<SqlValue>> From<Option<T>> for SqlValue {
    fn from(v: Option<T>) -> Self {
        v.map_or(SqlValue::Null, Into::into)
    }
}

impl From<i64> for SqlValue {
    fn from(v: i64) -> Self {
        SqlValue::Integer(v)
    }
}

impl From<bool> for SqlValue {
    fn from(v: bool) -> Self {
        SqlValue::Integer(i64::from(v))
    }
}

impl From<&str> for SqlValue {
    fn from(v: &str) -> Self {
        SqlValue::Text(v.to_owned())
    }
}

impl From<String> for SqlValue {
    fn from(v: String) -> Self {
        SqlValue::Text(v)
    }
}

/// A SQL statement with positional arguments.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct Statement {
    /// One SQL statement with positional placeholders (`?`, `?NNN`).
    pub sql: String,
    /// The values bound to the placeholders, in order.
    pub args: Vec<SqlValue>,
}

impl Statement {
    /// A statement with arguments bound in order to its `?` placeholders.
    pub fn new(sql: impl Into<String>, args: Vec<SqlValue>) -> Self {
        Statement {
            sql: sql.into(),
            args,
        }
    }

    /// A statement without arguments.
    pub fn plain(sql: impl Into<String>) -> Self {
        Statement::new(sql, Vec::new())
    }
}

/// The rows a statement returned (empty for statements without `RETURNING`).
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct Rows {
    /// Column names, in the statement's order.
    pub columns: Vec<String>,
    /// One list of values per row, in the order of `columns`.
    pub rows: Vec<Vec<SqlValue>>,
}
