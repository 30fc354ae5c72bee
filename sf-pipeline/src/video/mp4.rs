//! The streaming H.264 MP4 writer.
//!
//! # How frames reach the disk
//!
//! muxide's ordinary (progressive) muxer keeps every sample in memory and writes the whole file
//! in `finish`, so a killed process would leave nothing. This writer therefore writes two forms:
//!
//! * **while frames arrive**, a *fragmented* MP4: the init segment (`ftyp` + `moov`) after the
//!   first frame, then one `moof` + `mdat` fragment per two frames. It is written to a hidden
//!   temporary file beside the output, which is put in place as soon as its first fragment is on
//!   disk (see [`ExistingFile`] for what happens to a file already there). Each fragment is
//!   written as soon as it is complete, so if the process is killed the output plays (ffmpeg,
//!   VLC, browsers) with every frame pushed except at most the last one
//!   ([`Mp4Writer::frames_on_disk`] tells how many are there).
//! * **on [`Mp4Writer::finish`]** (or on drop), a standard fast-start MP4 (`moov` before `mdat`,
//!   full sample tables and duration) written next to the output and renamed over it, so the
//!   output path always holds a playable file.
//!
//! Nothing is created before the first frame: a run that makes none leaves no file, and an
//! existing file at the output path untouched.
//!
//! Call `finish` on every path, including cancellation and errors, to get the summary and see
//! errors; dropping an unfinished writer finalises it the same way but can only ignore errors.
//!
//! Frame skipping is off (a skipped frame would leave a hole in the timeline); the bitrate is
//! still followed closely in its quality mode. openh264's own console logging is switched off
//! before the encoder initialises (otherwise it prints "bitrate can't be controlled ... without
//! enabling skip frame" on stderr for every writer).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use muxide::api::{MuxerBuilder, VideoCodec};
use muxide::codec::h264::{annexb_to_avcc, extract_avc_config, is_h264_keyframe};
use muxide::fragmented::{FragmentConfig, FragmentedMuxer};
use openh264::OpenH264API;
use openh264::encoder::{
    BitRate, Encoder, EncoderConfig, FrameRate, IntraFramePeriod, RateControlMode, VuiConfig,
};
use openh264::formats::{RgbSliceU8, YUVBuffer};
use openh264_sys2::{ENCODER_OPTION_TRACE_LEVEL, WELS_LOG_QUIET};

use super::output::{ExistingFile, check_target, create_temporary, place, sibling};
use super::{RgbFrame, VideoError, check_frame};

/// Self-Forcing's output frame rate (Wan2.1: 16 fps).
pub const DEFAULT_FPS: u32 = 16;

/// MP4 media timescale (ticks per second), the same for both file forms.
const TIMESCALE: u32 = 90_000;
/// Default bitrate in bits per pixel per frame.
const DEFAULT_BITS_PER_PIXEL: f64 = 0.4;
/// Lower bound of the default bitrate, for tiny frames.
const MIN_DEFAULT_BITRATE: u32 = 200_000;

/// Encoding options of an [`Mp4Writer`].
#[derive(Clone, Debug, PartialEq)]
pub struct Mp4Options {
    /// Frames per second (16 for Self-Forcing).
    pub fps: u32,
    /// Target bitrate in bits per second; `None` picks 0.4 bits per pixel per frame
    /// (about 2.6 Mbit/s at 832x480, 16 fps).
    pub bitrate_bps: Option<u32>,
    /// A keyframe every this many frames (for seeking); 0 puts one at the start only.
    pub keyframe_interval: u32,
    /// What to do when the output path already holds a file (refuse by default).
    pub existing: ExistingFile,
}

impl Default for Mp4Options {
    fn default() -> Self {
        Self::new(DEFAULT_FPS)
    }
}

impl Mp4Options {
    /// Options for `fps` with the default bitrate and a keyframe every two seconds.
    pub fn new(fps: u32) -> Self {
        Self {
            fps,
            bitrate_bps: None,
            keyframe_interval: fps.saturating_mul(2),
            existing: ExistingFile::Refuse,
        }
    }

