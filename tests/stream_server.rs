//! The web demo on 127.0.0.1 with the tiny models: protocol, faults, load, the MP4 of each
//! run, who may connect, video ranges and shutdown. The browser test is in `tests/browser.rs`.

use std::time::Duration;

use crate::demo;

use demo::{Demo, EVENT_TIMEOUT, Viewer, mp4_decoded_frames};
use serde_json::json;

fn start(prompt: &str, frames: usize) -> serde_json::Value {
    json!({"type": "start", "prompt": prompt, "seed": 5, "frames": frames, "decoder": "taehv"})
}

#[test]
fn bad_messages_are_answered_and_the_server_keeps_serving() {
    let demo = Demo::start("demo-bad", 32, 48);
    demo.runtime.block_on(async {
        let mut v = Viewer::connect(demo.addr).await;
        let cases: Vec<(String, &str)> = vec![
            ("not json".into(), "malformed"),
            ("{\"type\":\"launch\"}".into(), "malformed"),
            ("{\"type\":\"start\"}".into(), "malformed"),
            ("{\"type\":\"start\",\"prompt\":7}".into(), "malformed"),
            (start("  ", 3).to_string(), "empty"),
            (start("a cat", 0).to_string(), "between 3 and 21"),
            (start("a cat", 500).to_string(), "between 3 and 21"),
            // The pipeline's own check: chunks of 3 latent frames.
            (start("a cat", 4).to_string(), "multiple of 3"),
            (
                json!({"type": "start", "prompt": "a cat", "shift": 0}).to_string(),
                "shift must be a number greater than 0",
            ),
            (
                json!({"type": "start", "prompt": "a cat", "shift": -2.5}).to_string(),
                "shift must be a number greater than 0",
            ),
            (
                json!({"type": "start", "prompt": "a cat", "shift": "high"}).to_string(),
                "malformed",
            ),
            (
                json!({"type": "start", "prompt": "a cat", "decoder": "mpeg"}).to_string(),
                "decoder",
            ),
            (json!({"type": "stop"}).to_string(), "nothing is running"),
            ("x".repeat(70_000), "longer than"),
        ];
        for (text, needle) in cases {
            v.send_text(&text).await;
            let reply = v.next_event().await;
            assert_eq!(reply["type"], "rejected", "{reply}");
            let message = reply["message"].as_str().unwrap();
            assert!(message.contains(needle), "{needle} not in {message}");
        }
        v.send_binary(vec![0, 1, 2]).await;
        assert_eq!(v.next_event().await["type"], "rejected");
        // A file of an earlier server's run 1 with the same seed: it must stay as it is.
        let earlier = demo.root.join("videos/run-1-seed5.mp4");
        std::fs::write(&earlier, b"an earlier run").unwrap();
        // Still serving: a valid run completes with every frame, at the shift asked for.
        let mut request = start("a cat on a windowsill", 3);
        request["shift"] = json!(8.0);
        v.send(request).await;
        let (started, _) = v.until(&["started"]).await;
        assert_eq!(started["shift"], 8.0, "{started}");
        assert_eq!(started["chunks"], 1, "{started}");
        assert_eq!(started["video"], "/videos/run-1-seed5-1.mp4", "{started}");
        let (done, frames) = v.until(&["done", "failed"]).await;
        assert_eq!(done["type"], "done", "{done}");
        assert_eq!(frames.len(), 9);
        let report = &done["report"];
        assert_eq!(report["frames"], 9);
        assert_eq!(report["shift"], 8.0);
        assert_eq!(report["video"], "/videos/run-1-seed5-1.mp4", "{report}");
        assert_eq!(std::fs::read(&earlier).unwrap(), b"an earlier run");
        assert_eq!(
            mp4_decoded_frames(&demo.video_file("/videos/run-1-seed5-1.mp4")),
            9
        );
    });
    let status = demo.status();
    assert_eq!(status["busy"], false);
    assert_eq!(status["num_frame_per_block"], 3);
    assert_eq!(status["min_latent_frames"], 3);
    assert_eq!(status["max_latent_frames"], 21);
    assert_eq!(status["shift"], 5.0);
    assert_eq!(status["last"]["outcome"], "done");
    assert!(status["memory_in_use"].as_u64().unwrap() > 0);
    assert!(status["device"]["device"].as_str().unwrap().contains("cpu"));
    for bad in [
        "/videos/..%2FCargo.toml",
        "/videos/.hidden.mp4",
        "/videos/a b.mp4",
    ] {
        assert_ne!(demo.get(bad).0, 200, "{bad}");
    }
    assert_eq!(demo.get("/videos/none.mp4").0, 404);
}

