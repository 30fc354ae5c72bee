//! One connected page: its WebSocket, the events it receives and its start/switch/stop
//! messages.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use sf_pipeline::{CancelToken, DecoderKind, GenerationRequest, PipelineError, random_seed};
use tokio::sync::{broadcast, mpsc};

use super::protocol::{self, ClientMessage, parse_client_message};
use super::worker::Job;
use super::{ActiveRun, Event, Shared, lock, shutdown_event, status_json};

/// The `/ws` handler (the guard has checked Host and Origin).
pub(crate) async fn websocket(ws: WebSocketUpgrade, State(shared): State<Arc<Shared>>) -> Response {
    if shared.closing.load(Ordering::SeqCst) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down; reload the page when it is back",
        )
            .into_response();
    }
    // Larger than the protocol limit so an oversized message gets an answer, not a reset.
    ws.max_message_size(16 * protocol::MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| viewer(socket, shared))
}

/// Forwards every event and handles this page's messages until either side ends.
async fn viewer(socket: WebSocket, shared: Arc<Shared>) {
    shared.viewers.fetch_add(1, Ordering::SeqCst);
    let mut events = shared.events.subscribe();
    let (mut sink, mut incoming) = socket.split();
    let (reply_tx, mut replies) = mpsc::channel::<String>(64);
    if shared.shutdown_sent.load(Ordering::SeqCst) {
        // Subscribed after the `shutdown` event went out: it will not come through `events`.
        let _ = sink.send(Message::Text(shutdown_event().into())).await;
        let _ = sink.send(going_away()).await;
        shared.viewers.fetch_sub(1, Ordering::SeqCst);
        return;
    }
    let hello = serde_json::json!({"type": "hello", "status": status_json(&shared)}).to_string();
    let _ = reply_tx.try_send(hello);
    let mut forward = tokio::spawn(async move {
        loop {
            let (message, last) = tokio::select! {
                reply = replies.recv() => match reply {
                    Some(text) => (Message::Text(text.into()), false),
                    None => break,
                },
                event = events.recv() => match event {
                    Ok(Event::Text(t)) => (Message::Text(t.as_str().into()), false),
                    Ok(Event::Frame(f)) => (Message::Binary(f.as_slice().to_vec().into()), false),
                    Ok(Event::Close(t)) => (Message::Text(t.as_str().into()), true),
                    Err(broadcast::error::RecvError::Lagged(n)) => (Message::Text(
                        serde_json::json!({"type": "lagged", "skipped": n}).to_string().into(),
                    ), false),
                    Err(broadcast::error::RecvError::Closed) => break,
                },
            };
            if sink.send(message).await.is_err() {
                break;
            }
            if last {
                let _ = sink.send(going_away()).await;
                break;
            }
        }
    });
    loop {
        let message = tokio::select! {
            _ = &mut forward => break,
            message = incoming.next() => match message {
                Some(Ok(message)) => message,
                _ => break,
            },
        };
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

fn going_away() -> Message {
    Message::Close(Some(CloseFrame {
        code: close_code::AWAY,
        reason: "server shutting down".into(),
    }))
}

pub(crate) fn rejected(message: &str) -> String {
    serde_json::json!({"type": "rejected", "message": message}).to_string()
}

/// A pipeline error as a sentence for the page (without the "invalid configuration" prefix).
pub(crate) fn plain(e: &PipelineError) -> String {
    match e {
        PipelineError::Config(message) => message.clone(),
        other => other.to_string(),
    }
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
        Ok(ClientMessage::Switch { prompt }) => Some(match switch(shared, &prompt) {
            Ok(reply) | Err(reply) => reply,
        }),
        Ok(ClientMessage::Start {
            prompt,
            seed,
            frames,
            decoder,
            shift,
            endless,
        }) => Some(
            match start(shared, &prompt, seed, frames, decoder, shift, endless) {
                Ok(run) => serde_json::json!({"type": "accepted", "run": run}).to_string(),
                Err(reply) => reply,
            },
        ),
    }
}

/// Hands a new prompt to the running generation; the reply is `switch_queued` or `rejected`.
/// The generation thread applies the latest one at the next chunk start and tells every viewer
/// (`switched`, or `switch_dropped` when it cannot).
fn switch(shared: &Shared, prompt: &str) -> Result<String, String> {
    let prompt = protocol::check_prompt(prompt, "to switch to").map_err(|e| rejected(&e))?;
    let state = lock(&shared.state);
    let Some(active) = &state.active else {
        return Err(rejected(
            "nothing is running: Switch changes the prompt of a running generation; press \
             Start to generate from this prompt",
        ));
    };
    let run = active.run;
    if active.cancel.is_cancelled() {
        return Err(rejected(&format!(
            "run {run} is stopping: nothing left to switch"
        )));
    }
    active
        .switches
        .send(prompt.clone())
        .map_err(|_| rejected(&format!("run {run} has just ended: nothing left to switch")))?;
    Ok(serde_json::json!({"type": "switch_queued", "run": run, "prompt": prompt}).to_string())
}

/// Checks a start and hands it to the generation thread; `Err` is the reply.
fn start(
    shared: &Shared,
    prompt: &str,
    seed: Option<i64>,
    frames: Option<usize>,
    decoder: Option<String>,
    shift: Option<f64>,
    endless: bool,
) -> Result<u64, String> {
    let prompt = protocol::check_prompt(prompt, "to generate").map_err(|e| rejected(&e))?;
    if endless && shared.configs.rollout.local_attn_size.is_none() {
        return Err(rejected(
            "Endless needs a rolling KV window, and these models keep the whole video in the KV \
             cache: restart the demo with --kv-window (e.g. --kv-window 12,3) or --model \
             longlive, or turn Endless off",
        ));
    }
    let limits = shared.limits;
    let latent_frames = frames.unwrap_or(shared.options.default_latent_frames);
    if latent_frames < limits.min || latent_frames > limits.max {
        return Err(rejected(&format!(
            "frames must be between {} and {} latent frames, in steps of {} (21 = 81 video \
             frames)",
            limits.min, limits.max, limits.step
        )));
    }
    let decoder = match decoder {
        Some(d) => d
            .parse::<DecoderKind>()
            .map_err(|e| rejected(&e.to_string()))?,
        None => *lock(&shared.decoder),
    };
    let mut request = GenerationRequest::new(prompt.clone())
        .latent_frames(latent_frames)
        .endless(endless);
    if let Some(shift) = shift {
        if !(shift.is_finite() && shift > 0.0 && shift <= f64::from(f32::MAX)) {
            return Err(rejected(&format!(
                "shift must be a number greater than 0, got {shift} (upstream samples with 5; \
                 its demo with 8)"
            )));
        }
        request = request.shift(shift as f32);
    }
    request
        .validate(&shared.configs)
        .map_err(|e| rejected(&plain(&e)))?;
    let seed = match seed {
        Some(s) if s >= 0 => s as u64,
        _ => random_seed(),
    };
    let mut state = lock(&shared.state);
    if shared.closing.load(Ordering::SeqCst) {
        return Err(rejected("the server is shutting down: no new runs"));
    }
    if let Some(a) = &state.active {
        let made = match a.total_frames {
            Some(total) => format!("{}/{total} frames", a.frames_done),
            None => format!("{} frames, endless", a.frames_done),
        };
        return Err(serde_json::json!({
            "type": "busy",
            "message": format!(
                "run {} is generating ({made}): wait for it to finish or stop it",
                a.run
            ),
        })
        .to_string());
    }
    let run = shared.next_run.fetch_add(1, Ordering::SeqCst);
    let cancel = CancelToken::new();
    let total_frames = (!endless).then(|| request.video_frames());
    let (switches, switch_requests) = std::sync::mpsc::channel();
    let job = Job {
        run,
        request: request.seed(seed).cancel(cancel.clone()),
        decoder,
        switches: std::sync::Mutex::new(switch_requests),
    };
    lock(&shared.jobs)
        .as_ref()
        .ok_or_else(|| rejected("the server is shutting down: no new runs"))?
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
        switches,
        applied: Vec::new(),
    });
    Ok(run)
}
