//! A tiny Hugging Face hub imitation on 127.0.0.1 for the download tests.
//!
//! It answers what hf-hub 0.4's blocking client asks (`api/sync.rs`):
//! `GET {endpoint}/{repo}/resolve/main/{file}` with `Range: bytes=0-0` for the metadata
//! (`x-repo-commit`, `etag` or `x-linked-etag`, `Content-Range: bytes 0-0/{size}`), then the
//! same URL with `Range: bytes={start}-` for the content. Large ("LFS") files are answered like
//! the real hub: a 302 carrying the metadata headers, to an absolute CDN URL that serves the
//! bytes. Unknown files get a 404; `/api/...` (repository info) gets `{}`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One file the server holds.
pub struct HubFile {
    pub repo: String,
    pub path: String,
    pub bytes: Vec<u8>,
    /// Served through a redirect to the CDN path, like LFS files on the hub.
    pub lfs: bool,
}

struct State {
    endpoint: String,
    files: Vec<HubFile>,
    requests: Mutex<Vec<String>>,
}

/// The running server; it lives until the test process ends.
pub struct HubServer {
    pub endpoint: String,
    state: Arc<State>,
}

impl HubServer {
    pub fn start(files: Vec<HubFile>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(State {
            endpoint: endpoint.clone(),
            files,
            requests: Mutex::new(Vec::new()),
        });
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = Arc::clone(&shared);
                std::thread::spawn(move || {
                    let _ = handle(stream, &state);
                });
            }
        });
        Self { endpoint, state }
    }

    /// Every request so far, as `"GET /path"`.
    pub fn requests(&self) -> Vec<String> {
        self.state.requests.lock().unwrap().clone()
    }
}

/// A stable hex digest (FNV-1a), used as etag and commit hash.
pub fn digest(bytes: &[u8]) -> String {
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{hash:016x}")
}

fn handle(stream: TcpStream, state: &State) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
        }
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    state
        .requests
        .lock()
        .unwrap()
        .push(format!("{method} {path}"));
    let range = headers.get("range").cloned();
    let response = route(state, &path, range.as_deref());
    respond(stream, response)
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn route(state: &State, path: &str, range: Option<&str>) -> Response {
    if path.starts_with("/api/") {
        return Response {
            status: 200,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: b"{}".to_vec(),
        };
    }
    if let Some(etag) = path.strip_prefix("/cdn/") {
        return match state.files.iter().find(|f| digest(&f.bytes) == etag) {
            Some(file) => content(file, range, Vec::new()),
            None => not_found(),
        };
    }
    // /{org}/{name}/resolve/{revision}/{file}
    let segments: Vec<&str> = path.trim_start_matches('/').splitn(5, '/').collect();
    let [org, name, "resolve", _revision, file_path] = segments[..] else {
        return not_found();
    };
    let repo = format!("{org}/{name}");
    let Some(file) = state
        .files
        .iter()
        .find(|f| f.repo == repo && f.path == file_path)
    else {
        return not_found();
    };
    let etag = digest(&file.bytes);
    let commit = format!("{:0>40}", digest(repo.as_bytes()));
    if file.lfs {
        Response {
            status: 302,
            headers: vec![
                ("Location".into(), format!("{}/cdn/{etag}", state.endpoint)),
                ("x-repo-commit".into(), commit),
                ("x-linked-etag".into(), format!("\"{etag}\"")),
                ("x-linked-size".into(), file.bytes.len().to_string()),
                ("etag".into(), "\"pointer-file-etag\"".into()),
            ],
            body: Vec::new(),
        }
    } else {
        content(
            file,
            range,
            vec![
                ("x-repo-commit".into(), commit),
                ("etag".into(), format!("\"{etag}\"")),
            ],
        )
    }
}

/// The file's bytes, honouring `Range: bytes=a-` and `bytes=a-b`.
fn content(file: &HubFile, range: Option<&str>, mut headers: Vec<(String, String)>) -> Response {
    let size = file.bytes.len();
    let Some(spec) = range.and_then(|r| r.strip_prefix("bytes=")) else {
        return Response {
            status: 200,
            headers,
            body: file.bytes.clone(),
        };
    };
    let (start, end) = spec.split_once('-').unwrap_or((spec, ""));
    let start: usize = start.parse().unwrap_or(0).min(size);
    let end: usize = end.parse().map_or(size, |e: usize| (e + 1).min(size));
    headers.push((
        "Content-Range".into(),
        format!("bytes {start}-{}/{size}", end.saturating_sub(1)),
    ));
    Response {
        status: 206,
        headers,
        body: file.bytes[start..end].to_vec(),
    }
}

fn not_found() -> Response {
    Response {
        status: 404,
        headers: vec![("x-error-code".into(), "EntryNotFound".into())],
        body: b"Entry not found".to_vec(),
    }
}

fn respond(mut stream: TcpStream, response: Response) -> std::io::Result<()> {
    let reason = match response.status {
        200 => "OK",
        206 => "Partial Content",
        302 => "Found",
        _ => "Not Found",
    };
    let mut head = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Length: {}\r\nConnection: close\r\n",
        response.status,
        response.body.len()
    );
    for (name, value) in &response.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(&response.body)?;
    stream.flush()
}