#[test]
fn two_starts_at_once_run_one_and_answer_busy() {
    // 256x384 makes the run long enough that the second start always finds it going.
    let demo = Demo::start("demo-busy", 256, 384);
    demo.runtime.block_on(async {
        let mut a = Viewer::connect(demo.addr).await;
        let mut b = Viewer::connect(demo.addr).await;
        tokio::join!(a.send(start("first", 6)), b.send(start("second", 6)));
        let (ea, _) = a.until(&["busy", "accepted"]).await;
        let (eb, _) = b.until(&["busy", "accepted"]).await;
        let mut types = [ea["type"].as_str().unwrap(), eb["type"].as_str().unwrap()];
        types.sort();
        assert_eq!(types, ["accepted", "busy"], "{ea} {eb}");
        let busy = if ea["type"] == "busy" { &ea } else { &eb };
        assert!(
            busy["message"].as_str().unwrap().contains("stop it"),
            "{busy}"
        );
        let (done, _) = a.until(&["done", "failed"]).await;
        assert_eq!(done["type"], "done", "{done}");
        let report = &done["report"];
        assert_eq!(report["frames"], 21);
        let file = demo.video_file(report["video"].as_str().unwrap());
        assert_eq!(mp4_decoded_frames(&file), 21);
        assert_eq!(demo.status()["busy"], false);
    });
}

