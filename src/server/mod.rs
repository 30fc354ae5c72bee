//! The streaming web demo: an axum server with a page (prompt, example prompts, seed, latent
//! frames, shift, playback FPS, decoder toggle, endless toggle, start/switch/stop, progress, a
//! timeline of the prompts, a live chart of the chunk timings and memory, live playback over a
//! WebSocket, device panel) and `/api/status`. One generation runs at a time; while it runs,
//! Switch changes its prompt from the next chunk on; every run is also saved as an MP4 under
//! `/videos/`.
//!
//! Only the page's own origin may use the WebSocket, and every request must name this server
//! in its `Host` header ([`ServerOptions::allowed_origins`] adds others).
//! [`DemoServer::shutdown`] stops the run, lets its MP4 finish, tells the viewers and ends
//! [`DemoServer::serve`].
//!
//! ```no_run
//! # async fn demo(pipeline: sf_pipeline::Pipeline) -> Result<(), Box<dyn std::error::Error>> {
//! use self_forcing::server::{DemoServer, ServerOptions};
//! let server = DemoServer::start(pipeline, ServerOptions::default())?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:7860").await?;
//! let stopper = server.clone();
//! tokio::spawn(async move {
//!     let _ = tokio::signal::ctrl_c().await;
//!     stopper.shutdown().await;
//! });
//! server.serve(listener).await?;
//! # Ok(())
//! # }
//! ```

mod guard;
pub mod protocol;
mod session;
mod switches;
mod videos;
mod worker;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::{Json, Router};
use sf_device::{current_rss_bytes, human_bytes, peak_rss_bytes};
use sf_pipeline::{CancelToken, DecoderKind, GenerationRequest, ModelConfigs, Pipeline};
use tokio::sync::{broadcast, watch};

use protocol::{RunReport, SwitchRecord};
use worker::Job;

/// Settings of the demo server.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Where each run's MP4 is written (created if missing).
    pub videos: PathBuf,
    /// MP4 frame rate and the page's default playback rate.
    pub fps: u32,
    /// Latent frames when the page does not say (21 = 81 video frames).
    pub default_latent_frames: usize,
    /// The most latent frames a request may ask for (less if the KV cache holds fewer).
    pub max_latent_frames: usize,
    /// Example prompts shown on the page.
    pub examples: Vec<String>,
    /// Origins besides the server's own (`http://127.0.0.1:PORT`, `http://localhost:PORT`,
    /// `http://[::1]:PORT`) that may use the WebSocket, e.g. `https://demo.example` behind a
    /// proxy; their host names are then accepted in `Host` too.
    pub allowed_origins: Vec<String>,
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
            allowed_origins: Vec::new(),
        }
    }
}

/// Settings the demo cannot serve with.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The videos folder cannot be created or read.
    #[error("cannot use the videos folder {path}: {source} (choose another with --videos)")]
    Videos {
        /// The folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// An option that no request could satisfy.
    #[error("{0}")]
    Options(String),
    /// An allow-list entry that is not an origin.
    #[error(
        "allowed origin '{origin}' is invalid: {why} (write it as the browser sends it, e.g. \
         https://demo.example or http://192.168.1.5:7860)"
    )]
    BadOrigin {
        /// The entry.
        origin: String,
        /// Why it is refused.
        why: String,
    },
    /// The generation thread could not start.
    #[error("cannot start the generation thread: {0}")]
    Thread(std::io::Error),
}

/// The latent frame counts a request may ask for: `min`, `min + step`, ... up to `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FrameLimits {
    /// The smallest count.
    pub min: usize,
    /// Counts go up in steps of one chunk (`num_frame_per_block`).
    pub step: usize,
    /// The largest count the options and the KV cache allow.
    pub max: usize,
}

/// An event for every viewer.
#[derive(Clone, Debug)]
pub(crate) enum Event {
    Text(Arc<String>),
    Frame(Arc<Vec<u8>>),
    /// The last event: sent, then the socket is closed.
    Close(Arc<String>),
}

