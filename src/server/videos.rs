//! `/videos/{name}`: each run's MP4, only from inside the videos folder, with HTTP range
//! requests (`bytes=a-b`, `bytes=a-`, `bytes=-n`) so the video element can seek.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::Shared;

/// What a `Range` header asks of a file of a given size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ByteRange {
    /// The whole file (no header, or one this server ignores: other units, several ranges,
    /// malformed ones; RFC 9110 lets a server answer those with the full file).
    Full,
    /// Bytes `start..=end`.
    Part { start: u64, end: u64 },
    /// Nothing of the file lies in the range (416).
    Unsatisfiable,
}

/// Reads a `Range` header against a file of `size` bytes.
pub(crate) fn parse_range(header: Option<&str>, size: u64) -> ByteRange {
    let Some(spec) = header.map(str::trim) else {
        return ByteRange::Full;
    };
    let Some(spec) = spec
        .get(..6)
        .filter(|unit| unit.eq_ignore_ascii_case("bytes="))
        .map(|_| spec[6..].trim())
    else {
        return ByteRange::Full;
    };
    if spec.contains(',') {
        return ByteRange::Full;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return ByteRange::Full;
    };
    let number = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // bytes=-n: the last n bytes.
        return match number(last) {
            None => ByteRange::Full,
            Some(0) => ByteRange::Unsatisfiable,
            Some(_) if size == 0 => ByteRange::Unsatisfiable,
            Some(n) => ByteRange::Part {
                start: size.saturating_sub(n),
                end: size - 1,
            },
        };
    }
    let Some(start) = number(first) else {
        return ByteRange::Full;
    };
    // bytes=a- or bytes=a-b.
    let last = match last {
        "" => None,
        text => match number(text) {
            Some(end) if end >= start => Some(end),
            _ => return ByteRange::Full,
        },
    };
    if start >= size {
        return ByteRange::Unsatisfiable;
    }
    let end = last.map_or(size - 1, |end| end.min(size - 1));
    ByteRange::Part { start, end }
}

/// The file behind `name`, if it is a regular file really inside `folder` (the canonical videos
/// folder): symbolic links and anything else that resolves outside it are refused.
fn resolve(folder: &Path, name: &str) -> Option<PathBuf> {
    let path = folder.join(name).canonicalize().ok()?;
    (path.parent() == Some(folder) && path.is_file()).then_some(path)
}

/// A plain name of an MP4 in the folder: no path, not hidden.
fn valid_name(name: &str) -> bool {
    name.ends_with(".mp4")
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

enum Served {
    Missing,
    Unsatisfiable(u64),
    Bytes {
        bytes: Vec<u8>,
        range: Option<(u64, u64)>,
        size: u64,
    },
}

fn read(path: &Path, range_header: Option<&str>) -> std::io::Result<Served> {
    let mut file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    let (start, end, range) = match parse_range(range_header, size) {
        ByteRange::Unsatisfiable => return Ok(Served::Unsatisfiable(size)),
        ByteRange::Full => (0, size, None),
        ByteRange::Part { start, end } => (start, end + 1, Some((start, end))),
    };
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = vec![0; (end - start) as usize];
    file.read_exact(&mut bytes)?;
    Ok(Served::Bytes { bytes, range, size })
}

/// The `/videos/{name}` handler.
pub(crate) async fn video(
    State(shared): State<Arc<Shared>>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    if !valid_name(&name) {
        return (
            StatusCode::BAD_REQUEST,
            "invalid video name: videos are NAME.mp4 without a path",
        )
            .into_response();
    }
    let folder = shared.videos.clone();
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let served = tokio::task::spawn_blocking(move || match resolve(&folder, &name) {
        None => Ok(Served::Missing),
        Some(path) => read(&path, range.as_deref()),
    })
    .await;
    let accept = (header::ACCEPT_RANGES, "bytes");
    match served {
        Ok(Ok(Served::Bytes { bytes, range, size })) => {
            let kind = (header::CONTENT_TYPE, "video/mp4");
            match range {
                None => (StatusCode::OK, [kind, accept], bytes).into_response(),
                Some((start, end)) => {
                    let content_range = format!("bytes {start}-{end}/{size}");
                    (
                        StatusCode::PARTIAL_CONTENT,
                        [
                            kind,
                            accept,
                            (header::CONTENT_RANGE, content_range.as_str()),
                        ],
                        bytes,
                    )
                        .into_response()
                }
            }
        }
        Ok(Ok(Served::Unsatisfiable(size))) => {
            let content_range = format!("bytes */{size}");
            (
                StatusCode::RANGE_NOT_SATISFIABLE,
                [accept, (header::CONTENT_RANGE, content_range.as_str())],
                format!("the range is outside the video's {size} bytes"),
            )
                .into_response()
        }
        _ => (StatusCode::NOT_FOUND, "no such video").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_of_a_hundred_bytes() {
        use ByteRange::*;
        let r = |h| parse_range(Some(h), 100);
        assert_eq!(parse_range(None, 100), Full);
        assert_eq!(r("bytes=0-9"), Part { start: 0, end: 9 });
        assert_eq!(r("bytes=90-200"), Part { start: 90, end: 99 });
        assert_eq!(r("bytes=10-"), Part { start: 10, end: 99 });
        assert_eq!(r("bytes=-5"), Part { start: 95, end: 99 });
        assert_eq!(r("bytes=-500"), Part { start: 0, end: 99 });
        assert_eq!(r("BYTES=1-1"), Part { start: 1, end: 1 });
        assert_eq!(r("bytes=100-"), Unsatisfiable);
        assert_eq!(r("bytes=100-120"), Unsatisfiable);
        assert_eq!(r("bytes=-0"), Unsatisfiable);
        for ignored in [
            "items=0-1",
            "bytes=5-2",
            "bytes=a-b",
            "bytes=0-1,5-6",
            "bytes=",
            "bytes=-",
        ] {
            assert_eq!(r(ignored), Full, "{ignored}");
        }
        assert_eq!(parse_range(Some("bytes=0-"), 0), Unsatisfiable);
    }

    #[test]
    fn names_with_paths_or_hidden_are_invalid() {
        assert!(valid_name("run-1-seed5-1.mp4"));
        for bad in [
            "../a.mp4", ".a.mp4", "a b.mp4", "a.mov", "a/b.mp4", "a%2F.mp4",
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
