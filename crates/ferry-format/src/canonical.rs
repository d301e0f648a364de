//! The canonical text of a JSON value: what a writer stores and every device then shows,
//! byte for byte (`docs/FORMAT.md`, "Canonical JSON").
//!
//! A value is canonicalised once, by the device that writes it; readers keep the bytes as they
//! arrive. The form is compact JSON with
//! - object members sorted by the UTF-8 bytes of their names (a name given twice keeps its last
//!   value), no whitespace;
//! - strings escaped as `serde_json` writes them: `\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`, other
//!   characters below U+0020 as `\u00XX` (lowercase hex), everything else as UTF-8;
//! - integers written without a fraction or exponent that fit in `i64` or `u64` as exact decimal
//!   integers (`-0` is `0`);
//! - every other number as an IEEE 754 double (parsed with correct rounding) in ECMAScript's
//!   `Number.prototype.toString` form: the shortest digits that read back to the same double,
//!   plain decimal from 1e-7 up to below 1e21, exponent form (`1e+21`, `1.5e-7`) outside it,
//!   no trailing `.0`, `-0` as `0`.
//!
//! The form is a fixed point: parsing canonical text and canonicalising it again gives the same
//! bytes (checked by a property test).

use serde_json::value::RawValue;
use serde_json::{Number, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The canonical text of `value` (a value parsed already: its numbers are what the parser made
/// of them).
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_value(value, &mut out);
    out
}

/// The canonical text of JSON `text`, reading each number from its own digits (Rust's
/// correctly rounded `f64` parser), not through a parser's shortcuts: `serde_json` reads an
/// integer literal longer than 19 digits one unit off.
///
/// # Errors
/// The text is not JSON.
pub fn canonical_json_text(text: &str) -> Result<String, serde_json::Error> {
    let raw: &RawValue = serde_json::from_str(text)?;
    let mut out = String::new();
    write_raw(raw, &mut out)?;
    Ok(out)
}

fn write_raw(raw: &RawValue, out: &mut String) -> Result<(), serde_json::Error> {
    let text = raw.get();
    match text.as_bytes().first() {
        Some(b'{') => {
            // A BTreeMap sorts names by bytes; a name given twice keeps its last value.
            let members: BTreeMap<String, &RawValue> = serde_json::from_str(text)?;
            out.push('{');
            for (i, (name, member)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(&name, out);
                out.push(':');
                write_raw(member, out)?;
            }
            out.push('}');
        }
        Some(b'[') => {
            let items: Vec<&RawValue> = serde_json::from_str(text)?;
            out.push('[');
            for (i, item) in items.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_raw(item, out)?;
            }
            out.push(']');
        }
        Some(b'"') => write_string(&serde_json::from_str::<String>(text)?, out),
        Some(b't' | b'f' | b'n') => out.push_str(text),
        _ => write_number_text(text, out),
    }
    Ok(())
}

/// A number as written in the input (already checked to be a JSON number).
fn write_number_text(text: &str, out: &mut String) {
    let integral = !text.contains(['.', 'e', 'E']);
    if integral && let Ok(unsigned) = text.parse::<u64>() {
        let _ = write!(out, "{unsigned}");
    } else if integral && let Ok(signed) = text.parse::<i64>() {
        let _ = write!(out, "{signed}");
    } else if let Ok(double) = text.parse::<f64>()
        && double.is_finite()
    {
        out.push_str(ryu_js::Buffer::new().format_finite(double));
    } else {
        // Beyond the double range (1e400): JSON allows it, a double cannot hold it.
        out.push_str(if text.starts_with('-') { "-1.7976931348623157e+308" } else { "1.7976931348623157e+308" });
    }
}