    /// Sets what happens to a file already at the output path.
    pub fn existing(mut self, existing: ExistingFile) -> Self {
        self.existing = existing;
        self
    }

    /// The bitrate used for frames of this size.
    pub fn bitrate_for(&self, width: usize, height: usize) -> u32 {
        self.bitrate_bps.unwrap_or_else(|| {
            let bps = DEFAULT_BITS_PER_PIXEL * (width * height) as f64 * f64::from(self.fps);
            (bps.min(f64::from(u32::MAX)) as u32).max(MIN_DEFAULT_BITRATE)
        })
    }
}

/// What [`Mp4Writer::finish`] wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct Mp4Summary {
    /// The MP4 file.
    pub path: PathBuf,
    /// Frames in the file.
    pub frames: usize,
    /// Size of the file in bytes.
    pub bytes: u64,
    /// Frames per second.
    pub fps: u32,
}

impl Mp4Summary {
    /// Playback duration in seconds.
    pub fn duration_secs(&self) -> f64 {
        self.frames as f64 / f64::from(self.fps)
    }
}

/// One encoded frame, kept for the final progressive file.
struct Sample {
    annexb: Vec<u8>,
    keyframe: bool,
}

/// Writes RGB frames to an H.264 MP4 as they are produced; see the [module docs](self).
pub struct Mp4Writer {
    /// The output path (changed by the placement if a file appeared there meanwhile).
    path: PathBuf,
    /// The temporary file of the fragmented form until it is placed at `path`.
    temporary: Option<PathBuf>,
    width: usize,
    height: usize,
    options: Mp4Options,
    encoder: Encoder,
    /// The open fragmented file (temporary, then at `path`).
    stream: Option<File>,
    /// Created with the first frame (it needs the SPS/PPS).
    fragments: Option<FragmentedMuxer>,
    /// Frames queued in `fragments`, not yet in the file.
    queued: usize,
    samples: Vec<Sample>,
    frames_on_disk: usize,
    finished: bool,
}

impl Mp4Writer {
    /// A writer of a `width`x`height` video at `fps` to `path`, with default options (an
    /// existing file is refused). Nothing is created until the first frame.
    pub fn create(
        path: impl AsRef<Path>,
        width: usize,
        height: usize,
        fps: u32,
    ) -> Result<Self, VideoError> {
        Self::create_with(path, width, height, Mp4Options::new(fps))
    }

    /// A writer of a `width`x`height` video to `path` with explicit options; the path is
    /// checked now ([`check_target`]) and written from the first frame on.
    pub fn create_with(
        path: impl AsRef<Path>,
        width: usize,
        height: usize,
        options: Mp4Options,
    ) -> Result<Self, VideoError> {
        if width == 0 || height == 0 || width.max(height) > 3840 || width.min(height) > 2160 {
            return Err(VideoError::Options(format!(
                "frame size {width}x{height} is outside what openh264 encodes (up to 3840x2160)"
            )));
        }
        if !width.is_multiple_of(2) || !height.is_multiple_of(2) {
            return Err(VideoError::OddSize { width, height });
        }
        if options.fps == 0 {
            return Err(VideoError::Options("fps must be at least 1".into()));
        }
        let bitrate = options.bitrate_for(width, height);
        let config = EncoderConfig::new()
            .skip_frames(false)
            .rate_control_mode(RateControlMode::Quality)
            .bitrate(BitRate::from_bps(bitrate))
            .max_frame_rate(FrameRate::from_hz(options.fps as f32))
            .intra_frame_period(IntraFramePeriod::from_num_frames(options.keyframe_interval))
            .vui(VuiConfig::bt601());
        let mut encoder =
            Encoder::with_api_config(OpenH264API::from_source(), config).map_err(|e| {
                VideoError::Encode {
                    index: 0,
                    message: e.to_string(),
                }
            })?;
        silence(&mut encoder);
        let path = check_target(path.as_ref(), options.existing)?;
        Ok(Self {
            path,
            temporary: None,
            width,
            height,
            options,
            encoder,
            stream: None,
            fragments: None,
            queued: 0,
            samples: Vec::new(),
            frames_on_disk: 0,
            finished: false,
        })
    }

