//! The parity runner: every vendored fixture passes on Flex and wgpu, and the runner fails
//! honestly: an empty directory, a directory of unrelated files, a corrupt fixture, a NaN in a
//! stored output, a recognised file that yields no check.

use std::path::{Path, PathBuf};

use burn::tensor::{DType, Device};
use sf_testkit::{Checks, ParityReport, run_dir, workspace_fixture, workspace_fixtures};

fn run_all(device: &Device) {
    let report = run_dir(&workspace_fixtures(), device).unwrap();
    for r in &report.results {
        println!("{r}");
    }
    for s in &report.skipped {
        println!("{s}");
    }
    println!("{} passed, {} failed", report.passed(), report.failed());
    assert!(report.ok(), "failed checks:\n{}", report.failures());
    // Every file of FORMAT.md §2 but the pickles the io files load, and the docs.
    let unrecognised: Vec<String> = report
        .unrecognised
        .iter()
        .map(|p| sf_testkit::fixture::file_name(p))
        .collect();
    assert_eq!(
        unrecognised,
        [
            "FORMAT.md",
            "lora_tiny.pt",
            "manifest.json",
            "manifests",
            "selfforcing_tiny.pt",
            "vae_tiny.pth"
        ]
    );
    // Every check runs or is listed as skipped with its reason: 178 comparisons where the device
    // has bf16 (17 for each of the two prompt-switch files, 5 for the LoRA), the two bf16-compute
    // ones skipped where it has not.
    let mut skipped: Vec<String> = report
        .skipped
        .iter()
        .map(|s| format!("{}: {}", s.file, s.what))
        .collect();
    skipped.sort();
    let mut expected = vec![
        "scheduler.safetensors: unipc.*",
        "scheduler.safetensors: unipc_diffusers.*",
        "selfforcing_tiny_io.safetensors: generator.out_per_frame_bidirectional",
        "selfforcing_tiny_io.safetensors: generator_ema.out_per_frame_bidirectional",
    ];
    let bf16 = device.supports_dtype(DType::BF16);
    if !bf16 {
        expected.extend([
            "selfforcing_tiny_io.safetensors: generator_ema.out_uniform (bf16 compute)",
            "t5_tiny_io.safetensors: t5_tiny.pth, bf16 compute: out_bf16_weights",
        ]);
        expected.sort();
    }
    assert_eq!(skipped, expected);
    assert_eq!(report.results.len(), if bf16 { 178 } else { 176 });
    let switch_checks = report
        .results
        .iter()
        .filter(|r| r.file.starts_with("rollout_switch_"))
        .count();
    assert_eq!(switch_checks, 34);
}

#[test]
fn every_recognised_fixture_on_flex() {
    run_all(&Device::flex());
}

#[cfg(feature = "wgpu")]
#[test]
fn every_recognised_fixture_on_wgpu() {
    if let Some(device) = sf_testkit::wgpu_test_device() {
        run_all(&device);
    }
}

/// A fresh scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sf-runner-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(dir: &Path) -> ParityReport {
    let report = run_dir(dir, &Device::flex()).unwrap();
    for r in &report.results {
        println!("{r}");
    }
    report
}

#[test]
fn an_empty_directory_fails() {
    let dir = scratch("empty");
    let report = run(&dir);
    assert!(!report.ok());
    assert_eq!(report.failed(), 1);
    assert!(report.failures().contains("no file in this directory"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_directory_of_unrelated_files_fails() {
    let dir = scratch("unrelated");
    std::fs::write(dir.join("notes.txt"), "hello").unwrap();
    let report = run(&dir);
    assert!(!report.ok());
    assert_eq!(report.unrecognised, vec![dir.join("notes.txt")]);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_corrupt_fixture_fails() {
    let dir = scratch("corrupt");
    let good = std::fs::read(workspace_fixture("scheduler.safetensors")).unwrap();
    std::fs::write(dir.join("scheduler.safetensors"), &good[..good.len() / 2]).unwrap();
    let report = run(&dir);
    assert!(!report.ok());
    assert_eq!(report.failed(), 1, "{:?}", report.results);
    assert!(report.results[0].note.is_some());
    std::fs::remove_dir_all(&dir).ok();
}

/// `bytes` (a safetensors file) with element `index` of the F32 tensor `name` set to `value`.
fn with_value(bytes: &[u8], name: &str, index: usize, value: f32) -> Vec<u8> {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    assert_eq!(header[name]["dtype"], "F32");
    let start = 8 + n + header[name]["data_offsets"][0].as_u64().unwrap() as usize + 4 * index;
    let mut out = bytes.to_vec();
    out[start..start + 4].copy_from_slice(&value.to_le_bytes());
    out
}

#[test]
fn a_nan_in_a_stored_output_fails() {
    let dir = scratch("nan");
    let good = std::fs::read(workspace_fixture("scheduler.safetensors")).unwrap();
    let name = "self_forcing.flow_to_x0.out";
    std::fs::write(
        dir.join("scheduler.safetensors"),
        with_value(&good, name, 3, f32::NAN),
    )
    .unwrap();
    let report = run(&dir);
    assert!(!report.ok());
    let failed: Vec<&str> = report
        .results
        .iter()
        .filter(|r| !r.passed)
        .map(|r| r.check.as_str())
        .collect();
    assert_eq!(failed, [name]);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_recognised_file_without_a_check_fails() {
    // Every reference skipped: reported, and a failure.
    let mut report = ParityReport::default();
    let mut checks = Checks::new("rollout_x.safetensors");
    checks.skip("latents", "not in the file");
    report.add(checks);
    assert!(!report.ok());
    assert_eq!(report.skipped.len(), 1);
    assert!(
        report
            .failures()
            .contains("every check was skipped (latents: not in the file)")
    );

    // A golden tokenizer file without cases, and nothing else.
    let dir = scratch("no-cases");
    std::fs::write(dir.join("umt5_tokenizer_golden.json"), r#"{"cases": []}"#).unwrap();
    let report = run(&dir);
    assert!(!report.ok());
    assert!(
        report.failures().contains("no cases"),
        "{}",
        report.failures()
    );
    assert_eq!(
        report.skipped.len(),
        1,
        "token ids: no tokenizer next to it"
    );
    std::fs::remove_dir_all(&dir).ok();
}
