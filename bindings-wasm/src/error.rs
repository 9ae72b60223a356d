//! Core errors as JS `ErthError`s (the class lives in `js/errors.js`, shared
//! with the main-thread API), and the panic hook.

use erth_core::Error;
use wasm_bindgen::prelude::*;

#[wasm_bindgen(module = "/js/errors.js")]
extern "C" {
    /// `class ErthError extends Error { code; serverCode? }`.
    #[wasm_bindgen(extends = js_sys::Error)]
    #[derive(Debug, Clone)]
    pub type ErthError;

    #[wasm_bindgen(constructor)]
    fn new(code: &str, message: &str, server_code: Option<String>) -> ErthError;

    #[wasm_bindgen(method, getter)]
    pub fn code(this: &ErthError) -> String;

    #[wasm_bindgen(method, getter, js_name = serverCode)]
    pub fn server_code(this: &ErthError) -> Option<String>;
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = console, js_name = error)]
    pub(crate) fn console_error(message: &str);
}

/// An `ErthError` for a core error (core errors never hold the token).
pub(crate) fn to_js(e: &Error) -> JsValue {
    ErthError::new(
        e.kind().as_str(),
        &e.to_string(),
        e.server_code().map(str::to_owned),
    )
    .into()
}

/// An `Internal` error (a bug).
pub(crate) fn internal(message: &str) -> JsValue {
    ErthError::new("Internal", message, None).into()
}

/// An `InvalidInput` error about an argument.
pub(crate) fn invalid(message: impl AsRef<str>) -> JsValue {
    to_js(&Error::InvalidInput(message.as_ref().to_owned()))
}

/// Reports panics on the console (the default hook prints nowhere on wasm).
#[wasm_bindgen(start)]
fn start() -> Result<(), JsValue> {
    std::panic::set_hook(Box::new(|info| {
        console_error(&format!(
            "erth-sync: internal error (a bug; please report it): {info}"
        ));
    }));
    Ok(())
}
