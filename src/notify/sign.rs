//! Signatures as Standard Webhooks specify them: `webhook-signature` holds `v1,<base64 of
//! HMAC-SHA256(key, "{webhook-id}.{webhook-timestamp}.{body}")>` for each key, space-separated,
//! so a receiver that knows any one of them verifies during a rotation.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// A subscription's signing keys: `whsec_` and the key's bytes in base64, as Standard Webhooks
/// write them, separated by white space. Never shown: `Debug` says how many there are.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKeys(Vec<Vec<u8>>);

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKeys({} keys)", self.0.len())
    }
}

/// Keys shorter than this are refused (Standard Webhooks' keys are 24 to 64 bytes).
const SHORTEST_KEY: usize = 24;

impl SigningKeys {
    /// Reads the keys; errors name a key by its position, never by its text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut keys = Vec::new();
        for (i, word) in text.split_whitespace().enumerate() {
            let n = i + 1;
            let encoded =
                word.strip_prefix("whsec_").ok_or_else(|| format!("signing key {n} does not start with whsec_"))?;
            let key = STANDARD.decode(encoded).map_err(|_| format!("signing key {n} is not base64 after whsec_"))?;
            if key.len() < SHORTEST_KEY {
                return Err(format!("signing key {n} has {} bytes: at least {SHORTEST_KEY} are needed", key.len()));
            }
            keys.push(key);
        }
        if keys.is_empty() {
            return Err("no signing key".to_owned());
        }
        Ok(SigningKeys(keys))
    }

    /// The `webhook-signature` header's value for this message.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let signatures = self.0.iter().map(|key| {
            let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
            mac.update(format!("{id}.{timestamp}.").as_bytes());
            mac.update(body);
            format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
        });
        signatures.collect::<Vec<_>>().join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::SigningKeys;

    #[test]
    fn signs_as_the_specification_s_example() {
        // Standard Webhooks' own test vector (its reference libraries share it).
        let keys = SigningKeys::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let signature = keys.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn every_key_signs_and_none_is_shown() {
        let one = format!("whsec_{}", base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [1u8; 32]));
        let two = format!("whsec_{}", base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [2u8; 32]));
        let keys = SigningKeys::parse(&format!("{one}\n{two}")).unwrap();
        assert_eq!(keys.sign("msg_1", 1, b"{}").split(' ').count(), 2);
        assert_eq!(format!("{keys:?}"), "SigningKeys(2 keys)");
        let refused = SigningKeys::parse(&format!("{one} nothex")).unwrap_err();
        assert_eq!(refused, "signing key 2 does not start with whsec_");
        assert!(SigningKeys::parse("whsec_c2hvcnQ=").unwrap_err().contains("at least 24"));
    }
}
