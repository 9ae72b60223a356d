//! Nothing: the crate's product is its binary (`src/main.rs`). This empty
//! library lets `erth-mobile` name the crate as a build-dependency (never
//! built: that crate has no build script), so maturin's sdist of the
//! Python package carries the pinned generator its build runs (`cargo run
//! --bin uniffi-bindgen`).
