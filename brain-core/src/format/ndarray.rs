//! The ndarray codec's metadata (part 0 of its parts layout): dtype, shape
//! and order, as JSON that NumPy's `.npy` description of a dtype fits in.
//!
//! The dtype is NumPy's own description (`numpy.lib.format.dtype_to_descr`):
//! a type string such as `"<f8"`, or, for a structured dtype, a list of
//! `[name, type]` or `[name, type, shape]` entries, where a name may be a
//! `[title, name]` pair and a type may itself be such a list. Both sides
//! (the Python package and Rust) read and write exactly this, through this
//! module.

use std::fmt;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// An array element type, as NumPy describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dtype {
    /// A plain type string: byte order (`<`, `>`, `|` or `=`), kind, size
    /// in bytes (characters for `U`), and a unit for dates and durations:
    /// `"<f8"`, `"|b1"`, `"<M8[ns]"`, `"<U5"`, `"|V16"`.
    Scalar(String),
    /// A structured (record) type: its fields in order, padding included
    /// (NumPy describes padding as fields with an empty name of type `|Vn`).
    Record(Vec<DtypeField>),
}

/// One field of a structured [`Dtype`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DtypeField {
    /// The field's name ("" for padding).
    pub name: String,
    /// The field's title, when it has one.
    pub title: Option<String>,
    /// The field's type.
    pub dtype: Dtype,
    /// The field's sub-array shape (empty for a plain field).
    pub shape: Vec<u64>,
}

impl Dtype {
    /// The size of one element in bytes, or `None` for a type that holds
    /// Python objects (`"|O"`) or a type string this build cannot size.
    pub fn itemsize(&self) -> Option<u64> {
        match self {
            Dtype::Scalar(text) => scalar_itemsize(text),
            Dtype::Record(fields) => fields.iter().try_fold(0u64, |sum, field| {
                let count = product(&field.shape)?;
                sum.checked_add(field.dtype.itemsize()?.checked_mul(count)?)
            }),
        }
    }

    fn to_value(&self) -> Value {
        match self {
            Dtype::Scalar(text) => Value::String(text.clone()),
            Dtype::Record(fields) => Value::Array(
                fields
                    .iter()
                    .map(|field| {
                        let name = match &field.title {
                            Some(title) => {
                                Value::Array(vec![title.clone().into(), field.name.clone().into()])
                            }
                            None => field.name.clone().into(),
                        };
                        let mut entry = vec![name, field.dtype.to_value()];
                        if !field.shape.is_empty() {
                            entry.push(field.shape.iter().map(|&n| Value::from(n)).collect());
                        }
                        Value::Array(entry)
                    })
                    .collect(),
            ),
        }
    }

    fn from_value(value: &Value) -> Result<Dtype, String> {
        match value {
            Value::String(text) => {
                if scalar_itemsize(text).is_none() && !text.ends_with('O') {
                    return Err(format!("{text:?} is not a NumPy type string"));
                }
                Ok(Dtype::Scalar(text.clone()))
            }
            Value::Array(entries) => entries
                .iter()
                .map(field_from_value)
                .collect::<Result<_, _>>()
                .map(Dtype::Record),
            other => Err(format!(
                "a dtype is a type string or a list of fields, not {other}"
            )),
        }
    }
}

fn field_from_value(entry: &Value) -> Result<DtypeField, String> {
    let items = entry
        .as_array()
        .filter(|items| items.len() == 2 || items.len() == 3)
        .ok_or_else(|| format!("a field is [name, type] or [name, type, shape], not {entry}"))?;
    let (title, name) = match &items[0] {
        Value::String(name) => (None, name.clone()),
        Value::Array(pair) => match pair.as_slice() {
            [Value::String(title), Value::String(name)] => (Some(title.clone()), name.clone()),
            _ => {
                return Err(format!(
                    "a field name is a string or [title, name], not {}",
                    items[0]
                ))
            }
        },
        other => {
            return Err(format!(
                "a field name is a string or [title, name], not {other}"
            ))
        }
    };
    let dtype = Dtype::from_value(&items[1])?;
    let shape = match items.get(2) {
        None => Vec::new(),
        Some(Value::Array(dims)) => dims
            .iter()
            .map(|d| {
                d.as_u64()
                    .ok_or_else(|| format!("a field shape holds sizes, not {d}"))
            })
            .collect::<Result<_, _>>()?,
        // NumPy writes a one-dimensional sub-array's shape as a bare number.
        Some(Value::Number(n)) => vec![n
            .as_u64()
            .ok_or_else(|| format!("a field shape holds sizes, not {n}"))?],
        Some(other) => return Err(format!("a field shape is a list of sizes, not {other}")),
    };
    Ok(DtypeField {
        name,
        title,
        dtype,
        shape,
    })
}

