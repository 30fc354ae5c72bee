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
