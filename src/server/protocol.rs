//! The WebSocket protocol of the web demo.
//!
//! Client to server (JSON text): `{"type":"start","prompt":"…","seed":-1,"frames":21,
//! "decoder":"taehv","shift":5,"endless":false}`, `{"type":"switch","prompt":"…"}` (a new
//! prompt for the running generation) and `{"type":"stop"}`. Server to client: JSON text events
//! (`hello`, `accepted` (to the client whose start was taken), `switch_queued` (to the client
//! whose switch was taken), `started`, `progress`, `switched` (a switch applied: its prompt and
//! first frame), `switch_dropped` (a switch that will not be applied, and why), `done`,
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
        /// Generate until stopped (needs a rolling KV window); absent = false.
        #[serde(default)]
        endless: bool,
    },
    /// Switches the running generation to a new prompt from its next chunk on (LongLive's
    /// prompt switch); the frames already made are unchanged.
    Switch {
        /// The new prompt.
        prompt: String,
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
            "malformed message ({e}); send {{\"type\":\"start\",\"prompt\":\"…\"}}, \
             {{\"type\":\"switch\",\"prompt\":\"…\"}} or {{\"type\":\"stop\"}}"
        )
    })
}

/// The longest client message accepted (a prompt is at most a few kB).
pub const MAX_CLIENT_MESSAGE: usize = 64 * 1024;

/// The longest prompt accepted, in characters (the text encoder keeps at most its first 512
/// tokens, roughly 2000 characters of English; longer prompts are truncated with a warning).
pub const MAX_PROMPT_CHARS: usize = 4000;

/// The prompt of a start or switch, trimmed, or why it is refused (`what` names the message).
pub fn check_prompt(prompt: &str, what: &str) -> Result<String, String> {
    let prompt = prompt.trim();
    if prompt.is_empty() {
        return Err(format!("the prompt is empty: describe the video {what}"));
    }
    let chars = prompt.chars().count();
    if chars > MAX_PROMPT_CHARS {
        return Err(format!(
            "the prompt has {chars} characters, more than the {MAX_PROMPT_CHARS} allowed: \
             shorten it (the text encoder reads only its first 512 tokens anyway)"
        ));
    }
    Ok(prompt.to_string())
}

/// A prompt switch that was applied: the prompt and where its segment starts.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct SwitchRecord {
    /// The new prompt.
    pub prompt: String,
    /// The first video frame that follows it.
    pub frame: usize,
    /// The latent frame it was applied at (a chunk start).
    pub latent_frame: usize,
    /// The first chunk that follows it.
    pub chunk: usize,
    /// Its segment (1 for the first switch; the starting prompt is segment 0).
    pub segment: usize,
}

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
    /// Frames the request asked for (`None` for an endless run).
    pub total_frames: Option<usize>,
    /// Whether the run was endless (generating until stopped).
    pub endless: bool,
    /// The prompt switches applied, in order.
    pub switches: Vec<SwitchRecord>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switch_messages_parse_and_prompts_are_checked() {
        assert_eq!(
            parse_client_message(r#"{"type":"switch","prompt":"a cat"}"#),
            Ok(ClientMessage::Switch {
                prompt: "a cat".into()
            })
        );
        let start = parse_client_message(r#"{"type":"start","prompt":"a","endless":true}"#);
        assert!(matches!(
            start,
            Ok(ClientMessage::Start { endless: true, .. })
        ));
        let e = parse_client_message(r#"{"type":"switch","prompt":"a","frame":3}"#).unwrap_err();
        assert!(e.contains("unknown field"), "{e}");
        assert_eq!(check_prompt("  a dog \n", "x").as_deref(), Ok("a dog"));
        assert!(
            check_prompt(" \t", "to switch to")
                .unwrap_err()
                .contains("switch to")
        );
        // Characters, not bytes: 4000 two-byte characters are allowed, one more is not.
        assert!(check_prompt(&"é".repeat(MAX_PROMPT_CHARS), "x").is_ok());
        let e = check_prompt(&"é".repeat(MAX_PROMPT_CHARS + 1), "x").unwrap_err();
        assert!(e.contains("4001 characters"), "{e}");
    }
}
