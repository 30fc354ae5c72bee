//! Structured mutations of `torch.save` checkpoints: the fixtures' tensors are written back as a
//! ZIP archive with a protocol-2 pickle of our own (one storage per tensor), then one thing is
//! made wrong: a storage shorter than its tensor, a storage entry cut or missing, huge sizes,
//! strides or offsets in the pickle, unknown opcodes or storage types, a `data.pkl` of random
//! bytes, deep nesting, a cut archive, a flipped data byte. The pickle reader (`list_tensors`,
//! burn::store's PytorchReader) and the model loader must refuse each one, within the
//! allocation bound; the rewritten intact file (and one with longer storages) must load.

use std::io::{Cursor, Write};
use std::path::Path;
use std::sync::OnceLock;

use burn::store::pytorch_reader::{DType, PytorchReader};
use proptest::prelude::*;
use proptest::sample::Index;
use sf_testkit::workspace_fixtures;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use super::{Model, load_bounded, read_pickle, write};

/// One tensor as the archive will describe it.
#[derive(Clone, Debug)]
struct Desc {
    name: String,
    class: &'static str,
    numel: i64,
    offset: i64,
    shape: Vec<i64>,
    stride: Vec<i64>,
    /// The storage entry's bytes; `None`: no entry.
    bytes: Option<Vec<u8>>,
}

struct Base {
    name: &'static str,
    key: Option<&'static str>,
    model: Model,
    tensors: Vec<Desc>,
}

fn class(dtype: DType) -> &'static str {
    match dtype {
        DType::F64 => "DoubleStorage",
        DType::F32 => "FloatStorage",
        DType::F16 => "HalfStorage",
        DType::BF16 => "BFloat16Storage",
        DType::I64 => "LongStorage",
        DType::I32 => "IntStorage",
        DType::I16 => "ShortStorage",
        DType::I8 => "CharStorage",
        DType::U8 => "ByteStorage",
        DType::Bool => "BoolStorage",
        other => panic!("no storage class for {other:?}"),
    }
}

fn element_size(class: &str) -> usize {
    match class {
        "DoubleStorage" | "LongStorage" => 8,
        "FloatStorage" | "IntStorage" => 4,
        "HalfStorage" | "BFloat16Storage" | "ShortStorage" => 2,
        _ => 1,
    }
}

fn bases() -> &'static [Base] {
    static BASES: OnceLock<Vec<Base>> = OnceLock::new();
    BASES.get_or_init(|| {
        [
            (
                "selfforcing_tiny.pt",
                Some("generator_ema"),
                Model::SelfForcing,
            ),
            ("vae_tiny.pth", None, Model::WanVae),
            ("t5_tiny.pth", None, Model::UmT5),
        ]
        .into_iter()
        .map(|(name, key, model)| {
            let tensors = descs(&workspace_fixtures().join(name), key);
            Base {
                name,
                key,
                model,
                tensors,
            }
        })
        .collect()
    })
}

/// The tensors of `path` (its `key` entry), contiguous, sorted by name.
fn descs(path: &Path, key: Option<&str>) -> Vec<Desc> {
    let reader = match key {
        Some(k) => PytorchReader::with_top_level_key(path, k),
        None => PytorchReader::new(path),
    }
    .unwrap();
    let mut tensors: Vec<Desc> = reader
        .tensors()
        .iter()
        .map(|(n, t)| {
            let shape: Vec<i64> = t.shape().iter().map(|&d| d as i64).collect();
            let mut stride = vec![1i64; shape.len()];
            for d in (0..shape.len().saturating_sub(1)).rev() {
                stride[d] = stride[d + 1] * shape[d + 1];
            }
            Desc {
                name: n.clone(),
                class: class(t.dtype()),
                numel: t.num_elements() as i64,
                offset: 0,
                shape,
                stride,
                bytes: Some(t.read().unwrap()),
            }
        })
        .collect();
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    tensors
}

/// A protocol-2 pickle being written; `ops` are the offsets where opcodes start.
#[derive(Default)]
struct Pickle {
    out: Vec<u8>,
    ops: Vec<usize>,
}

impl Pickle {
    fn op(&mut self, bytes: &[u8]) {
        self.ops.push(self.out.len());
        self.out.extend_from_slice(bytes);
    }

    fn str(&mut self, s: &str) {
        self.op(b"X");
        self.out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.out.extend_from_slice(s.as_bytes());
    }