    /// The output file (a free name beside the requested one if a file appeared there after the
    /// writer was created; see [`ExistingFile`]).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Frames pushed so far.
    pub fn frames_pushed(&self) -> usize {
        self.samples.len()
    }

    /// Frames already in the file (what a killed process leaves): all pushed frames but at most
    /// the last one.
    pub fn frames_on_disk(&self) -> usize {
        self.frames_on_disk
    }

    /// Encodes `frame` and appends it to the file.
    pub fn push(&mut self, frame: &RgbFrame) -> Result<(), VideoError> {
        let index = self.samples.len();
        check_frame(frame, self.width, self.height, index)?;
        let yuv =
            YUVBuffer::from_rgb8_source(RgbSliceU8::new(&frame.data, (self.width, self.height)));
        let annexb = self
            .encoder
            .encode(&yuv)
            .map_err(|e| VideoError::Encode {
                index,
                message: e.to_string(),
            })?
            .to_vec();
        if annexb.is_empty() {
            return Err(VideoError::Encode {
                index,
                message: "the encoder produced no data (skipped frame)".into(),
            });
        }
        let keyframe = is_h264_keyframe(&annexb);
        if self.fragments.is_none() {
            self.start_stream(&annexb)?;
        }
        let ticks = self.ticks(index);
        if let Some(fragments) = self.fragments.as_mut() {
            fragments
                .write_video(ticks, ticks, &annexb_to_avcc(&annexb), keyframe)
                .map_err(|e| mux_error(&self.path, e))?;
        }
        self.queued += 1;
        self.samples.push(Sample { annexb, keyframe });
        // Two frames per fragment: muxide derives sample durations from timestamp deltas and
        // would give a lone frame 1/30 s, which would shift the timeline.
        if self.queued >= 2 {
            self.flush_fragment()?;
        }
        Ok(())
    }

    /// Finalises the file as a standard fast-start MP4 and returns what was written.
    ///
    /// Without frames the empty file is removed and [`VideoError::NoFrames`] returned. If the
    /// final rewrite fails, the fragmented form (with every frame) stays at the output path.
    pub fn finish(mut self) -> Result<Mp4Summary, VideoError> {
        self.finalize()
    }

    fn ticks(&self, index: usize) -> u64 {
        let fps = u64::from(self.options.fps);
        (index as u64 * u64::from(TIMESCALE) + fps / 2) / fps
    }

    /// Writes the fragmented init segment, built from the first frame's SPS/PPS.
    fn start_stream(&mut self, first: &[u8]) -> Result<(), VideoError> {
        let avc = extract_avc_config(first).ok_or_else(|| VideoError::Mux {
            path: self.path.clone(),
            message: "the first encoded frame has no SPS/PPS".into(),
        })?;
        let mut config = FragmentConfig::new(self.width as u32, self.height as u32, TIMESCALE);
        config.sps = avc.sps;
        config.pps = avc.pps;
        let mut fragments = FragmentedMuxer::new(config).map_err(|e| mux_error(&self.path, e))?;
        let (temporary, file) = create_temporary(&self.path)?;
        self.temporary = Some(temporary);
        self.stream = Some(file);
        self.write_stream(&fragments.init_segment())?;
        self.fragments = Some(fragments);
        Ok(())
    }

    fn flush_fragment(&mut self) -> Result<(), VideoError> {
        let segment = self
            .fragments
            .as_mut()
            .and_then(FragmentedMuxer::flush_segment);
        if let Some(segment) = segment {
            self.write_stream(&segment)?;
            self.frames_on_disk += self.queued;
            self.queued = 0;
            if let Some(temporary) = self.temporary.take() {
                self.path = place(&temporary, &self.path, self.options.existing)?;
            }
        }
        Ok(())
    }

