//! Where a video is written, without ever destroying what the user had.
//!
//! A writer checks its target when it is created ([`check_target`]): a directory, a device, a
//! FIFO, a socket or a symbolic link is refused, and an existing file is kept unless the caller
//! chose [`ExistingFile::Overwrite`]. Nothing is created until the first frames exist; they go to
//! a hidden temporary file beside the target, which is then put in place without replacing
//! anything that appeared meanwhile ([`place`]). A run that makes no frame leaves no file and
//! the old one untouched.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use super::VideoError;

/// What to do when the target path already holds a file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ExistingFile {
    /// Refuse with [`VideoError::Exists`] (the default): the file stays as it is.
    #[default]
    Refuse,
    /// Replace it once the first frames are on disk (a run that makes none leaves it).
    Overwrite,
    /// Write beside it under the first free name `stem-1.ext`, `stem-2.ext`, ...
    NewName,
}

/// Checks `target` for a writer and returns the path it will write: `target` itself, or a
/// free name beside it with [`ExistingFile::NewName`]. Creates no file.
pub fn check_target(target: &Path, existing: ExistingFile) -> Result<PathBuf, VideoError> {
    if target.file_name().is_none() {
        return Err(VideoError::NotAFile {
            path: target.to_path_buf(),
            what: "not a file name".into(),
        });
    }
    match kind_of(target)? {
        None => Ok(target.to_path_buf()),
        Some(Kind::Regular) => match existing {
            ExistingFile::Refuse => Err(VideoError::Exists(target.to_path_buf())),
            ExistingFile::Overwrite => Ok(target.to_path_buf()),
            ExistingFile::NewName => free_name(target),
        },
        Some(Kind::Other(what)) => Err(VideoError::NotAFile {
            path: target.to_path_buf(),
            what,
        }),
    }
}

/// `stem-N.ext` for the first N from 1 at which nothing exists.
pub fn free_name(target: &Path) -> Result<PathBuf, VideoError> {
    for n in 1..100_000u32 {
        let candidate = numbered(target, n);
        if kind_of(&candidate)?.is_none() {
            return Ok(candidate);
        }
    }
    Err(VideoError::NotAFile {
        path: target.to_path_buf(),
        what: "every numbered name beside it is taken".into(),
    })
}

/// `stem-N.ext` beside `target` (`stem-N` without an extension).
pub fn numbered(target: &Path, n: u32) -> PathBuf {
    let stem = target
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match target.extension() {
        Some(ext) => format!("{stem}-{n}.{}", ext.to_string_lossy()),
        None => format!("{stem}-{n}"),
    };
    target.with_file_name(name)
}

enum Kind {
    Regular,
    Other(String),
}

/// What is at `path` (without following a symbolic link), or `None`.
fn kind_of(path: &Path) -> Result<Option<Kind>, VideoError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(VideoError::io(path, e)),
    };
    let t = meta.file_type();
    Ok(Some(if t.is_file() {
        Kind::Regular
    } else if t.is_dir() {
        Kind::Other("a directory".into())
    } else if t.is_symlink() {
        Kind::Other("a symbolic link (give the path it points to)".into())
    } else {
        Kind::Other("a device, FIFO or socket, not a regular file".into())
    }))
}

/// A hidden sibling of `target` for a file being written (same directory, so renames are
/// atomic): `.name.<pid>.<tag>`.
pub(crate) fn sibling(target: &Path, tag: &str) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "video".into());
    target.with_file_name(format!(".{name}.{}.{tag}", std::process::id()))
}

/// Creates the temporary file that the first frames go to.
pub(crate) fn create_temporary(target: &Path) -> Result<(PathBuf, File), VideoError> {
    let temp = sibling(target, "partial");
    let file = File::options()
        .write(true)
        .create_new(true)
        .open(&temp)
        .map_err(|e| VideoError::io(&temp, e))?;
    Ok((temp, file))
}