    fn int(&mut self, v: i64) {
        if let Ok(small) = i32::try_from(v) {
            self.op(b"J");
            self.out.extend_from_slice(&small.to_le_bytes());
        } else {
            self.op(&[0x8a, 8]);
            self.out.extend_from_slice(&v.to_le_bytes());
        }
    }

    fn global(&mut self, module: &str, name: &str) {
        self.op(format!("c{module}\n{name}\n").as_bytes());
    }

    fn ints(&mut self, values: &[i64]) {
        self.op(b"(");
        for &v in values {
            self.int(v);
        }
        self.op(b"t");
    }

    /// `{key: {name: tensor, ...}}` (or the inner dict alone) of `tensors`, storage `i` for
    /// tensor `i`.
    fn state_dict(tensors: &[Desc], key: Option<&str>) -> Pickle {
        let mut p = Pickle::default();
        p.op(&[0x80, 2]);
        if let Some(key) = key {
            p.op(b"}");
            p.str(key);
        }
        p.op(b"}");
        p.op(b"(");
        for (i, t) in tensors.iter().enumerate() {
            p.str(&t.name);
            p.global("torch._utils", "_rebuild_tensor_v2");
            p.op(b"(");
            p.op(b"(");
            p.str("storage");
            p.global("torch", t.class);
            p.str(&i.to_string());
            p.str("cpu");
            p.int(t.numel);
            p.op(b"t");
            p.op(b"Q");
            p.int(t.offset);
            p.ints(&t.shape);
            p.ints(&t.stride);
            p.op(&[0x89]);
            p.global("collections", "OrderedDict");
            p.op(b")");
            p.op(b"R");
            p.op(b"t");
            p.op(b"R");
        }
        p.op(b"u");
        if key.is_some() {
            p.op(b"s");
        }
        p.op(b".");
        p
    }
}

/// A `torch.save`-style archive of `pickle` and the tensors' storage entries.
fn archive(pickle: &[u8], tensors: &[Desc]) -> Vec<u8> {
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
    let mut entry = |name: &str, bytes: &[u8]| {
        zip.start_file(format!("archive/{name}"), options).unwrap();
        zip.write_all(bytes).unwrap();
    };
    entry("data.pkl", pickle);
    entry("byteorder", b"little");
    for (i, t) in tensors.iter().enumerate() {
        if let Some(bytes) = &t.bytes {
            entry(&format!("data/{i}"), bytes);
        }
    }
    entry("version", b"3\n");
    zip.finish().unwrap().into_inner()
}

#[derive(Clone, Debug)]
enum Mutation {
    Intact,
    /// Storages longer than their tensors (valid: the tensor is a prefix).
    LongerStorages(usize),
    /// A storage entry with fewer bytes than the pickle declares.
    ShortEntry(Index, f64),
    MissingEntry(Index),
    /// A storage declaring fewer elements than its tensor needs.
    SmallStorage(Index, i64),
    HugeStorage(Index, i64),
    HugeShape(Index, Vec<i64>),
    HugeStride(Index, i64),
    Offset(Index, i64),
    NegativeSize(Index),
    UnknownStorageType(Index),
    /// An opcode no pickle protocol defines, at an opcode boundary.
    UnknownOpcode(Index, u8),
    RandomPickle(Vec<u8>),
    /// Nesting of this kind and depth as the whole pickle.
    Deep(usize, usize),
    /// A pickle that memoizes one object this many times (`MEMOIZE` or `LONG_BINPUT`).
    MemoFlood(bool, usize),
    /// The archive cut at this fraction.
    CutArchive(f64),
    /// One byte of tensor data changed (the entry's checksum is the original's).
    FlippedByte(Index, Index),
}

/// Opcodes of no pickle protocol.
const UNKNOWN_OPCODES: [u8; 12] = [
    0x00, 0x01, b'A', b'D', b'E', b'H', b'W', b'Y', b'Z', b'z', 0x99, 0xff,
];

