//! Where the model files come from: a local directory in the upstream layout, or the Hugging
//! Face hub (with its cache). See `docs/models.md` for the layout and the environment variables.
//!
//! The upstream layout, relative to a root directory:
//!
//! ```text
//! wan_models/Wan2.1-T2V-1.3B/models_t5_umt5-xxl-enc-bf16.pth   text encoder
//! wan_models/Wan2.1-T2V-1.3B/google/umt5-xxl/tokenizer.json    tokenizer
//! wan_models/Wan2.1-T2V-1.3B/Wan2.1_VAE.pth                    Wan VAE (decoder wan-vae)
//! checkpoints/self_forcing_dmd.pt                              Self-Forcing DiT
//! longlive_models/models/longlive_base.pt                      LongLive DiT (base)
//! longlive_models/models/lora.pt                               LongLive LoRA
//! checkpoints/taew2_1.pth                                      TAEHV (decoder taehv)
//! ```
//!
//! Only the chosen family's DiT ([`ModelFamily`]) and the chosen decoder ([`DecoderKind`]) are
//! required.

mod hub;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use sf_vae::DecoderKind;

use crate::ModelFamily;

/// The default hub endpoint (`HF_ENDPOINT` overrides it).
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";
/// Where upstream Self-Forcing downloads the TAEHV weights from.
pub const TAEHV_UPSTREAM_URL: &str = "https://github.com/madebyollin/taehv/raw/main/taew2_1.pth";

/// The role of a model file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ModelFileKind {
    /// The causal DiT (`generator` / `generator_ema` state dicts): Self-Forcing's checkpoint or
    /// LongLive's base.
    Dit,
    /// LongLive's LoRA (`generator_lora`), merged into its base DiT at load.
    Lora,
    /// The umT5-XXL text encoder.
    TextEncoder,
    /// The umT5 tokenizer (`tokenizer.json`).
    Tokenizer,
    /// The Wan2.1 VAE.
    WanVae,
    /// TAEHV, the tiny decoder.
    Taehv,
}

/// Where one model file lives on the hub and in the local layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelFileSpec {
    /// Its role.
    pub kind: ModelFileKind,
    /// Human-readable name.
    pub description: &'static str,
    /// Hugging Face model repository.
    pub repo: &'static str,
    /// Path inside the repository.
    pub repo_file: &'static str,
    /// Directory under the local root that mirrors the repository (`--local-dir`).
    pub local_dir: &'static str,
}

impl ModelFileSpec {
    /// The file's path relative to the local root.
    pub fn local_path(&self) -> PathBuf {
        Path::new(self.local_dir).join(self.repo_file)
    }
}

const WAN_REPO: &str = "Wan-AI/Wan2.1-T2V-1.3B";
const WAN_DIR: &str = "wan_models/Wan2.1-T2V-1.3B";

/// Every model file the pipeline may need.
pub const MODEL_FILES: [ModelFileSpec; 5] = [
    ModelFileSpec {
        kind: ModelFileKind::Dit,
        description: "Self-Forcing DiT",
        repo: "gdhe17/Self-Forcing",
        repo_file: "checkpoints/self_forcing_dmd.pt",
        local_dir: "",
    },
    ModelFileSpec {
        kind: ModelFileKind::TextEncoder,
        description: "umT5-XXL text encoder",
        repo: WAN_REPO,
        repo_file: "models_t5_umt5-xxl-enc-bf16.pth",
        local_dir: WAN_DIR,
    },
    ModelFileSpec {
        kind: ModelFileKind::Tokenizer,
        description: "umT5 tokenizer",
        repo: WAN_REPO,
        repo_file: "google/umt5-xxl/tokenizer.json",
        local_dir: WAN_DIR,
    },
    ModelFileSpec {
        kind: ModelFileKind::WanVae,
        description: "Wan2.1 VAE",
        repo: WAN_REPO,
        repo_file: "Wan2.1_VAE.pth",
        local_dir: WAN_DIR,
    },
    // Upstream serves taew2_1.pth from GitHub only; this hub repository mirrors it.
    ModelFileSpec {
        kind: ModelFileKind::Taehv,
        description: "TAEHV tiny decoder",
        repo: "lightx2v/Autoencoders",
        repo_file: "taew2_1.pth",
        local_dir: "checkpoints",
    },
];

