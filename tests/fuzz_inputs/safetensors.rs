//! Structured mutations of safetensors headers: the JSON stays valid (mostly), its content is
//! wrong. Each mutated file goes through every safetensors reader and the model's loader; a
//! mutation that breaks the file must be an error in all of them, a renamed tensor must be read
//! as such by the readers and refused by the loader, the intact file must load.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use proptest::prelude::*;
use proptest::sample::Index;
use sf_device::safetensors::{HeaderTensor, read_header};
use sf_testkit::workspace_fixtures;

use super::{Model, load_bounded, read_safetensors, write};

/// A fixture weight file taken apart.
struct Base {
    name: &'static str,
    model: Model,
    tensors: Vec<HeaderTensor>,
    metadata: BTreeMap<String, String>,
    data: Vec<u8>,
}

fn bases() -> &'static [Base] {
    static BASES: OnceLock<Vec<Base>> = OnceLock::new();
    BASES.get_or_init(|| {
        [
            ("t5_tiny.safetensors", Model::UmT5),
            ("dit_tiny.safetensors", Model::Dit),
            ("taehv_tiny.safetensors", Model::Taehv),
            ("vae_tiny.safetensors", Model::WanVae),
        ]
        .into_iter()
        .map(|(name, model)| {
            let path = workspace_fixtures().join(name);
            let header = read_header(&path).unwrap();
            let bytes = std::fs::read(&path).unwrap();
            Base {
                name,
                model,
                data: bytes[header.data_start as usize..].to_vec(),
                tensors: header.tensors,
                metadata: header.metadata,
            }
        })
        .collect()
    })
}

