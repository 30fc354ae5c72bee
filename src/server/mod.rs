//! The streaming web demo: an axum server with a page (prompt, example prompts, seed, playback
//! FPS, decoder toggle, start/stop, progress, live playback over a WebSocket, device panel) and
//! `/api/status`. One generation runs at a time; every run is also saved as an MP4 under
//! `/videos/`.
//!
//! ```no_run
//! # async fn demo(pipeline: sf_pipeline::Pipeline) -> std::io::Result<()> {
//! use self_forcing::server::{DemoServer, ServerOptions};
//! let server = DemoServer::start(pipeline, ServerOptions::default());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:7860").await?;
//! axum::serve(listener, server.router()).await
//! # }
//! ```

pub mod protocol;
mod worker;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::{SinkExt, StreamExt};
use sf_device::{current_rss_bytes, human_bytes, peak_rss_bytes};
use sf_pipeline::{CancelToken, DecoderKind, Pipeline, random_seed};
use tokio::sync::{broadcast, mpsc};

use protocol::{ClientMessage, RunReport, parse_client_message};
use worker::Job;

/// Settings of the demo server.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Where each run's MP4 is written.
    pub videos: PathBuf,
    /// MP4 frame rate and the page's default playback rate.
    pub fps: u32,
    /// Latent frames when the page does not say (21 = 81 video frames).
    pub default_latent_frames: usize,
    /// The most latent frames a request may ask for.
    pub max_latent_frames: usize,
    /// Example prompts shown on the page.
    pub examples: Vec<String>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            videos: PathBuf::from("videos"),
            fps: 16,
            default_latent_frames: 21,
            max_latent_frames: 21,
            examples: [
                "A red fox trots through fresh snow in a quiet pine forest at dawn, soft light",
                "Waves crash against black volcanic rocks under a stormy sky, slow motion",
                "A paper boat drifts down a rain-filled street gutter, city lights reflecting",
                "An astronaut rides a horse across a desert of red sand, cinematic wide shot",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

/// An event for every viewer.
#[derive(Clone, Debug)]
pub(crate) enum Event {
    Text(Arc<String>),
    Frame(Arc<Vec<u8>>),
}

#[derive(Clone, Debug)]
struct ActiveRun {
    run: u64,
    prompt: String,
    seed: u64,
    decoder: DecoderKind,
    total_frames: usize,
    frames_done: usize,
    cancel: CancelToken,
}

#[derive(Default)]
struct RunState {
    active: Option<ActiveRun>,
    last: Option<RunReport>,
}

/// What the device panel shows and does not change while the server runs.
#[derive(Clone, Debug, serde::Serialize)]
struct DeviceSummary {
    device: String,
    backend: String,
    software: bool,
    precision: String,
    plan: String,
    resolution: [usize; 2],
    disabled_features: Vec<serde_json::Value>,
}

pub(crate) struct Shared {
    events: broadcast::Sender<Event>,
    state: Mutex<RunState>,
    decoder: Mutex<DecoderKind>,
    jobs: Mutex<Sender<Job>>,
    next_run: AtomicU64,
    viewers: AtomicUsize,
    device: DeviceSummary,
    options: ServerOptions,
}

/// A running demo: the generation thread and the state the HTTP handlers share.
#[derive(Clone)]
pub struct DemoServer {
    shared: Arc<Shared>,
}

impl DemoServer {
    /// Moves the pipeline to its generation thread. Serve [`DemoServer::router`] with axum.
    pub fn start(pipeline: Pipeline, options: ServerOptions) -> DemoServer {
        let plan = pipeline.plan();
        let (h, w) = pipeline.resolution();
        let device = DeviceSummary {
            device: pipeline.selected().info.to_string(),
            backend: pipeline.selected().info.kind.to_string(),
            software: pipeline.selected().info.software,
            precision: pipeline.precision().to_string(),
            plan: format!("{:?}", plan.mode),
            resolution: [h, w],
            disabled_features: pipeline
                .disabled_features()
                .into_iter()
                .map(|f| serde_json::json!({"feature": f.feature, "reason": f.reason}))
                .collect(),
        };
        let (jobs, rx) = std::sync::mpsc::channel();
        let (events, _) = broadcast::channel(4096);
        let shared = Arc::new(Shared {
            events,
            state: Mutex::new(RunState::default()),
            decoder: Mutex::new(pipeline.decoder()),
            jobs: Mutex::new(jobs),
            next_run: AtomicU64::new(1),
            viewers: AtomicUsize::new(0),
            device,
            options: options.clone(),
        });
        let worker_shared = shared.clone();
        std::thread::Builder::new()
            .name("sf-generation".into())
            .spawn(move || {
                worker::run_jobs(pipeline, rx, worker_shared, options.videos, options.fps)
            })
            .expect("spawning the generation thread");
        DemoServer { shared }
    }

    /// The routes: `/`, `/ws`, `/api/status`, `/videos/{name}`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/", get(page))
            .route("/ws", get(websocket))
            .route("/api/status", get(status))
            .route("/videos/{name}", get(video))
            .with_state(self.shared.clone())
    }

    /// The JSON `/api/status` answers.
    pub fn status(&self) -> serde_json::Value {
        status_json(&self.shared)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn status_json(shared: &Shared) -> serde_json::Value {
    let state = lock(&shared.state);
    let active = state.active.as_ref().map(|a| {
        serde_json::json!({
            "run": a.run, "prompt": a.prompt, "seed": a.seed, "decoder": a.decoder.to_string(),
            "frames": a.frames_done, "total_frames": a.total_frames,
        })
    });
    serde_json::json!({
        "busy": state.active.is_some(),
        "run": active,
        "last": state.last,
        "decoder": lock(&shared.decoder).to_string(),
        "viewers": shared.viewers.load(Ordering::SeqCst),
        "memory_in_use": current_rss_bytes(),
        "memory_in_use_text": current_rss_bytes().map(human_bytes),
        "peak_memory": peak_rss_bytes(),
        "fps": shared.options.fps,
        "default_latent_frames": shared.options.default_latent_frames,
        "max_latent_frames": shared.options.max_latent_frames,
        "examples": shared.options.examples,
        "device": shared.device,
    })
}

async fn page() -> Html<&'static str> {
    Html(include_str!("page.html"))
}

async fn status(State(shared): State<Arc<Shared>>) -> Json<serde_json::Value> {
    Json(status_json(&shared))
}

async fn video(State(shared): State<Arc<Shared>>, Path(name): Path<String>) -> Response {
    let valid = name.ends_with(".mp4")
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !valid {
        return (StatusCode::BAD_REQUEST, "invalid video name").into_response();
    }
    let path = shared.options.videos.join(&name);
    match tokio::task::spawn_blocking(move || std::fs::read(path)).await {
        Ok(Ok(bytes)) => ([(header::CONTENT_TYPE, "video/mp4")], bytes).into_response(),
        _ => (StatusCode::NOT_FOUND, "no such video").into_response(),
    }
}

async fn websocket(ws: WebSocketUpgrade, State(shared): State<Arc<Shared>>) -> Response {
    // Larger than the protocol limit so an oversized message gets an answer, not a reset.
    ws.max_message_size(16 * protocol::MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| viewer(socket, shared))
}

/// One connected page: forwards every event and handles its start/stop messages.
async fn viewer(socket: WebSocket, shared: Arc<Shared>) {
    shared.viewers.fetch_add(1, Ordering::SeqCst);
    let mut events = shared.events.subscribe();
    let (mut sink, mut incoming) = socket.split();
    let (reply_tx, mut replies) = mpsc::channel::<String>(64);
    let hello = serde_json::json!({"type": "hello", "status": status_json(&shared)}).to_string();
    let _ = reply_tx.try_send(hello);
    let forward = tokio::spawn(async move {
        loop {
            let message = tokio::select! {
                reply = replies.recv() => match reply {
                    Some(text) => Message::Text(text.into()),
                    None => break,
                },
                event = events.recv() => match event {
                    Ok(Event::Text(t)) => Message::Text(t.as_str().into()),
                    Ok(Event::Frame(f)) => Message::Binary(f.as_slice().to_vec().into()),
                    Err(broadcast::error::RecvError::Lagged(n)) => Message::Text(
                        serde_json::json!({"type": "lagged", "skipped": n}).to_string().into(),
                    ),
                    Err(broadcast::error::RecvError::Closed) => break,
                },
            };
            if sink.send(message).await.is_err() {
                break;
            }
        }
    });
    while let Some(Ok(message)) = incoming.next().await {
        let reply = match message {
            Message::Text(text) => handle(&shared, text.as_str()),
            Message::Binary(_) => Some(rejected("binary messages are not accepted; send JSON")),
            Message::Close(_) => break,
            _ => None,
        };
        if let Some(reply) = reply
            && reply_tx.send(reply).await.is_err()
        {
            break;
        }
    }
    drop(reply_tx);
    forward.abort();
    shared.viewers.fetch_sub(1, Ordering::SeqCst);
}

fn rejected(message: &str) -> String {
    serde_json::json!({"type": "rejected", "message": message}).to_string()
}

/// Handles one client message; returns the reply for this client only.
fn handle(shared: &Shared, text: &str) -> Option<String> {
    match parse_client_message(text) {
        Err(e) => Some(rejected(&e)),
        Ok(ClientMessage::Stop) => {
            let state = lock(&shared.state);
            match &state.active {
                Some(a) => {
                    a.cancel.cancel();
                    None
                }
                None => Some(rejected("nothing is running")),
            }
        }
        Ok(ClientMessage::Start {
            prompt,
            seed,
            frames,
            decoder,
        }) => Some(match start(shared, prompt, seed, frames, decoder) {
            Ok(run) => serde_json::json!({"type": "accepted", "run": run}).to_string(),
            Err(reply) => reply,
        }),
    }
}

fn start(
    shared: &Shared,
    prompt: String,
    seed: Option<i64>,
    frames: Option<usize>,
    decoder: Option<String>,
) -> Result<u64, String> {
    let prompt = prompt.trim().to_string();
    if prompt.is_empty() {
        return Err(rejected(
            "the prompt is empty: describe the video to generate",
        ));
    }
    let max = shared.options.max_latent_frames;
    let latent_frames = frames.unwrap_or(shared.options.default_latent_frames);
    if latent_frames == 0 || latent_frames > max {
        return Err(rejected(&format!(
            "frames must be between 1 and {max} latent frames (21 = 81 video frames)"
        )));
    }
    let decoder = match decoder {
        Some(d) => d
            .parse::<DecoderKind>()
            .map_err(|e| rejected(&e.to_string()))?,
        None => *lock(&shared.decoder),
    };
    let seed = match seed {
        Some(s) if s >= 0 => s as u64,
        _ => random_seed(),
    };
    let mut state = lock(&shared.state);
    if let Some(a) = &state.active {
        return Err(serde_json::json!({
            "type": "busy",
            "message": format!(
                "run {} is generating ({}/{} frames): wait for it to finish or stop it",
                a.run, a.frames_done, a.total_frames
            ),
        })
        .to_string());
    }
    let run = shared.next_run.fetch_add(1, Ordering::SeqCst);
    let cancel = CancelToken::new();
    let total_frames = 1 + 4 * (latent_frames - 1);
    let job = Job {
        run,
        prompt: prompt.clone(),
        seed,
        latent_frames,
        decoder,
        cancel: cancel.clone(),
    };
    lock(&shared.jobs)
        .send(job)
        .map_err(|_| rejected("the generation thread has stopped; restart the server"))?;
    state.active = Some(ActiveRun {
        run,
        prompt,
        seed,
        decoder,
        total_frames,
        frames_done: 0,
        cancel,
    });
    Ok(run)
}
