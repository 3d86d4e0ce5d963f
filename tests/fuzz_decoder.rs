//! Property tests of the payload decoder, the fuzz target where `cargo fuzz` (nightly) is not
//! at hand: arbitrary text, YAML-shaped noise and mutated valid documents never panic and are
//! either served or rejected with a reason; JSON values survive strict decoding from JSON and
//! from YAML. `cargo test --test fuzz_decoder` runs 256 cases per property (what CI runs); a
//! longer run: `EXECWATCH_FUZZ_CASES=100000 cargo test --release --test fuzz_decoder`.

mod common;

use execwatch::decode::strict;
use execwatch::fixtures::{Cm, Doc};
use proptest::prelude::*;
use serde_json::Value;

fn config() -> ProptestConfig {
    let cases = std::env::var("EXECWATCH_FUZZ_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(256);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// Decodes `text` as an execution ConfigMap's `key`: a verdict, whatever the text.
fn verdict(key: &str, text: &str) {
    let registry = common::registry();
    match registry.decode(&Cm::new("ns", "fuzz").data(key, text).build()) {
        Ok(_) => {}
        Err(rejection) => {
            assert!(!rejection.reasons.is_empty(), "a rejection has a reason");
            for reason in &rejection.reasons {
                assert!(reason.message.len() < 1024, "a bounded message: {} bytes", reason.message.len());
            }
        }
    }
}

/// JSON values without floats (whose text forms need not round-trip exactly).
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "[ -~]{0,16}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,6}", inner, 0..8).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_text_gets_a_verdict(text in "\\PC{0,400}") {
        verdict("execution.yaml", &text);
        verdict("execution.json", &text);
    }

    #[test]
    fn yaml_shaped_noise_gets_a_verdict(text in "[\\[\\]{}:,\\- \n&*!|>'\"#a-z0-9]{0,400}") {
        verdict("execution.yaml", &text);
    }

    #[test]
    fn mutated_documents_get_a_verdict(cut in 0usize..600, insert in "[\\[\\]{}:,\\- \n&*!|>'\"#a-z0-9]{0,8}") {
        let mut doc = Doc::new("web").yaml();
        let at = (0..=cut.min(doc.len())).rev().find(|i| doc.is_char_boundary(*i)).unwrap_or(0);
        doc.insert_str(at, &insert);
        verdict("execution.yaml", &doc);
    }

    #[test]
    fn json_values_decode_strictly_from_json_and_yaml(value in json_value()) {
        let text = serde_json::to_string(&value).unwrap();
        prop_assert_eq!(strict::json(&text).unwrap(), value.clone());
        prop_assert_eq!(strict::yaml(&text).unwrap(), value);
    }
}