const LONGLIVE_REPO: &str = "Efficient-Large-Model/LongLive-1.3B";
const LONGLIVE_DIR: &str = "longlive_models";

/// LongLive's DiT files (`huggingface-cli download Efficient-Large-Model/LongLive-1.3B
/// --local-dir longlive_models`, as its `configs/longlive_*.yaml` expect).
pub const LONGLIVE_FILES: [ModelFileSpec; 2] = [
    ModelFileSpec {
        kind: ModelFileKind::Dit,
        description: "LongLive base DiT",
        repo: LONGLIVE_REPO,
        repo_file: "models/longlive_base.pt",
        local_dir: LONGLIVE_DIR,
    },
    ModelFileSpec {
        kind: ModelFileKind::Lora,
        description: "LongLive LoRA",
        repo: LONGLIVE_REPO,
        repo_file: "models/lora.pt",
        local_dir: LONGLIVE_DIR,
    },
];

/// The spec of one kind of file (the DiT: Self-Forcing's; the LoRA: LongLive's).
pub fn file_spec(kind: ModelFileKind) -> &'static ModelFileSpec {
    let index = match kind {
        ModelFileKind::Dit => 0,
        ModelFileKind::Lora => return &LONGLIVE_FILES[1],
        ModelFileKind::TextEncoder => 1,
        ModelFileKind::Tokenizer => 2,
        ModelFileKind::WanVae => 3,
        ModelFileKind::Taehv => 4,
    };
    &MODEL_FILES[index]
}

/// The DiT files of `family`: its checkpoint, and its LoRA if it has one.
pub fn dit_files(family: ModelFamily) -> &'static [ModelFileSpec] {
    match family {
        ModelFamily::SelfForcing => &MODEL_FILES[..1],
        ModelFamily::LongLive => &LONGLIVE_FILES,
    }
}

/// The files needed to generate with Self-Forcing and `decoder`: DiT, text encoder, tokenizer
/// and that decoder.
pub fn required_files(decoder: DecoderKind) -> [&'static ModelFileSpec; 4] {
    let files = required_files_for(ModelFamily::SelfForcing, decoder);
    [files[0], files[1], files[2], files[3]]
}

/// The files needed to generate with `family` and `decoder`: the family's DiT files, text
/// encoder, tokenizer and that decoder.
pub fn required_files_for(
    family: ModelFamily,
    decoder: DecoderKind,
) -> Vec<&'static ModelFileSpec> {
    let decoder_file = match decoder {
        DecoderKind::WanVae => ModelFileKind::WanVae,
        DecoderKind::Taehv => ModelFileKind::Taehv,
    };
    let mut files: Vec<&'static ModelFileSpec> = dit_files(family).iter().collect();
    files.extend([
        file_spec(ModelFileKind::TextEncoder),
        file_spec(ModelFileKind::Tokenizer),
        file_spec(decoder_file),
    ]);
    files
}

/// Resolved paths of the model files (the decoder that was not asked for is `None`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelFiles {
    /// `self_forcing_dmd.pt` or `longlive_base.pt`.
    pub dit: PathBuf,
    /// `lora.pt`, for LongLive.
    pub lora: Option<PathBuf>,
    /// `models_t5_umt5-xxl-enc-bf16.pth`.
    pub text_encoder: PathBuf,
    /// `tokenizer.json`.
    pub tokenizer: PathBuf,
    /// `Wan2.1_VAE.pth`, when the Wan VAE decodes.
    pub vae: Option<PathBuf>,
    /// `taew2_1.pth`, when TAEHV decodes.
    pub taehv: Option<PathBuf>,
}

impl ModelFiles {
    /// The weights of `decoder`, if resolved.
    pub fn decoder(&self, decoder: DecoderKind) -> Option<&Path> {
        match decoder {
            DecoderKind::WanVae => self.vae.as_deref(),
            DecoderKind::Taehv => self.taehv.as_deref(),
        }
    }

