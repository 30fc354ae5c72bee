//! The real umT5 tokenizer against `umt5_tokenizer_golden.json` (every case, through
//! [`sf_testkit::checks::tokenizer`]), and properties of the front end (cleaning + encoding) on
//! arbitrary strings.

use crate::common;

use std::sync::OnceLock;

use proptest::prelude::*;
use sf_testkit::checks::tokenizer;
use sf_text::{UmT5Tokenizer, clean_prompt};

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
    // Cleaning, ids, length, padding, mask and truncation of every case; the special ids; the
    // shipped tokenizer.json's sha256.
    tokenizer::golden(&common::fixture(tokenizer::GOLDEN)).assert_complete();
    tokenizer::compressed(&common::fixture("umt5_tokenizer.json.xz")).assert_complete();
    assert!(golden()["cases"].as_array().unwrap().len() >= 10);
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
