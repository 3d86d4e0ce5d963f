//! Any text as an execution ConfigMap's document, YAML and JSON: a verdict, never a panic, and a
//! rejection always says why, briefly. The same property as `tests/fuzz_decoder.rs`, driven by
//! libFuzzer's coverage instead of proptest's strategies.
#![no_main]

use std::path::Path;
use std::sync::LazyLock;

use execwatch::fixtures::Cm;
use execwatch::decode::{Limits, SchemaRegistry};
use libfuzzer_sys::fuzz_target;

static REGISTRY: LazyLock<SchemaRegistry> = LazyLock::new(|| {
    let schemas = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas");
    SchemaRegistry::load(&schemas, Limits::default()).expect("the shipped schemas compile")
});

fuzz_target!(|data: &[u8]| {
    // ConfigMap data is text; invalid UTF-8 is refused before the decoder sees it.
    let Ok(text) = std::str::from_utf8(data) else { return };
    for key in ["execution.yaml", "execution.json"] {
        if let Err(rejection) = REGISTRY.decode(&Cm::new("ns", "fuzz").data(key, text).build()) {
            assert!(!rejection.reasons.is_empty(), "a rejection has a reason");
            for reason in &rejection.reasons {
                assert!(reason.message.len() < 1024, "a bounded message: {} bytes", reason.message.len());
            }
        }
    }
});
