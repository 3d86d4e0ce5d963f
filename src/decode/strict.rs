//! Strict decoding of YAML and JSON into `serde_json::Value`: a key that appears twice in one
//! mapping is an error naming the key and where it is, as Kubernetes' strict decoding and YAML 1.2
//! require, instead of the last value silently winning.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Why a text did not decode.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// `pointer` is the JSON pointer of the repeated key.
    #[error("duplicate key {key:?} at {}", display_pointer(pointer))]
    DuplicateKey { key: String, pointer: String },
    #[error("{0}")]
    Syntax(String),
}

fn display_pointer(pointer: &str) -> &str {
    if pointer.is_empty() { "/" } else { pointer }
}

/// One JSON document.
pub fn json(text: &str) -> Result<Value, ParseError> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = decode(&mut deserializer)?;
    deserializer.end().map_err(|e| ParseError::Syntax(e.to_string()))?;
    Ok(value)
}

/// One YAML document.
pub fn yaml(text: &str) -> Result<Value, ParseError> {
    decode(serde_yaml::Deserializer::from_str(text))
}

/// Every document of a YAML stream. A syntax error ends the stream: the parser cannot
/// resynchronise after one.
pub fn yaml_documents(text: &str) -> Vec<Result<Value, ParseError>> {
    let mut docs = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let decoded = decode(doc);
        let fatal = matches!(decoded, Err(ParseError::Syntax(_)));
        docs.push(decoded);
        if fatal {
            break;
        }
    }
    docs
}

fn decode<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Value, ParseError>
where
    D::Error: fmt::Display,
{
    let (path, duplicate) = (RefCell::new(Vec::new()), RefCell::new(None));
    let result = Seed { path: &path, duplicate: &duplicate }.deserialize(deserializer);
    match (duplicate.into_inner(), result) {
        (Some((key, pointer)), _) => Err(ParseError::DuplicateKey { key, pointer }),
        (None, Ok(value)) => Ok(value),
        (None, Err(e)) => Err(ParseError::Syntax(e.to_string())),
    }
}

/// Builds a `Value` at `path`, recording the first duplicate key it meets. The path is a stack
/// shared by the whole decode and rendered as a JSON pointer only for a duplicate, so a valid
/// document costs no pointer strings.
#[derive(Clone, Copy)]
struct Seed<'a> {
    path: &'a RefCell<Vec<Token>>,
    duplicate: &'a RefCell<Option<(String, String)>>,
}

enum Token {
    Index(usize),
    Key(String),
}

/// The JSON pointer of `key` under `path`.
fn pointer(path: &[Token], key: &str) -> String {
    let escape = |token: &str| token.replace('~', "~0").replace('/', "~1");
    let mut pointer = String::new();
    for token in path {
        pointer.push('/');
        match token {
            Token::Index(i) => pointer.push_str(&i.to_string()),
            Token::Key(k) => pointer.push_str(&escape(k)),
        }
    }
    pointer.push('/');
    pointer.push_str(&escape(key));
    pointer
}

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML or JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            self.path.borrow_mut().push(Token::Index(items.len()));
            let item = seq.next_element_seed(self)?;
            self.path.borrow_mut().pop();
            match item {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                let message = format!("duplicate key {key:?}");
                let pointer = pointer(&self.path.borrow(), &key);
                self.duplicate.borrow_mut().get_or_insert((key, pointer));
                return Err(de::Error::custom(message));
            }
            self.path.borrow_mut().push(Token::Key(key));
            let value = map.next_value_seed(self)?;
            let Some(Token::Key(key)) = self.path.borrow_mut().pop() else {
                return Err(de::Error::custom("the key path was corrupted"));
            };
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_named_with_their_pointer() {
        let dup = |key: &str, pointer: &str| Err(ParseError::DuplicateKey { key: key.into(), pointer: pointer.into() });
        assert_eq!(yaml("phase: Running\nphase: Failed\n"), dup("phase", "/phase"));
        assert_eq!(json(r#"{"a":{"b/c":1,"b/c":2}}"#), dup("b/c", "/a/b~1c"));
        assert_eq!(yaml("envs:\n- name: dev\n  name: prod\n"), dup("name", "/envs/0/name"));
        let err = yaml("a: 1\na: 2\n").unwrap_err().to_string();
        assert_eq!(err, "duplicate key \"a\" at /a");
    }

    #[test]
    fn values_decode_as_serde_json_would() {
        let text = "a: [1, -2, 2.5, true, null, x]\nb: {c: d}\n";
        assert_eq!(yaml(text).unwrap(), serde_json::json!({"a": [1, -2, 2.5, true, null, "x"], "b": {"c": "d"}}));
        assert!(matches!(json("{\"a\": 1} trailing"), Err(ParseError::Syntax(_))));
        assert!(matches!(yaml("a: [unclosed"), Err(ParseError::Syntax(_))));
    }

    #[test]
    fn a_syntax_error_ends_a_stream_but_a_duplicate_does_not() {
        let docs = yaml_documents("a: 1\na: 2\n---\nb: 1\n---\nc: [\n---\nd: 1\n");
        assert_eq!(docs.len(), 3);
        assert!(matches!(docs[0], Err(ParseError::DuplicateKey { .. })));
        assert_eq!(docs[1], Ok(serde_json::json!({"b": 1})));
        assert!(matches!(docs[2], Err(ParseError::Syntax(_))));
    }
}
