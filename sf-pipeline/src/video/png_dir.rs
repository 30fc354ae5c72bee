//! One PNG per frame: `frame_00000.png`, `frame_00001.png`, ... in a directory.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::{ExistingFile, RgbFrame, VideoError, check_frame};

/// Whether `dir` holds frame files; an error if it is something other than a directory.
fn has_frames(dir: &Path) -> Result<bool, VideoError> {
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(VideoError::io(dir, e)),
    };
    if !meta.is_dir() {
        return Err(VideoError::NotAFile {
            path: dir.to_path_buf(),
            what: "not a directory (the PNG frames need a folder)".into(),
        });
    }
    let entries = std::fs::read_dir(dir).map_err(|e| VideoError::io(dir, e))?;
    Ok(entries.flatten().any(|e| {
        let name = e.file_name();
        let name = name.to_string_lossy();
        name.starts_with("frame_") && name.ends_with(".png")
    }))
}

/// `dir-N` beside `dir`.
fn numbered_dir(dir: &Path, n: usize) -> PathBuf {
    let name = dir
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    dir.with_file_name(format!("{name}-{n}"))
}

/// Writes every frame as it arrives to `dir/frame_NNNNN.png` (8-bit RGB, fast compression).
#[derive(Debug)]
pub struct PngWriter {
    dir: PathBuf,
    frames: usize,
    size: Option<(usize, usize)>,
}

impl PngWriter {
    /// Writes to `dir` (created with its parents if needed); a directory that already holds
    /// frame files is refused, so no earlier frame is replaced.
    pub fn create(dir: impl AsRef<Path>) -> Result<Self, VideoError> {
        Self::create_with(dir, ExistingFile::Refuse)
    }

    /// Writes to `dir`, with `existing` saying what to do when it already holds frame files
    /// (replace them, or use the first free `dir-N` beside it).
    pub fn create_with(dir: impl AsRef<Path>, existing: ExistingFile) -> Result<Self, VideoError> {
        let dir = Self::check(dir, existing)?;
        std::fs::create_dir_all(&dir).map_err(|e| VideoError::io(&dir, e))?;
        Ok(Self {
            dir,
            frames: 0,
            size: None,
        })
    }

    /// Checks `dir` as [`create_with`](Self::create_with) does, without creating anything, and
    /// returns the folder the frames would go to (programs check before any long work).
    pub fn check(dir: impl AsRef<Path>, existing: ExistingFile) -> Result<PathBuf, VideoError> {
        let mut dir = dir.as_ref().to_path_buf();
        if has_frames(&dir)? {
            match existing {
                ExistingFile::Refuse => return Err(VideoError::Exists(dir)),
                ExistingFile::Overwrite => {}
                ExistingFile::NewName => {
                    let base = dir.clone();
                    let mut n = 1;
                    while has_frames(&dir)? {
                        dir = numbered_dir(&base, n);
                        n += 1;
                    }
                }
            }
        }
        Ok(dir)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_are_checked_without_creating_anything() {
        let root = std::env::temp_dir().join(format!("sf-png-check-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let fresh = root.join("frames");
        assert_eq!(
            PngWriter::check(&fresh, ExistingFile::Refuse).unwrap(),
            fresh
        );
        assert!(!root.exists(), "check created the folder");
        std::fs::create_dir_all(&fresh).unwrap();
        std::fs::write(fresh.join("notes.txt"), b"not a frame").unwrap();
        assert_eq!(
            PngWriter::check(&fresh, ExistingFile::Refuse).unwrap(),
            fresh
        );
        std::fs::write(fresh.join(PngWriter::file_name(0)), b"an earlier frame").unwrap();
        assert!(matches!(
            PngWriter::check(&fresh, ExistingFile::Refuse),
            Err(VideoError::Exists(_))
        ));
        assert!(PngWriter::create(&fresh).is_err());
        assert_eq!(
            PngWriter::check(&fresh, ExistingFile::Overwrite).unwrap(),
            fresh
        );
        assert_eq!(
            PngWriter::check(&fresh, ExistingFile::NewName).unwrap(),
            root.join("frames-1")
        );
        assert!(!root.join("frames-1").exists());
        let e = PngWriter::check(fresh.join("notes.txt"), ExistingFile::Overwrite)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a directory"), "{e}");
        assert_eq!(
            std::fs::read(fresh.join(PngWriter::file_name(0))).unwrap(),
            b"an earlier frame"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