#[derive(Clone, Debug)]
struct ActiveRun {
    run: u64,
    prompt: String,
    seed: u64,
    decoder: DecoderKind,
    /// `None` for an endless run.
    total_frames: Option<usize>,
    frames_done: usize,
    cancel: CancelToken,
    /// Prompt switches for the generation thread (it applies the latest at the next chunk).
    switches: Sender<String>,
    /// The switches applied so far.
    applied: Vec<SwitchRecord>,
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
    /// `None` once shutting down: the worker ends after its current job.
    jobs: Mutex<Option<Sender<Job>>>,
    next_run: AtomicU64,
    viewers: AtomicUsize,
    device: DeviceSummary,
    options: ServerOptions,
    configs: ModelConfigs,
    limits: FrameLimits,
    /// The canonical videos folder.
    videos: PathBuf,
    /// Set (under the state lock) when shutdown begins: no new runs or viewers.
    closing: AtomicBool,
    /// Set before the `shutdown` event goes out.
    shutdown_sent: AtomicBool,
    /// Its sender lives in the generation thread: closed when the thread has ended.
    worker_alive: watch::Receiver<()>,
    /// `true` once the viewers were told; ends [`DemoServer::serve`].
    closed: watch::Sender<bool>,
}

/// A running demo: the generation thread and the state the HTTP handlers share.
#[derive(Clone)]
pub struct DemoServer {
    shared: Arc<Shared>,
}

/// The frame counts `configs` and `options` allow, or why none.
fn frame_limits(
    configs: &ModelConfigs,
    options: &ServerOptions,
) -> Result<FrameLimits, ServerError> {
    let rollout = &configs.rollout;
    let step = rollout.num_frame_per_block.max(1);
    let min = if rollout.independent_first_frame {
        1
    } else {
        step
    };
    // The reason as text (`PipelineError` is large).
    let valid = |n: usize| {
        GenerationRequest::new("x")
            .latent_frames(n)
            .validate(configs)
            .map_err(|e| session::plain(&e))
    };
    let max = (min..=options.max_latent_frames)
        .rev()
        .find(|&n| valid(n).is_ok())
        .ok_or_else(|| {
            ServerError::Options(format!(
                "no frame count up to max_latent_frames = {} works with these models (chunks \
                 of {step} latent frames): raise it",
                options.max_latent_frames
            ))
        })?;
    let default = options.default_latent_frames;
    if let Err(e) = valid(default) {
        return Err(ServerError::Options(format!(
            "the default of {default} latent frames cannot be generated ({}); use {min}, {}, ... \
             up to {max}",
            e,
            min + step
        )));
    }
    if default > max {
        return Err(ServerError::Options(format!(
            "the default of {default} latent frames is above the maximum of {max}"
        )));
    }
    Ok(FrameLimits { min, step, max })
}

impl DemoServer {
    /// Checks the options, creates the videos folder and moves the pipeline to its generation
    /// thread. Serve it with [`DemoServer::serve`] (or axum and [`DemoServer::router`]).
    pub fn start(pipeline: Pipeline, options: ServerOptions) -> Result<DemoServer, ServerError> {
        if options.fps == 0 {
            return Err(ServerError::Options("fps must be at least 1".into()));
        }
        for origin in &options.allowed_origins {
            guard::parse_origin(origin)?;
        }
        let configs = pipeline.configs().clone();
        let limits = frame_limits(&configs, &options)?;
        let videos_error = |source| ServerError::Videos {
            path: options.videos.clone(),
            source,
        };
        std::fs::create_dir_all(&options.videos).map_err(videos_error)?;
        let videos = options.videos.canonicalize().map_err(videos_error)?;
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
        let (alive, worker_alive) = watch::channel(());
        let shared = Arc::new(Shared {
            events,
            state: Mutex::new(RunState::default()),
            decoder: Mutex::new(pipeline.decoder()),
            jobs: Mutex::new(Some(jobs)),
            next_run: AtomicU64::new(1),
            viewers: AtomicUsize::new(0),
            device,
            options: options.clone(),
            configs,
            limits,
            videos: videos.clone(),
            closing: AtomicBool::new(false),
            shutdown_sent: AtomicBool::new(false),
            worker_alive,
            closed: watch::channel(false).0,
        });
        let worker_shared = shared.clone();
        std::thread::Builder::new()
            .name("sf-generation".into())
            .spawn(move || {
                let _alive = alive;
                worker::run_jobs(pipeline, rx, worker_shared, videos, options.fps)
            })
            .map_err(ServerError::Thread)?;
        Ok(DemoServer { shared })
    }

