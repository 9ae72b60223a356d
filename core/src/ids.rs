//! Row ids: UUIDv7 (RFC 9562) from the `uuid` crate, as canonical lowercase
//! hyphenated text.
//!
//! [`new_id`] draws from one process-wide [`uuid::ContextV7`], whose counter
//! makes ids generated in one process strictly increasing even within one
//! millisecond. On wasm the timestamp comes from JS (`uuid` feature `js`).
//! [`parse_id`] is the gate for ids that come from users or servers.

use std::sync::Mutex;
use uuid::{ContextV7, Timestamp, Uuid};

static CONTEXT: Mutex<Option<ContextV7>> = Mutex::new(None);
static LAST: Mutex<Option<Uuid>> = Mutex::new(None);

/// A new row id, strictly greater than every id this process made before.
pub fn new_id() -> String {
    new_uuid().hyphenated().to_string()
}

/// A new UUIDv7, strictly greater than every one this process made before.
pub fn new_uuid() -> Uuid {
    let mut ctx = CONTEXT.lock().unwrap_or_else(|p| p.into_inner());
    let ctx = ctx.get_or_insert_with(ContextV7::new);
    let mut id = Uuid::new_v7(Timestamp::now(&*ctx));
    // The context's counter keeps ids ordered; this guard also covers a wall
    // clock stepping backwards by re-drawing from the last id's millisecond.
    let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(prev) = *last {
        if id <= prev {
            id = successor(prev);
        }
    }
    *last = Some(id);
    id
}

/// The next UUIDv7 after `prev`: same bits + 1 in the counter/random field,
/// keeping version and variant.
fn successor(prev: Uuid) -> Uuid {
    let v = prev.as_u128();
    // Layout: 48 bits ms | 4 version | 12 rand_a | 2 variant | 62 rand_b.
    let rand_b = v & ((1u128 << 62) - 1);
    let rand_a = (v >> 64) & 0xfff;
    let ms = v >> 80;
    let (ms, rand_a, rand_b) = if rand_b < (1u128 << 62) - 1 {
        (ms, rand_a, rand_b + 1)
    } else if rand_a < 0xfff {
        (ms, rand_a + 1, 0)
    } else {
        (ms + 1, 0, 0)
    };
    Uuid::from_u128((ms << 80) | (0x7u128 << 76) | (rand_a << 64) | (0b10u128 << 62) | rand_b)
}

/// Checks that `text` is a canonical (lowercase, hyphenated) UUIDv7 with the
/// RFC variant, as every row id must be.
pub fn parse_id(text: &str) -> Result<Uuid, String> {
    let id = Uuid::try_parse(text).map_err(|_| format!("{:?} is not a UUID", clip_id(text)))?;
    if id.hyphenated().to_string() != text {
        return Err(format!(
            "{:?} is not in canonical lowercase hyphenated form",
            clip_id(text)
        ));
    }
    if id.get_version_num() != 7 || id.get_variant() != uuid::Variant::RFC4122 {
        return Err(format!("{text} is not a UUIDv7"));
    }
    Ok(id)
}

fn clip_id(text: &str) -> String {
    crate::error::clip(text, 64)
}

#[cfg(test)]
mod tests {
    use super::*;
    // On wasm these vectors run in Node through wasm-bindgen-test.
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn hundred_thousand_ids_strictly_increase() {
        let mut prev = new_uuid();
        for _ in 0..100_000 {
            let id = new_uuid();
            assert!(id > prev, "{id} after {prev}");
            assert_eq!(id.get_version_num(), 7);
            assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
            prev = id;
        }
    }

    #[test]
    fn text_order_is_id_order() {
        let a = new_id();
        let b = new_id();
        assert!(a < b);
        assert_eq!(a.len(), 36);
        assert_eq!(a, a.to_lowercase());
        parse_id(&a).unwrap();
    }

    #[test]
    fn successor_keeps_version_and_variant_and_increases() {
        for prev in [
            new_uuid(),
            Uuid::from_u128(
                (1u128 << 80)
                    | (0x7u128 << 76)
                    | (0xfffu128 << 64)
                    | (0b10u128 << 62)
                    | ((1u128 << 62) - 1),
            ),
        ] {
            let next = successor(prev);
            assert!(next > prev);
            assert_eq!(next.get_version_num(), 7);
            assert_eq!(next.get_variant(), uuid::Variant::RFC4122);
        }
    }

    #[test]
    fn parse_rejects_hostile_ids() {
        let v4 = Uuid::new_v4().to_string();
        let upper = new_id().to_uppercase();
        for bad in [
            "",
            "x",
            "'; DROP TABLE todos; --",
            &v4,
            &upper,
            "00000000-0000-0000-0000-000000000000",
        ] {
            assert!(parse_id(bad).is_err(), "{bad} accepted");
        }
    }
}
