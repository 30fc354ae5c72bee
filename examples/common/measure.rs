//! Helpers of the measurement examples (and `parity`): the value parsers of their clap flags,
//! memory readings, device choice, exit code and the `RESULT` line.
// Each example uses a part of these helpers.
#![allow(dead_code)]

use std::process::ExitCode;

use sf_device::{
    DeviceRequest, Dtype, SelectedDevice, current_rss_bytes, human_bytes, peak_rss_bytes, select,
};

/// `--version`: the version and the checkout the example was built from.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (built from ",
    env!("CARGO_MANIFEST_DIR"),
    ")"
);

/// `rss 1.2 GiB (peak 3.4 GiB)`.
pub fn rss() -> String {
    format!(
        "rss {} (peak {})",
        current_rss_bytes().map_or("?".into(), human_bytes),
        peak_rss_bytes().map_or("?".into(), human_bytes)
    )
}

/// The device `--device` names (or `SF_DEVICE`, or the automatic choice).
pub fn device(flag: Option<DeviceRequest>) -> Result<SelectedDevice, String> {
    let request = DeviceRequest::resolve(flag).map_err(|e| e.to_string())?;
    select(&request).map_err(|e| e.to_string())
}

/// Prints the error, if any, and turns the result into the exit code.
pub fn exit(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// `--dtype`-style values through [`Dtype`]'s `FromStr` (a clap `value_parser`).
pub fn parse_dtype(text: &str) -> Result<Dtype, String> {
    text.parse().map_err(|e| format!("{e}"))
}

/// `--device` values through [`DeviceRequest`]'s `FromStr` (a clap `value_parser`).
pub fn parse_device(text: &str) -> Result<DeviceRequest, String> {
    text.parse().map_err(|e| format!("{e}"))
}

/// A whole number of at least 1, such as `--repeat` (a clap `value_parser`).
pub fn at_least_one(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("a whole number, got '{text}': {e}")),
    }
}

/// Prints the machine-readable last line the side-by-side script
/// (`benches/compare_pytorch.py`) reads: `RESULT {"seconds": [...], "peak_rss_bytes": N, ...}`.
pub fn result_line(seconds: &[f64], extra: serde_json::Value) {
    let mut fields = serde_json::Map::new();
    fields.insert("seconds".into(), seconds.into());
    fields.insert(
        "peak_rss_bytes".into(),
        sf_device::peak_rss_bytes().unwrap_or(0).into(),
    );
    if let serde_json::Value::Object(extra) = extra {
        fields.extend(extra);
    }
    println!("RESULT {}", serde_json::Value::Object(fields));
}
