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
//! `--width`, `--fps`, `--low-memory`, `--prompt-cache`), plus `--port N` (default 7860) and
//! `--videos DIR` (where each run's MP4 goes, default `videos/`). It listens on 127.0.0.1 only.

use std::process::ExitCode;

use self_forcing::server::{DemoServer, ServerOptions};

#[path = "common/args.rs"]
mod args;

fn main() -> ExitCode {
    args::main_with(run)
}

fn run(args: args::Args) -> Result<(), Box<dyn std::error::Error>> {
    println!("loading models…");
    let pipeline = args.pipeline_builder()?.build()?;
    args::print_setup(&pipeline);
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