/// The size of a NumPy type string's element; `None` for objects and for
/// strings that are not type strings.
fn scalar_itemsize(text: &str) -> Option<u64> {
    let rest = text.strip_prefix(['<', '>', '|', '=']).unwrap_or(text);
    let mut chars = rest.chars();
    let kind = chars.next()?;
    let rest = chars.as_str();
    let digits_end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let (digits, unit) = rest.split_at(digits_end);
    let count: u64 = digits.parse().ok()?;
    let unit_ok = match kind {
        'm' | 'M' => unit.is_empty() || (unit.starts_with('[') && unit.ends_with(']')),
        _ => unit.is_empty(),
    };
    if !unit_ok {
        return None;
    }
    match kind {
        'b' | 'i' | 'u' | 'f' | 'c' | 'm' | 'M' | 'S' | 'a' | 'V' => Some(count),
        'U' => count.checked_mul(4),
        _ => None,
    }
}

fn product(dims: &[u64]) -> Option<u64> {
    dims.iter().try_fold(1u64, |acc, &n| acc.checked_mul(n))
}

impl Dtype {
    /// NumPy's spelling of a structured dtype, each string written by `quote`.
    fn write_spelled(
        &self,
        f: &mut dyn fmt::Write,
        quote: &dyn Fn(&mut dyn fmt::Write, &str) -> fmt::Result,
    ) -> fmt::Result {
        match self {
            Dtype::Scalar(text) => f.write_str(text),
            Dtype::Record(fields) => {
                f.write_str("[")?;
                for (i, field) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    f.write_str("(")?;
                    if let Some(title) = &field.title {
                        f.write_str("(")?;
                        quote(f, title)?;
                        f.write_str(", ")?;
                        quote(f, &field.name)?;
                        f.write_str(")")?;
                    } else {
                        quote(f, &field.name)?;
                    }
                    f.write_str(", ")?;
                    match &field.dtype {
                        Dtype::Scalar(text) => quote(f, text)?,
                        record => record.write_spelled(f, quote)?,
                    }
                    if !field.shape.is_empty() {
                        write!(f, ", {}", python_tuple(&field.shape))?;
                    }
                    f.write_str(")")?;
                }
                f.write_str("]")
            }
        }
    }

    /// The dtype as a Python literal that NumPy's `.npy` reader takes for
    /// its `descr`: a quoted type string, or a list of field tuples. Every
    /// character outside printable ASCII is escaped, so the literal is
    /// ASCII (the `.npy` header of versions 1 and 2 is Latin-1).
    pub fn npy_descr(&self) -> String {
        let mut out = String::new();
        let written = match self {
            Dtype::Scalar(text) => python_quote(&mut out, text),
            record => record.write_spelled(&mut out, &python_quote),
        };
        written.expect("writing to a String cannot fail");
        out
    }
}

/// Sizes as a Python tuple: `()`, `(3,)`, `(2, 3)`.
fn python_tuple(dims: &[u64]) -> String {
    match dims {
        [n] => format!("({n},)"),
        dims => {
            let dims: Vec<String> = dims.iter().map(u64::to_string).collect();
            format!("({})", dims.join(", "))
        }
    }
}

