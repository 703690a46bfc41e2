//! The kernel command line encoding: one token `hostcontract=<value>`.
//!
//! The value is the contract's compact JSON ([`crate::to_json`]) in base64url without padding
//! (RFC 4648 section 5), so it holds only `[A-Za-z0-9_-]`: no spaces, quotes or `=` that the
//! kernel's parameter parser or a shell could split or eat. The guest finds the token in
//! `/proc/cmdline` with [`find`] and turns it back into a contract with [`decode`].
//!
//! The command line is small: User-Mode Linux joins its argv into a buffer of
//! [`COMMAND_LINE_SIZE`] bytes, so a large contract (files, `extra`) goes on the config
//! block device instead ([`crate::blockdev`]), and the command line only names that device with
//! `hostcontract_dev=/dev/ubdX` ([`DEVICE_PARAM`]).

use crate::uml::COMMAND_LINE_SIZE;
use crate::{Contract, ContractError};
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use std::fmt;

/// Name of the parameter that carries the contract itself.
pub const PARAM: &str = "hostcontract";

/// Name of the parameter that names the config block device, e.g. `hostcontract_dev=/dev/ubdc`.
pub const DEVICE_PARAM: &str = "hostcontract_dev";

/// base64url; writes no padding, and reads values with or without it.
const B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The whole `hostcontract=...` token for a contract, with no length check.
pub fn encode(c: &Contract) -> String {
    let json = crate::to_json(c);
    let mut token = String::with_capacity(PARAM.len() + 1 + json.len().div_ceil(3) * 4);
    token.push_str(PARAM);
    token.push('=');
    B64.encode_string(json.as_bytes(), &mut token);
    token
}

/// The token, if it fits on the command line next to `other_args_len` bytes of other
/// arguments (their joined length, separators included; one more space joins the token).
pub fn encode_within(c: &Contract, other_args_len: usize) -> Result<String, EncodeError> {
    let token = encode(c);
    let limit = COMMAND_LINE_SIZE - 1;
    let total = other_args_len.saturating_add(1).saturating_add(token.len());
    if total > limit {
        return Err(EncodeError::TooLong {
            token_len: token.len(),
            other_args_len,
            limit,
        });
    }
    Ok(token)
}

/// Why a contract cannot go on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncodeError {
    /// The token and the other arguments together exceed the kernel's command line.
    TooLong {
        token_len: usize,
        other_args_len: usize,
        /// Usable bytes: [`COMMAND_LINE_SIZE`] - 1.
        limit: usize,
    },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::TooLong {
                token_len,
                other_args_len,
                limit,
            } => write!(
                f,
                "the contract does not fit on the kernel command line: the {PARAM}= token is \
                 {token_len} bytes and the other arguments take {other_args_len} bytes, \
                 {} bytes in all, but User-Mode Linux allows at most {limit} \
                 ({COMMAND_LINE_SIZE} bytes with its terminator); pass the contract on \
                 the config block device ({DEVICE_PARAM}=/dev/ubdX) instead",
                other_args_len.saturating_add(1).saturating_add(*token_len)
            ),
        }
    }
}

impl std::error::Error for EncodeError {}

/// Whitespace as the kernel's `isspace` sees it (ASCII part).
fn is_kernel_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// One `param[=value]` token of a command line, split the way the kernel's `next_arg` does.
struct Arg<'a> {
    param: &'a str,
    value: Option<&'a str>,
}

