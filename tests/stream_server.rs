//! The web demo on 127.0.0.1 with the tiny models: protocol, faults, load, and the MP4 of each
//! run. The browser test is in `tests/browser.rs`.

use crate::demo;

use demo::{Demo, Viewer, mp4_decoded_frames};
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
            (start("a cat", 0).to_string(), "between 1 and"),
            (start("a cat", 500).to_string(), "between 1 and"),
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
        // Still serving: a valid run completes with every frame.
        v.send(start("a cat on a windowsill", 3)).await;
        let (done, frames) = v.until(&["done", "failed"]).await;
        assert_eq!(done["type"], "done", "{done}");
        assert_eq!(frames.len(), 9);
        assert_eq!(done["report"]["frames"], 9);
    });
    let status = demo.status();
    assert_eq!(status["busy"], false);
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
    let demo = Demo::start("demo-busy", 32, 48);
    demo.runtime.block_on(async {
        let mut a = Viewer::connect(demo.addr).await;
        let mut b = Viewer::connect(demo.addr).await;
        let (ra, rb) = tokio::join!(a.send(start("first", 6)), b.send(start("second", 6)));
        let _ = (ra, rb);
        // Each client hears `accepted` or `busy`: never two runs at once.
        let (ea, _) = a.until(&["busy", "accepted"]).await;
        let (eb, _) = b.until(&["busy", "accepted"]).await;
        let accepted = [&ea, &eb]
            .iter()
            .filter(|e| e["type"] == "accepted")
            .count();
        assert!(accepted >= 1, "{ea} {eb}");
        if accepted == 1 {
            let busy = if ea["type"] == "busy" { &ea } else { &eb };
            assert!(
                busy["message"].as_str().unwrap().contains("stop it"),
                "{busy}"
            );
        }
        // Both accepted only when the first run ended before the second start arrived.
        for _ in 0..accepted {
            let (done, _) = a.until(&["done", "failed"]).await;
            assert_eq!(done["type"], "done", "{done}");
            let report = &done["report"];
            assert_eq!(report["frames"], 21);
            let file = demo.video_file(report["video"].as_str().unwrap());
            assert_eq!(mp4_decoded_frames(&file), 21);
        }
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