/// Writes `text` as a single-quoted Python string literal, ASCII only.
fn python_quote(out: &mut dyn fmt::Write, text: &str) -> fmt::Result {
    out.write_char('\'')?;
    for c in text.chars() {
        match c {
            '\\' => out.write_str("\\\\")?,
            '\'' => out.write_str("\\'")?,
            ' '..='~' => out.write_char(c)?,
            c if (c as u32) < 0x100 => write!(out, "\\x{:02x}", c as u32)?,
            c if (c as u32) < 0x10000 => write!(out, "\\u{:04x}", c as u32)?,
            c => write!(out, "\\U{:08x}", c as u32)?,
        }
    }
    out.write_char('\'')
}

impl fmt::Display for Dtype {
    /// NumPy's spelling: `<f8`, or `[("x", "<f8"), ("y", "<i4", (3,))]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_spelled(f, &|f, text| write!(f, "{text:?}"))
    }
}

impl Serialize for Dtype {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Dtype {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Dtype::from_value(&value).map_err(D::Error::custom)
    }
}

impl From<&str> for Dtype {
    fn from(text: &str) -> Dtype {
        Dtype::Scalar(text.to_owned())
    }
}

/// The metadata part of an ndarray payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NdArrayMeta {
    /// The element type, as NumPy describes it.
    pub dtype: Dtype,
    /// The length of each dimension.
    pub shape: Vec<u64>,
    /// True when the data is in Fortran (column-major) order.
    pub fortran_order: bool,
}