#[test]
fn stop_keeps_what_was_made_and_a_new_start_works() {
    // 256x384 makes each chunk long enough for the stop to land mid-run.
    let demo = Demo::start("demo-stop", 256, 384);
    demo.runtime.block_on(async {
        let mut v = Viewer::connect(demo.addr).await;
        let mut leaver = Viewer::connect(demo.addr).await;
        v.send(start("a lighthouse in a storm", 21)).await;
        let (progress, _) = v.until(&["progress"]).await;
        assert_eq!(progress["frames"], 9);
        // A viewer that disconnects mid-stream does not disturb the run.
        let _ = leaver.until(&["progress"]).await;
        drop(leaver);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while demo.status()["viewers"] != 1 {
            assert!(
                std::time::Instant::now() < deadline,
                "the viewer count did not drop"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        v.send(json!({"type": "stop"})).await;
        let (stopped, _) = v.until(&["stopped", "done", "failed"]).await;
        assert_eq!(stopped["type"], "stopped", "{stopped}");
        let report = &stopped["report"];
        let made = report["frames"].as_u64().unwrap() as usize;
        assert!((9..81).contains(&made), "{report}");
        assert!(report["message"].as_str().unwrap().contains("cancel"));
        let file = demo.video_file(report["video"].as_str().unwrap());
        assert_eq!(
            mp4_decoded_frames(&file),
            made,
            "every frame made is in the MP4"
        );

        v.send(start("a lighthouse in a storm", 3)).await;
        let (done, frames) = v.until(&["done", "failed"]).await;
        assert_eq!(done["type"], "done", "{done}");
        assert_eq!(frames.len(), 9);
        let (code, body) = demo.get(done["report"]["video"].as_str().unwrap());
        assert_eq!(code, 200);
        assert!(body.len() > 100);
    });
}

#[test]
fn twenty_viewers_each_receive_every_frame() {
    let demo = Demo::start("demo-load", 32, 48);
    demo.runtime.block_on(async {
        let mut viewers = Vec::new();
        for _ in 0..20 {
            viewers.push(Viewer::connect(demo.addr).await);
        }
        assert_eq!(demo.server.status()["viewers"], 20);
        viewers[7].send(start("a busy market street", 6)).await;
        let results = futures_util::future::join_all(
            viewers.iter_mut().map(|v| v.until(&["done", "failed"])),
        )
        .await;
        for (done, frames) in results {
            assert_eq!(done["type"], "done", "{done}");
            assert_eq!(done["report"]["video"], "/videos/run-1-seed5.mp4");
            assert_eq!(done["report"]["frames"], 21);
            let run = done["report"]["run"].as_u64().unwrap() as u32;
            let indices: Vec<u32> = frames
                .iter()
                .filter(|(r, _)| *r == run)
                .map(|(_, i)| *i)
                .collect();
            assert_eq!(
                indices,
                (0..21).collect::<Vec<u32>>(),
                "in order, none lost"
            );
        }
    });
    // The server still answers while and after twenty sockets close.
    assert_eq!(demo.status()["busy"], false);
}

#[test]
fn only_this_servers_origin_and_host_get_in() {
    let demo = Demo::start_with("demo-origin", 32, 48, |o| {
        o.allowed_origins = vec!["http://demo.example:8080".into()];
    });
    let port = demo.addr.port();
    demo.runtime.block_on(async {
        for origin in [Some("http://evil.example"), None, Some("null")] {
            let refused = Viewer::try_connect(demo.addr, origin).await;
            assert_eq!(refused.err(), Some(403), "{origin:?}");
        }
        for origin in [
            demo.origin(),
            format!("http://localhost:{port}"),
            "http://demo.example:8080".into(),
        ] {
            let mut v = Viewer::try_connect(demo.addr, Some(&origin))
                .await
                .unwrap_or_else(|code| panic!("{origin} refused with {code}"));
            assert_eq!(v.next_event().await["type"], "hello", "{origin}");
        }
    });
    let own = format!("Origin: {}", demo.origin());
    let upgrade = [
        "Connection: Upgrade",
        "Upgrade: websocket",
        "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    ];
    // DNS rebinding: the page's own origin, but another Host.
    let mut headers = vec!["Host: evil.example", own.as_str()];
    headers.extend(upgrade);
    let (code, text) = demo.raw("GET", "/ws", &headers);
    assert_eq!(code, 403, "{text}");
    assert!(text.contains("is not this server"), "{text}");
    for path in ["/", "/api/status", "/videos/a.mp4", "/no-such-page"] {
        let (code, text) = demo.raw("GET", path, &["Host: evil.example"]);
        assert_eq!(code, 403, "{path}: {text}");
        let (code, _) = demo.raw("GET", path, &["Host: evil.example:8080"]);
        assert_eq!(code, 403, "{path}");
    }
    let local = format!("Host: localhost:{port}");
    assert_eq!(demo.raw("GET", "/api/status", &[&local]).0, 200);
    assert_eq!(
        demo.raw("GET", "/api/status", &["Host: demo.example:8080"])
            .0,
        200
    );
    assert_eq!(
        demo.raw(
            "GET",
            "/api/status",
            &[&format!("Host: localhost:{}", port + 1)]
        )
        .0,
        403
    );
    // A state-changing method needs the origin too (and then finds no such route).
    let (code, text) = demo.raw("POST", "/api/status", &[&local, "Content-Length: 0"]);
    assert_eq!(code, 403, "{text}");
    let (code, _) = demo.raw("POST", "/api/status", &[&local, &own, "Content-Length: 0"]);
    assert_eq!(code, 405);
    let (code, text) = demo.raw(
        "POST",
        "/api/status",
        &[&local, "Origin: http://evil.example"],
    );
    assert_eq!(code, 403, "{text}");
}

#[test]
fn videos_come_only_from_the_folder_and_answer_ranges() {
    let demo = Demo::start("demo-videos", 32, 48);
    let videos = demo.root.join("videos");
    let bytes: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(videos.join("clip.mp4"), &bytes).unwrap();
    let whole = demo.get_with("/videos/clip.mp4", &[]);
    assert_eq!(whole.status, 200);
    assert_eq!(whole.header("accept-ranges"), Some("bytes"));
    assert_eq!(whole.header("content-type"), Some("video/mp4"));
    assert_eq!(whole.body, bytes);
    for (range, start, end) in [
        ("bytes=10-19", 10, 19),
        ("bytes=990-", 990, 999),
        ("bytes=-5", 995, 999),
        ("bytes=900-5000", 900, 999),
    ] {
        let part = demo.get_with("/videos/clip.mp4", &[("Range", range)]);
        assert_eq!(part.status, 206, "{range}");
        let content_range = format!("bytes {start}-{end}/1000");
        assert_eq!(part.header("content-range"), Some(content_range.as_str()));
        assert_eq!(part.header("accept-ranges"), Some("bytes"));
        assert_eq!(part.body, bytes[start..=end], "{range}");
    }
    for range in ["bytes=1000-", "bytes=-0"] {
        let refused = demo.get_with("/videos/clip.mp4", &[("Range", range)]);
        assert_eq!(refused.status, 416, "{range}");
        assert_eq!(refused.header("content-range"), Some("bytes */1000"));
    }
    // A link in the folder to a file outside it is not served.
    let outside = demo.root.join("secret.mp4");
    std::fs::write(&outside, b"not a video of this server").unwrap();
    std::os::unix::fs::symlink(&outside, videos.join("escape.mp4")).unwrap();
    std::os::unix::fs::symlink("../secret.mp4", videos.join("relative.mp4")).unwrap();
    for link in ["/videos/escape.mp4", "/videos/relative.mp4"] {
        let refused = demo.get_with(link, &[]);
        assert_eq!(refused.status, 404, "{link}");
        assert!(refused.body.is_empty() || !refused.body.starts_with(b"not a video"));
    }
    for bad in [
        "/videos/..%2Fsecret.mp4",
        "/videos/.hidden.mp4",
        "/videos/a%20b.mp4",
        "/videos/clip.mov",
    ] {
        let refused = demo.get_with(bad, &[]);
        assert!(
            matches!(refused.status, 400 | 404),
            "{bad}: {}",
            refused.status
        );
    }
}

#[test]
fn shutdown_stops_the_run_keeps_its_mp4_and_tells_the_viewers() {
    // 256x384 makes each chunk long enough for the shutdown to land mid-run.
    let mut demo = Demo::start("demo-shutdown", 256, 384);
    let serving = demo.serving.take().unwrap();
    demo.runtime.block_on(async {
        let mut v = Viewer::connect(demo.addr).await;
        let mut watcher = Viewer::connect(demo.addr).await;
        v.send(start("a harbour at night", 21)).await;
        let _ = v.until(&["progress"]).await;
        let server = demo.server.clone();
        let stopping = tokio::spawn(async move { server.shutdown().await });
        for viewer in [&mut v, &mut watcher] {
            let (stopped, frames) = viewer.until(&["stopped", "done", "failed"]).await;
            assert_eq!(stopped["type"], "stopped", "{stopped}");
            let report = &stopped["report"];
            let made = report["frames"].as_u64().unwrap() as usize;
            assert!((9..81).contains(&made), "{report}");
            assert!(frames.len() <= made);
            let file = demo.video_file(report["video"].as_str().unwrap());
            assert_eq!(
                mp4_decoded_frames(&file),
                made,
                "every frame made is in the MP4"
            );
            let last = viewer.next_event().await;
            assert_eq!(last["type"], "shutdown", "{last}");
            assert!(viewer.closes().await, "the server closes the socket");
        }
        tokio::time::timeout(EVENT_TIMEOUT, stopping)
            .await
            .unwrap()
            .unwrap();
        let status = demo.server.status();
        assert_eq!(status["busy"], false);
        assert_eq!(status["shutting_down"], true);
        // axum's graceful shutdown ends `serve`, and the port is closed.
        let served = tokio::time::timeout(Duration::from_secs(30), serving).await;
        served.expect("serve ends").unwrap().unwrap();
        assert!(std::net::TcpStream::connect(demo.addr).is_err());
        // Shutting down again returns at once.
        tokio::time::timeout(Duration::from_secs(5), demo.server.shutdown())
            .await
            .unwrap();
    });
}
