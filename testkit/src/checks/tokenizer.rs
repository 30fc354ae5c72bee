//! The umT5 tokenizer: `umt5_tokenizer_golden.json` (Wan's cleaning and the ids of every case)
//! and `umt5_tokenizer.json.xz` (the shipped `tokenizer.json`, checked against the golden
//! file's sha256).

use std::path::{Path, PathBuf};

use sf_text::{UmT5Tokenizer, clean_prompt};
use sha2::{Digest, Sha256};

use super::{CheckError, Checks};
use crate::compare::CheckResult;
use crate::fixture::file_name;

/// The golden file's name, next to which the tokenizer is looked for.
pub const GOLDEN: &str = "umt5_tokenizer_golden.json";

/// The `tokenizer.json` next to `dir_file`: `umt5_tokenizer.json`, else decompressed from
/// `umt5_tokenizer.json.xz`; `None` when neither exists.
pub fn tokenizer_json(dir_file: &Path) -> Result<Option<(PathBuf, Vec<u8>)>, CheckError> {
    let dir = dir_file.parent().unwrap_or(Path::new("."));
    let plain = dir.join("umt5_tokenizer.json");
    if plain.exists() {
        let bytes = std::fs::read(&plain).map_err(|e| io(&plain, e))?;
        return Ok(Some((plain, bytes)));
    }
    let xz = dir.join("umt5_tokenizer.json.xz");
    if xz.exists() {
        return Ok(Some((xz.clone(), decompress(&xz)?)));
    }
    Ok(None)
}

fn io(path: &Path, e: impl std::fmt::Display) -> CheckError {
    CheckError::Other(format!("cannot read {}: {e}", path.display()))
}

/// The xz-compressed file's content.
pub fn decompress(path: &Path) -> Result<Vec<u8>, CheckError> {
    let compressed = std::fs::read(path).map_err(|e| io(path, e))?;
    let mut out = Vec::new();
    lzma_rs::xz_decompress(&mut compressed.as_slice(), &mut out).map_err(|e| io(path, e))?;
    Ok(out)
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn read_golden(path: &Path) -> Result<serde_json::Value, CheckError> {
    let text = std::fs::read_to_string(path).map_err(|e| io(path, e))?;
    serde_json::from_str(&text).map_err(|e| io(path, e))
}

/// Counts the cases that fail `ok`, as an exact check.
fn count(
    file: &str,
    check: &str,
    cases: &[serde_json::Value],
    ok: impl Fn(&serde_json::Value) -> Result<bool, CheckError>,
) -> Result<CheckResult, CheckError> {
    let mut wrong = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        if !ok(case)? {
            wrong.push(i.to_string());
        }
    }
    let mut r = CheckResult::ok(file, &format!("{check}, {} cases (exact)", cases.len()));
    if cases.is_empty() {
        return Ok(CheckResult::error(
            file,
            &r.check,
            "the golden file has no cases",
        ));
    }
    if !wrong.is_empty() {
        r.passed = false;
        r.max_abs_diff = wrong.len() as f64;
        r.note = Some(format!("cases {} differ", wrong.join(", ")));
    }
    Ok(r)
}

/// `umt5_tokenizer_golden.json`: Wan's cleaning of every case; with the tokenizer next to it,
/// the special ids and every case's ids, length, padding, mask and truncation.
pub fn golden(path: &Path) -> Checks {
    let file = file_name(path);
    Checks::run(&file, |c| {
        let golden = read_golden(path)?;
        let cases = golden["cases"].as_array().cloned().unwrap_or_default();
        let cleaned = |case: &serde_json::Value| {
            let prompt = case["prompt"].as_str().unwrap_or_default();
            Ok(case["cleaned"].as_str() == Some(clean_prompt(prompt).as_str()))
        };
        c.push(count(&file, "cleaned text", &cases, cleaned)?);
        let Some((source, json)) = tokenizer_json(path)? else {
            c.skip(
                "token ids",
                "no umt5_tokenizer.json or umt5_tokenizer.json.xz next to it",
            );
            return Ok(());
        };
        let number = |key: &str| {
            golden[key]
                .as_u64()
                .ok_or_else(|| CheckError::Other(format!("the golden file has no '{key}'")))
        };
        let max_length = number("max_length")? as usize;
        let tok = UmT5Tokenizer::from_bytes(&json, max_length)?;
        let specials = [
            ("vocab_size_tokenizer", tok.vocab_size() as u64),
            ("pad_id", u64::from(tok.pad_id())),
            ("eos_id", tok.token_id("</s>").map_or(u64::MAX, u64::from)),
        ];
        let mut r = CheckResult::ok(&file, "vocabulary size, pad and eos ids (exact)");
        for (key, ours) in specials {
            if number(key)? != ours {
                r = CheckResult::error(&file, &r.check, format!("{key}: ours {ours}"));
            }
        }
        c.push(r);
        let ids = |case: &serde_json::Value| -> Result<bool, CheckError> {
            let t = tok.encode(case["prompt"].as_str().unwrap_or_default())?;
            let want: Vec<u32> = case["ids"]
                .as_array()
                .map(|ids| ids.iter().filter_map(|v| v.as_u64()).map(|v| v as u32))
                .into_iter()
                .flatten()
                .collect();
            let len = t.len;
            if t.ids.len() != max_length || t.mask.len() != max_length || len > max_length {
                return Ok(false);
            }
            let (real, pad) = t.ids.split_at(len);
            let (real_mask, pad_mask) = t.mask.split_at(len);
            Ok(case["length"].as_u64() == Some(len as u64)
                && real == want.as_slice()
                && pad.iter().all(|&i| i == tok.pad_id())
                && real_mask.iter().all(|&m| m == 1)
                && pad_mask.iter().all(|&m| m == 0)
                && case["truncated"].as_bool() == Some(t.truncated_from.is_some())
                && t.warning().is_some() == t.truncated_from.is_some())
        };
        let check = format!("token ids from {}", file_name(&source));
        c.push(count(&file, &check, &cases, ids)?);
        Ok(())
    })
}

/// `umt5_tokenizer.json.xz`: decompresses to a tokenizer that loads and, with the golden file
/// next to it, to the `tokenizer.json` whose sha256 it records.
pub fn compressed(path: &Path) -> Checks {
    let file = file_name(path);
    Checks::run(&file, |c| {
        let json = decompress(path)?;
        let loads = UmT5Tokenizer::from_bytes(&json, 512).map(drop);
        c.push(CheckResult::from_outcome(
            &file,
            "decompresses to a tokenizer that loads",
            loads,
        ));
        let golden = path.with_file_name(GOLDEN);
        if !golden.exists() {
            c.skip("sha256", format!("no {GOLDEN} next to it"));
            return Ok(());
        }
        let want = read_golden(&golden)?["tokenizer_json_sha256"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| CheckError::Other(format!("{GOLDEN} has no tokenizer_json_sha256")))?;
        let ours = sha256(&json);
        let check = format!("sha256 = {GOLDEN}'s tokenizer_json_sha256");
        c.push(if ours == want {
            CheckResult::ok(&file, &check)
        } else {
            CheckResult::error(&file, &check, format!("sha256 {ours}"))
        });
        Ok(())
    })
}
