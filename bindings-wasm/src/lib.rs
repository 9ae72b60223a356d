//! WebAssembly bindings of Erth Sync: placeholder until the bindings-wasm issue lands.
