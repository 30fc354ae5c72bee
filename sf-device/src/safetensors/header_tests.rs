//! Unit tests of the safetensors header checks.

use super::*;

/// A header of `entries` (raw JSON text per value) over `data_len` bytes of data.
fn check(entries: &[(&str, &str)], data_len: u64) -> Result<Header, String> {
    let body: Vec<String> = entries
        .iter()
        .map(|(k, v)| format!("\"{k}\":{v}"))
        .collect();
    let json = format!("{{{}}}", body.join(","));
    parse_header(json.as_bytes(), 8 + json.len() as u64, data_len)
}

const A: &str = r#"{"dtype":"F32","shape":[2],"data_offsets":[0,8]}"#;
const B: &str = r#"{"dtype":"BF16","shape":[3],"data_offsets":[8,14]}"#;

fn err(entries: &[(&str, &str)], data_len: u64, needle: &str) {
    let e = check(entries, data_len).unwrap_err();
    assert!(e.contains(needle), "expected '{needle}' in: {e}");
}

#[test]
fn a_consistent_header_is_read_in_data_order() {
    let h = check(&[("b", B), ("a", A), ("__metadata__", r#"{"k":"v"}"#)], 14).unwrap();
    let names: Vec<&str> = h.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(h.tensors[1].shape, [3]);
    assert_eq!(h.metadata["k"], "v");
    assert_eq!(h.to_json()["b"]["data_offsets"], serde_json::json!([8, 14]));
    let empty = r#"{"dtype":"F32","shape":[0,5],"data_offsets":[0,0]}"#;
    check(&[("e", empty)], 0).unwrap();
}

#[test]
fn the_data_area_must_be_tiled_exactly() {
    err(&[("a", A), ("b", B)], 13, "truncated");
    err(&[("a", A), ("b", B)], 20, "6 bytes after its last tensor");
    let overlap = r#"{"dtype":"BF16","shape":[3],"data_offsets":[6,12]}"#;
    err(&[("a", A), ("b", overlap)], 12, "overlaps tensor 'a'");
    let gap = r#"{"dtype":"BF16","shape":[3],"data_offsets":[10,16]}"#;
    err(&[("a", A), ("b", gap)], 16, "2 bytes before tensor 'b'");
    let beyond =
        r#"{"dtype":"F32","shape":[2],"data_offsets":[18446744073709551607,18446744073709551615]}"#;
    err(&[("a", beyond)], 8, "belong to no tensor");
}

#[test]
fn each_entry_must_be_consistent() {
    let entry = |dtype: &str, shape: &str, offsets: &str| {
        format!(r#"{{"dtype":"{dtype}","shape":{shape},"data_offsets":{offsets}}}"#)
    };
    let cases = [
        (entry("F32", "[3]", "[0,8]"), "needs 12 bytes"),
        (entry("F33", "[2]", "[0,8]"), "unknown dtype 'F33'"),
        (entry("F32", "[2]", "[8,0]"), "end before they begin"),
        (entry("F32", "[2]", "[0]"), "found 1 numbers"),
        (entry("F32", "[2]", "[0,8,9]"), "more than 2 entries"),
        (entry("F32", "[2]", "[-1,8]"), "data_offsets"),
        (entry("F32", "[2]", "[0,8.5]"), "data_offsets"),
        (entry("F32", "[2]", r#"[0,"8"]"#), "data_offsets"),
        (entry("F32", "[-2]", "[0,8]"), "shape"),
        (
            entry("F32", "[1099511627776,1099511627776]", "[0,8]"),
            "64 bits",
        ),
        (entry("F32", "[18446744073709551615]", "[0,8]"), "64 bits"),
        (entry("F4", "[3]", "[0,2]"), "whole number of bytes"),
        (
            entry("F32", &format!("[{}]", ["1"; 33].join(",")), "[0,4]"),
            "more than 32",
        ),
        (r#"{"shape":[2],"data_offsets":[0,8]}"#.into(), "no dtype"),
        (r#"{"dtype":"F32","data_offsets":[0,8]}"#.into(), "no shape"),
        (r#"{"dtype":"F32","shape":[2]}"#.into(), "no data_offsets"),
        (
            r#"{"dtype":7,"shape":[2],"data_offsets":[0,8]}"#.into(),
            "dtype",
        ),
        (
            r#"{"dtype":"F32","shape":{},"data_offsets":[0,8]}"#.into(),
            "shape",
        ),
        (
            r#"{"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8]}"#.into(),
            "twice",
        ),
        (
            r#"{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":[[[1]]]}"#.into(),
            "'x'",
        ),
        ("[1, 2]".into(), "tensor 'a'"),
        ("\"F32\"".into(), "tensor 'a'"),
    ];
    for (value, needle) in &cases {
        err(&[("a", value)], 8, needle);
    }
}

#[test]
fn names_metadata_and_structure_are_checked() {
    err(&[("a", A), ("a", A)], 8, "names tensor 'a' twice");
    err(
        &[("a", A), ("__metadata__", "{}"), ("__metadata__", "{}")],
        8,
        "more than one",
    );
    for bad in [
        r#"{"k":1}"#,
        r#"{"k":{"x":"y"}}"#,
        "[]",
        "\"text\"",
        r#"{"k":null}"#,
    ] {
        err(&[("a", A), ("__metadata__", bad)], 8, "invalid header");
    }
    err(
        &[("a", A), ("__metadata__", r#"{"k":"1","k":"2"}"#)],
        8,
        "names 'k' twice",
    );
    let deep = "[".repeat(100_000);
    for json in [
        deep.clone(),
        format!("{{\"a\":{deep}"),
        format!("{{\"__metadata__\":{deep}"),
    ] {
        let e = parse_header(json.as_bytes(), 0, 0).unwrap_err();
        assert!(e.contains("invalid header"), "{e}");
    }
    let unknown = format!(r#"{{"a":{{"dtype":"F32","x":{deep}"#);
    assert!(parse_header(unknown.as_bytes(), 0, 0).is_err());
    for json in ["", "{", "{}x", "[]", "null", "\u{0}"] {
        assert!(parse_header(json.as_bytes(), 0, 0).is_err(), "{json:?}");
    }
    assert!(parse_header(b"{}", 10, 0).unwrap().tensors.is_empty());
    assert!(parse_header(b"{\"\xff\":1}", 0, 0).is_err());
}

/// Eight U8 tensors of 2^61 - 1 bytes each: every size fits, their sum (2^64 - 8) plus the
/// header does not. The safetensors crate's `read_metadata` (used by burn::store) panics on it
/// with overflow checks on ("attempt to add with overflow"); the check here refuses it first.
fn sum_overflow_file() -> Vec<u8> {
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
    bytes
}

#[test]
fn sizes_that_sum_past_64_bits_are_refused() {
    let e = crate::safetensors::parse(&sum_overflow_file()).unwrap_err();
    assert!(e.contains("truncated"), "{e}");
}
