//! Video output: an H.264 MP4 writer that puts every frame on disk as it arrives
//! ([`Mp4Writer`]) and a numbered-PNG writer ([`PngWriter`]).
//!
//! Frames are [`RgbFrame`]s (8-bit RGB, row-major), as the decoders' `frames_to_rgb8` makes them.
//! Both writers never destroy an existing path ([`ExistingFile`], [`check_target`]): nothing is
//! created before the first frame, and a file the user had is replaced only when asked.
//!
//! The MP4 is H.264 Constrained Baseline encoded by openh264 (the Cisco source built by cargo)
//! and muxed by muxide; no system library or `ffmpeg` is needed.

mod mp4;
mod output;
mod png_dir;

use std::path::PathBuf;

pub use mp4::{DEFAULT_FPS, Mp4Options, Mp4Summary, Mp4Writer};
pub use output::{ExistingFile, check_target, free_name, numbered};
pub use png_dir::{PngWriter, encode_png};
pub use sf_vae::RgbFrame;

/// Errors of the video writers.
#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    /// H.264 (4:2:0) needs even frame sizes.
    #[error(
        "frame size {width}x{height} cannot be encoded: H.264 4:2:0 needs an even width and \
         height (crop or pad the frames by one pixel)"
    )]
    OddSize {
        /// Width in pixels.
        width: usize,
        /// Height in pixels.
        height: usize,
    },
    /// A frame that does not fit the writer.
    #[error("invalid frame {index}: {message}")]
    Frame {
        /// Index of the frame in the video.
        index: usize,
        /// What is wrong.
        message: String,
    },
    /// Options that cannot work.
    #[error("invalid video options: {0}")]
    Options(String),
    /// A file that cannot be created or written.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The H.264 encoder failed.
    #[error("H.264 encoder failed on frame {index}: {message}")]
    Encode {
        /// Index of the frame.
        index: usize,
        /// The encoder's message.
        message: String,
    },
    /// The MP4 muxer refused the stream.
    #[error("MP4 muxing of {path} failed: {message}")]
    Mux {
        /// The output file.
        path: PathBuf,
        /// The muxer's message.
        message: String,
    },
    /// The PNG encoder failed.
    #[error("cannot encode {path}: {message}")]
    Png {
        /// The output file.
        path: PathBuf,
        /// The encoder's message.
        message: String,
    },
    /// `finish` on a video without frames: no file was written (and none replaced).
    #[error("no frame was made for {0}: nothing was written")]
    NoFrames(PathBuf),
    /// The output exists and the writer was not allowed to replace it.
    #[error(
        "{0} already exists: choose another output path, or allow replacing it (`--overwrite`)"
    )]
    Exists(PathBuf),
    /// The output path is not something a video can be written to.
    #[error("cannot write a video to {path}: it is {what}")]
    NotAFile {
        /// The path.
        path: PathBuf,
        /// What is there instead.
        what: String,
    },
}

impl VideoError {
    fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        VideoError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Checks that `frame` has the writer's size and a consistent buffer.
fn check_frame(
    frame: &RgbFrame,
    width: usize,
    height: usize,
    index: usize,
) -> Result<(), VideoError> {
    if frame.width != width || frame.height != height {
        return Err(VideoError::Frame {
            index,
            message: format!(
                "size {}x{} differs from the video's {width}x{height}",
                frame.width, frame.height
            ),
        });
    }
    let expected = width * height * 3;
    if frame.data.len() != expected {
        return Err(VideoError::Frame {
            index,
            message: format!(
                "{} bytes of data, expected {expected} ({width}x{height} RGB)",
                frame.data.len()
            ),
        });
    }
    Ok(())
}
