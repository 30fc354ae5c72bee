//! Property tests: no input makes the checkpoint readers, the golden-fixture reader, the model
//! loaders, the tokenizer front end or the configuration checks panic or allocate without bound.
//! Every file goes through every reader the project has; each returns a value or an error, and
//! the tests say which: a mutation that breaks a file must be an error in every reader, the
//! intact file must load. Every case runs on its own thread under the counting allocator of
//! [`alloc`], within [`alloc::reader_bound`] / [`alloc::loader_bound`] of the file's size.
//!
//! - this file: random bytes and random byte edits of the fixtures, the fixture reader, prompts;
//! - [`safetensors`]: structured mutations of safetensors headers (valid JSON, wrong content);
//! - [`pickles`]: structured mutations of `torch.save` ZIP checkpoints and their pickles;
//! - [`configs`]: valid-shaped [`sf_pipeline::ModelConfigs`] and single-field corruptions.

mod alloc;
mod configs;
mod pickles;
mod safetensors;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use burn::tensor::Device;
use proptest::prelude::*;
use sf_device::checkpoint::{TensorFile, list_tensors};
use sf_device::{Dtype, Precision};
use sf_pipeline::sf_models::{CheckpointFormat, WanConfig, load_wan_model};
use sf_pipeline::sf_text::{UmT5Config, UmT5Encoder, UmT5Tokenizer};
use sf_pipeline::sf_vae::taehv::{TaehvConfig, load_taehv};
use sf_pipeline::sf_vae::wan::{VaeParts, WanVaeConfig, load_wan_vae};
use sf_pipeline::{sf_device, sf_text};
use sf_testkit::{Fixture, workspace_fixture, workspace_fixtures};

use alloc::{bounded, loader_bound, reader_bound};

/// A fresh path in this process's scratch folder (unique across parallel tests and cases).
pub fn scratch_path(name: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!("sf-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(format!("{}-{name}", NEXT.fetch_add(1, Ordering::Relaxed)))
}

/// Writes `bytes` to a fresh scratch file named `name` (removed when the result is dropped).
pub fn write(name: &str, bytes: &[u8]) -> Scratch {
    let path = scratch_path(name);
    std::fs::write(&path, bytes).unwrap();
    Scratch(path)
}

/// A scratch file, removed on drop (thousands of cases would otherwise fill the temp folder).
pub struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        std::fs::remove_file(&self.0).ok();
    }
}

pub fn fixture_bytes(name: &str) -> Vec<u8> {
    std::fs::read(workspace_fixtures().join(name)).unwrap()
}

fn tokenizer() -> &'static UmT5Tokenizer {
    static TOKENIZER: OnceLock<UmT5Tokenizer> = OnceLock::new();
    TOKENIZER.get_or_init(|| {
        let xz = workspace_fixture("umt5_tokenizer.json.xz");
        let json = sf_testkit::checks::tokenizer::decompress(&xz).unwrap();
        UmT5Tokenizer::from_bytes(&json, 64).unwrap()
    })
}

/// The model a checkpoint belongs to, and how it is loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Model {
    /// The DiT from Wan-layout safetensors.
    Dit,
    /// The DiT from a Self-Forcing `.pt` (EMA weights).
    SelfForcing,
    /// TAEHV.
    Taehv,
    /// The Wan VAE (both halves).
    WanVae,
    /// The umT5 encoder.
    UmT5,
}

/// The fixture models' configurations, read once (outside any tracked case).
struct Configs {
    dit: WanConfig,
    taehv: TaehvConfig,
    vae: WanVaeConfig,
    t5: UmT5Config,
}

fn model_configs() -> &'static Configs {
    static CONFIGS: OnceLock<Configs> = OnceLock::new();
    CONFIGS.get_or_init(|| Configs {
        dit: sf_testkit::configs::dit(&workspace_fixture("dit_tiny.safetensors")).unwrap(),
        taehv: sf_testkit::configs::taehv(&workspace_fixture("taehv_tiny.safetensors")).unwrap(),
        vae: sf_testkit::configs::wan_vae(&workspace_fixture("vae_tiny.safetensors")).unwrap(),
        t5: sf_testkit::configs::umt5(&workspace_fixture("t5_tiny.safetensors")).unwrap(),
    })
}

/// Loads `path` as `model` on the CPU; the error's message on failure.
pub fn load(model: Model, path: &Path) -> Result<(), String> {
    let c = model_configs();
    let device = Device::flex();
    let f32 = Dtype::F32;
    let dit = |format: CheckpointFormat| {
        load_wan_model(path, &format, &c.dit, &device, f32)
            .map(drop)
            .map_err(|e| e.to_string())
    };
    match model {
        Model::Dit => dit(CheckpointFormat::WanSafetensors),
        Model::SelfForcing => dit(CheckpointFormat::self_forcing_ema()),
        Model::Taehv => load_taehv(path, &c.taehv, &device, f32)
            .map(drop)
            .map_err(|e| e.to_string()),
        Model::WanVae => load_wan_vae(path, &c.vae, VaeParts::Full, &device, f32)
            .map(drop)
            .map_err(|e| e.to_string()),
        Model::UmT5 => UmT5Encoder::load(path, &c.t5, &device, Precision::uniform(f32))
            .map(drop)
            .map_err(|e| e.to_string()),
    }
}

