//! The umT5 tokenizer as Wan uses it: clean the prompt ([`clean_prompt`]), encode it with the
//! `tokenizer.json` of `google/umt5-xxl` (SentencePiece Unigram) with `</s>` appended, truncate
//! to the text length keeping the final `</s>`, pad with `<pad>` and build the attention mask.

use std::path::Path;

use tokenizers::{Tokenizer, TruncationDirection};

use crate::TextError;
use crate::clean::clean_prompt;

/// Wan's text length (tokens per prompt, padding included).
pub const WAN_TEXT_LEN: usize = 512;

/// One tokenized prompt, padded to the text length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tokenized {
    /// The prompt after Wan's cleaning (what was encoded).
    pub cleaned: String,
    /// Token ids, exactly the text length: `len` real ids (the last one `</s>`), then `<pad>`.
    pub ids: Vec<u32>,
    /// 1 for the first `len` positions, 0 for padding.
    pub mask: Vec<u8>,
    /// Real tokens (`</s>` included); at least 1.
    pub len: usize,
    /// The token count before truncation when the prompt did not fit (`None` if it fit).
    pub truncated_from: Option<usize>,
}

impl Tokenized {
    /// A message for the user when the prompt was truncated.
    pub fn warning(&self) -> Option<String> {
        self.truncated_from.map(|n| {
            format!(
                "the prompt has {n} tokens but the text encoder reads {}; the last {} were dropped",
                self.ids.len(),
                n - self.len
            )
        })
    }
}

/// The umT5 tokenizer with Wan's cleaning, truncation and padding.
pub struct UmT5Tokenizer {
    inner: Tokenizer,
    text_len: usize,
    pad_id: u32,
    added: usize,
}

impl std::fmt::Debug for UmT5Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UmT5Tokenizer")
            .field("text_len", &self.text_len)
            .field("vocab", &self.inner.get_vocab_size(true))
            .finish()
    }
}

impl UmT5Tokenizer {
    /// Loads a `tokenizer.json` file; prompts are padded/truncated to `text_len` tokens
    /// ([`WAN_TEXT_LEN`] for Wan).
    pub fn from_file(path: impl AsRef<Path>, text_len: usize) -> Result<Self, TextError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| TextError::Tokenizer {
            file: Some(path.to_path_buf()),
            message: e.to_string(),
        })?;
        Self::from_bytes(&bytes, text_len).map_err(|e| match e {
            TextError::Tokenizer { message, .. } => TextError::Tokenizer {
                file: Some(path.to_path_buf()),
                message,
            },
            other => other,
        })
    }

    /// Reads the contents of a `tokenizer.json`.
    pub fn from_bytes(json: &[u8], text_len: usize) -> Result<Self, TextError> {
        let err = |message: String| TextError::Tokenizer {
            file: None,
            message,
        };
        let mut inner = Tokenizer::from_bytes(json).map_err(|e| err(e.to_string()))?;
        inner
            .with_truncation(None)
            .map_err(|e| err(e.to_string()))?;
        inner.with_padding(None);
        let added = inner
            .get_post_processor()
            .map_or(0, |p| tokenizers::PostProcessor::added_tokens(p, false));
        if text_len <= added {
            return Err(TextError::Config(format!(
                "text length {text_len} leaves no room for a token next to the {added} special token(s)"
            )));
        }
        let pad_id = inner
            .token_to_id("<pad>")
            .ok_or_else(|| err("the vocabulary has no <pad> token".into()))?;
        Ok(UmT5Tokenizer {
            inner,
            text_len,
            pad_id,
            added,
        })
    }

    /// Tokens per prompt (padding included).
    pub fn text_len(&self) -> usize {
        self.text_len
    }

    /// The padding id (0 for umT5).
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// Id of a token, if the vocabulary has it (`</s>` is 1 for umT5).
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Vocabulary size including added tokens (256300 for umT5; the encoder has 256384 rows).
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Cleans and encodes one prompt. An empty (or all-whitespace) prompt gives `[</s>]` with
    /// length 1, as Wan does. A prompt longer than the text length is truncated (the final
    /// `</s>` is kept) and reports its original length in [`Tokenized::truncated_from`].
    pub fn encode(&self, prompt: &str) -> Result<Tokenized, TextError> {
        let cleaned = clean_prompt(prompt);
        let err = |e: tokenizers::Error| TextError::Tokenizer {
            file: None,
            message: format!("cannot encode {cleaned:?}: {e}"),
        };
        let mut content = self.inner.encode(cleaned.as_str(), false).map_err(err)?;
        let total = content.len() + self.added;
        let truncated_from = (total > self.text_len).then_some(total);
        if truncated_from.is_some() {
            content.truncate(self.text_len - self.added, 0, TruncationDirection::Right);
            content.take_overflowing();
        }
        let encoding = self.inner.post_process(content, None, true).map_err(err)?;
        let mut ids = encoding.get_ids().to_vec();
        let len = ids.len();
        if len > self.text_len || len == 0 {
            return Err(TextError::Tokenizer {
                file: None,
                message: format!("{len} tokens after truncation to {}", self.text_len),
            });
        }
        ids.resize(self.text_len, self.pad_id);
        let mask = (0..self.text_len).map(|i| u8::from(i < len)).collect();
        Ok(Tokenized {
            cleaned,
            ids,
            mask,
            len,
            truncated_from,
        })
    }

    /// [`UmT5Tokenizer::encode`] for several prompts.
    pub fn encode_batch(&self, prompts: &[&str]) -> Result<Vec<Tokenized>, TextError> {
        prompts.iter().map(|p| self.encode(p)).collect()
    }
}
