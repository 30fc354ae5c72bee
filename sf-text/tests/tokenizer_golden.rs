//! The real umT5 tokenizer against `umt5_tokenizer_golden.json` (every case), and properties of
//! the front end (cleaning + encoding) on arbitrary strings.

use crate::common;

use std::sync::OnceLock;

use proptest::prelude::*;
use sf_text::{UmT5Tokenizer, clean_prompt};
use sha2::{Digest, Sha256};

fn golden() -> serde_json::Value {
    let text = std::fs::read_to_string(common::fixture("umt5_tokenizer_golden.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn json_bytes() -> &'static [u8] {
    static JSON: OnceLock<Vec<u8>> = OnceLock::new();
    JSON.get_or_init(common::umt5_tokenizer_json)
}

#[test]
fn every_golden_case_matches() {
    let golden = golden();
    let digest: String = Sha256::digest(json_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(digest, golden["tokenizer_json_sha256"].as_str().unwrap());
    let max_length = golden["max_length"].as_u64().unwrap() as usize;
    let tok = UmT5Tokenizer::from_bytes(json_bytes(), max_length).unwrap();
    assert_eq!(
        tok.vocab_size() as u64,
        golden["vocab_size_tokenizer"].as_u64().unwrap()
    );
    assert_eq!(tok.pad_id() as u64, golden["pad_id"].as_u64().unwrap());
    assert_eq!(
        tok.token_id("</s>").map(u64::from),
        golden["eos_id"].as_u64()
    );
    let cases = golden["cases"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for case in cases {
        let prompt = case["prompt"].as_str().unwrap();
        let t = tok.encode(prompt).unwrap();
        assert_eq!(t.cleaned, case["cleaned"].as_str().unwrap(), "{prompt:?}");
        let want: Vec<u32> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let len = case["length"].as_u64().unwrap() as usize;
        assert_eq!(t.len, len, "{prompt:?}");
        assert_eq!(&t.ids[..len], &want[..], "{prompt:?}");
        assert_eq!(t.ids.len(), max_length);
        assert!(t.ids[len..].iter().all(|&i| i == tok.pad_id()));
        assert_eq!(t.mask.iter().map(|&m| m as usize).sum::<usize>(), len);
        assert!(t.mask[..len].iter().all(|&m| m == 1));
        let truncated = case["truncated"].as_bool().unwrap();
        assert_eq!(t.truncated_from.is_some(), truncated, "{prompt:?}");
        assert_eq!(t.warning().is_some(), truncated);
        if let Some(n) = t.truncated_from {
            assert!(n > max_length, "{n}");
            println!("truncated prompt: {n} tokens -> {max_length}");
        }
    }
}

#[test]
fn empty_prompt_is_just_end_of_sequence() {
    let tok = UmT5Tokenizer::from_bytes(json_bytes(), 512).unwrap();
    for prompt in ["", "   \t\n ", "\u{3000}"] {
        let t = tok.encode(prompt).unwrap();
        assert_eq!(
            (t.len, t.ids[0], t.truncated_from),
            (1, 1, None),
            "{prompt:?}"
        );
    }
}

#[test]
fn text_length_is_configurable_and_truncation_keeps_eos() {
    let tok = UmT5Tokenizer::from_bytes(json_bytes(), 8).unwrap();
    let t = tok
        .encode("A slow pan across a misty mountain lake at dawn.")
        .unwrap();
    assert_eq!((t.ids.len(), t.len, t.ids[7]), (8, 8, 1));
    let n = t.truncated_from.unwrap();
    assert!(n > 8);
    assert!(t.warning().unwrap().contains(&format!("{n} tokens")));
    let full = UmT5Tokenizer::from_bytes(json_bytes(), 512).unwrap();
    let long = full
        .encode("A slow pan across a misty mountain lake at dawn.")
        .unwrap();
    assert_eq!(long.len, n);
    assert_eq!(&t.ids[..7], &long.ids[..7]);
    assert!(UmT5Tokenizer::from_bytes(json_bytes(), 1).is_err());
    assert!(UmT5Tokenizer::from_bytes(b"{not json", 8).is_err());
    assert!(UmT5Tokenizer::from_file("/nonexistent/tokenizer.json", 8).is_err());
}

fn small_tokenizer() -> &'static UmT5Tokenizer {
    static TOK: OnceLock<UmT5Tokenizer> = OnceLock::new();
    TOK.get_or_init(|| UmT5Tokenizer::from_bytes(json_bytes(), 24).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn front_end_never_panics_and_pads_exactly(
        prompt in prop_oneof![
            any::<String>(),
            "[ a-z&;#<>/0-9xX\\t\\n\\r\u{80}-\u{9f}\u{3000}\u{ff01}-\u{ff5e}\u{fb00}-\u{fb06}]{0,120}",
        ]
    ) {
        let cleaned = clean_prompt(&prompt);
        prop_assert_eq!(cleaned.trim(), cleaned.as_str());
        prop_assert!(!cleaned.contains("  "));
        let tok = small_tokenizer();
        let t = tok.encode(&prompt).unwrap();
        prop_assert_eq!(t.ids.len(), 24);
        prop_assert_eq!(t.mask.len(), 24);
        prop_assert!(t.len >= 1 && t.len <= 24);
        prop_assert_eq!(t.ids[t.len - 1], 1);
        prop_assert_eq!(t.mask.iter().map(|&m| m as usize).sum::<usize>(), t.len);
        prop_assert_eq!(t.truncated_from.is_some(), t.truncated_from.unwrap_or(0) > 24);
    }
}
