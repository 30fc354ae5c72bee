//! The WebSocket protocol of the web demo.
//!
//! Client to server (JSON text): `{"type":"start","prompt":"…","seed":-1,"frames":21,
//! "decoder":"taehv","shift":5}` and `{"type":"stop"}`. Server to client: JSON text events
//! (`hello`, `accepted` (to the client whose start was taken), `started`, `progress`, `done`,
//! `stopped`, `failed`, `busy`, `rejected`, `lagged`, `shutdown`) and one binary message per
//! video frame: run id (u32 LE), frame index (u32 LE), then a PNG.

use serde::{Deserialize, Serialize};

/// A message from the page.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// Starts a generation (refused with `busy` while one runs).
    Start {
        /// The prompt.
        prompt: String,
        /// Seed; -1 or absent picks a random one.
        #[serde(default)]
        seed: Option<i64>,
        /// Latent frames (21 = 81 video frames); absent = the server's default.
        #[serde(default)]
        frames: Option<usize>,
        /// `wan-vae` or `taehv`; absent = the decoder in use.
        #[serde(default)]
        decoder: Option<String>,
        /// The scheduler's timestep shift (a number > 0); absent = the models' setting.
        #[serde(default)]
        shift: Option<f64>,
    },
    /// Stops the running generation; the frames made so far stay in its MP4.
    Stop,
}

/// Parses a client message, with an error that says what a valid one looks like.
pub fn parse_client_message(text: &str) -> Result<ClientMessage, String> {
    if text.len() > MAX_CLIENT_MESSAGE {
        return Err(format!(
            "message of {} bytes is longer than the {MAX_CLIENT_MESSAGE} allowed",
            text.len()
        ));
    }
    serde_json::from_str(text).map_err(|e| {
        format!(
            "malformed message ({e}); send {{\"type\":\"start\",\"prompt\":\"…\"}} or \
             {{\"type\":\"stop\"}}"
        )
    })
}

/// The longest client message accepted (a prompt is at most a few kB).
pub const MAX_CLIENT_MESSAGE: usize = 64 * 1024;

/// Header of a binary frame message.
pub fn frame_header(run: u64, index: usize) -> [u8; 8] {
    let mut h = [0u8; 8];
    h[..4].copy_from_slice(&(run as u32).to_le_bytes());
    h[4..].copy_from_slice(&(index as u32).to_le_bytes());
    h
}

/// Timings and counts of a finished (or stopped) run.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct RunReport {
    /// Run id.
    pub run: u64,
    /// The prompt.
    pub prompt: String,
    /// The seed used.
    pub seed: u64,
    /// Decoder name.
    pub decoder: String,
    /// The scheduler's timestep shift used.
    pub shift: f64,
    /// `done`, `stopped` or `failed`.
    pub outcome: String,
    /// Video frames made (all of them are in the MP4).
    pub frames: usize,
    /// Frames the request asked for.
    pub total_frames: usize,
    /// The MP4's URL path (`/videos/…`), when one was written.
    pub video: Option<String>,
    /// The error, for `stopped` and `failed`.
    pub message: Option<String>,
    /// Video frames per second of DiT time.
    pub denoise_fps: f64,
    /// Video frames per second from start to the last frame.
    pub end_to_end_fps: f64,
    /// Seconds until the first frames, if any came.
    pub time_to_first_frame: Option<f64>,
    /// Seconds from start to end.
    pub elapsed: f64,
}