fn mutation() -> impl Strategy<Value = Mutation> {
    use Mutation::*;
    let huge = prop_oneof![
        Just(vec![1i64 << 40, 1 << 40]),
        Just(vec![i64::MAX]),
        Just(vec![1 << 31, 1 << 31, 1 << 31]),
        Just(vec![1 << 62, 2]),
    ];
    let big = prop_oneof![
        Just(1i64 << 40),
        Just(1i64 << 62),
        Just(i64::MAX),
        1i64 << 20..1 << 50
    ];
    prop_oneof![
        1 => Just(Intact),
        1 => (1usize..64).prop_map(LongerStorages),
        2 => (any::<Index>(), 0.0f64..1.0).prop_map(|(i, k)| ShortEntry(i, k)),
        1 => any::<Index>().prop_map(MissingEntry),
        1 => (any::<Index>(), 1i64..64).prop_map(|(i, k)| SmallStorage(i, k)),
        1 => (any::<Index>(), big.clone()).prop_map(|(i, n)| HugeStorage(i, n)),
        1 => (any::<Index>(), huge).prop_map(|(i, d)| HugeShape(i, d)),
        1 => (any::<Index>(), big.clone()).prop_map(|(i, s)| HugeStride(i, s)),
        1 => (any::<Index>(), prop_oneof![big, Just(-1i64), Just(i64::MIN)]).prop_map(|(i, o)| Offset(i, o)),
        1 => any::<Index>().prop_map(NegativeSize),
        1 => any::<Index>().prop_map(UnknownStorageType),
        1 => (any::<Index>(), prop::sample::select(UNKNOWN_OPCODES.to_vec())).prop_map(|(i, o)| UnknownOpcode(i, o)),
        1 => proptest::collection::vec(any::<u8>(), 0..600).prop_map(RandomPickle),
        1 => (0usize..4, prop_oneof![Just(100_000usize), 1001usize..200_000]).prop_map(|(k, d)| Deep(k, d)),
        1 => (any::<bool>(), prop_oneof![Just(1usize << 16), Just(1 + (1 << 16)), 1usize..400_000])
            .prop_map(|(long, n)| MemoFlood(long, n)),
        1 => (0.0f64..1.0).prop_map(CutArchive),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(i, b)| FlippedByte(i, b)),
    ]
}

/// What a mutated archive must do.
#[derive(Debug, PartialEq)]
enum Expect {
    /// Read with every tensor, and loaded.
    Loads,
    /// Refused by the reader and the loader.
    Invalid,
    /// Refused by the loader; the reader may return no tensors or refuse it.
    LoaderRefuses,
}

