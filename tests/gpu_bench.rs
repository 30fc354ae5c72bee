//! `scripts/gpu-bench.sh` on this GPU-less machine, so that a lent GPU runs it right the first
//! time: what detection reports on an empty and on a fake NVIDIA system, and a packed archive
//! unpacked and run on the CPU with a tiny model (results, summary, what did not run).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::cli::example;
use crate::tiny_models::scratch;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/gpu-bench.sh")
}

/// The script with a clean environment: no driver search paths, a PATH of the system's tools
/// plus `extra_path`, a system root for the library and ICD searches.
fn command(program: &Path, sysroot: &Path, extra_path: Option<&Path>) -> Command {
    let mut c = Command::new(program);
    let path = std::env::var("PATH").unwrap_or_default();
    let path = match extra_path {
        Some(p) => format!("{}:{path}", p.display()),
        None => path,
    };
    c.env("PATH", path)
        .env("SF_BENCH_SYSROOT", sysroot)
        .env_remove("LD_LIBRARY_PATH")
        .env_remove("VK_ICD_FILENAMES")
        .env_remove("VK_DRIVER_FILES")
        .env_remove("CUDA_PATH")
        .env_remove("SF_BENCH_BACKENDS")
        .env_remove("SF_BENCH_ARGS");
    c
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn write_exe(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn detection_names_everything_missing() {
    let tmp = scratch("gpu-bench-missing");
    let o = command(&script(), tmp.as_path(), None)
        .arg("detect")
        .env("SF_BENCH_PYTHON", tmp.as_path().join("no-python"))
        .output()
        .unwrap();
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("## Missing"), "{out}");
    for needle in [
        "libcuda.so.1 (the NVIDIA driver's CUDA library",
        "libvulkan.so.1 (the Vulkan loader",
        "no-python (the PyTorch side cannot run",
    ] {
        assert!(out.contains(needle), "'{needle}' not in:\n{out}");
    }
    if Command::new("nvidia-smi").output().is_err() {
        assert!(out.contains("nvidia-smi (no NVIDIA driver tools"), "{out}");
    }
    fs::remove_dir_all(&tmp).unwrap();
}

#[test]
fn detection_finds_a_fake_nvidia_machine() {
    let tmp = scratch("gpu-bench-fake");
    let root = tmp.as_path().join("root");
    let lib = root.join("usr/lib/x86_64-linux-gnu");
    let icd = root.join("usr/share/vulkan/icd.d");
    let bin = tmp.as_path().join("bin");
    for d in [&lib, &icd, &bin] {
        fs::create_dir_all(d).unwrap();
    }
    fs::write(lib.join("libcuda.so.1"), b"").unwrap();
    fs::write(lib.join("libvulkan.so.1"), b"").unwrap();
    fs::write(icd.join("lvp_icd.x86_64.json"), b"{}").unwrap();
    // Only the software ICD: wgpu would not use the GPU, and the report says so.
    let o = command(&script(), &root, None)
        .arg("detect")
        .output()
        .unwrap();
    let out = text(&o);
    assert!(out.contains("an NVIDIA Vulkan ICD"), "{out}");
    assert!(out.contains("found: lvp_icd.x86_64.json"), "{out}");

    fs::write(icd.join("nvidia_icd.json"), b"{}").unwrap();
    write_exe(
        &bin.join("nvidia-smi"),
        "echo 'NVIDIA H200, 570.86, 143771 MiB'",
    );
    write_exe(
        &bin.join("fake-python"),
        r#"case "$1" in -V) echo 'Python 3.11.9' ;; *) echo '2.6.0 True NVIDIA H200' ;; esac"#,
    );
    let o = command(&script(), &root, Some(&bin))
        .arg("detect")
        .env("SF_BENCH_PYTHON", bin.join("fake-python"))
        .output()
        .unwrap();
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(!out.contains("## Missing"), "{out}");
    for needle in [
        "nvidia-smi: NVIDIA H200, 570.86, 143771 MiB",
        &format!("libcuda.so.1: {}", lib.join("libcuda.so.1").display()),
        &format!("NVIDIA ICD {}", icd.join("nvidia_icd.json").display()),
        "torch 2.6.0 with CUDA on NVIDIA H200",
    ] {
        assert!(out.contains(needle), "'{needle}' not in:\n{out}");
    }
    fs::remove_dir_all(&tmp).unwrap();
}

#[test]
fn a_packed_archive_unpacks_and_runs_on_the_cpu() {
    let bench = example("rollout_bench");
    let tmp = scratch("gpu-bench-pack");
    let empty = tmp.as_path().join("empty-root");
    fs::create_dir_all(&empty).unwrap();
    let libdevice = tmp.as_path().join("libdevice.10.bc");
    fs::write(&libdevice, b"BC fake libdevice").unwrap();
    let archive = tmp.as_path().join("bench.tar.xz");
    let pack = || {
        command(&script(), &empty, None)
            .args(["pack".as_ref(), archive.as_os_str()])
            .env("SF_BENCH_BIN", &bench)
            .env("SF_LIBDEVICE", &libdevice)
            .env("SF_TORCH_SOURCES", "none")
            .env("SF_BENCH_XZ", "0")
            .output()
            .unwrap()
    };
    let o = pack();
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    let size = fs::metadata(&archive).unwrap().len();
    assert!(size < 64 << 20, "{size} bytes");
    assert!(
        out.contains("torch not packed (SF_TORCH_SOURCES=none)"),
        "{out}"
    );
    // An archive that exists is never overwritten.
    let before = fs::read(&archive).unwrap();
    let o = pack();
    assert!(
        !o.status.success() && text(&o).contains("exists"),
        "{}",
        text(&o)
    );
    assert_eq!(fs::read(&archive).unwrap(), before);

    let unpacked = tmp.as_path().join("unpacked");
    fs::create_dir_all(&unpacked).unwrap();
    let o = Command::new("tar")
        .arg("-xJf")
        .arg(&archive)
        .arg("-C")
        .arg(&unpacked)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let bundle = unpacked.join("sf-gpu-bench");
    assert_eq!(
        fs::read(bundle.join("cuda/nvvm/libdevice/libdevice.10.bc")).unwrap(),
        b"BC fake libdevice"
    );
    let run = |results: &Path, args: &str| {
        command(&bundle.join("run.sh"), &empty, None)
            .arg(results)
            .env("SF_BENCH_BACKENDS", "cpu")
            .env("SF_BENCH_ARGS", args)
            .env("SF_BENCH_PYTHON", tmp.as_path().join("no-python"))
            .output()
            .unwrap()
    };
    let tiny = "--layers 1 --height 32 --width 32 --latent-frames 3 --runs 1";
    let results = tmp.as_path().join("results");
    let o = run(&results, tiny);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    let lines = fs::read_to_string(results.join("results.jsonl")).unwrap();
    let rows: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 1, "{lines}");
    let r = &rows[0];
    assert_eq!(r["label"], "cpu-f32", "{r}");
    assert_eq!(r["status"], "ok", "{r}\n{out}");
    assert_eq!(r["frames"], serde_json::json!([9]), "{r}");
    assert_eq!(r["layers"], 1, "{r}");
    assert!(r["denoise_fps"][0].as_f64().unwrap() > 0.0, "{r}");
    assert!(r["end_to_end_fps"][0].as_f64().unwrap() > 0.0, "{r}");
    let summary = fs::read_to_string(results.join("summary.md")).unwrap();
    assert!(summary.contains("| cpu-f32 | ok | 9 |"), "{summary}");
    assert!(
        summary.contains("PyTorch: SF_BENCH_BACKENDS names the backends"),
        "{summary}"
    );
    let machine = fs::read_to_string(results.join("machine.md")).unwrap();
    assert!(machine.contains("torch not packed"), "{machine}");
    assert!(machine.contains("libcuda.so.1 (the NVIDIA"), "{machine}");
    // Earlier results are never overwritten.
    let o = run(&results, tiny);
    assert!(!o.status.success() && text(&o).contains("already holds results"));
    assert_eq!(
        fs::read_to_string(results.join("results.jsonl")).unwrap(),
        lines
    );

    // A run that fails is reported as failed, with its log kept.
    let failed = tmp.as_path().join("failed");
    let o = run(&failed, "--layers 1 --height 33 --width 32 --runs 1");
    assert!(o.status.success(), "{}", text(&o));
    let summary = fs::read_to_string(failed.join("summary.md")).unwrap();
    assert!(
        summary.contains("| cpu-f32 | failed (exit 2) |"),
        "{summary}"
    );
    let log = fs::read_to_string(failed.join("cpu-f32.log")).unwrap();
    assert!(log.contains("multiples of 16"), "{log}");
    fs::remove_dir_all(&tmp).unwrap();
}