/// Splits off the first argument of `args` (which starts at a non-space), like the kernel's
/// `next_arg` in kernel/params.c: whitespace separates arguments except inside double quotes;
/// a leading quote of the whole token or of the value, and the matching last quote, are
/// dropped. Returns the argument and the rest.
fn next_arg(args: &str) -> (Arg<'_>, &str) {
    let bytes = args.as_bytes();
    let mut start = 0;
    let mut in_quote = false;
    let quoted = bytes.first() == Some(&b'"');
    if quoted {
        start = 1;
        in_quote = true;
    }
    let mut end = start;
    let mut equals = None;
    while let Some(&b) = bytes.get(end) {
        if is_kernel_space(b) && !in_quote {
            break;
        }
        if equals.is_none() && b == b'=' {
            equals = Some(end);
        }
        if b == b'"' {
            in_quote = !in_quote;
        }
        end += 1;
    }
    // All split points are ASCII bytes, so every slice below is on a char boundary; `get`
    // keeps that an invariant rather than a panic.
    let ends_with_quote = end > start && bytes.get(end - 1) == Some(&b'"');
    let arg = match equals {
        None => {
            let stop = if quoted && ends_with_quote {
                end - 1
            } else {
                end
            };
            Arg {
                param: args.get(start..stop).unwrap_or(""),
                value: None,
            }
        }
        Some(eq) => {
            let mut vstart = eq + 1;
            let mut vend = end;
            if bytes.get(vstart) == Some(&b'"') {
                vstart += 1;
                if ends_with_quote && vend > vstart {
                    vend -= 1;
                }
            } else if quoted && ends_with_quote && vend > vstart {
                vend -= 1;
            }
            Arg {
                param: args.get(start..eq).unwrap_or(""),
                value: Some(args.get(vstart..vend).unwrap_or("")),
            }
        }
    };
    let rest = args.get(end..).unwrap_or("");
    (
        arg,
        rest.trim_start_matches(|c: char| c.is_ascii() && is_kernel_space(c as u8)),
    )
}

/// The value of the last `param=value` argument in a command line such as `/proc/cmdline`.
///
/// Arguments are split as the kernel does (whitespace, double quotes). The search stops at a
/// bare `--`, after which the kernel hands arguments to init instead of parsing them. A `param`
/// without `=` does not count. Names are compared exactly.
pub fn find<'a>(cmdline: &'a str, param: &str) -> Option<&'a str> {
    let mut rest = cmdline.trim_start_matches(|c: char| c.is_ascii() && is_kernel_space(c as u8));
    let mut found = None;
    while !rest.is_empty() {
        let (arg, next) = next_arg(rest);
        if arg.param == "--" && arg.value.is_none() {
            break;
        }
        if arg.param == param {
            if let Some(v) = arg.value {
                found = Some(v);
            }
        }
        rest = next;
    }
    found
}

/// Why a `hostcontract=` value could not be turned into a contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// `hostcontract=` with nothing after it.
    Empty,
    /// The value is not base64url.
    Base64 { detail: String },
    /// The decoded JSON was rejected; the contract's own error, with every problem.
    Contract(ContractError),
}

impl DecodeError {
    /// Each problem as its own line: the contract's validation lines, or the one error.
    pub fn lines(&self) -> Vec<String> {
        match self {
            DecodeError::Contract(e) => e.lines(),
            other => vec![other.to_string()],
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Empty => write!(
                f,
                "the kernel command line has an empty {PARAM}= value; the host must put the \
                 contract's JSON there in base64url, or name the config device with \
                 {DEVICE_PARAM}="
            ),
            DecodeError::Base64 { detail } => write!(
                f,
                "the {PARAM}= value on the kernel command line is not base64url (RFC 4648 \
                 URL-safe alphabet A-Z a-z 0-9 - _, no padding): {detail}; re-encode the \
                 contract's JSON on the host"
            ),
            DecodeError::Contract(e) => crate::write_rejected(
                f,
                &format!("the contract in {PARAM}= on the kernel command line"),
                e,
            ),
        }
    }
}

impl std::error::Error for DecodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DecodeError::Contract(e) => Some(e),
            _ => None,
        }
    }
}