fn build(base: &Base, m: &Mutation) -> (Vec<u8>, Expect) {
    use Mutation::*;
    let mut tensors = base.tensors.clone();
    // Mutations aim at tensors with data, and shape/stride ones at a dimension above 1.
    let sized: Vec<usize> = (0..tensors.len())
        .filter(|&i| tensors[i].numel > 0)
        .collect();
    let pick = |i: &Index| sized[i.index(sized.len())];
    let mut expect = Expect::Invalid;
    let mut pickle: Option<Vec<u8>> = None;
    match m {
        Intact => expect = Expect::Loads,
        LongerStorages(extra) => {
            for t in &mut tensors {
                let size = element_size(t.class);
                t.numel += *extra as i64;
                t.bytes.as_mut().unwrap().extend(vec![0u8; *extra * size]);
            }
            expect = Expect::Loads;
        }
        ShortEntry(i, keep) => {
            let bytes = tensors[pick(i)].bytes.as_mut().unwrap();
            let keep = ((bytes.len() as f64 * keep) as usize).min(bytes.len() - 1);
            bytes.truncate(keep);
        }
        MissingEntry(i) => tensors[pick(i)].bytes = None,
        SmallStorage(i, k) => {
            let t = &mut tensors[pick(i)];
            t.numel = (t.numel - k).max(0);
        }
        HugeStorage(i, n) => tensors[pick(i)].numel = *n,
        HugeShape(i, dims) => {
            let t = &mut tensors[pick(i)];
            t.stride = vec![1; dims.len()];
            t.shape = dims.clone();
        }
        HugeStride(i, s) => {
            let t = &mut tensors[pick(i)];
            match t.shape.iter().position(|&d| d > 1) {
                Some(d) => t.stride[d] = *s,
                None => t.offset = *s,
            }
        }
        Offset(i, o) => tensors[pick(i)].offset = *o,
        NegativeSize(i) => {
            let t = &mut tensors[pick(i)];
            match t.shape.first_mut() {
                Some(d) => *d = -1,
                None => t.shape = vec![-1],
            }
            t.stride = vec![1; t.shape.len()];
        }
        UnknownStorageType(i) => tensors[pick(i)].class = "NopeStorage",
        UnknownOpcode(at, op) => {
            let p = Pickle::state_dict(&tensors, base.key);
            let mut out = p.out.clone();
            out.insert(p.ops[at.index(p.ops.len())], *op);
            pickle = Some(out);
        }
        RandomPickle(bytes) => {
            pickle = Some(bytes.clone());
            expect = Expect::LoaderRefuses;
        }
        Deep(kind, depth) => {
            let (open, close): (&[u8], &[u8]) = match kind {
                0 => (b"(", b""),
                1 => (b"]", b"a"),
                2 => (b"}(", b"u"),
                _ => (b"", &[0x85]),
            };
            let mut out = vec![0x80, 2];
            for _ in 0..*depth {
                out.extend_from_slice(open);
            }
            if *kind == 3 {
                out.push(b')');
            }
            for _ in 0..*depth - 1 {
                out.extend_from_slice(close);
            }
            out.push(b'.');
            pickle = Some(out);
            expect = Expect::LoaderRefuses;
        }
        MemoFlood(long, n) => {
            let mut out = vec![0x80, 4, b'N'];
            for i in 0..*n as u32 {
                if *long {
                    out.push(b'r');
                    out.extend_from_slice(&i.to_le_bytes());
                } else {
                    out.push(0x94);
                }
            }
            out.push(b'.');
            pickle = Some(out);
            expect = Expect::LoaderRefuses;
        }
        CutArchive(_) => {}
        FlippedByte(..) => expect = Expect::LoaderRefuses,
    }
    let pickle = pickle.unwrap_or_else(|| Pickle::state_dict(&tensors, base.key).out);
    let mut file = archive(&pickle, &tensors);
    if let FlippedByte(i, at) = m {
        // The archive keeps the checksum of the original bytes: flip one inside it.
        let at = at.index(base.tensors[pick(i)].bytes.as_ref().unwrap().len());
        let entry = format!("archive/data/{}", pick(i));
        let name_at = find(&file, entry.as_bytes()).expect("the entry's local header");
        // Local header: 30 bytes, the name, the extra field (its length at offset 28).
        let header = name_at - 30;
        let extra = u16::from_le_bytes([file[header + 28], file[header + 29]]) as usize;
        file[name_at + entry.len() + extra + at] ^= 0x10;
    }
    if let CutArchive(keep) = m {
        let keep = ((file.len() as f64 * keep) as usize).min(file.len() - 1);
        file.truncate(keep);
    }
    (file, expect)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn structured_pickle_mutations_are_refused(which in 0usize..3, m in mutation()) {
        let base = &bases()[which];
        let (bytes, expect) = build(base, &m);
        let path = write(base.name, &bytes);
        let read = read_pickle(&path, base.key);
        let loaded = load_bounded(base.model, &path);
        match expect {
            Expect::Loads => {
                let mut names: Vec<String> = base.tensors.iter().map(|t| t.name.clone()).collect();
                names.sort();
                let mut found = read.unwrap_or_else(|e| panic!("{m:?} on {}: {e}", base.name));
                found.sort();
                prop_assert_eq!(found, names);
                prop_assert!(loaded.is_ok(), "{m:?} on {}: {loaded:?}", base.name);
            }
            Expect::Invalid => {
                prop_assert!(read.is_err(), "{m:?} on {} was read: {read:?}", base.name);
                prop_assert!(loaded.is_err(), "{m:?} on {} loaded", base.name);
            }
            Expect::LoaderRefuses => {
                let known = |n: &String| base.tensors.iter().any(|t| &t.name == n);
                prop_assert!(
                    read.as_ref().is_err() || matches!(m, Mutation::FlippedByte(..))
                        || !read.as_ref().unwrap().iter().any(known),
                    "{m:?} on {} was read: {read:?}", base.name
                );
                prop_assert!(loaded.is_err(), "{m:?} on {} loaded", base.name);
            }
        }
        std::fs::remove_file(&path).ok();
    }
}

#[test]
fn a_storage_entry_cut_by_one_byte_is_found_when_listing() {
    for base in bases() {
        let mut tensors = base.tensors.clone();
        let i = tensors.iter().position(|t| t.numel > 0).unwrap();
        tensors[i].bytes.as_mut().unwrap().pop();
        let pickle = Pickle::state_dict(&tensors, base.key).out;
        let path = write(base.name, &archive(&pickle, &tensors));
        let e = read_pickle(&path, base.key).unwrap_err();
        assert!(
            e.contains(&format!("storage '{i}'")) && e.contains("truncated"),
            "{e}"
        );
        std::fs::remove_file(&path).ok();
    }
}

#[path = "lora_pickle.rs"]
mod lora_pickle;
