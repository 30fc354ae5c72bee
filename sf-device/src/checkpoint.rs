//! What every model crate needs to load a checkpoint: list a file's tensors (safetensors
//! header or PyTorch pickle) without reading their data, compare them with the tensors a
//! configuration expects, report every problem at once, and load them ([`Checkpoint`]).
//!
//! The file is checked whole before `burn::store` reads it: a safetensors header completely
//! against the file's size ([`crate::safetensors::read_header`]), a ZIP pickle's storages
//! against its entries, so a file truncated or corrupted anywhere is reported when it is
//! loaded, not when a tensor is first read.

mod load;
pub mod lora;
mod torch_zip;

pub use load::{Checked, Checkpoint};
pub use lora::Lora;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use burn::store::KeyRemapper;
use burn::store::pytorch_reader::PytorchReader;

/// Why a checkpoint cannot be used; each model crate maps it into its own error.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The file cannot be read at all: absent, truncated, or not a checkpoint.
    #[error("cannot read checkpoint {path}: {message}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The file's tensors do not match what the model expects.
    #[error("checkpoint {path} does not match the model:{problems}")]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// Every problem found.
        problems: CheckpointProblems,
    },
    /// A LoRA file whose adapters do not fit the model's Linear weights.
    #[error(
        "LoRA {path} does not fit the model:{problems}\n  A LoRA here is PEFT's state dict \
         (base_model.model.<Linear>.lora_A.weight [r, in], lora_B.weight [out, r], for every \
         Linear of every block), bare or under 'generator_lora': use the lora.pt trained for \
         this base checkpoint (LongLive: models/lora.pt with models/longlive_base.pt) and the \
         model configuration it was trained with"
    )]
    Adapters {
        /// The LoRA file.
        path: PathBuf,
        /// Every problem found.
        problems: Box<CheckpointProblems>,
    },
    /// A key-remap pattern that is not a valid regex (a bug in a model's key table).
    #[error("invalid key pattern: {0}")]
    Pattern(String),
}

impl CheckpointError {
    /// A [`CheckpointError::Read`] for `path`.
    pub fn read(path: &Path, message: impl Into<String>) -> Self {
        CheckpointError::Read {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}

/// How a checkpoint file stores its tensors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TensorFile {
    /// A `.safetensors` file.
    Safetensors,
    /// A `torch.save` pickle (`.pt`, `.pth`, `.bin`); the state dict is either the top-level
    /// object or the entry `top_level_key` of a top-level dict.
    Pickle {
        /// The top-level entry holding the state dict, if any.
        top_level_key: Option<String>,
    },
}

impl TensorFile {
    /// What the file is, from its first bytes (a zip or protocol-2 pickle is a `torch.save`
    /// file, a length-prefixed JSON header is safetensors), so a renamed file still loads;
    /// from the extension (`.safetensors` or a top-level pickle) when the file cannot be read.
    pub fn from_extension(path: &Path) -> TensorFile {
        let pickle = TensorFile::Pickle {
            top_level_key: None,
        };
        let mut head = [0u8; 9];
        let sniffed = std::fs::File::open(path)
            .and_then(|mut f| f.read_exact(&mut head))
            .is_ok();
        if sniffed {
            if head.starts_with(b"PK\x03\x04") || head[0] == 0x80 {
                return pickle;
            }
            if head[8] == b'{' {
                return TensorFile::Safetensors;
            }
        }
        match path.extension().and_then(|e| e.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("safetensors") => TensorFile::Safetensors,
            _ => pickle,
        }
    }
}

/// Everything wrong with a checkpoint, reported at once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckpointProblems {
    /// Expected tensors the file lacks (canonical names).
    pub missing: Vec<String>,
    /// Tensors in the file that the model does not have (file names).
    pub unexpected: Vec<String>,
    /// `(file name, expected shape, found shape)`.
    pub mismatched: Vec<(String, Vec<usize>, Vec<usize>)>,
    /// Other per-tensor failures (unreadable data, wrong dtype kind).
    pub other: Vec<String>,
}

impl CheckpointProblems {
    /// Whether nothing is wrong.
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty()
            && self.unexpected.is_empty()
            && self.mismatched.is_empty()
            && self.other.is_empty()
    }
}

impl fmt::Display for CheckpointProblems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.missing.is_empty() {
            write!(f, "\n  missing ({}):", self.missing.len())?;
            for k in &self.missing {
                write!(f, "\n    {k}")?;
            }
        }
        if !self.unexpected.is_empty() {
            write!(f, "\n  unexpected ({}):", self.unexpected.len())?;
            for k in &self.unexpected {
                write!(f, "\n    {k}")?;
            }
        }
        if !self.mismatched.is_empty() {
            write!(f, "\n  wrong shape ({}):", self.mismatched.len())?;
            for (k, want, found) in &self.mismatched {
                write!(f, "\n    {k}: expected {want:?}, found {found:?}")?;
            }
        }
        for other in &self.other {
            write!(f, "\n  {other}")?;
        }
        Ok(())
    }
}

/// Names and shapes of the tensors in a checkpoint file, as stored (data is not read).
pub fn list_tensors(
    path: &Path,
    file: &TensorFile,
) -> Result<BTreeMap<String, Vec<usize>>, CheckpointError> {
    let err = |message: String| CheckpointError::read(path, message);
    if !path.exists() {
        return Err(err("the file does not exist".into()));
    }
    match file {
        TensorFile::Safetensors => Ok(crate::safetensors::read_header(path)?
            .tensors
            .into_iter()
            .map(|t| (t.name, t.shape))
            .collect()),
        TensorFile::Pickle { top_level_key } => {
            // Before burn::store sees the file: storages whole, the pickle within bounds.
            if is_zip(path) {
                torch_zip::check_storages(path).map_err(err)?;
            }
            let reader = match top_level_key {
                Some(key) => PytorchReader::with_top_level_key(path, key).map_err(|e| {
                    err(format!(
                        "cannot read entry '{key}' (is this the right checkpoint?): {}",
                        shorten(&e.to_string())
                    ))
                })?,
                None => PytorchReader::new(path)
                    .map_err(|e| err(format!("not a readable PyTorch checkpoint: {e}")))?,
            };
            Ok(reader
                .tensors()
                .iter()
                .map(|(name, t)| (name.clone(), t.shape().to_vec()))
                .collect())
        }
    }
}