/// Loads `path` as `model` on its own thread, within [`loader_bound`] of the file's size.
pub fn load_bounded(model: Model, path: &Path) -> Result<(), String> {
    model_configs();
    let len = std::fs::metadata(path).unwrap().len();
    let path = path.to_path_buf();
    bounded(
        &format!("loading {model:?}"),
        loader_bound(len),
        move || load(model, &path),
    )
}

/// What every safetensors reader makes of a file: `Ok` with the tensor names when all of them
/// accept it, `Err` with every message when all refuse. Readers that disagree fail the test.
/// Each reader runs on its own thread within [`reader_bound`] of the file's size.
pub fn read_safetensors(path: &Path) -> Result<Vec<String>, Vec<String>> {
    type Reader = fn(&Path) -> Result<Vec<String>, String>;
    let readers: [(&str, Reader); 5] = [
        ("list_tensors", |p| {
            list_tensors(p, &TensorFile::Safetensors)
                .map(|t| t.into_keys().collect())
                .map_err(|e| e.to_string())
        }),
        ("list_tensors (sniffed)", |p| {
            list_tensors(p, &TensorFile::from_extension(p))
                .map(|t| t.into_keys().collect())
                .map_err(|e| e.to_string())
        }),
        ("safetensors::read_header", |p| {
            sf_device::safetensors::read_header(p)
                .map(|h| h.tensors.into_iter().map(|t| t.name).collect())
                .map_err(|e| e.to_string())
        }),
        ("safetensors::parse", |p| {
            sf_device::safetensors::parse(&std::fs::read(p).map_err(|e| e.to_string())?)
                .map(|h| h.tensors.into_iter().map(|t| t.name).collect())
        }),
        ("Fixture::open", |p| {
            Fixture::open(p)
                .map(|f| f.names().into_iter().map(str::to_string).collect())
                .map_err(|e| e.to_string())
        }),
    ];
    let len = std::fs::metadata(path).unwrap().len();
    let results = readers
        .into_iter()
        .map(|(name, reader)| {
            let path = path.to_path_buf();
            (
                name,
                bounded(name, reader_bound(len), move || reader(&path)),
            )
        })
        .collect();
    agree(results)
}

/// The readers' common verdict (names sorted); disagreement is a test failure. The fixture
/// reader alone may also refuse a file whose `fixture` metadata is not JSON.
fn agree(results: Vec<(&str, Result<Vec<String>, String>)>) -> Result<Vec<String>, Vec<String>> {
    let oks: Vec<_> = results.iter().filter(|(_, r)| r.is_ok()).collect();
    if oks.is_empty() {
        return Err(results.into_iter().map(|(_, r)| r.unwrap_err()).collect());
    }
    let mut names = oks[0].1.clone().unwrap();
    names.sort();
    for (reader, r) in &results {
        let mut mine = match r {
            Ok(names) => names.clone(),
            Err(e) if *reader == "Fixture::open" && e.contains("metadata 'fixture'") => continue,
            Err(e) => panic!("{reader} refused a file the others read: {e}"),
        };
        mine.sort();
        assert_eq!(mine, names, "{reader} read other tensors");
    }
    Ok(names)
}

/// `bytes` with `edits` (position fraction, new byte) applied and cut at `keep` (fraction).
fn mutate(mut bytes: Vec<u8>, edits: &[(f64, u8)], keep: f64) -> Vec<u8> {
    let n = bytes.len();
    for &(at, b) in edits {
        let i = ((at * n as f64) as usize).min(n - 1);
        bytes[i] = b;
    }
    bytes.truncate(((keep * n as f64) as usize).max(1));
    bytes
}