    fn from_found(found: Vec<(ModelFileKind, PathBuf)>) -> Result<Self, WeightsError> {
        let take = |kind: ModelFileKind| {
            found
                .iter()
                .find(|(k, _)| *k == kind)
                .map(|(_, path)| path.clone())
        };
        let need = |kind: ModelFileKind| {
            take(kind)
                .ok_or_else(|| WeightsError::Config(format!("internal: {kind:?} was not resolved")))
        };
        Ok(Self {
            dit: need(ModelFileKind::Dit)?,
            lora: take(ModelFileKind::Lora),
            text_encoder: need(ModelFileKind::TextEncoder)?,
            tokenizer: need(ModelFileKind::Tokenizer)?,
            vae: take(ModelFileKind::WanVae),
            taehv: take(ModelFileKind::Taehv),
        })
    }
}

/// Where to find the model files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelLocation {
    /// A directory in the upstream layout; nothing is downloaded.
    Local(PathBuf),
    /// The Hugging Face hub. Each file is taken from `local_dir` (upstream layout) if there,
    /// else from the hub cache, and only otherwise downloaded (into the cache).
    Hub {
        /// Hub URL; `None` uses `HF_ENDPOINT`, else [`DEFAULT_ENDPOINT`].
        endpoint: Option<String>,
        /// Cache directory; `None` uses `HF_HOME/hub`, else `~/.cache/huggingface/hub`.
        cache_dir: Option<PathBuf>,
        /// A directory in the upstream layout checked before the cache.
        local_dir: Option<PathBuf>,
        /// Show download progress bars.
        progress: bool,
    },
}

impl ModelLocation {
    /// The hub with the environment's endpoint and cache, progress bars on.
    pub fn hub() -> Self {
        ModelLocation::Hub {
            endpoint: None,
            cache_dir: None,
            local_dir: None,
            progress: true,
        }
    }

    /// Finds (or downloads) the files needed to generate with Self-Forcing and `decoder`.
    ///
    /// All missing files are reported at once ([`WeightsError::Missing`]).
    pub fn resolve(&self, decoder: DecoderKind) -> Result<ModelFiles, WeightsError> {
        self.resolve_for(ModelFamily::SelfForcing, decoder)
    }

    /// Finds (or downloads) the files needed to generate with `family` and `decoder`.
    ///
    /// All missing files are reported at once ([`WeightsError::Missing`]).
    pub fn resolve_for(
        &self,
        family: ModelFamily,
        decoder: DecoderKind,
    ) -> Result<ModelFiles, WeightsError> {
        match self {
            ModelLocation::Local(root) => resolve_local(root, family, decoder),
            ModelLocation::Hub {
                endpoint,
                cache_dir,
                local_dir,
                progress,
            } => hub::resolve(
                &hub::HubSettings {
                    endpoint: hub::endpoint(endpoint.as_deref()),
                    cache_dir: cache_dir.clone(),
                    local_dir: local_dir.clone(),
                    progress: *progress,
                },
                family,
                decoder,
            ),
        }
    }
}

fn resolve_local(
    root: &Path,
    family: ModelFamily,
    decoder: DecoderKind,
) -> Result<ModelFiles, WeightsError> {
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for spec in required_files_for(family, decoder) {
        let path = root.join(spec.local_path());
        if path.is_file() {
            found.push((spec.kind, path));
        } else {
            missing.push(MissingFile {
                spec: *spec,
                location: path.display().to_string(),
            });
        }
    }
    if !missing.is_empty() {
        return Err(WeightsError::Missing {
            origin: FileOrigin::Local(root.to_path_buf()),
            files: missing,
        });
    }
    ModelFiles::from_found(found)
}

/// Where missing files were looked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileOrigin {
    /// A local root directory.
    Local(PathBuf),
    /// A hub endpoint that answered 404.
    Hub(String),
}

/// A file that was not found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MissingFile {
    /// Which file.
    pub spec: ModelFileSpec,
    /// Where it was looked for (a path or a URL).
    pub location: String,
}