/// Whether the file starts like a ZIP archive (the `torch.save` format since PyTorch 1.6).
fn is_zip(path: &Path) -> bool {
    let mut head = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|_| &head == b"PK\x03\x04" || &head == b"PK\x05\x06")
}

/// The first 300 characters of a reader's message (some list every key of the file).
fn shorten(message: &str) -> String {
    match message.char_indices().nth(300) {
        Some((at, _)) => format!("{}…", &message[..at]),
        None => message.to_string(),
    }
}

/// Compares a file's tensors with the expected ones. `rename` maps a file name to the canonical
/// name used in `expected` (identity for files in the canonical layout).
pub fn compare_keys(
    found: &BTreeMap<String, Vec<usize>>,
    expected: &BTreeMap<String, Vec<usize>>,
    rename: impl Fn(&str) -> String,
) -> CheckpointProblems {
    let mut problems = CheckpointProblems::default();
    let mut seen = BTreeSet::new();
    for (name, shape) in found {
        let canonical = rename(name);
        match expected.get(&canonical) {
            None => problems.unexpected.push(name.clone()),
            Some(want) => {
                if !seen.insert(canonical.clone()) {
                    problems
                        .unexpected
                        .push(format!("{name} (duplicate of {canonical})"));
                } else if want != shape {
                    problems
                        .mismatched
                        .push((name.clone(), want.clone(), shape.clone()));
                }
            }
        }
    }
    problems.missing = expected
        .keys()
        .filter(|k| !seen.contains(*k))
        .cloned()
        .collect();
    problems
}

/// A burn key remapper from `(regex, replacement)` pairs, applied in order.
pub fn remapper<S: AsRef<str>>(patterns: &[(S, S)]) -> Result<KeyRemapper, CheckpointError> {
    let pairs: Vec<(&str, &str)> = patterns
        .iter()
        .map(|(a, b)| (a.as_ref(), b.as_ref()))
        .collect();
    KeyRemapper::from_patterns(pairs).map_err(|e| CheckpointError::Pattern(e.to_string()))
}

/// `name` with every `(regex, replacement)` of `patterns` applied in order (`name` itself when a
/// pattern is invalid; [`remapper`] reports that).
pub fn renamed<S: AsRef<str>>(patterns: &[(S, S)], name: &str) -> String {
    match remapper(patterns) {
        Ok(r) => rename(&r, name),
        Err(_) => name.to_string(),
    }
}

/// Applies every pattern of `remapper` to `name`, in order.
pub fn rename(remapper: &KeyRemapper, name: &str) -> String {
    let mut out = name.to_string();
    for (re, replacement) in remapper.to_regex_pairs() {
        out = re.replace_all(&out, replacement.as_str()).into_owned();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(items: &[(&str, &[usize])]) -> BTreeMap<String, Vec<usize>> {
        items
            .iter()
            .map(|(k, s)| (k.to_string(), s.to_vec()))
            .collect()
    }

    #[test]
    fn compare_reports_every_problem() {
        let expected = map(&[("a.weight", &[2, 3]), ("b.weight", &[4]), ("c", &[1])]);
        let found = map(&[("x.a.weight", &[2, 3]), ("x.b.weight", &[5]), ("x.d", &[1])]);
        let p = compare_keys(&found, &expected, |n| {
            n.trim_start_matches("x.").to_string()
        });
        assert_eq!(p.missing, vec!["c".to_string()]);
        assert_eq!(p.unexpected, vec!["x.d".to_string()]);
        assert_eq!(
            p.mismatched,
            vec![("x.b.weight".to_string(), vec![4], vec![5])]
        );
        let text = p.to_string();
        assert!(text.contains("missing (1)") && text.contains("expected [4], found [5]"));
    }

    #[test]
    fn file_kind_is_read_from_the_content() {
        let dir = std::env::temp_dir().join(format!("sf-kind-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let st = dir.join("renamed.pth");
        let mut bytes = 2u64.to_le_bytes().to_vec();
        bytes.extend_from_slice(b"{}");
        std::fs::write(&st, bytes).unwrap();
        assert_eq!(TensorFile::from_extension(&st), TensorFile::Safetensors);
        let zip = dir.join("model.safetensors");
        std::fs::write(&zip, b"PK\x03\x04 and more bytes").unwrap();
        assert!(matches!(
            TensorFile::from_extension(&zip),
            TensorFile::Pickle { .. }
        ));
        let absent = dir.join("absent.safetensors");
        assert_eq!(TensorFile::from_extension(&absent), TensorFile::Safetensors);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn truncated_and_missing_files_are_errors() {
        let dir = std::env::temp_dir().join(format!("sf-ckpt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("short.safetensors");
        std::fs::write(&path, 1000u64.to_le_bytes()).unwrap();
        let e = list_tensors(&path, &TensorFile::Safetensors).unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
        let e = list_tensors(&dir.join("nope.pth"), &TensorFile::from_extension(&path));
        assert!(e.unwrap_err().to_string().contains("does not exist"));
        std::fs::remove_dir_all(&dir).ok();
    }
}
