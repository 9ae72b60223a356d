//! `cargo run -p uniffi-bindgen -- generate --library <liberth_mobile.so>
//! --language kotlin|swift --out-dir <dir>`: UniFFI's bindings generator,
//! pinned to the same uniffi version as `erth-mobile` (the generated code and
//! the scaffolding in the library must match).

fn main() {
    uniffi::uniffi_bindgen_main()
}
