//! A minimal JSON value and writer, so `results.json` needs no extra
//! dependency. Non-finite numbers are written as `null`.

use std::fmt;

#[derive(Debug, Clone)]
pub(crate) enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Self>),
    Obj(Vec<(String, Self)>),
}

impl Json {
    /// An object from `(key, value)` pairs.
    pub(crate) fn obj<K: Into<String>>(pairs: impl IntoIterator<Item = (K, Self)>) -> Self {
        Self::Obj(pairs.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// A string, or `null` for `None`.
    pub(crate) fn opt_str(s: Option<&str>) -> Self {
        s.map_or(Self::Null, |s| Self::Str(s.to_string()))
    }
}

impl From<f64> for Json {
    fn from(v: f64) -> Self {
        Self::Num(v)
    }
}

impl From<u64> for Json {
    fn from(v: u64) -> Self {
        Self::Num(v as f64)
    }
}

impl From<usize> for Json {
    fn from(v: usize) -> Self {
        Self::Num(v as f64)
    }
}

impl From<bool> for Json {
    fn from(v: bool) -> Self {
        Self::Bool(v)
    }
}

impl From<&str> for Json {
    fn from(v: &str) -> Self {
        Self::Str(v.to_string())
    }
}

impl From<String> for Json {
    fn from(v: String) -> Self {
        Self::Str(v)
    }
}

fn write_str(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_str("\"")?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if (c as u32) < 0x20 => write!(f, "\\u{:04x}", c as u32)?,
            c => write!(f, "{c}")?,
        }
    }
    f.write_str("\"")
}

impl Json {
    fn write(&self, f: &mut fmt::Formatter<'_>, indent: usize) -> fmt::Result {
        let pad = |f: &mut fmt::Formatter<'_>, n: usize| write!(f, "{:width$}", "", width = n * 2);
        match self {
            Self::Null => f.write_str("null"),
            Self::Bool(b) => write!(f, "{b}"),
            Self::Num(n) if !n.is_finite() => f.write_str("null"),
            Self::Num(n) if n.fract() == 0.0 && n.abs() < 9e15 => write!(f, "{}", *n as i64),
            Self::Num(n) => write!(f, "{n}"),
            Self::Str(s) => write_str(f, s),
            Self::Arr(v) if v.is_empty() => f.write_str("[]"),
            Self::Arr(v) => {
                f.write_str("[\n")?;
                for (i, x) in v.iter().enumerate() {
                    pad(f, indent + 1)?;
                    x.write(f, indent + 1)?;
                    f.write_str(if i + 1 < v.len() { ",\n" } else { "\n" })?;
                }
                pad(f, indent)?;
                f.write_str("]")
            }
            Self::Obj(v) if v.is_empty() => f.write_str("{}"),
            Self::Obj(v) => {
                f.write_str("{\n")?;
                for (i, (k, x)) in v.iter().enumerate() {
                    pad(f, indent + 1)?;
                    write_str(f, k)?;
                    f.write_str(": ")?;
                    x.write(f, indent + 1)?;
                    f.write_str(if i + 1 < v.len() { ",\n" } else { "\n" })?;
                }
                pad(f, indent)?;
                f.write_str("}")
            }
        }
    }
}

impl fmt::Display for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, 0)?;
        f.write_str("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_nested_values() {
        let v = Json::obj([
            ("a", Json::from(1u64)),
            ("b", Json::Arr(vec![Json::from(0.5), Json::Num(f64::NAN), Json::Null])),
            ("c", Json::from("q\"\n")),
        ]);
        let s = v.to_string();
        assert!(s.contains("\"a\": 1"));
        assert!(s.contains("0.5"));
        assert!(s.contains("null"));
        assert!(s.contains("\"q\\\"\\n\""));
    }
}
