//! One PNG per frame: `frame_00000.png`, `frame_00001.png`, ... in a directory.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::{RgbFrame, VideoError, check_frame};

/// Writes every frame as it arrives to `dir/frame_NNNNN.png` (8-bit RGB, fast compression).
#[derive(Debug)]
pub struct PngWriter {
    dir: PathBuf,
    frames: usize,
    size: Option<(usize, usize)>,
}

impl PngWriter {
    /// Creates `dir` (and its parents) if needed. Existing frame files are overwritten.
    pub fn create(dir: impl AsRef<Path>) -> Result<Self, VideoError> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|e| VideoError::io(&dir, e))?;
        Ok(Self {
            dir,
            frames: 0,
            size: None,
        })
    }

    /// The output directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Frames written so far (each is a complete file).
    pub fn frames_written(&self) -> usize {
        self.frames
    }

    /// The file name of frame `index`.
    pub fn file_name(index: usize) -> String {
        format!("frame_{index:05}.png")
    }

    /// Writes the next frame; all frames must have the size of the first.
    pub fn push(&mut self, frame: &RgbFrame) -> Result<PathBuf, VideoError> {
        let index = self.frames;
        let (width, height) = *self.size.get_or_insert((frame.width, frame.height));
        check_frame(frame, width, height, index)?;
        let path = self.dir.join(Self::file_name(index));
        let file = File::create(&path).map_err(|e| VideoError::io(&path, e))?;
        encode_png(frame, BufWriter::new(file)).map_err(|message| VideoError::Png {
            path: path.clone(),
            message,
        })?;
        self.frames += 1;
        Ok(path)
    }

    /// The number of frames written.
    pub fn finish(self) -> usize {
        self.frames
    }
}

/// Encodes one frame as an 8-bit RGB PNG (fast compression) into `out`.
pub fn encode_png(frame: &RgbFrame, out: impl Write) -> Result<(), String> {
    let (Ok(w), Ok(h)) = (u32::try_from(frame.width), u32::try_from(frame.height)) else {
        return Err(format!(
            "size {}x{} is too large for PNG",
            frame.width, frame.height
        ));
    };
    if frame.data.len() != frame.width * frame.height * 3 {
        return Err(format!(
            "{} bytes for a {}x{} RGB frame",
            frame.data.len(),
            frame.width,
            frame.height
        ));
    }
    let mut encoder = png::Encoder::new(out, w, h);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
    writer
        .write_image_data(&frame.data)
        .map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())
}
