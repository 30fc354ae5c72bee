//! The streaming web demo: a page that generates from a prompt and plays the frames as each
//! chunk is decoded, pushed over a WebSocket; every run is also saved as an MP4.
//!
//! ```text
//! cargo run --release --features wgpu --example stream -- --decoder taehv --port 7860
//! # then open http://127.0.0.1:7860
//! ```
//!
//! Takes the model and device options of `generate` (`--model`, `--lora-alpha`, `--models`,
//! `--device`, `--precision`, `--decoder`, `--frames` as the page's default and maximum,
//! `--kv-window`, `--height`, `--width`, `--fps`, `--low-memory`, `--prompt-cache`,
//! `--model-config`, `--hub-endpoint`),
//! plus `--prompt TEXT` (shown first among the examples), `--port N` (default 7860),
//! `--videos DIR` (where each run's MP4 goes, default `videos/`) and `--allow-origin ORIGIN`
//! (another origin the server accepts; by default only its own page's); `--help` lists them.
//! It listens on 127.0.0.1 only. Before loading any model it checks the page's default request
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
        allowed_origins: args.allow_origin.clone(),
        ..ServerOptions::default()
    };
    if let Some(prompt) = &args.prompt {
        options.examples.insert(0, prompt.clone());
    }
    let server = DemoServer::start(pipeline, options)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port))
            .await
            .map_err(|e| format!("cannot listen on 127.0.0.1:{}: {e} (try --port)", args.port))?;
        println!("open http://{}  (Ctrl-C stops)", listener.local_addr()?);
        let stopper = server.clone();
        tokio::spawn(async move {
            stop_signal().await;
            eprintln!(
                "stopping: the current run is cancelled and its MP4 finished (Ctrl-C again \
                 quits at once)"
            );
            tokio::spawn(async {
                stop_signal().await;
                eprintln!("quitting without waiting for the run");
                std::process::exit(130);
            });
            stopper.shutdown().await;
        });
        server.serve(listener).await?;
        println!("server stopped");
        Ok(())
    })
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM; never, with a warning, if neither can be caught.
async fn stop_signal() {
    let interrupt = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            eprintln!("warning: Ctrl-C cannot be caught ({e}); stop the server with SIGTERM");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                eprintln!("warning: SIGTERM cannot be caught ({e})");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
}