    /// The routes (`/`, `/ws`, `/api/status`, `/videos/{name}`) for a server bound to `bound`,
    /// behind the Host and Origin checks for that address.
    pub fn router(&self, bound: SocketAddr) -> Router {
        let guard = Arc::new(guard::Guard::new(
            bound,
            &self.shared.options.allowed_origins,
        ));
        Router::new()
            .route("/", get(page))
            .route("/ws", get(session::websocket))
            .route("/api/status", get(status))
            .route("/videos/{name}", get(videos::video))
            .fallback(|| async { (StatusCode::NOT_FOUND, "not found") })
            .layer(axum::middleware::from_fn_with_state(guard, guard::guard))
            .with_state(self.shared.clone())
    }

    /// Serves on `listener` until [`DemoServer::shutdown`] has finished.
    pub async fn serve(&self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        let router = self.router(listener.local_addr()?);
        axum::serve(listener, router)
            .with_graceful_shutdown(self.closed())
            .await
    }

    /// Stops the server's work: refuses new runs and viewers, cancels the active run, waits
    /// until the generation thread has finished its MP4 and sent the `stopped` report, then
    /// sends every viewer `{"type":"shutdown"}` and closes their sockets. Returns when that is
    /// done; calling it again returns at once.
    pub async fn shutdown(&self) {
        let shared = &self.shared;
        {
            let state = lock(&shared.state);
            shared.closing.store(true, Ordering::SeqCst);
            if let Some(active) = &state.active {
                active.cancel.cancel();
            }
        }
        lock(&shared.jobs).take();
        let mut alive = shared.worker_alive.clone();
        while alive.changed().await.is_ok() {}
        if !shared.shutdown_sent.swap(true, Ordering::SeqCst) {
            shared.send(Event::Close(Arc::new(shutdown_event())));
        }
        shared.closed.send_replace(true);
    }

    /// Resolves once [`DemoServer::shutdown`] has told the viewers (for axum's
    /// `with_graceful_shutdown`).
    pub fn closed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut closed = self.shared.closed.subscribe();
        async move {
            let _ = closed.wait_for(|c| *c).await;
        }
    }

    /// The JSON `/api/status` answers.
    pub fn status(&self) -> serde_json::Value {
        status_json(&self.shared)
    }

    /// The latent frame counts requests may ask for.
    pub fn frame_limits(&self) -> FrameLimits {
        self.shared.limits
    }
}

fn shutdown_event() -> String {
    serde_json::json!({
        "type": "shutdown",
        "message": "the server is shutting down; reload the page when it is back",
    })
    .to_string()
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
            "endless": a.total_frames.is_none(), "switches": a.applied,
        })
    });
    serde_json::json!({
        "busy": state.active.is_some(),
        "shutting_down": shared.closing.load(Ordering::SeqCst),
        "run": active,
        "last": state.last,
        "decoder": lock(&shared.decoder).to_string(),
        "viewers": shared.viewers.load(Ordering::SeqCst),
        "memory_in_use": current_rss_bytes(),
        "memory_in_use_text": current_rss_bytes().map(human_bytes),
        "peak_memory": peak_rss_bytes(),
        "fps": shared.options.fps,
        "default_latent_frames": shared.options.default_latent_frames,
        "min_latent_frames": shared.limits.min,
        "max_latent_frames": shared.limits.max,
        "num_frame_per_block": shared.limits.step,
        "shift": shared.configs.rollout.scheduler.shift,
        "endless_available": shared.configs.rollout.local_attn_size.is_some(),
        "max_prompt_chars": protocol::MAX_PROMPT_CHARS,
        "examples": shared.options.examples,
        "device": shared.device,
    })
}

async fn page() -> Html<&'static str> {
    Html(include_str!("page.html"))
}

async fn status(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    Json(status_json(&shared))
}

impl Event {
    /// A JSON text event.
    pub(crate) fn json(value: &serde_json::Value) -> Event {
        Event::Text(Arc::new(value.to_string()))
    }
}

impl Shared {
    /// Sends to every connected viewer (none connected is fine).
    pub(crate) fn send(&self, event: Event) {
        let _: Result<usize, broadcast::error::SendError<Event>> = self.events.send(event);
    }
}
