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
