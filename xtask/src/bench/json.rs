//! The pieces `results.json` needs beyond serde's derives: numbers written
//! as the report always wrote them, and maps whose keys keep their order.
//!
//! The document itself is `#[derive(Serialize)]` structs next to what they
//! describe (`report.rs`, `strace.rs`), written by `serde_json`'s pretty
//! printer.

use serde::ser::{Serialize, SerializeMap, Serializer};

/// A figure: `null` when not finite (no data), an integer when whole (and
/// exactly representable), else the float.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Num(pub(crate) f64);

impl Serialize for Num {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            n if !n.is_finite() => s.serialize_none(),
            n if n.fract() == 0.0 && n.abs() < 9e15 => s.serialize_i64(n as i64),
            n => s.serialize_f64(n),
        }
    }
}

/// An object whose keys are written in the order given (serde_json's own
/// map sorts them).
#[derive(Debug, Clone)]
pub(crate) struct Ordered<K, V>(pub(crate) Vec<(K, V)>);

impl<K: Serialize, V: Serialize> Serialize for Ordered<K, V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// `value` as pretty-printed JSON (two-space indent) with a final newline.
pub(crate) fn to_document(value: &impl Serialize) -> String {
    let mut s = serde_json::to_string_pretty(value).expect("the report serializes: plain data, string keys");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_ordered_keys() {
        let v = Ordered(vec![
            ("b", vec![Num(1.0), Num(0.5), Num(f64::NAN), Num(f64::INFINITY), Num(-3.0), Num(1e16)]),
            ("a", vec![]),
        ]);
        let s = to_document(&v);
        // Past 2^53-ish a whole float is written as a float, in exponent
        // form (serde_json's ryu; the hand-rolled writer wrote the digits out:
        // the same JSON number). No figure of the report gets there: counts
        // are integers, and figures are rates and ratios.
        assert_eq!(
            s,
            "{\n  \"b\": [\n    1,\n    0.5,\n    null,\n    null,\n    -3,\n    1e+16\n  ],\n  \"a\": []\n}\n"
        );
        assert_eq!(to_document(&Ordered(vec![("q\"\n", Num(2.0))])), "{\n  \"q\\\"\\n\": 2\n}\n");
    }
}