/// Errors when locating or downloading the model files.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    /// Files not found; the message lists them all with the commands that fetch them.
    #[error("{}", missing_report(origin, files))]
    Missing {
        /// Where they were looked for.
        origin: FileOrigin,
        /// Every missing file.
        files: Vec<MissingFile>,
    },
    /// The hub could not be reached.
    #[error(
        "cannot reach the Hugging Face hub at {endpoint} (while fetching {repo}/{file}): \
         {message}\nCheck the network, set HF_ENDPOINT to a reachable mirror, or download the \
         files once and use the local layout (see docs/models.md):\n{}",
        fetch_commands(&required_files_for(*family, *decoder))
    )]
    HubUnreachable {
        /// The endpoint used.
        endpoint: String,
        /// Repository of the first file tried.
        repo: String,
        /// That file.
        file: String,
        /// The transport error.
        message: String,
        /// The model family asked for (for the commands in the message).
        family: ModelFamily,
        /// The decoder asked for (for the commands in the message).
        decoder: DecoderKind,
    },
    /// The hub answered with an error other than "not found", or the cache failed.
    #[error("the hub at {endpoint} failed on {repo}/{file}: {message}")]
    Hub {
        /// The endpoint used.
        endpoint: String,
        /// The repository.
        repo: String,
        /// The file.
        file: String,
        /// What went wrong (with a hint where there is one).
        message: String,
    },
    /// A model location that cannot work.
    #[error("invalid model location: {0}")]
    Config(String),
}

fn missing_report(origin: &FileOrigin, files: &[MissingFile]) -> String {
    let mut text = match origin {
        FileOrigin::Local(root) => {
            format!(
                "{} model file(s) missing under {}:\n",
                files.len(),
                root.display()
            )
        }
        FileOrigin::Hub(endpoint) => format!(
            "{} model file(s) not found on the hub at {endpoint} (HTTP 404):\n",
            files.len()
        ),
    };
    for file in files {
        let _ = writeln!(text, "  - {}: {}", file.spec.description, file.location);
    }
    let specs: Vec<&ModelFileSpec> = files.iter().map(|f| &f.spec).collect();
    if let FileOrigin::Local(root) = origin {
        text.push_str(&other_family_hint(root, files));
    }
    match origin {
        FileOrigin::Local(root) => {
            let _ = writeln!(text, "fetch them by running, in {}:", root.display());
        }
        FileOrigin::Hub(_) => text.push_str(
            "this endpoint lacks them; fetch them from huggingface.co into a local layout \
             directory (then use it as the models directory), running in that directory:\n",
        ),
    }
    text.push_str(&fetch_commands(&specs));
    text
}

/// When a family's DiT is missing under `root` but another family's is there, a line that says
/// so (a Self-Forcing directory used for LongLive, or the reverse).
fn other_family_hint(root: &Path, files: &[MissingFile]) -> String {
    let missing_dit =
        |family: ModelFamily| files.iter().any(|f| dit_files(family).contains(&f.spec));
    let present = |family: ModelFamily| {
        dit_files(family)
            .iter()
            .all(|spec| root.join(spec.local_path()).is_file())
    };
    let mut text = String::new();
    for wanted in ModelFamily::ALL.into_iter().filter(|f| missing_dit(*f)) {
        for other in ModelFamily::ALL
            .into_iter()
            .filter(|o| *o != wanted && present(*o))
        {
            let _ = writeln!(
                text,
                "(this directory holds the {} checkpoint ({}), not {}'s: choose the model \
                 family '{other}', or fetch {}'s files)",
                other.preset().description,
                dit_files(other)[0].local_path().display(),
                wanted.preset().description,
                wanted.preset().description,
            );
        }
    }
    text
}

/// The shell commands that fetch `specs` into the local layout (run in the root directory), one
/// per line: `huggingface-cli download` per repository, `curl` from GitHub for TAEHV.
pub fn fetch_commands(specs: &[&ModelFileSpec]) -> String {
    let mut groups: Vec<(&str, &str, Vec<&str>)> = Vec::new();
    let mut direct = Vec::new();
    for spec in specs {
        if spec.kind == ModelFileKind::Taehv {
            direct.push(format!(
                "  curl -L --create-dirs -o {} {TAEHV_UPSTREAM_URL}",
                spec.local_path().display()
            ));
            continue;
        }
        match groups
            .iter_mut()
            .find(|(repo, dir, _)| *repo == spec.repo && *dir == spec.local_dir)
        {
            Some((_, _, files)) => files.push(spec.repo_file),
            None => groups.push((spec.repo, spec.local_dir, vec![spec.repo_file])),
        }
    }
    let mut lines: Vec<String> = groups
        .into_iter()
        .map(|(repo, dir, files)| {
            let dir = if dir.is_empty() { "." } else { dir };
            format!(
                "  huggingface-cli download {repo} {} --local-dir {dir}",
                files.join(" ")
            )
        })
        .collect();
    lines.extend(direct);
    lines.join("\n")
}