impl NdArrayMeta {
    /// The meta as JSON, the form stored in part 0.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("plain struct serialises")
    }

    /// Parses part 0.
    ///
    /// # Errors
    /// A description of the malformed JSON or dtype.
    pub fn from_json(bytes: &[u8]) -> Result<NdArrayMeta, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("ndarray metadata: {e}"))
    }

    /// How many elements the array has; `None` when that overflows.
    pub fn element_count(&self) -> Option<u64> {
        product(&self.shape)
    }

    /// The length in bytes the data part must have, when the dtype can be sized.
    pub fn data_len(&self) -> Option<u64> {
        self.element_count()?.checked_mul(self.dtype.itemsize()?)
    }

    /// The header of a `.npy` file of this array, which its data (in the
    /// order `fortran_order` says) follows: NumPy's magic and version, and
    /// the dictionary of `descr`, `fortran_order` and `shape`, padded with
    /// spaces so that the data starts at a multiple of 64 bytes. Version 1
    /// unless the dictionary needs more than its 65,535 bytes.
    pub fn npy_header(&self) -> Vec<u8> {
        let shape = python_tuple(&self.shape);
        let order = if self.fortran_order { "True" } else { "False" };
        let dict = format!(
            "{{'descr': {}, 'fortran_order': {order}, 'shape': {shape}, }}",
            self.dtype.npy_descr()
        );
        let padded = |prefix: usize| (prefix + dict.len() + 1).next_multiple_of(64) - prefix;
        let (version, prefix) = match padded(10) {
            text if text <= usize::from(u16::MAX) => (1u8, 10),
            _ => (2u8, 12),
        };
        let text_len = padded(prefix);
        let mut out = Vec::with_capacity(prefix + text_len);
        out.extend_from_slice(b"\x93NUMPY");
        out.extend_from_slice(&[version, 0]);
        match version {
            1 => out.extend_from_slice(&(text_len as u16).to_le_bytes()),
            _ => out.extend_from_slice(&(text_len as u32).to_le_bytes()),
        }
        out.extend_from_slice(dict.as_bytes());
        out.resize(prefix + text_len - 1, b' ');
        out.push(b'\n');
        out
    }

    /// Reads the header of a `.npy` file from its first bytes: the metadata
    /// and the header's length (where the data starts). `head` may hold
    /// more than the header; [`NPY_PREFIX`] bytes tell how much it needs
    /// ([`npy_header_len`]).
    ///
    /// # Errors
    /// A description of what is not a `.npy` header (versions 1 to 3) that
    /// brain holds: the magic, the dictionary, a dtype of Python objects.
    pub fn from_npy_header(head: &[u8]) -> Result<(NdArrayMeta, usize), String> {
        let len = npy_header_len(head)?;
        let prefix = if head[6] == 1 { 10 } else { 12 };
        let text = head.get(prefix..len).ok_or_else(|| {
            format!(
                "it ends inside its .npy header ({len} bytes; {} given)",
                head.len()
            )
        })?;
        // Versions 1 and 2 write the dictionary in Latin-1 (each byte one
        // character: NumPy writes a field name 'é' as the byte 0xE9), version
        // 3 in UTF-8.
        let text: std::borrow::Cow<'_, str> = match head[6] {
            3 => std::str::from_utf8(text)
                .map_err(|_| "the .npy header's dictionary is not UTF-8 text".to_owned())?
                .into(),
            _ => text
                .iter()
                .map(|&b| char::from(b))
                .collect::<String>()
                .into(),
        };
        let dict =
            literal::parse(&text).map_err(|e| format!("the .npy header's dictionary: {e}"))?;
        let literal::Value::Dict(entries) = dict else {
            return Err("the .npy header is not a dictionary".into());
        };
        let field = |key: &str| {
            entries
                .iter()
                .find(|(k, _)| matches!(k, literal::Value::Str(s) if s == key))
                .map(|(_, v)| v)
                .ok_or_else(|| format!("the .npy header has no {key:?}"))
        };
        let dtype = Dtype::from_value(&field("descr")?.to_json())?;
        let fortran_order = match field("fortran_order")? {
            literal::Value::Bool(b) => *b,
            other => {
                return Err(format!(
                    "the .npy header's fortran_order is {other:?}, not a bool"
                ))
            }
        };
        let shape = match field("shape")? {
            literal::Value::Tuple(dims) => dims
                .iter()
                .map(|d| match d {
                    literal::Value::Int(n) => Ok(*n),
                    other => Err(format!(
                        "the .npy header's shape holds {other:?}, not a size"
                    )),
                })
                .collect::<Result<Vec<u64>, String>>()?,
            other => return Err(format!("the .npy header's shape is {other:?}, not a tuple")),
        };
        let meta = NdArrayMeta {
            dtype,
            shape,
            fortran_order,
        };
        if meta.dtype.itemsize().is_none() {
            return Err(format!(
                "its dtype {} holds Python objects, which a .npy file keeps pickled; store such an array from Python",
                meta.dtype
            ));
        }
        Ok((meta, len))
    }

    /// Checks that `data_len` bytes hold exactly this array.
    ///
    /// # Errors
    /// A description of the mismatch, or of a dtype that holds Python objects.
    pub fn check_data_len(&self, data_len: u64) -> Result<(), String> {
        if self.dtype.itemsize().is_none() {
            return Err(format!(
                "dtype {} holds Python objects or cannot be sized; store such arrays pickled",
                self.dtype
            ));
        }
        match self.data_len() {
            Some(expected) if expected == data_len => Ok(()),
            Some(expected) => Err(format!(
                "an array of dtype {} and shape {:?} has {expected} bytes of data, not {data_len}",
                self.dtype, self.shape
            )),
            None => Err(format!("shape {:?} is too large", self.shape)),
        }
    }
}

/// How many bytes of a `.npy` file tell the length of its header.
pub const NPY_PREFIX: usize = 12;

/// The length of a `.npy` file's header (magic, version, length and
/// dictionary: where the data starts), from its first [`NPY_PREFIX`] bytes.
///
/// # Errors
/// When the bytes are not the start of a `.npy` file of version 1, 2 or 3.
pub fn npy_header_len(head: &[u8]) -> Result<usize, String> {
    if !head.starts_with(b"\x93NUMPY") {
        return Err("it does not start with a .npy file's magic (\\x93NUMPY)".into());
    }
    match head.get(6..8) {
        Some([1, 0]) if head.len() >= 10 => {
            Ok(10 + usize::from(u16::from_le_bytes([head[8], head[9]])))
        }
        Some([2 | 3, 0]) if head.len() >= 12 => {
            let len = u32::from_le_bytes(head[8..12].try_into().expect("4 bytes"));
            Ok(12 + len as usize)
        }
        Some(&[major, minor]) if !(1..=3).contains(&major) || minor != 0 => Err(format!(
            "it is a .npy file of version {major}.{minor}, which this build does not read"
        )),
        _ => Err("it ends inside its .npy header".into()),
    }
}