fn write_value(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(number) => write_number(number, out),
        Value::String(text) => write_string(text, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(item, out);
            }
            out.push(']');
        }
        Value::Object(members) => {
            // `serde_json::Map` is a BTreeMap here (no `preserve_order`): sorted by bytes. Sort
            // anyway, so the form does not depend on a feature another crate may switch on.
            let mut sorted: Vec<(&String, &Value)> = members.iter().collect();
            sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (name, member)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(name, out);
                out.push(':');
                write_value(member, out);
            }
            out.push('}');
        }
    }
}

fn write_number(number: &Number, out: &mut String) {
    if let Some(unsigned) = number.as_u64() {
        let _ = write!(out, "{unsigned}");
    } else if let Some(signed) = number.as_i64() {
        let _ = write!(out, "{signed}");
    } else if let Some(double) = number.as_f64() {
        // JSON has no NaN or infinities, so the double is finite.
        out.push_str(ryu_js::Buffer::new().format_finite(double));
    }
}

fn write_string(text: &str, out: &mut String) {
    // A `&str` always serializes: serde_json's escaping is the canonical one.
    if let Ok(quoted) = serde_json::to_string(text) {
        out.push_str(&quoted);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn canonical(text: &str) -> String {
        canonical_json_text(text).unwrap()
    }

    #[test]
    fn numbers_take_one_form_whatever_their_spelling() {
        let cases = [
            ("1.50", "1.5"),
            ("1.0", "1"),
            ("-0", "0"),
            ("-0.0", "0"),
            ("1e2", "100"),
            ("100", "100"),
            ("123456789012345678901234", "1.2345678901234569e+23"),
            ("1.2345678901234567e+23", "1.2345678901234567e+23"),
            ("1.23456789012345678e23", "1.2345678901234569e+23"),
            ("18446744073709551615", "18446744073709551615"),
            ("18446744073709551616", "18446744073709552000"),
            ("-9223372036854775808", "-9223372036854775808"),
            ("9007199254740993", "9007199254740993"),
            ("1e21", "1e+21"),
            ("1e20", "100000000000000000000"),
            ("0.0000001", "1e-7"),
            ("0.000001", "0.000001"),
            ("5e-324", "5e-324"),
            ("1.7976931348623157e308", "1.7976931348623157e+308"),
            ("0.1", "0.1"),
        ];
        for (text, expected) in cases {
            assert_eq!(canonical(text), expected, "{text}");
            assert_eq!(canonical(expected), expected, "{expected} is a fixed point");
        }
    }

    #[test]
    fn members_sort_by_bytes_and_strings_escape_minimally() {
        assert_eq!(canonical(r#"{ "b": 1, "a": [true, null], "A": "x" }"#), r#"{"A":"x","a":[true,null],"b":1}"#);
        assert_eq!(canonical(r#"{"a":1,"a":2}"#), r#"{"a":2}"#);
        assert_eq!(canonical(r#""é\n\u0001\/\u2028""#), "\"é\\n\\u0001/\u{2028}\"");
        assert_eq!(canonical(r#"{"\u00e9":1,"z":2,"é":3}"#), r#"{"z":2,"é":3}"#);
    }

    fn json_values() -> impl Strategy<Value = Value> {
        let number = prop_oneof![
            any::<u64>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
            (1u32..40, any::<u64>()).prop_map(|(digits, seed)| {
                // Integers of up to 40 digits: beyond u64 they are doubles.
                let text: String = (0..digits).map(|i| char::from(b'1' + ((seed >> (i % 60)) % 9) as u8)).collect();
                serde_json::from_str(&text).unwrap()
            }),
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            number,
            ".{0,8}".prop_map(Value::String)
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(".{0,4}", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn canonical_text_is_a_fixed_point(value in json_values()) {
            let text = canonical_json(&value);
            let again = canonical_json(&serde_json::from_str(&text).unwrap());
            prop_assert_eq!(&again, &text);
            // And it is the same JSON value, numbers read back to the same double.
            let reread: Value = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(canonical_json(&reread), text.clone());
            prop_assert_eq!(canonical_json_text(&text).unwrap(), text);
        }
    }
}