/// Turns a `hostcontract=` value (as returned by [`find`]) back into a validated contract.
pub fn decode(value: &str) -> Result<Contract, DecodeError> {
    if value.is_empty() {
        return Err(DecodeError::Empty);
    }
    let json = B64
        .decode(value.as_bytes())
        .map_err(|e| DecodeError::Base64 {
            detail: describe_base64_error(value, &e),
        })?;
    crate::parse_json(&json).map_err(DecodeError::Contract)
}

fn describe_base64_error(value: &str, e: &base64::DecodeError) -> String {
    use base64::DecodeError as E;
    let at = |offset: usize| {
        let ch = value.get(offset..).and_then(|s| s.chars().next());
        match ch {
            Some(c) if c == '+' || c == '/' => {
                format!("{c:?} at offset {offset} belongs to standard base64, not base64url")
            }
            Some(c) => format!("{c:?} at offset {offset} is not a base64url character"),
            None => format!("invalid character at offset {offset}"),
        }
    };
    match e {
        E::InvalidByte(offset, _) => at(*offset),
        E::InvalidLastSymbol(offset, _) => format!(
            "the last character (offset {offset}) has bits set that no whole byte uses, so the \
             value was cut or altered"
        ),
        E::InvalidLength(len) => format!(
            "{len} characters cannot be base64 (a length of 4n+1 never is), so the value was \
             cut or altered"
        ),
        E::InvalidPadding => "the '=' padding is malformed".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> Contract {
        crate::parse_json(include_bytes!("../examples/minimal.json")).unwrap()
    }

    fn full() -> Contract {
        crate::parse_json(include_bytes!("../examples/full.json")).unwrap()
    }

    #[test]
    fn round_trip() {
        for c in [minimal(), full()] {
            let token = encode(&c);
            let value = token.strip_prefix("hostcontract=").unwrap();
            assert!(value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
            let line = format!("console=tty0 root=/dev/ubda ro {token} quiet\n");
            assert_eq!(find(&line, PARAM), Some(value));
            assert_eq!(decode(value).unwrap(), c);
        }
    }

    #[test]
    fn full_example_fits_on_the_command_line() {
        let token = encode(&full());
        assert!(
            token.len() < 2048,
            "full.json token is {} bytes",
            token.len()
        );
        assert!(encode_within(&full(), 200).is_ok());
    }

    #[test]
    fn decode_accepts_padding() {
        let json = crate::to_json(&minimal());
        let padded = base64::engine::general_purpose::URL_SAFE.encode(json);
        assert_eq!(decode(&padded).unwrap(), minimal());
    }

    #[test]
    fn length_limit() {
        let c = minimal();
        let len = encode(&c).len();
        // Exactly fills the 4095 usable bytes.
        assert!(encode_within(&c, 4095 - 1 - len).is_ok());
        let err = encode_within(&c, 4095 - len).unwrap_err();
        assert_eq!(
            err,
            EncodeError::TooLong {
                token_len: len,
                other_args_len: 4095 - len,
                limit: 4095
            }
        );
        let msg = err.to_string();
        assert!(msg.contains("4096 bytes"), "{msg}");
        assert!(msg.contains(&format!("{len} bytes")), "{msg}");
        assert!(msg.contains("4096 bytes in all"), "{msg}");
        assert!(msg.contains("hostcontract_dev"), "{msg}");
        assert!(encode_within(&c, usize::MAX).is_err());
    }

    #[test]
    fn find_takes_the_last_one() {
        let line = "hostcontract=a x=1 hostcontract=b hostcontract y";
        assert_eq!(find(line, "hostcontract"), Some("b"));
        assert_eq!(find(line, "x"), Some("1"));
        assert_eq!(find(line, "y"), None);
        assert_eq!(find(line, "hostcontract_dev"), None);
        assert_eq!(find("", "x"), None);
        assert_eq!(find("   \n", "x"), None);
        assert_eq!(find("x=", "x"), Some(""));
        assert_eq!(find("x=a=b", "x"), Some("a=b"));
    }

    #[test]
    fn find_handles_whitespace_kinds() {
        let line = "\tone=1\ntwo=2\x0bthree=3\r\x0cfour=4\n";
        assert_eq!(find(line, "one"), Some("1"));
        assert_eq!(find(line, "two"), Some("2"));
        assert_eq!(find(line, "three"), Some("3"));
        assert_eq!(find(line, "four"), Some("4"));
    }

    #[test]
    fn find_handles_quotes_like_the_kernel() {
        let line = r#"a="x y" "b=p q" c="unterminated d=1"#;
        assert_eq!(find(line, "a"), Some("x y"));
        assert_eq!(find(line, "b"), Some("p q"));
        // An unterminated quote swallows the rest of the line, as in the kernel.
        assert_eq!(find(line, "c"), Some("unterminated d=1"));
        assert_eq!(find(line, "d"), None);
        // Quotes in the middle are kept, as the kernel keeps them.
        assert_eq!(find(r#"e=ab"c d"ef f=2"#, "e"), Some(r#"ab"c d"ef"#));
        assert_eq!(find(r#"e=ab"c d"ef f=2"#, "f"), Some("2"));
        assert_eq!(find(r#""g=1""#, "g"), Some("1"));
        assert_eq!(find(r#""""#, "g"), None);
        assert_eq!(find(r#"""#, "g"), None);
        assert_eq!(find(r#"h=""#, "h"), Some(""));
    }

    #[test]
    fn find_stops_at_double_dash() {
        let line = "hostcontract=a -- hostcontract=b";
        assert_eq!(find(line, PARAM), Some("a"));
        assert_eq!(find("-- hostcontract=b", PARAM), None);
    }

    #[test]
    fn find_survives_non_ascii() {
        let line = "é=ü hostcontract=ok ñ \u{a0}x=1";
        assert_eq!(find(line, PARAM), Some("ok"));
        assert_eq!(find(line, "é"), Some("ü"));
    }

    #[test]
    fn decode_errors() {
        assert_eq!(decode(""), Err(DecodeError::Empty));
        let e = decode("ab+c").unwrap_err();
        assert!(matches!(e, DecodeError::Base64 { .. }));
        assert!(e.to_string().contains("standard base64"), "{e}");
        let e = decode("ab c").unwrap_err();
        assert!(e.to_string().contains("' ' at offset 2"), "{e}");
        let e = decode("abcde").unwrap_err();
        assert!(e.to_string().contains("5 characters"), "{e}");
        let e = decode("é").unwrap_err();
        assert!(matches!(e, DecodeError::Base64 { .. }), "{e}");
    }

    #[test]
    fn contract_errors_keep_their_lines() {
        let bad = r#"{"version":1,"hostname":"-bad-","service":{"argv":["relative"]}}"#;
        let value = B64.encode(bad);
        let e = decode(&value).unwrap_err();
        let DecodeError::Contract(inner) = &e else {
            panic!("{e:?}")
        };
        assert!(matches!(inner, ContractError::Invalid(_)));
        assert_eq!(e.lines(), inner.lines());
        assert_eq!(e.lines().len(), 2);
        let text = e.to_string();
        for line in inner.lines() {
            assert!(text.contains(&line), "{text}");
        }
        assert!(std::error::Error::source(&e).is_some());

        let e = decode(&B64.encode("not json")).unwrap_err();
        assert!(matches!(e, DecodeError::Contract(ContractError::Syntax(_))));
        let e = decode(&B64.encode(r#"{"version":5}"#)).unwrap_err();
        assert!(e.to_string().contains("version"), "{e}");
    }
    #[test]
    fn a_token_with_a_duplicate_key_is_refused_with_its_path() {
        let json = br#"{"version":1,"hostname":"a","service":{"argv":["/x"],"argv":["/y"]}}"#;
        let e = decode(&B64.encode(json)).unwrap_err();
        assert!(
            e.to_string()
                .contains(r#"service.argv: the key "argv" appears twice"#),
            "{e}"
        );
    }
}