/// The Python literals of a `.npy` header's dictionary: strings, sizes,
/// booleans, and tuples, lists and dictionaries of them.
mod literal {
    use serde_json::Value as Json;

    #[derive(Debug, PartialEq)]
    pub(super) enum Value {
        Str(String),
        Int(u64),
        Bool(bool),
        Tuple(Vec<Value>),
        List(Vec<Value>),
        Dict(Vec<(Value, Value)>),
    }

    impl Value {
        /// The form the metadata JSON gives a dtype's description (tuples
        /// as lists).
        pub(super) fn to_json(&self) -> Json {
            match self {
                Value::Str(s) => Json::String(s.clone()),
                Value::Int(n) => Json::from(*n),
                Value::Bool(b) => Json::Bool(*b),
                Value::Tuple(items) | Value::List(items) => {
                    Json::Array(items.iter().map(Value::to_json).collect())
                }
                Value::Dict(_) => Json::Null,
            }
        }
    }

    pub(super) fn parse(text: &str) -> Result<Value, String> {
        let mut parser = Parser { text, at: 0 };
        let value = parser.value(0)?;
        parser.blank();
        match parser.at == text.len() {
            true => Ok(value),
            false => Err(format!("unexpected text at {}", parser.at)),
        }
    }

    struct Parser<'a> {
        text: &'a str,
        at: usize,
    }

    /// Deeper than any dtype needs: a bound on the recursion.
    const MAX_DEPTH: usize = 64;

    impl Parser<'_> {
        fn rest(&self) -> &str {
            &self.text[self.at..]
        }

        fn blank(&mut self) {
            let rest = self.rest();
            self.at += rest.len() - rest.trim_start().len();
        }

        fn eat(&mut self, token: &str) -> bool {
            self.blank();
            let found = self.rest().starts_with(token);
            if found {
                self.at += token.len();
            }
            found
        }

        fn value(&mut self, depth: usize) -> Result<Value, String> {
            if depth > MAX_DEPTH {
                return Err("nested too deeply".into());
            }
            self.blank();
            let at = self.at;
            match self.rest().chars().next() {
                Some('\'' | '"') => self.string(),
                Some('0'..='9') => {
                    let digits = self
                        .rest()
                        .find(|c: char| !c.is_ascii_digit())
                        .unwrap_or(self.rest().len());
                    let n = self.rest()[..digits]
                        .parse()
                        .map_err(|_| format!("a number too large at {at}"))?;
                    self.at += digits;
                    // Python 2 wrote sizes as longs: `3L`.
                    self.eat("L");
                    Ok(Value::Int(n))
                }
                Some('(') => {
                    self.at += 1;
                    Ok(Value::Tuple(self.items(')', depth)?))
                }
                Some('[') => {
                    self.at += 1;
                    Ok(Value::List(self.items(']', depth)?))
                }
                Some('{') => {
                    self.at += 1;
                    let mut entries = Vec::new();
                    while !self.eat("}") {
                        let key = self.value(depth + 1)?;
                        if !self.eat(":") {
                            return Err(format!("a ':' expected at {}", self.at));
                        }
                        entries.push((key, self.value(depth + 1)?));
                        if !self.eat(",") && !self.rest().trim_start().starts_with('}') {
                            return Err(format!("a ',' or '}}' expected at {}", self.at));
                        }
                    }
                    Ok(Value::Dict(entries))
                }
                _ if self.eat("True") => Ok(Value::Bool(true)),
                _ if self.eat("False") => Ok(Value::Bool(false)),
                _ => Err(format!("unexpected text at {at}")),
            }
        }

        fn items(&mut self, close: char, depth: usize) -> Result<Vec<Value>, String> {
            let mut items = Vec::new();
            let close = close.to_string();
            while !self.eat(&close) {
                items.push(self.value(depth + 1)?);
                if !self.eat(",") && !self.rest().trim_start().starts_with(&close) {
                    return Err(format!("a ',' or '{close}' expected at {}", self.at));
                }
            }
            Ok(items)
        }

        fn string(&mut self) -> Result<Value, String> {
            let start = self.at;
            let mut chars = self.rest().char_indices();
            let (_, quote) = chars.next().expect("a quote");
            let mut out = String::new();
            let unterminated = || format!("a string at {start} does not end");
            loop {
                let (i, c) = chars.next().ok_or_else(unterminated)?;
                if c == quote {
                    self.at += i + 1;
                    return Ok(Value::Str(out));
                }
                if c != '\\' {
                    out.push(c);
                    continue;
                }
                let (_, escape) = chars.next().ok_or_else(unterminated)?;
                let hex = |chars: &mut std::str::CharIndices<'_>, n: usize| {
                    let digits: String = chars.by_ref().take(n).map(|(_, c)| c).collect();
                    u32::from_str_radix(&digits, 16)
                        .ok()
                        .filter(|_| digits.len() == n)
                        .and_then(char::from_u32)
                        .ok_or_else(|| format!("a bad escape in the string at {start}"))
                };
                out.push(match escape {
                    'n' => '\n',
                    't' => '\t',
                    'r' => '\r',
                    '0' => '\0',
                    'x' => hex(&mut chars, 2)?,
                    'u' => hex(&mut chars, 4)?,
                    'U' => hex(&mut chars, 8)?,
                    '\\' | '\'' | '"' => escape,
                    other => {
                        return Err(format!(
                        "an escape \\{other} this reader does not know, in the string at {start}"
                    ))
                    }
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_type_strings_are_sized() {
        for (text, size) in [
            ("<f8", 8),
            ("|b1", 1),
            ("<M8[ns]", 8),
            (">m8[D]", 8),
            ("<U5", 20),
            ("|S3", 3),
            ("|V16", 16),
            ("<c16", 16),
            ("=i4", 4),
        ] {
            assert_eq!(Dtype::from(text).itemsize(), Some(size), "{text}");
        }
        for text in ["|O", "", "<x8", "<f", "<f8[ns]", "<M8ns"] {
            assert_eq!(Dtype::from(text).itemsize(), None, "{text}");
        }
    }

    #[test]
    fn structured_dtypes_round_trip_through_json_and_are_sized() {
        let json = br#"{"dtype":[["x","<f8"],[["T","y"],"<i4",[2,3]],["",  "|V4"],["z",[["a","|u1"],["b","<U2"]]],["w","<f4",5]],"shape":[3],"fortran_order":false}"#;
        let meta = NdArrayMeta::from_json(json).unwrap();
        assert_eq!(meta.dtype.itemsize(), Some(8 + 4 * 6 + 4 + 9 + 20));
        assert_eq!(meta.data_len(), Some(3 * 65));
        let again = NdArrayMeta::from_json(&meta.to_json()).unwrap();
        assert_eq!(again, meta);
        assert_eq!(
            meta.dtype.to_string(),
            r#"[("x", "<f8"), (("T", "y"), "<i4", (2, 3)), ("", "|V4"), ("z", [("a", "|u1"), ("b", "<U2")]), ("w", "<f4", (5,))]"#
        );
        assert!(meta.check_data_len(195).is_ok());
        assert!(meta.check_data_len(194).is_err());
    }

    #[test]
    fn a_npy_header_is_python_literals_padded_to_64_bytes() {
        let meta = NdArrayMeta::from_json(
            r#"{"dtype":[["it's \\ é🧠","<f8"],[["t","n"],"|u1",[2]]],"shape":[],"fortran_order":true}"#.as_bytes(),
        )
        .unwrap();
        let header = meta.npy_header();
        assert_eq!(&header[..8], b"\x93NUMPY\x01\x00");
        assert_eq!(header.len() % 64, 0);
        assert_eq!(
            usize::from(u16::from_le_bytes([header[8], header[9]])),
            header.len() - 10
        );
        let text = std::str::from_utf8(&header[10..]).unwrap();
        assert_eq!(
            text.trim_end(),
            r"{'descr': [('it\'s \\ \xe9\U0001f9e0', '<f8'), (('t', 'n'), '|u1', (2,))], 'fortran_order': True, 'shape': (), }"
        );
        assert!(text.ends_with('\n'));
        let wide = NdArrayMeta {
            dtype: Dtype::Record(
                (0..5000)
                    .map(|i| DtypeField {
                        name: format!("f{i:05}"),
                        title: None,
                        dtype: "|u1".into(),
                        shape: vec![],
                    })
                    .collect(),
            ),
            shape: vec![2, 3],
            fortran_order: false,
        };
        let header = wide.npy_header();
        assert_eq!(&header[6..8], b"\x02\x00");
        assert_eq!(header.len() % 64, 0);
        assert!(std::str::from_utf8(&header[12..])
            .unwrap()
            .contains("'shape': (2, 3), }"));
    }

    #[test]
    fn a_npy_header_written_is_read_back() {
        let json = r#"{"dtype":[["it's \\ é🧠","<f8"],[["t","n"],"|u1",[2,3]],["",  "|V4"],["z",[["a","|u1"],["b","<U2"]]]],"shape":[4, 5],"fortran_order":true}"#;
        let meta = NdArrayMeta::from_json(json.as_bytes()).unwrap();
        let mut file = meta.npy_header();
        let header_len = file.len();
        file.extend_from_slice(b"data");
        assert_eq!(
            NdArrayMeta::from_npy_header(&file).unwrap(),
            (meta, header_len)
        );
        // NumPy's own spelling: double quotes, Python 2 longs, no trailing comma.
        let text = b"{\"descr\": \"<i8\", \"shape\": (3L, 2), \"fortran_order\": False}";
        let mut numpy = b"\x93NUMPY\x01\x00".to_vec();
        numpy.extend_from_slice(&(text.len() as u16).to_le_bytes());
        numpy.extend_from_slice(text);
        let (read, _) = NdArrayMeta::from_npy_header(&numpy).unwrap();
        assert_eq!((read.dtype, read.shape), ("<i8".into(), vec![3, 2]));
        for (bad, why) in [
            (&b"NUMPY"[..], "magic"),
            (b"\x93NUMPY\x04\x00\x00\x00", "version 4.0"),
            (b"\x93NUMPY\x01\x00\x09\x00{'descr'", "ends"),
            (b"\x93NUMPY\x01\x00\x02\x00[]", "not a dictionary"),
            (b"\x93NUMPY\x01\x00\x01\x00[", "unexpected text at 1"),
        ] {
            let err = NdArrayMeta::from_npy_header(bad).unwrap_err();
            assert!(err.contains(why), "{err:?} lacks {why:?}");
        }
    }

    #[test]
    fn malformed_metadata_is_an_error_not_a_panic() {
        for json in [
            &br#"{"dtype":7,"shape":[1],"fortran_order":false}"#[..],
            br#"{"dtype":[["x"]],"shape":[1],"fortran_order":false}"#,
            br#"{"dtype":"nonsense","shape":[1],"fortran_order":false}"#,
            br#"{"dtype":"<f8","shape":[-1],"fortran_order":false}"#,
            b"[",
        ] {
            assert!(
                NdArrayMeta::from_json(json).is_err(),
                "{}",
                String::from_utf8_lossy(json)
            );
        }
        let object =
            NdArrayMeta::from_json(br#"{"dtype":"|O","shape":[1],"fortran_order":false}"#).unwrap();
        assert!(object.check_data_len(8).is_err());
        let huge = NdArrayMeta {
            dtype: "<f8".into(),
            shape: vec![u64::MAX, 2],
            fortran_order: false,
        };
        assert!(huge.check_data_len(0).is_err());
    }
}