/// Moves the temporary file to `target` and returns where it went. With
/// [`ExistingFile::Overwrite`] an existing regular file is replaced; otherwise nothing is
/// replaced: when `target` was taken since [`check_target`], the frames go to a free name
/// beside it instead (they are never dropped).
pub(crate) fn place(
    temp: &Path,
    target: &Path,
    existing: ExistingFile,
) -> Result<PathBuf, VideoError> {
    if existing == ExistingFile::Overwrite {
        if let Some(Kind::Other(what)) = kind_of(target)? {
            return Err(VideoError::NotAFile {
                path: target.to_path_buf(),
                what,
            });
        }
        std::fs::rename(temp, target).map_err(|e| VideoError::io(target, e))?;
        return Ok(target.to_path_buf());
    }
    let mut candidate = target.to_path_buf();
    for n in 1..100_000u32 {
        match std::fs::hard_link(temp, &candidate) {
            Ok(()) => {
                std::fs::remove_file(temp).map_err(|e| VideoError::io(temp, e))?;
                return Ok(candidate);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            // A file system without hard links: check, then rename (the one non-atomic path).
            Err(_) if kind_of(&candidate)?.is_none() => {
                std::fs::rename(temp, &candidate).map_err(|e| VideoError::io(&candidate, e))?;
                return Ok(candidate);
            }
            Err(_) => {}
        }
        candidate = numbered(target, n);
    }
    Err(VideoError::NotAFile {
        path: target.to_path_buf(),
        what: "every numbered name beside it is taken".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sf-output-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn targets_are_checked_without_creating_anything() {
        let dir = scratch("check");
        let fresh = dir.join("a.mp4");
        assert_eq!(check_target(&fresh, ExistingFile::Refuse).unwrap(), fresh);
        assert!(!fresh.exists());
        std::fs::write(&fresh, b"old").unwrap();
        assert!(matches!(
            check_target(&fresh, ExistingFile::Refuse),
            Err(VideoError::Exists(_))
        ));
        assert_eq!(
            check_target(&fresh, ExistingFile::Overwrite).unwrap(),
            fresh
        );
        assert_eq!(
            check_target(&fresh, ExistingFile::NewName).unwrap(),
            dir.join("a-1.mp4")
        );
        for existing in [
            ExistingFile::Refuse,
            ExistingFile::Overwrite,
            ExistingFile::NewName,
        ] {
            let e = check_target(&dir, existing).unwrap_err().to_string();
            assert!(e.contains("directory"), "{e}");
            let e = check_target(Path::new("/dev/null"), existing)
                .unwrap_err()
                .to_string();
            assert!(e.contains("device"), "{e}");
        }
        #[cfg(unix)]
        {
            let link = dir.join("link.mp4");
            std::os::unix::fs::symlink(&fresh, &link).unwrap();
            let e = check_target(&link, ExistingFile::Overwrite)
                .unwrap_err()
                .to_string();
            assert!(e.contains("symbolic link"), "{e}");
        }
        assert_eq!(std::fs::read(&fresh).unwrap(), b"old");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn placing_never_replaces_a_file_that_appeared_meanwhile() {
        let dir = scratch("place");
        let target = dir.join("v.mp4");
        let (temp, _) = create_temporary(&target).unwrap();
        std::fs::write(&temp, b"new").unwrap();
        std::fs::write(&target, b"someone else's").unwrap();
        let placed = place(&temp, &target, ExistingFile::Refuse).unwrap();
        assert_eq!(placed, dir.join("v-1.mp4"));
        assert_eq!(std::fs::read(&target).unwrap(), b"someone else's");
        assert_eq!(std::fs::read(&placed).unwrap(), b"new");
        assert!(!temp.exists());

        let (temp, _) = create_temporary(&target).unwrap();
        std::fs::write(&temp, b"newer").unwrap();
        assert_eq!(
            place(&temp, &target, ExistingFile::Overwrite).unwrap(),
            target
        );
        assert_eq!(std::fs::read(&target).unwrap(), b"newer");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
