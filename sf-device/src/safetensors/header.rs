//! The safetensors header, read and checked completely before any tensor is: every entry's
//! `dtype`, `shape` and `data_offsets` are well formed and consistent with each other, the
//! tensors tile the data area exactly (no overlap, no gap, nothing past the end of the file),
//! no name appears twice and `__metadata__` maps strings to strings. A file cut anywhere in its
//! data is therefore found from the header and the file size alone.
//!
//! Allocation is bounded by the header's length (itself at most [`MAX_HEADER_BYTES`] and the
//! file's size): JSON values the format does not define are refused, not buffered, and nesting
//! is never recursed into.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// The largest safetensors header accepted (real headers are well under 1 MiB; the reference
/// implementation's limit is 100 MB).
pub const MAX_HEADER_BYTES: u64 = 100 * 1024 * 1024;

/// The most dimensions a tensor may declare.
pub const MAX_RANK: usize = 32;

/// One tensor of a safetensors header, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderTensor {
    /// The tensor's name.
    pub name: String,
    /// Its dtype as written (`F32`, `BF16`, ...); a dtype of the format.
    pub dtype: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// `[begin, end)` of its bytes, relative to the data area; `end - begin` is exactly the
    /// size its dtype and shape need.
    pub data_offsets: [u64; 2],
}

/// A safetensors header whose every entry was checked against the file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Header {
    /// The tensors, in the order of their data.
    pub tensors: Vec<HeaderTensor>,
    /// The `__metadata__` map (empty without one).
    pub metadata: BTreeMap<String, String>,
    /// Absolute file offset of the data area (8 + the header's length).
    pub data_start: u64,
}

impl HeaderTensor {
    /// Its size in bytes.
    pub fn byte_len(&self) -> u64 {
        self.data_offsets[1] - self.data_offsets[0]
    }
}

impl Header {
    /// The tensor called `name`.
    pub fn tensor(&self, name: &str) -> Option<&HeaderTensor> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// Absolute file offset of the first byte of `tensor`.
    pub fn start(&self, tensor: &HeaderTensor) -> u64 {
        self.data_start + tensor.data_offsets[0]
    }

    /// The header as a JSON object (the tensors as `{dtype, shape, data_offsets}` objects,
    /// `__metadata__` as an object of strings when the file has metadata).
    pub fn to_json(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut map = serde_json::Map::new();
        if !self.metadata.is_empty() {
            map.insert("__metadata__".into(), serde_json::json!(self.metadata));
        }
        for t in &self.tensors {
            map.insert(
                t.name.clone(),
                serde_json::json!({
                    "dtype": t.dtype,
                    "shape": t.shape,
                    "data_offsets": t.data_offsets,
                }),
            );
        }
        map
    }
}

/// Bits per element of a safetensors dtype, `None` for a name the format does not define.
pub fn dtype_bits(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "F4" => 4,
        "F6_E2M3" | "F6_E3M2" => 6,
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" | "F8_E8M0" | "F8_E4M3FNUZ"
        | "F8_E5M2FNUZ" => 8,
        "I16" | "U16" | "F16" | "BF16" => 16,
        "I32" | "U32" | "F32" => 32,
        "I64" | "U64" | "F64" | "C64" => 64,
        _ => return None,
    })
}