    fn write_stream(&mut self, bytes: &[u8]) -> Result<(), VideoError> {
        let Some(stream) = self.stream.as_mut() else {
            return Ok(());
        };
        stream
            .write_all(bytes)
            .and_then(|()| stream.flush())
            .map_err(|e| VideoError::io(&self.path, e))
    }

    fn finalize(&mut self) -> Result<Mp4Summary, VideoError> {
        self.finished = true;
        if self.samples.is_empty() {
            // Nothing was created (the first frame creates the temporary file).
            return Err(VideoError::NoFrames(self.path.clone()));
        }
        // Complete the fragmented form first (and put it in place): it stays if the rewrite
        // below fails.
        let flushed = self.flush_fragment();
        drop(self.stream.take());
        if let Some(temporary) = self.temporary.take() {
            // One frame only (or a failed flush): the fragmented file was never placed.
            self.path = place(&temporary, &self.path, self.options.existing)?;
        }
        let staging = sibling(&self.path, "finishing");
        if let Err(e) = self.write_progressive(&staging) {
            let _ = std::fs::remove_file(&staging);
            return Err(e);
        }
        if let Err(e) = std::fs::rename(&staging, &self.path) {
            let _ = std::fs::remove_file(&staging);
            flushed?;
            return Err(VideoError::io(&self.path, e));
        }
        let bytes = std::fs::metadata(&self.path)
            .map_err(|e| VideoError::io(&self.path, e))?
            .len();
        self.frames_on_disk = self.samples.len();
        Ok(Mp4Summary {
            path: self.path.clone(),
            frames: self.samples.len(),
            bytes,
            fps: self.options.fps,
        })
    }

    fn write_progressive(&self, staging: &Path) -> Result<(), VideoError> {
        let file = File::create(staging).map_err(|e| VideoError::io(staging, e))?;
        let mut muxer = MuxerBuilder::new(BufWriter::new(file))
            .video(
                VideoCodec::H264,
                self.width as u32,
                self.height as u32,
                f64::from(self.options.fps),
            )
            .build()
            .map_err(|e| mux_error(&self.path, e))?;
        for (index, sample) in self.samples.iter().enumerate() {
            let pts = self.ticks(index) as f64 / f64::from(TIMESCALE);
            muxer
                .write_video(pts, &sample.annexb, sample.keyframe)
                .map_err(|e| mux_error(&self.path, e))?;
        }
        muxer
            .finish_in_place()
            .map_err(|e| mux_error(&self.path, e))?;
        let file = muxer
            .into_writer()
            .into_inner()
            .map_err(|e| VideoError::io(staging, e.into_error()))?;
        file.sync_all().map_err(|e| VideoError::io(staging, e))
    }
}

impl Drop for Mp4Writer {
    /// Best-effort finalisation when [`Mp4Writer::finish`] was not called (errors are ignored).
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.finalize();
        }
    }
}

impl std::fmt::Debug for Mp4Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mp4Writer")
            .field("path", &self.path)
            .field("width", &self.width)
            .field("height", &self.height)
            .field("options", &self.options)
            .field("frames_pushed", &self.samples.len())
            .field("frames_on_disk", &self.frames_on_disk)
            .finish_non_exhaustive()
    }
}

/// Turns openh264's console logging off. The crate applies its own trace level only after it
/// initialises the encoder at the first frame, when the parameter check has already printed its
/// warnings on stderr; the C encoder accepts the trace level before initialisation.
fn silence(encoder: &mut Encoder) {
    let mut level: std::os::raw::c_int = WELS_LOG_QUIET;
    // SAFETY: `SetOption(ENCODER_OPTION_TRACE_LEVEL)` is allowed on an uninitialised encoder
    // (welsEncoderExt.cpp) and only reads one int through the pointer, valid for the call; it
    // sets no parameter the crate relies on.
    unsafe {
        encoder
            .raw_api()
            .set_option(ENCODER_OPTION_TRACE_LEVEL, (&raw mut level).cast());
    }
}

fn mux_error(path: &Path, e: impl std::fmt::Display) -> VideoError {
    VideoError::Mux {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}
