//! The streaming web demo: a page that generates from a prompt and plays the frames as each
//! chunk is decoded, pushed over a WebSocket; every run is also saved as an MP4.
//!
//! ```text
//! cargo run --release --features wgpu --example stream -- --decoder taehv --port 7860
//! # then open http://127.0.0.1:7860
//! ```
//!
//! Takes the model and device options of `generate` (`--models`, `--device`, `--precision`,
//! `--decoder`, `--frames` as the page's default and maximum, `--kv-window`, `--height`,
//! `--width`, `--fps`, `--low-memory`, `--prompt-cache`, `--model-config`, `--hub-endpoint`),
//! plus `--prompt TEXT` (shown first among the examples), `--port N` (default 7860) and
//! `--videos DIR` (where each run's MP4 goes, default `videos/`); `--help` lists them. It
//! listens on 127.0.0.1 only. Before loading any model it checks the page's default request
//! (e.g. `--frames 30` without `--kv-window` is refused), the size, `--videos`, the device and
//! the memory plan, and exits with code 2 and the flag to change.

use std::process::ExitCode;

use self_forcing::server::{DemoServer, ServerOptions};

#[path = "common/mod.rs"]
mod common;

use common::args::StreamArgs;
use common::{CliError, console, preflight};

fn main() -> ExitCode {
    common::main_with(run)
}

fn run(args: StreamArgs) -> Result<(), Box<dyn std::error::Error>> {
    let prepared = preflight::prepare_stream(&args)?;
    preflight::print_setup(&prepared, &args);
    console::say("loading models…");
    let pipeline = prepared
        .load()
        .map_err(|e| CliError::Failed(e.to_string()))?;
    let mut options = ServerOptions {
        videos: args.videos.clone(),
        fps: args.fps,
        default_latent_frames: args.frames,
        max_latent_frames: args.frames.max(21),
        ..ServerOptions::default()
    };
    if let Some(prompt) = &args.prompt {
        options.examples.insert(0, prompt.clone());
    }
    let server = DemoServer::start(pipeline, options);
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port))
            .await
            .map_err(|e| format!("cannot listen on 127.0.0.1:{}: {e} (try --port)", args.port))?;
        println!("open http://{}", listener.local_addr()?);
        axum::serve(listener, server.router()).await?;
        Ok(())
    })
}