/// Checks the JSON header `json` of a file whose data area (everything after the header)
/// holds `data_len` bytes. `Err` says what is wrong, naming the tensor.
pub fn parse_header(json: &[u8], data_start: u64, data_len: u64) -> Result<Header, String> {
    let mut de = serde_json::Deserializer::from_slice(json);
    let raw = RawHeader::deserialize(&mut de).map_err(|e| format!("invalid header: {e}"))?;
    de.end().map_err(|e| format!("invalid header: {e}"))?;
    let mut tensors = Vec::with_capacity(raw.tensors.len());
    for (name, t) in raw.tensors {
        tensors.push(check_tensor(name, t)?);
    }
    let mut names: Vec<&str> = tensors.iter().map(|t| t.name.as_str()).collect();
    names.sort_unstable();
    if let Some(pair) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(format!("the header names tensor '{}' twice", pair[0]));
    }
    if raw.metadata_entries > 1 {
        return Err("the header has more than one __metadata__ entry".into());
    }
    tensors.sort_by_key(|t| t.data_offsets);
    let mut end = 0u64;
    let mut previous: Option<&HeaderTensor> = None;
    for t in &tensors {
        let [begin, stop] = t.data_offsets;
        if begin < end {
            let other = previous.map(|p| p.name.as_str()).unwrap_or_default();
            return Err(format!(
                "tensor '{}' (bytes {begin}..{stop}) overlaps tensor '{other}' (which ends at \
                 {end}): the header is corrupt",
                t.name
            ));
        }
        if begin > end {
            return Err(format!(
                "{} bytes before tensor '{}' belong to no tensor (a gap in the data area): the \
                 header is corrupt",
                begin - end,
                t.name
            ));
        }
        end = stop;
        previous = Some(t);
    }
    if end > data_len {
        return Err(format!(
            "the header declares {end} bytes of tensor data but the file holds only {data_len} \
             after its header: the file is truncated (download it again)"
        ));
    }
    if end < data_len {
        return Err(format!(
            "the file holds {} bytes after its last tensor (the header declares {end} bytes of \
             data, the file has {data_len}): it is corrupt or not a safetensors file",
            data_len - end
        ));
    }
    Ok(Header {
        tensors,
        metadata: raw.metadata,
        data_start,
    })
}

fn check_tensor(name: String, t: RawTensor) -> Result<HeaderTensor, String> {
    let bad = |what: String| format!("tensor '{name}': {what}");
    let dtype = t
        .dtype
        .ok_or_else(|| bad("the entry has no dtype".into()))?;
    let shape = t
        .shape
        .ok_or_else(|| bad("the entry has no shape".into()))?;
    let offsets = t
        .data_offsets
        .ok_or_else(|| bad("the entry has no data_offsets".into()))?;
    let bits = dtype_bits(&dtype).ok_or_else(|| bad(format!("unknown dtype '{dtype}'")))?;
    let [begin, end] = offsets[..] else {
        return Err(bad(format!(
            "data_offsets must be [begin, end], found {} numbers",
            offsets.len()
        )));
    };
    if end < begin {
        return Err(bad(format!(
            "data_offsets [{begin}, {end}] end before they begin"
        )));
    }
    let too_big = || {
        bad(format!(
            "shape {shape:?} of {dtype} does not fit in 64 bits"
        ))
    };
    let numel = shape
        .iter()
        .try_fold(1u64, |n, &d| n.checked_mul(d))
        .ok_or_else(too_big)?;
    let total_bits = numel.checked_mul(bits).ok_or_else(too_big)?;
    if total_bits % 8 != 0 {
        return Err(bad(format!(
            "shape {shape:?} of {dtype} is not a whole number of bytes"
        )));
    }
    let size = total_bits / 8;
    if end - begin != size {
        return Err(bad(format!(
            "{dtype} of shape {shape:?} needs {size} bytes but data_offsets [{begin}, {end}] \
             hold {}",
            end - begin
        )));
    }
    let Ok(shape) = shape.iter().map(|&d| usize::try_from(d)).collect() else {
        return Err(too_big());
    };
    Ok(HeaderTensor {
        name,
        dtype,
        shape,
        data_offsets: [begin, end],
    })
}

/// The header as written: entries in file order, checked for types only.
struct RawHeader {
    tensors: Vec<(String, RawTensor)>,
    metadata: BTreeMap<String, String>,
    metadata_entries: usize,
}

/// One entry, each field as found (absent fields are reported by name).
struct RawTensor {
    dtype: Option<String>,
    shape: Option<Vec<u64>>,
    data_offsets: Option<Vec<u64>>,
}

impl<'de> Deserialize<'de> for RawHeader {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(HeaderVisitor)
    }
}

struct HeaderVisitor;

