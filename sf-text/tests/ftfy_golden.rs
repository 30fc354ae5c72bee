//! `sf_text::clean` against `tests/data/ftfy_golden.json`: inputs with the output of ftfy 6.3.1's
//! `fix_text` and of Wan's whole prompt cleaning, written by `tools/gen_ftfy_golden.py`.

use sf_text::{clean_prompt, fix_text};

fn golden() -> serde_json::Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/ftfy_golden.json");
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn every_ftfy_golden_case_matches() {
    let golden = golden();
    assert_eq!(golden["ftfy_version"], "6.3.1");
    let cases = golden["cases"].as_array().unwrap();
    assert!(cases.len() > 3000, "{} cases", cases.len());
    let mut mismatches = Vec::new();
    for case in cases {
        let input = case["input"].as_str().unwrap();
        for (step, got) in [
            ("fix_text", fix_text(input)),
            ("clean_prompt", clean_prompt(input)),
        ] {
            let want = case[step].as_str().unwrap();
            if got != want {
                mismatches.push(format!(
                    "[{}] {step}({input:?})\n   want {want:?}\n    got {got:?}",
                    case["kind"].as_str().unwrap_or("?")
                ));
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} golden checks differ from ftfy; the first ones:\n{}",
        mismatches.len(),
        2 * cases.len(),
        mismatches[..mismatches.len().min(8)].join("\n")
    );
}
