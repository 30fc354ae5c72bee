//! Helpers of the real-size measurement examples: memory readings, device choice, exit code.
// Each example uses a part of these helpers.
#![allow(dead_code)]

use std::process::ExitCode;

use sf_device::{
    DeviceRequest, SelectedDevice, current_rss_bytes, human_bytes, peak_rss_bytes, select,
};

/// `rss 1.2 GiB (peak 3.4 GiB)`.
pub fn rss() -> String {
    format!(
        "rss {} (peak {})",
        current_rss_bytes().map_or("?".into(), human_bytes),
        peak_rss_bytes().map_or("?".into(), human_bytes)
    )
}

/// The device `--device` names (or `SF_DEVICE`, or the automatic choice).
pub fn device(flag: Option<&str>) -> Result<SelectedDevice, String> {
    let request = flag
        .map(str::parse::<DeviceRequest>)
        .transpose()
        .and_then(DeviceRequest::resolve)
        .map_err(|e| e.to_string())?;
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

/// Walks `--flag value` / `--switch` arguments: `on(flag, value)` handles one flag, where
/// `value()` takes the flag's value, and returns `Ok(false)` for a flag it does not know.
pub fn parse_flags(
    mut on: impl FnMut(&str, &mut dyn FnMut() -> Result<String, String>) -> Result<bool, String>,
) -> Result<(), String> {
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        if !on(&flag, &mut value)? {
            return Err(format!(
                "unknown argument '{flag}'; see the example's doc comment"
            ));
        }
    }
    Ok(())
}

/// Parses a flag's value.
pub fn num<T: std::str::FromStr>(value: String) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    value.parse().map_err(|e| format!("{value}: {e}"))
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