impl<'de> Visitor<'de> for HeaderVisitor {
    type Value = RawHeader;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object of tensor entries")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawHeader, A::Error> {
        let mut header = RawHeader {
            tensors: Vec::new(),
            metadata: BTreeMap::new(),
            metadata_entries: 0,
        };
        while let Some(name) = map.next_key::<String>()? {
            if name == "__metadata__" {
                header.metadata_entries += 1;
                header.metadata = map.next_value::<Metadata>()?.0;
            } else {
                let tensor = map.next_value_seed(TensorSeed(&name))?;
                header.tensors.push((name, tensor));
            }
        }
        Ok(header)
    }
}

/// `__metadata__`: strings to strings, nothing else.
struct Metadata(BTreeMap<String, String>);

impl<'de> Deserialize<'de> for Metadata {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Metadata;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("__metadata__ as an object of string values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Metadata, A::Error> {
                let mut out = BTreeMap::new();
                while let Some(key) = map.next_key::<String>()? {
                    let value = map.next_value::<MetadataString>()?.0;
                    if out.insert(key.clone(), value).is_some() {
                        return Err(de::Error::custom(format!(
                            "__metadata__ names '{key}' twice"
                        )));
                    }
                }
                Ok(Metadata(out))
            }
        }
        d.deserialize_map(V)
    }
}

struct MetadataString(String);

impl<'de> Deserialize<'de> for MetadataString {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = MetadataString;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string (__metadata__ values are strings)")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<MetadataString, E> {
                Ok(MetadataString(v.to_string()))
            }
        }
        d.deserialize_str(V)
    }
}

/// A tensor entry; errors name the tensor.
struct TensorSeed<'a>(&'a str);

impl<'de> DeserializeSeed<'de> for TensorSeed<'_> {
    type Value = RawTensor;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<RawTensor, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TensorSeed<'_> {
    type Value = RawTensor;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "tensor '{}' as an object {{dtype, shape, data_offsets}}",
            self.0
        )
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawTensor, A::Error> {
        let name = self.0;
        let field_error = |field: &str, e: A::Error| {
            de::Error::custom(format!("tensor '{name}': field {field}: {e}"))
        };
        let mut t = RawTensor {
            dtype: None,
            shape: None,
            data_offsets: None,
        };
        while let Some(key) = map.next_key::<String>()? {
            let twice = match key.as_str() {
                "dtype" => t
                    .dtype
                    .replace(map.next_value().map_err(|e| field_error("dtype", e))?)
                    .is_some(),
                "shape" => t
                    .shape
                    .replace(
                        map.next_value_seed(Numbers(MAX_RANK))
                            .map_err(|e| field_error("shape", e))?,
                    )
                    .is_some(),
                "data_offsets" => t
                    .data_offsets
                    .replace(
                        map.next_value_seed(Numbers(2))
                            .map_err(|e| field_error("data_offsets", e))?,
                    )
                    .is_some(),
                other => {
                    // Skipped without buffering, then refused: the format has no other field.
                    map.next_value::<IgnoredAny>()?;
                    return Err(de::Error::custom(format!(
                        "tensor '{name}' has a field '{other}' the format does not define \
                         (only dtype, shape, data_offsets)"
                    )));
                }
            };
            if twice {
                return Err(de::Error::custom(format!(
                    "tensor '{name}' has the field '{key}' twice"
                )));
            }
        }
        Ok(t)
    }
}

/// An array of at most `.0` non-negative integers.
struct Numbers(usize);

impl<'de> DeserializeSeed<'de> for Numbers {
    type Value = Vec<u64>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Vec<u64>, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Numbers {
    type Value = Vec<u64>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "an array of at most {} non-negative integers", self.0)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u64>, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element::<u64>()? {
            if out.len() == self.0 {
                return Err(de::Error::custom(format!("more than {} entries", self.0)));
            }
            out.push(v);
        }
        Ok(out)
    }
}

#[cfg(test)]
#[path = "header_tests.rs"]
mod tests;