/// One change to a valid file.
#[derive(Clone, Debug)]
enum Mutation {
    Intact,
    /// A shape whose element count (times the dtype's size) overflows 64 bits or the offsets.
    HugeShape(Index, Vec<u64>),
    /// Offsets moved by a number of bytes (a gap, an overlap, or past the end).
    Shift(Index, u64),
    /// Offsets beyond the end of the file.
    PastTheEnd(Index, u64),
    EndBeforeStart(Index),
    /// `begin` (or `end`) replaced by a JSON value that is not a byte offset.
    BadOffset(Index, bool, &'static str),
    /// Offsets moved back into the previous tensor, with the same length.
    Overlap(Index, u64),
    /// Unused bytes inserted after a tensor (the offsets after it shifted to match).
    Gap(Index, u64),
    /// A dtype of another element size.
    Dtype(Index, &'static str),
    UnknownDtype(Index, String),
    /// `dtype`, `shape` or `data_offsets` left out.
    MissingField(Index, usize),
    /// `dtype`, `shape` or `data_offsets` of the wrong JSON type.
    WrongType(Index, usize, &'static str),
    UnknownField(Index),
    /// 100 000-deep (or random) nesting in one of several places.
    Deep(usize, usize),
    /// A tensor renamed to a name of this many bytes (a valid file the loader must refuse).
    HugeKey(Index, usize),
    DuplicateKey(Index),
    DuplicateMetadata,
    BadMetadata(&'static str),
    /// The data area cut (at least one byte).
    CutData(f64),
    /// The file cut inside its header.
    CutHeader(f64),
    Trailing(usize),
    /// The 8-byte header length off by this much.
    HeaderLength(i64),
}

const BAD_OFFSETS: [&str; 10] = [
    "-1",
    "-9223372036854775808",
    "1.5",
    "\"8\"",
    "null",
    "true",
    "1e30",
    "[]",
    "{}",
    "18446744073709551616",
];
const WRONG_TYPES: [[&str; 4]; 3] = [
    ["32", "null", "[\"F32\"]", "{}"],
    ["\"2,3\"", "{}", "[2.5]", "[-1]"],
    ["\"0,8\"", "{}", "[0]", "[0,8,16]"],
];
const FIELDS: [&str; 3] = ["dtype", "shape", "data_offsets"];

fn mutation() -> impl Strategy<Value = Mutation> {
    use Mutation::*;
    let huge = prop_oneof![
        Just(vec![1u64 << 40, 1 << 40]),
        Just(vec![u64::MAX]),
        Just(vec![1 << 32, 1 << 32, 1 << 32]),
        Just(vec![1 << 62]),
        Just(vec![u64::MAX / 2, 2, 2]),
    ];
    let bad_meta = prop::sample::select(vec![
        "[]",
        "\"text\"",
        "7",
        "{\"k\":1}",
        "{\"k\":{\"a\":\"b\"}}",
        "{\"k\":null}",
        "{\"k\":[\"a\"]}",
    ]);
    prop_oneof![
        1 => Just(Intact),
        1 => (any::<Index>(), huge).prop_map(|(i, d)| HugeShape(i, d)),
        1 => (any::<Index>(), 1u64..1 << 20).prop_map(|(i, b)| Shift(i, b)),
        1 => (any::<Index>(), 0u64..1 << 40).prop_map(|(i, b)| PastTheEnd(i, b)),
        1 => any::<Index>().prop_map(EndBeforeStart),
        1 => (any::<Index>(), any::<bool>(), prop::sample::select(BAD_OFFSETS.to_vec()))
            .prop_map(|(i, e, v)| BadOffset(i, e, v)),
        1 => (any::<Index>(), 1u64..64).prop_map(|(i, b)| Overlap(i, b)),
        1 => (any::<Index>(), 1u64..64).prop_map(|(i, b)| Gap(i, b)),
        1 => (any::<Index>(), prop::sample::select(vec!["BOOL", "F16", "F32", "F64", "I64", "F8_E4M3", "F4"]))
            .prop_map(|(i, d)| Dtype(i, d)),
        1 => (any::<Index>(), "[A-Za-z0-9_]{0,12}|.{0,40}").prop_map(|(i, d)| UnknownDtype(i, d)),
        1 => (any::<Index>(), 0usize..3).prop_map(|(i, f)| MissingField(i, f)),
        1 => (any::<Index>(), 0usize..3, 0usize..4)
            .prop_map(|(i, f, v)| WrongType(i, f, WRONG_TYPES[f][v])),
        1 => any::<Index>().prop_map(UnknownField),
        1 => (0usize..6, prop_oneof![Just(100_000usize), 129usize..200_000]).prop_map(|(p, d)| Deep(p, d)),
        1 => (any::<Index>(), prop_oneof![Just(1usize << 20), 1usize..300_000]).prop_map(|(i, n)| HugeKey(i, n)),
        1 => any::<Index>().prop_map(DuplicateKey),
        1 => Just(DuplicateMetadata),
        1 => bad_meta.prop_map(BadMetadata),
        1 => (0.0f64..1.0).prop_map(CutData),
        1 => (0.0f64..1.0).prop_map(CutHeader),
        1 => (1usize..100).prop_map(Trailing),
        1 => prop_oneof![1i64..64, -64i64..0, Just(i64::MAX / 2)].prop_map(HeaderLength),
    ]
}

fn tensor_json(t: &HeaderTensor) -> serde_json::Map<String, serde_json::Value> {
    let v = serde_json::json!({"dtype": t.dtype, "shape": t.shape, "data_offsets": t.data_offsets});
    v.as_object().unwrap().clone()
}

/// What a mutated file must do.
#[derive(Debug, PartialEq)]
enum Expect {
    /// Every reader and the loader accept it.
    Intact,
    /// Every reader refuses it, and the loader.
    Invalid,
    /// Every reader reads these names; the loader refuses it (a tensor is missing).
    Renamed(String),
}

/// The mutated file and what it must do.
fn build(base: &Base, m: &Mutation) -> (Vec<u8>, Expect) {
    use Mutation::*;
    // Mutations aim at tensors that hold data (an empty tensor can move freely).
    let sized: Vec<usize> = (0..base.tensors.len())
        .filter(|&i| base.tensors[i].data_offsets[1] > base.tensors[i].data_offsets[0])
        .collect();
    let pick = |i: &Index| sized[i.index(sized.len())];
    let mut keys: Vec<String> = base.tensors.iter().map(|t| t.name.clone()).collect();
    let mut values: Vec<serde_json::Map<String, serde_json::Value>> =
        base.tensors.iter().map(tensor_json).collect();
    let mut raw: Vec<Option<String>> = vec![None; keys.len()];
    let mut data = base.data.clone();
    let mut metadata = Some(serde_json::to_string(&base.metadata).unwrap());
    let mut extra: Vec<(String, String)> = Vec::new();
    let mut header_text: Option<String> = None;
    let mut expect = Expect::Invalid;
    let offsets = |t: &HeaderTensor| t.data_offsets;
    let set_offsets = |v: &mut serde_json::Map<String, serde_json::Value>, b: u64, e: u64| {
        v.insert("data_offsets".into(), serde_json::json!([b, e]));
    };
    match m {
        Intact => expect = Expect::Intact,
        HugeShape(i, dims) => {
            values[pick(i)].insert("shape".into(), serde_json::json!(dims));
        }
        Shift(i, by) => {
            let [b, e] = offsets(&base.tensors[pick(i)]);
            set_offsets(&mut values[pick(i)], b + by, e + by);
        }
        PastTheEnd(i, by) => {
            let [b, e] = offsets(&base.tensors[pick(i)]);
            let start = data.len() as u64 + by;
            set_offsets(&mut values[pick(i)], start, start + e - b);
        }
        EndBeforeStart(i) => {
            let [b, e] = offsets(&base.tensors[pick(i)]);
            set_offsets(&mut values[pick(i)], e, b);
        }
        BadOffset(i, end, value) => {
            let [b, e] = offsets(&base.tensors[pick(i)]);
            let text = if *end {
                format!("[{b},{value}]")
            } else {
                format!("[{value},{e}]")
            };
            values[pick(i)].remove("data_offsets");
            let mut obj = serde_json::to_string(&values[pick(i)]).unwrap();
            obj.pop();
            raw[pick(i)] = Some(format!("{obj},\"data_offsets\":{text}}}"));
        }
        Overlap(i, back) => {
            // The first tensor in the data cannot move back: the next one with data does.
            let mut k = pick(i);
            if base.tensors[k].data_offsets[0] == 0 {
                k = *sized
                    .iter()
                    .find(|&&j| base.tensors[j].data_offsets[0] > 0)
                    .unwrap();
            }
            let [b, e] = offsets(&base.tensors[k]);
            let back = (*back).min(b);
            set_offsets(&mut values[k], b - back, e - back);
        }
        Gap(i, bytes) => {
            let k = pick(i);
            let end = offsets(&base.tensors[k])[1];
            for (v, t) in values.iter_mut().zip(&base.tensors) {
                let [b, e] = t.data_offsets;
                if b >= end && t.name != base.tensors[k].name {
                    set_offsets(v, b + bytes, e + bytes);
                }
            }
            let at = end as usize;
            data.splice(at..at, std::iter::repeat_n(0u8, *bytes as usize));
        }
        Dtype(i, dtype) => {
            let k = pick(i);
            let bits = sf_device::safetensors::dtype_bits;
            let dtype = match bits(dtype) == bits(&base.tensors[k].dtype) {
                true if bits(dtype) == Some(8) => "F32",
                true => "BOOL",
                false => dtype,
            };
            values[k].insert("dtype".into(), serde_json::json!(dtype));
        }
        UnknownDtype(i, dtype) => {
            let known = sf_device::safetensors::dtype_bits(dtype).is_some();
            let dtype = if known {
                format!("{dtype}x")
            } else {
                dtype.clone()
            };
            values[pick(i)].insert("dtype".into(), serde_json::json!(dtype));
        }
        MissingField(i, f) => {
            values[pick(i)].remove(FIELDS[*f]);
        }
        WrongType(i, f, value) => {
            let k = pick(i);
            values[k].remove(FIELDS[*f]);
            let mut obj = serde_json::to_string(&values[k]).unwrap();
            obj.pop();
            raw[k] = Some(format!("{obj},\"{}\":{value}}}", FIELDS[*f]));
        }
        UnknownField(i) => {
            values[pick(i)].insert("offsets".into(), serde_json::json!([0, 8]));
        }
        Deep(place, depth) => {
            let deep = format!("{}{}", "[".repeat(*depth), "]".repeat(*depth));
            let obj = format!("{}{}", "{\"a\":".repeat(*depth), "}".repeat(*depth));
            let k = sized[0];
            match place {
                0 => header_text = Some(deep),
                1 => raw[k] = Some(deep),
                2 => metadata = Some(deep),
                3 => {
                    values[k].remove("shape");
                    let mut o = serde_json::to_string(&values[k]).unwrap();
                    o.pop();
                    raw[k] = Some(format!("{o},\"shape\":{deep}}}"));
                }
                4 => {
                    let mut o = serde_json::to_string(&values[k]).unwrap();
                    o.pop();
                    raw[k] = Some(format!("{o},\"x\":{deep}}}"));
                }
                _ => raw[k] = Some(obj),
            }
        }
        HugeKey(i, len) => {
            let k = pick(i);
            let name: String = (0..*len).map(|n| (b'a' + (n % 26) as u8) as char).collect();
            keys[k] = name.clone();
            expect = Expect::Renamed(name);
        }
        DuplicateKey(i) => {
            let k = pick(i);
            extra.push((keys[k].clone(), serde_json::to_string(&values[k]).unwrap()));
        }
        DuplicateMetadata => extra.push(("__metadata__".into(), "{}".into())),
        BadMetadata(value) => metadata = Some(value.to_string()),
        CutData(keep) => {
            let keep = ((data.len() as f64 * keep) as usize).min(data.len() - 1);
            data.truncate(keep);
        }
        CutHeader(_) | Trailing(_) | HeaderLength(_) => {}
    }
    let header = header_text.unwrap_or_else(|| {
        let mut parts = Vec::new();
        if let Some(meta) = metadata {
            parts.push(format!("\"__metadata__\":{meta}"));
        }
        for ((k, v), r) in keys.iter().zip(&values).zip(&raw) {
            let value = r
                .clone()
                .unwrap_or_else(|| serde_json::to_string(v).unwrap());
            parts.push(format!("{}:{value}", serde_json::to_string(k).unwrap()));
        }
        for (k, v) in &extra {
            parts.push(format!("{}:{v}", serde_json::to_string(k).unwrap()));
        }
        format!("{{{}}}", parts.join(","))
    });
    let mut len = header.len() as i64;
    if let HeaderLength(delta) = m {
        len = len.saturating_add(*delta);
    }
    let mut file = (len as u64).to_le_bytes().to_vec();
    file.extend_from_slice(header.as_bytes());
    file.extend_from_slice(&data);
    match m {
        CutHeader(keep) => file.truncate(8 + (header.len() as f64 * keep) as usize),
        Trailing(n) => file.extend(std::iter::repeat_n(0u8, *n)),
        _ => {}
    }
    (file, expect)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn structured_header_mutations_are_refused_by_every_reader(
        which in 0usize..4,
        m in mutation(),
    ) {
        let base = &bases()[which];
        let (bytes, expect) = build(base, &m);
        let path = write(base.name, &bytes);
        let read = read_safetensors(&path);
        match &expect {
            Expect::Invalid => {
                prop_assert!(read.is_err(), "{m:?} on {} was read: {read:?}", base.name);
                let loaded = load_bounded(base.model, &path);
                prop_assert!(loaded.is_err(), "{m:?} on {} loaded", base.name);
            }
            Expect::Intact => {
                let mut names: Vec<String> = base.tensors.iter().map(|t| t.name.clone()).collect();
                names.sort();
                prop_assert_eq!(read, Ok(names));
                let loaded = load_bounded(base.model, &path);
                prop_assert!(loaded.is_ok(), "the intact {}: {loaded:?}", base.name);
            }
            Expect::Renamed(name) => {
                let names = read.unwrap_or_else(|e| panic!("a renamed tensor: {e:?}"));
                prop_assert!(names.contains(name));
                let loaded = load_bounded(base.model, &path);
                prop_assert!(loaded.is_err(), "{} loaded with a tensor missing", base.name);
            }
        }
        std::fs::remove_file(&path).ok();
    }
}

#[test]
fn a_file_cut_anywhere_in_its_data_is_found_from_the_header() {
    for base in bases() {
        let (intact, _) = build(base, &Mutation::Intact);
        for cut in [1, 2, base.data.len() / 2, base.data.len() - 1] {
            let path = write(base.name, &intact[..intact.len() - cut]);
            let errors = read_safetensors(&path).unwrap_err();
            assert!(
                errors.iter().all(|e| e.contains("truncated")),
                "{} cut by {cut}: {errors:?}",
                base.name
            );
            std::fs::remove_file(&path).ok();
        }
    }
}

/// Eight tensors whose sizes each fit in 64 bits but whose sum with the header does not (the
/// safetensors crate's `read_metadata`, behind burn::store, panics on this with overflow checks
/// on): every reader, the fixture reader among them, and a loader refuse it.
#[test]
fn sizes_summing_past_64_bits_are_refused_before_burn_store() {
    let size = (1u64 << 61) - 1;
    let parts: Vec<String> = (0..8u64)
        .map(|i| {
            let (b, e) = (i * size, (i + 1) * size);
            format!("\"t{i}\":{{\"dtype\":\"U8\",\"shape\":[{size}],\"data_offsets\":[{b},{e}]}}")
        })
        .collect();
    let json = format!("{{{}}}", parts.join(","));
    let mut bytes = (json.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(json.as_bytes());
    let path = write("overflow.safetensors", &bytes);
    let errors = read_safetensors(&path).unwrap_err();
    assert!(errors.iter().all(|e| e.contains("truncated")), "{errors:?}");
    assert!(load_bounded(Model::Taehv, &path).is_err());
    std::fs::remove_file(&path).ok();
}
