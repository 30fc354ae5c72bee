//! A demo server on 127.0.0.1 with the tiny fixture models, and a WebSocket client for tests.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use self_forcing::server::{DemoServer, ServerOptions};
use sf_pipeline::{DecoderKind, ModelLocation, Pipeline, PipelineBuilder};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::tiny_models::tiny_model_dir;

/// How long a test waits for any one server event before failing.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(180);

/// A running demo server and its files.
pub struct Demo {
    pub addr: SocketAddr,
    pub root: PathBuf,
    pub server: DemoServer,
    pub runtime: tokio::runtime::Runtime,
    /// `DemoServer::serve`: ends after `DemoServer::shutdown`.
    pub serving: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Demo {
    /// Starts a server on a free port with the tiny models at `height` x `width`.
    pub fn start(name: &str, height: usize, width: usize) -> Demo {
        Demo::start_with(name, height, width, |_| {})
    }

    /// [`Demo::start`] with options changed by `edit`.
    pub fn start_with(
        name: &str,
        height: usize,
        width: usize,
        edit: impl FnOnce(&mut ServerOptions),
    ) -> Demo {
        Demo::start_built(name, height, width, |b| b, edit)
    }

    /// [`Demo::start_with`] with the pipeline builder changed by `build` too (e.g. a rolling
    /// KV window).
    pub fn start_built(
        name: &str,
        height: usize,
        width: usize,
        build: impl FnOnce(PipelineBuilder) -> PipelineBuilder,
        edit: impl FnOnce(&mut ServerOptions),
    ) -> Demo {
        let (root, configs) = tiny_model_dir(name);
        let builder = Pipeline::builder()
            .device("cpu".parse().unwrap())
            .models(ModelLocation::Local(root.clone()))
            .configs(configs)
            .decoder(DecoderKind::Taehv)
            .resolution(height, width);
        let pipeline = build(builder).build().unwrap_or_else(|e| panic!("{e}"));
        let mut options = ServerOptions {
            videos: root.join("videos"),
            default_latent_frames: 3,
            ..ServerOptions::default()
        };
        edit(&mut options);
        let server = DemoServer::start(pipeline, options).unwrap_or_else(|e| panic!("{e}"));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let serving = server.clone();
        let serving = Some(runtime.spawn(async move { serving.serve(listener).await }));
        Demo {
            addr,
            root,
            server,
            runtime,
            serving,
        }
    }

    /// `GET path` with extra request headers: status, response headers (lower-case names), body.
    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        let mut request = ureq::get(&format!("http://{}{path}", self.addr));
        for (name, value) in headers {
            request = request.set(name, value);
        }
        let response = match request.call() {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("GET {path}: {e}"),
        };
        let status = response.status();
        let headers = response
            .headers_names()
            .into_iter()
            .map(|n| {
                let value = response.header(&n).unwrap_or_default().to_string();
                (n.to_ascii_lowercase(), value)
            })
            .collect();
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut response.into_reader(), &mut body).unwrap();
        Response {
            status,
            headers,
            body,
        }
    }

    /// A raw HTTP/1.1 request (the exact header lines given, e.g. a foreign `Host`); returns
    /// the status code and the whole response text.
    pub fn raw(&self, method: &str, path: &str, headers: &[&str]) -> (u16, String) {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(self.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut request = format!("{method} {path} HTTP/1.1\r\n");
        for h in headers {
            request.push_str(h);
            request.push_str("\r\n");
        }
        request.push_str("Connection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response);
        let text = String::from_utf8_lossy(&response).into_owned();
        let code = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no HTTP status in {text:?}"));
        (code, text)
    }

    /// This server's own origin, as the page sends it.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `GET path` as text, with the status code.
    pub fn get(&self, path: &str) -> (u16, Vec<u8>) {
        match ureq::get(&format!("http://{}{path}", self.addr)).call() {
            Ok(r) => {
                let status = r.status();
                let mut body = Vec::new();
                std::io::Read::read_to_end(&mut r.into_reader(), &mut body).unwrap();
                (status, body)
            }
            Err(ureq::Error::Status(code, _)) => (code, Vec::new()),
            Err(e) => panic!("GET {path}: {e}"),
        }
    }

    /// `/api/status` as JSON.
    pub fn status(&self) -> serde_json::Value {
        let (code, body) = self.get("/api/status");
        assert_eq!(code, 200);
        serde_json::from_slice(&body).unwrap()
    }

    /// The MP4 file behind a `/videos/…` URL path.
    pub fn video_file(&self, url: &str) -> PathBuf {
        self.root
            .join("videos")
            .join(url.trim_start_matches("/videos/"))
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// An HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The value of header `name` (lower case), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What a viewer received.
#[derive(Debug)]
pub enum Received {
    Event(serde_json::Value),
    Frame { run: u32, index: u32, png: Vec<u8> },
}

/// One WebSocket viewer.
pub struct Viewer {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Viewer {
    /// Connects with the page's own origin and reads `hello`.
    pub async fn connect(addr: SocketAddr) -> Viewer {
        let origin = format!("http://{addr}");
        let mut v = Viewer::try_connect(addr, Some(&origin))
            .await
            .unwrap_or_else(|code| panic!("WebSocket refused with {code}"));
        let hello = v.next_event().await;
        assert_eq!(hello["type"], "hello", "{hello}");
        v
    }

    /// Opens `/ws` with this `Origin` (none for `None`); `Err` is the HTTP status of a refusal.
    pub async fn try_connect(addr: SocketAddr, origin: Option<&str>) -> Result<Viewer, u16> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = format!("ws://{addr}/ws").into_client_request().unwrap();
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("origin", origin.parse().unwrap());
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((ws, _)) => Ok(Viewer { ws }),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                Err(response.status().as_u16())
            }
            Err(e) => panic!("WebSocket to {addr}: {e}"),
        }
    }

    /// `true` when the server closes the socket within [`EVENT_TIMEOUT`] (after any messages).
    pub async fn closes(&mut self) -> bool {
        let deadline = tokio::time::Instant::now() + EVENT_TIMEOUT;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return false,
                Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => return true,
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::Text(text.into())).await.unwrap();
    }

    pub async fn send(&mut self, value: serde_json::Value) {
        self.send_text(&value.to_string()).await;
    }

    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.ws.send(Message::Binary(bytes.into())).await.unwrap();
    }

    /// The next event or frame (panics after [`EVENT_TIMEOUT`] or when the socket closes).
    pub async fn next(&mut self) -> Received {
        loop {
            let message = tokio::time::timeout(EVENT_TIMEOUT, self.ws.next())
                .await
                .expect("no message from the server in time")
                .expect("the server closed the socket")
                .expect("WebSocket error");
            match message {
                Message::Text(t) => return Received::Event(serde_json::from_str(&t).unwrap()),
                Message::Binary(b) => {
                    let run = u32::from_le_bytes(b[..4].try_into().unwrap());
                    let index = u32::from_le_bytes(b[4..8].try_into().unwrap());
                    return Received::Frame {
                        run,
                        index,
                        png: b[8..].to_vec(),
                    };
                }
                _ => continue,
            }
        }
    }

    /// The next JSON event, skipping frames.
    pub async fn next_event(&mut self) -> serde_json::Value {
        loop {
            if let Received::Event(e) = self.next().await {
                return e;
            }
        }
    }

    /// Events and frames until an event of one of `types`; returns that event and the frames.
    pub async fn until(&mut self, types: &[&str]) -> (serde_json::Value, Vec<(u32, u32)>) {
        let mut frames = Vec::new();
        loop {
            match self.next().await {
                Received::Frame { run, index, png } => {
                    assert_eq!(&png[1..4], b"PNG", "frames are PNG images");
                    frames.push((run, index));
                }
                Received::Event(e) => {
                    if types.iter().any(|t| e["type"] == *t) {
                        return (e, frames);
                    }
                }
            }
        }
    }
}

/// Number of video samples in an MP4 file, read back and decoded with openh264.
pub fn mp4_decoded_frames(path: &Path) -> usize {
    let file = std::fs::read(path).unwrap();
    let top = crate::mp4::boxes(&file, 0);
    let moov = top.iter().find(|b| b.name() == "moov").expect("moov");
    let trak = crate::mp4::child(moov, "trak").expect("trak");
    let stbl = crate::mp4::path(&trak, &["mdia", "minf", "stbl"]).expect("stbl");
    let samples = crate::mp4::progressive_samples(&file, &stbl);
    if samples.is_empty() {
        return 0;
    }
    let (sps, pps) = crate::mp4::avc_parameter_sets(&crate::mp4::child(&stbl, "stsd").unwrap());
    let decoded = crate::mp4::decode(&samples, &sps, &pps);
    assert_eq!(decoded.len(), samples.len());
    decoded.len()
}