/// Every pickle reader on `path`, within [`reader_bound`]; `Ok` with the tensor names.
pub fn read_pickle(path: &Path, top_level_key: Option<&str>) -> Result<Vec<String>, String> {
    let len = std::fs::metadata(path).unwrap().len();
    let path = path.to_path_buf();
    let key = top_level_key.map(str::to_string);
    bounded("the pickle reader", reader_bound(len), move || {
        let _ = list_tensors(&path, &TensorFile::from_extension(&path));
        list_tensors(&path, &TensorFile::Pickle { top_level_key: key })
            .map(|t| t.into_keys().collect())
            .map_err(|e| e.to_string())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic_the_readers(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let path = write("random.bin", &bytes);
        // Random bytes are not a valid safetensors file unless they happen to be one: then
        // every reader must agree on it.
        let _ = read_safetensors(&path);
        let _ = read_pickle(&path, None);
        let _ = read_pickle(&path, Some("generator_ema"));
    }

    #[test]
    fn mutated_safetensors_load_or_fail_cleanly(
        edits in proptest::collection::vec((0.0f64..1.0, any::<u8>()), 0..6),
        keep in 0.0f64..1.2,
        which in 0usize..2,
    ) {
        let (name, model) = [("taehv_tiny.safetensors", Model::Taehv), ("dit_tiny.safetensors", Model::Dit)][which];
        let original = fixture_bytes(name);
        let bytes = mutate(original.clone(), &edits, keep.min(1.0));
        let path = write(name, &bytes);
        let read = read_safetensors(&path);
        let loaded = load_bounded(model, &path);
        if bytes.len() < original.len() {
            prop_assert!(read.is_err(), "a cut file was read: {read:?}");
            prop_assert!(loaded.is_err(), "a cut file loaded");
        }
        if bytes == original {
            prop_assert!(read.is_ok() && loaded.is_ok(), "the intact file: {read:?} {loaded:?}");
        }
    }

    #[test]
    fn mutated_pickles_load_or_fail_cleanly(
        edits in proptest::collection::vec((0.0f64..1.0, any::<u8>()), 0..6),
        keep in 0.0f64..1.2,
    ) {
        let original = fixture_bytes("selfforcing_tiny.pt");
        let bytes = mutate(original.clone(), &edits, keep.min(1.0));
        let path = write("mutated.pt", &bytes);
        let read = read_pickle(&path, Some("generator_ema"));
        let loaded = load_bounded(Model::SelfForcing, &path);
        if bytes.len() < original.len() {
            // The central directory is at the end: a cut archive cannot be opened.
            prop_assert!(read.is_err() && loaded.is_err(), "a cut archive was read");
        }
        if bytes == original {
            prop_assert!(loaded.is_ok(), "the intact file loads: {loaded:?}");
        }
    }

    #[test]
    fn the_fixture_reader_refuses_random_and_mutated_files(
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
        edits in proptest::collection::vec((0.0f64..1.0, any::<u8>()), 1..6),
        keep in 0.0f64..1.0,
        which in 0usize..3,
    ) {
        // Every reader, the fixture reader among them, must agree on a random file.
        let _ = read_safetensors(&write("random.safetensors", &bytes));
        let name = ["scheduler.safetensors", "t5_tiny_io.safetensors", "selfforcing_tiny_io.safetensors"][which];
        let original = fixture_bytes(name);
        let cut = mutate(original.clone(), &edits, keep);
        let path = write(name, &cut);
        let read = read_safetensors(&path);
        prop_assert!(read.is_err(), "a cut fixture was read: {read:?}");
        let edited = mutate(original.clone(), &edits, 1.0);
        let path = write(name, &edited);
        // Edits inside tensor data leave a valid file; elsewhere they must be refused or read
        // consistently by every reader.
        let _ = read_safetensors(&path);
    }

    #[test]
    fn any_prompt_tokenizes_to_the_text_length(prompt in "\\PC{0,400}") {
        let t = tokenizer().encode(&prompt).unwrap();
        prop_assert_eq!(t.ids.len(), 64);
        prop_assert_eq!(t.mask.len(), 64);
        prop_assert!(t.len >= 1 && t.len <= 64);
        prop_assert_eq!(t.mask.iter().filter(|&&m| m != 0).count(), t.len);
    }
}

#[test]
fn a_huge_declared_header_is_refused_without_allocating() {
    let mut bytes = (u64::MAX / 2).to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}");
    let path = write("huge.safetensors", &bytes);
    let errors = read_safetensors(&path).unwrap_err();
    assert!(errors.iter().all(|e| e.contains("truncated")), "{errors:?}");
}

#[test]
fn the_intact_fixtures_pass_every_reader_and_load() {
    for (name, model) in [
        ("dit_tiny.safetensors", Model::Dit),
        ("taehv_tiny.safetensors", Model::Taehv),
        ("vae_tiny.safetensors", Model::WanVae),
        ("t5_tiny.safetensors", Model::UmT5),
    ] {
        let path = workspace_fixtures().join(name);
        let names = read_safetensors(&path).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert!(!names.is_empty());
        load_bounded(model, &path).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    for (name, key, model) in [
        (
            "selfforcing_tiny.pt",
            Some("generator_ema"),
            Model::SelfForcing,
        ),
        ("vae_tiny.pth", None, Model::WanVae),
        ("t5_tiny.pth", None, Model::UmT5),
    ] {
        let path = workspace_fixtures().join(name);
        let names = read_pickle(&path, key).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!names.is_empty());
        load_bounded(model, &path).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}
