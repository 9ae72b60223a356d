//! UniFFI bindings of Erth Sync: placeholder until the bindings-mobile issue lands.
