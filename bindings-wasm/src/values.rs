//! SQL parameters into wasm; rows and records go out ([`js`]) as the core
//! serializes them (its feature `js`: INTEGER → `number` when safe, else
//! `bigint`; BLOB → `Uint8Array`).
//!
//! Parameters: `null`/`undefined` → NULL; `boolean` → 1/0; a `number`
//! with an integer value (in the i64 range) → INTEGER, any other number →
//! REAL (core refuses NaN and infinities with `Sql`, as on every face);
//! `bigint` → INTEGER (range-checked); `string` → TEXT;
//! `Uint8Array`/`ArrayBuffer` → BLOB. Anything else is `InvalidInput`
//! naming the parameter (counted from 1).

use crate::error::invalid;
use erth_core::{SqlValue, Statement};
use js_sys::{Array, ArrayBuffer, Reflect, Uint8Array};
use serde::Serialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

#[wasm_bindgen(typescript_custom_section)]
const TS_PARAMS: &str = r#"
/**
 * A query parameter: `number` (an integer value binds as INTEGER, others as REAL), `bigint`
 * (64-bit signed range), `string`, `Uint8Array`/`ArrayBuffer` (BLOB), `boolean` (1/0), `null`
 * or `undefined` (NULL). Anything else rejects with `InvalidInput` naming the parameter.
 */
export type SqlParam = SqlValue | ArrayBuffer | boolean | undefined;
/** One statement of a transaction. */
export interface Statement { sql: string; params?: SqlParam[]; }
"#;

/// 2^63: integer-valued numbers in `[-2^63, 2^63)` fit an i64.
const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;

/// One parameter; `at` names it in errors ("parameter 2").
fn param(value: &JsValue, at: &dyn Fn() -> String) -> Result<SqlValue, JsValue> {
    if value.is_null() || value.is_undefined() {
        return Ok(SqlValue::Null);
    }
    if let Some(b) = value.as_bool() {
        return Ok(SqlValue::Integer(i64::from(b)));
    }
    if let Some(n) = value.as_f64() {
        return Ok(
            if n.fract() == 0.0 && (-TWO_POW_63..TWO_POW_63).contains(&n) {
                SqlValue::Integer(n as i64)
            } else {
                SqlValue::Real(n)
            },
        );
    }
    if value.is_bigint() {
        let digits = js_sys::BigInt::unchecked_from_js_ref(value)
            .to_string(10)
            .ok()
            .and_then(|s| s.as_string());
        return digits
            .and_then(|d| d.parse::<i64>().ok())
            .map(SqlValue::Integer)
            .ok_or_else(|| {
                invalid(format!(
                    "{} is a bigint outside the 64-bit signed range",
                    at()
                ))
            });
    }
    if let Some(s) = value.as_string() {
        return Ok(SqlValue::Text(s));
    }
    if let Some(bytes) = value.dyn_ref::<Uint8Array>() {
        return Ok(SqlValue::Blob(bytes.to_vec()));
    }
    if value.is_instance_of::<ArrayBuffer>() {
        return Ok(SqlValue::Blob(Uint8Array::new(value).to_vec()));
    }
    Err(invalid(format!(
        "{} must be null, undefined, a boolean, number, bigint, string, Uint8Array or ArrayBuffer, not {}",
        at(),
        value.js_typeof().as_string().unwrap_or_default()
    )))
}

fn params_at(params: &JsValue, prefix: &str) -> Result<Vec<SqlValue>, JsValue> {
    if params.is_null() || params.is_undefined() {
        return Ok(Vec::new());
    }
    if !Array::is_array(params) {
        return Err(invalid(format!("{prefix}params must be an array")));
    }
    Array::unchecked_from_js_ref(params)
        .iter()
        .enumerate()
        .map(|(i, v)| param(&v, &|| format!("{prefix}parameter {}", i + 1)))
        .collect()
}

/// The parameters of one statement (absent: none).
pub(crate) fn params_from_js(params: &JsValue) -> Result<Vec<SqlValue>, JsValue> {
    params_at(params, "")
}

/// `[{ sql, params }]` as statements.
pub(crate) fn statements_from_js(statements: &JsValue) -> Result<Vec<Statement>, JsValue> {
    if !Array::is_array(statements) {
        return Err(invalid("statements must be an array of { sql, params }"));
    }
    Array::unchecked_from_js_ref(statements)
        .iter()
        .enumerate()
        .map(|(i, stmt): (usize, JsValue)| {
            let prefix = format!("statement {}: ", i + 1);
            if !stmt.is_object() {
                return Err(invalid(format!(
                    "{prefix}must be an object {{ sql, params }}"
                )));
            }
            let get = |key: &str| {
                Reflect::get(&stmt, &JsValue::from_str(key))
                    .map_err(|_| invalid(format!("{prefix}cannot read {key}")))
            };
            let sql = get("sql")?
                .as_string()
                .ok_or_else(|| invalid(format!("{prefix}sql must be a string")))?;
            Ok(Statement::new(sql, params_at(&get("params")?, &prefix)?))
        })
        .collect()
}

/// `value` as plain JS data: `null` for none, objects rather than `Map`s,
/// numbers as numbers (the core keeps them under 2^53).
pub(crate) fn js<T: Serialize + ?Sized>(value: &T) -> Result<JsValue, JsValue> {
    let serializer = serde_wasm_bindgen::Serializer::new()
        .serialize_missing_as_null(true)
        .serialize_maps_as_objects(true);
    value
        .serialize(&serializer)
        .map_err(|e| crate::error::internal(&e.to_string()))
}
