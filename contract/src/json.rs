//! The one JSON reader for every document the project takes from outside: the contract (and
//! so both of its wire encodings), the operator's spec, the image manifest and the image
//! recipe. It is serde_json with three rules added, so that no two readers can take one
//! document two ways:
//!
//! - a key that appears twice in one object is an error naming the key's JSON path (serde_json
//!   keeps the last one, other parsers the first);
//! - a leading UTF-8 byte-order mark is refused with a message that says so, instead of
//!   "expected value at line 1 column 1" (RFC 8259 §8.1 lets a parser ignore it, so refusing
//!   it keeps every reader the same);
//! - nothing may follow the value but white space (as serde_json already does).
//!
//! Why a visitor and not a crate or a pre-pass: serde_json has no duplicate-key option, and
//! once text is a `serde_json::Value` (a map) the duplicate is gone, so a check on the `Value`
//! cannot see it. No well-kept crate does just this (serde_json's `RawValue` keeps text but
//! does not look inside; `serde_with`'s duplicate checks work per field type, not per
//! document). So [`parse_value`] drives serde_json's own tokenizer (its syntax, its recursion
//! limit of 128 levels) with a `Value` visitor that checks each object's keys as it reads
//! them. The result is an ordinary `serde_json::Value` for the typed, path-reporting
//! deserialisation the callers already do.

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;

/// Why a document is not one unambiguous JSON value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonError {
    /// The text starts with EF BB BF.
    ByteOrderMark,
    /// Not JSON (serde_json's message, with line and column).
    Syntax(String),
    /// The same key twice in one object.
    DuplicateKey {
        /// JSON path of the key, e.g. `service.env.PATH`.
        path: String,
        key: String,
        line: usize,
        column: usize,
    },
}

impl JsonError {
    /// The JSON path the error is at, if it is at one.
    pub fn path(&self) -> Option<&str> {
        match self {
            JsonError::DuplicateKey { path, .. } => Some(path),
            _ => None,
        }
    }

    /// The message without its path, for callers that print the path their own way.
    pub fn detail(&self) -> String {
        match self {
            JsonError::ByteOrderMark => "the text starts with a UTF-8 byte-order mark (bytes EF \
                                         BB BF); save it as UTF-8 without a BOM"
                .to_string(),
            JsonError::Syntax(m) => format!("not valid JSON: {}", printable(m)),
            JsonError::DuplicateKey {
                key, line, column, ..
            } => format!(
                "the key \"{}\" appears twice in one object (again at line {line} column \
                 {column}); keep one, since readers differ on which one counts",
                printable(key)
            ),
        }
    }
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.path() {
            Some(path) => write!(f, "{}: {}", printable(path), self.detail()),
            None => f.write_str(&self.detail()),
        }
    }
}

impl std::error::Error for JsonError {}

/// Parses `text` as exactly one JSON value, refusing a BOM and duplicate keys.
pub fn parse_value(text: &[u8]) -> Result<Value, JsonError> {
    if text.starts_with(b"\xEF\xBB\xBF") {
        return Err(JsonError::ByteOrderMark);
    }
    let duplicate = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_slice(text);
    let seed = ValueSeed {
        at: &At::Root,
        duplicate: &duplicate,
    };
    let result = seed.deserialize(&mut de).and_then(|v| de.end().map(|()| v));
    result.map_err(|e| match duplicate.into_inner() {
        Some((path, key)) => JsonError::DuplicateKey {
            path,
            key,
            line: e.line(),
            column: e.column(),
        },
        None => JsonError::Syntax(e.to_string()),
    })
}

/// `s` with every control character (NUL, newline, ESC, DEL, C1 ...) written as `\u{..}`, so
/// that a message quoting hostile input prints as one readable line.
pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Where the value being read sits, as a chain to the root (no allocation per value).
enum At<'a> {
    Root,
    Key(&'a At<'a>, &'a str),
    Index(&'a At<'a>, usize),
}

impl fmt::Display for At<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            At::Root => Ok(()),
            At::Key(At::Root, k) => write!(f, "{k}"),
            At::Key(parent, k) => write!(f, "{parent}.{k}"),
            At::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

/// The path and key of the first duplicate, set just before the error is raised.
type Duplicate = RefCell<Option<(String, String)>>;

struct ValueSeed<'a> {
    at: &'a At<'a>,
    duplicate: &'a Duplicate,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // JSON text cannot spell a non-finite number, so this is never Null in practice.
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

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        loop {
            let at = At::Index(self.at, out.len());
            let seed = ValueSeed {
                at: &at,
                duplicate: self.duplicate,
            };
            match seq.next_element_seed(seed)? {
                Some(v) => out.push(v),
                None => return Ok(Value::Array(out)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let at = At::Key(self.at, &key);
            if out.contains_key(&key) {
                *self.duplicate.borrow_mut() = Some((at.to_string(), key.clone()));
                return Err(de::Error::custom("duplicate key"));
            }
            let value = map.next_value_seed(ValueSeed {
                at: &at,
                duplicate: self.duplicate,
            })?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_serde_json_reads() {
        let text =
            br#" {"a": [1, -2, 3.5, "x", null, true, {"b": {}}], "c": 18446744073709551615} "#;
        let strict = parse_value(text).expect("valid");
        let plain: Value = serde_json::from_slice(text).expect("valid");
        assert_eq!(strict, plain);
    }

    #[test]
    fn duplicate_keys_are_named_by_path() {
        let e = parse_value(br#"{"hostname": "a", "hostname": "b"}"#).unwrap_err();
        assert!(
            matches!(&e, JsonError::DuplicateKey { path, key, line: 1, .. } if path == "hostname" && key == "hostname"),
            "{e:?}"
        );
        let e = parse_value(br#"{"a": [{"x": 1}, {"b": {"c": 1, "c": 2}}]}"#).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("a[1].b.c: the key \"c\" appears twice"),
            "{e}"
        );
        // The same key in two different objects is fine.
        parse_value(br#"{"a": {"k": 1}, "b": {"k": 1}, "k": 0}"#).expect("distinct objects");
    }

    #[test]
    fn escaped_spellings_of_one_key_are_the_same_key() {
        let e = parse_value(br#"{"ab": 1, "a\u0062": 2}"#).unwrap_err();
        assert!(matches!(e, JsonError::DuplicateKey { .. }), "{e:?}");
    }

    #[test]
    fn a_bom_is_named() {
        let e = parse_value(b"\xEF\xBB\xBF{}").unwrap_err();
        assert_eq!(e, JsonError::ByteOrderMark);
        assert!(e.to_string().contains("byte-order mark"));
    }

    #[test]
    fn trailing_text_and_deep_nesting_are_errors_not_crashes() {
        assert!(matches!(parse_value(b"{} x"), Err(JsonError::Syntax(_))));
        let deep = "[".repeat(100_000);
        assert!(matches!(
            parse_value(deep.as_bytes()),
            Err(JsonError::Syntax(_))
        ));
    }

    #[test]
    fn control_characters_print_escaped() {
        assert_eq!(printable("a\0b\nc\u{1b}"), "a\\u{0}b\\u{a}c\\u{1b}");
        assert!(matches!(printable("plain ü"), Cow::Borrowed(_)));
        let e = parse_value(br#"{"a\u0000": 1, "a\u0000": 2}"#).unwrap_err();
        assert!(!e.to_string().contains('\0'), "{e}");
    }
}
