//! The web demo's prompt switch and Endless toggle over the WebSocket, with the tiny models on
//! 127.0.0.1: the checks of `switch` and endless starts, a switch applied mid-run (reported with
//! its frame, every frame in order and in the MP4, the frames before it unchanged and those
//! after it different from a run without it), and an endless start with a rolling KV window.

use crate::demo;

use demo::{Demo, Received, Viewer, mp4_decoded_frames};
use serde_json::{Value, json};

fn start(prompt: &str, frames: usize) -> Value {
    json!({"type": "start", "prompt": prompt, "seed": 5, "frames": frames, "decoder": "taehv"})
}

fn switch(prompt: &str) -> Value {
    json!({"type": "switch", "prompt": prompt})
}

/// Everything a viewer receives until an event of one of `types`, in order.
async fn collect(v: &mut Viewer, types: &[&str], into: &mut Vec<Received>) -> Value {
    loop {
        let received = v.next().await;
        if let Received::Event(e) = &received
            && types.iter().any(|t| e["type"] == *t)
        {
            let e = e.clone();
            into.push(received);
            return e;
        }
        into.push(received);
    }
}

/// The frames of run `run` in what was received: `(index, png)`.
fn frames_of(received: &[Received], run: u32) -> Vec<(u32, &[u8])> {
    received
        .iter()
        .filter_map(|r| match r {
            Received::Frame { run: r, index, png } if *r == run => Some((*index, png.as_slice())),
            _ => None,
        })
        .collect()
}

fn events<'a>(received: &'a [Received], kind: &str) -> Vec<&'a Value> {
    received
        .iter()
        .filter_map(|r| match r {
            Received::Event(e) if e["type"] == kind => Some(e),
            _ => None,
        })
        .collect()
}

#[test]
fn switch_and_endless_messages_are_checked() {
    let demo = Demo::start("demo-switch-bad", 32, 48);
    demo.runtime.block_on(async {
        let mut v = Viewer::connect(demo.addr).await;
        let long = "a".repeat(4001);
        let cases: Vec<(String, &str)> = vec![
            (json!({"type": "switch"}).to_string(), "malformed"),
            (
                json!({"type": "switch", "prompt": 3}).to_string(),
                "malformed",
            ),
            (switch(" \n ").to_string(), "the prompt is empty"),
            (
                switch(&long).to_string(),
                "4001 characters, more than the 4000",
            ),
            (switch("a snowy pass").to_string(), "nothing is running"),
            (start(&long, 3).to_string(), "more than the 4000"),
            (
                json!({"type": "start", "prompt": "a cat", "endless": "yes"}).to_string(),
                "malformed",
            ),
            // These models keep the whole video in the KV cache.
            (
                json!({"type": "start", "prompt": "a cat", "endless": true}).to_string(),
                "Endless needs a rolling KV window",
            ),
        ];
        for (text, needle) in cases {
            v.send_text(&text).await;
            let reply = v.next_event().await;
            assert_eq!(reply["type"], "rejected", "{reply}");
            let message = reply["message"].as_str().unwrap();
            assert!(message.contains(needle), "{needle} not in {message}");
        }
        // A prompt of exactly the limit is taken; after its run, a switch is refused again.
        v.send(start(&"a".repeat(4000), 3)).await;
        let (done, _) = v.until(&["done", "failed"]).await;
        assert_eq!(done["type"], "done", "{done}");
        assert_eq!(done["report"]["endless"], false, "{done}");
        assert_eq!(done["report"]["switches"], json!([]), "{done}");
        v.send(switch("a snowy pass")).await;
        let reply = v.next_event().await;
        assert_eq!(reply["type"], "rejected", "{reply}");
    });
    let status = demo.status();
    assert_eq!(status["endless_available"], false, "{status}");
    assert_eq!(status["max_prompt_chars"], 4000, "{status}");
}

#[test]
fn a_switch_mid_run_is_applied_at_the_next_chunk_and_every_frame_is_kept() {
    // 256x384 makes each chunk long enough for the switch to land mid-run.
    let demo = Demo::start("demo-switch", 256, 384);
    let prompt = "a lighthouse in a storm";
    let new_prompt = "a quiet beach at noon, calm sea";
    demo.runtime.block_on(async {
        let mut v = Viewer::connect(demo.addr).await;
        let mut watcher = Viewer::connect(demo.addr).await;
        let mut got = Vec::new();
        v.send(start(prompt, 21)).await;
        let progress = collect(&mut v, &["progress"], &mut got).await;
        assert_eq!(progress["chunk"], 0, "{progress}");
        v.send(switch(&format!("  {new_prompt} "))).await;
        let queued = collect(&mut v, &["switch_queued", "rejected"], &mut got).await;
        assert_eq!(queued["type"], "switch_queued", "{queued}");
        assert_eq!(queued["prompt"], new_prompt, "trimmed: {queued}");
        let switched = collect(&mut v, &["switched"], &mut got).await;
        let chunk = switched["chunk"].as_u64().unwrap() as usize;
        assert!((1..7).contains(&chunk), "{switched}");
        assert_eq!(switched["prompt"], new_prompt, "{switched}");
        assert_eq!(switched["latent_frame"], 3 * chunk, "{switched}");
        // Latent frame 3k is video frame 1 + 4 (3k - 1).
        let frame = 12 * chunk - 3;
        assert_eq!(switched["frame"], frame, "{switched}");
        assert_eq!(switched["segment"], 1, "{switched}");
        let status = demo.status();
        assert_eq!(status["run"]["switches"][0]["frame"], frame, "{status}");
        let done = collect(&mut v, &["done", "failed"], &mut got).await;
        assert_eq!(done["type"], "done", "{done}");
        let report = &done["report"];
        assert_eq!(report["frames"], 81, "{report}");
        let mut record = switched.clone();
        record.as_object_mut().unwrap().remove("type");
        record.as_object_mut().unwrap().remove("run");
        assert_eq!(report["switches"], json!([record]), "{report}");
        assert!(events(&got, "switch_dropped").is_empty());
        // The first frame after the `switched` event is the switch frame; frames kept their
        // order.
        let at = got
            .iter()
            .position(|r| matches!(r, Received::Event(e) if e["type"] == "switched"))
            .unwrap();
        let next = got[at..].iter().find_map(|r| match r {
            Received::Frame { index, .. } => Some(*index as usize),
            _ => None,
        });
        assert_eq!(next, Some(frame));
        let run = report["run"].as_u64().unwrap() as u32;
        let frames = frames_of(&got, run);
        let indices: Vec<u32> = frames.iter().map(|(i, _)| *i).collect();
        assert_eq!(
            indices,
            (0..81).collect::<Vec<u32>>(),
            "in order, none lost"
        );
        let file = demo.video_file(report["video"].as_str().unwrap());
        assert_eq!(mp4_decoded_frames(&file), 81, "every frame is in the MP4");
        // Another viewer saw the same switch.
        let (seen, _) = watcher.until(&["switched"]).await;
        assert_eq!(seen, switched);

        // The same run without the switch: identical before the switch frame, not after it.
        let mut plain = Vec::new();
        v.send(start(prompt, 21)).await;
        let done = collect(&mut v, &["done", "failed"], &mut plain).await;
        assert_eq!(done["type"], "done", "{done}");
        let reference = frames_of(&plain, done["report"]["run"].as_u64().unwrap() as u32);
        assert_eq!(reference.len(), 81);
        for i in 0..frame {
            assert!(
                frames[i].1 == reference[i].1,
                "frame {i} changed before the switch"
            );
        }
        let changed = (frame..81)
            .filter(|&i| frames[i].1 != reference[i].1)
            .count();
        assert!(
            changed > (81 - frame) / 2,
            "only {changed} of the {} frames after the switch follow the new prompt",
            81 - frame
        );
    });
}

#[test]
fn endless_reaches_the_run_and_stop_keeps_every_frame() {
    let demo = Demo::start_built("demo-endless", 32, 48, |b| b.kv_window(6, 0), |_| {});
    demo.runtime.block_on(async {
        let mut v = Viewer::connect(demo.addr).await;
        let mut got = Vec::new();
        let mut request = start("waves on black rocks", 3);
        request["endless"] = json!(true);
        v.send(request).await;
        let started = collect(&mut v, &["started", "rejected"], &mut got).await;
        assert_eq!(started["type"], "started", "{started}");
        assert_eq!(started["endless"], true, "{started}");
        assert_eq!(started["total_frames"], Value::Null, "{started}");
        assert_eq!(started["chunks"], Value::Null, "{started}");
        let progress = collect(&mut v, &["progress"], &mut got).await;
        assert_eq!(progress["total_frames"], Value::Null, "{progress}");
        v.send(json!({"type": "stop"})).await;
        let end = collect(&mut v, &["stopped", "done", "failed"], &mut got).await;
        // An endless run ends only on Stop (or at the RoPE table, hundreds of chunks later).
        assert_eq!(end["type"], "stopped", "{end}");
        let report = &end["report"];
        assert_eq!(report["endless"], true, "{report}");
        assert_eq!(report["total_frames"], Value::Null, "{report}");
        let made = report["frames"].as_u64().unwrap() as usize;
        let run = report["run"].as_u64().unwrap() as u32;
        let indices: Vec<u32> = frames_of(&got, run).iter().map(|(i, _)| *i).collect();
        assert_eq!(indices, (0..made as u32).collect::<Vec<u32>>(), "{report}");
        let file = demo.video_file(report["video"].as_str().unwrap());
        assert_eq!(mp4_decoded_frames(&file), made, "every frame is in the MP4");
    });
    let status = demo.status();
    assert_eq!(status["endless_available"], true, "{status}");
    assert_eq!(status["last"]["endless"], true, "{status}");
}

/// Endless end to end: the run goes past what `frames` asks for and ends only on Stop.
#[test]
fn an_endless_run_goes_on_until_stop() {
    let demo = Demo::start_built("demo-endless-long", 32, 48, |b| b.kv_window(6, 0), |_| {});
    demo.runtime.block_on(async {
        let mut v = Viewer::connect(demo.addr).await;
        let mut got = Vec::new();
        let mut request = start("waves on black rocks", 3);
        request["endless"] = json!(true);
        v.send(request).await;
        // Three chunks where one was asked for.
        loop {
            let e = collect(&mut v, &["progress", "done", "failed"], &mut got).await;
            assert_eq!(e["type"], "progress", "{e}");
            if e["chunk"] == 2 {
                break;
            }
        }
        // The busy message says it has no end.
        let mut other = Viewer::connect(demo.addr).await;
        other.send(start("a second run", 3)).await;
        let busy = other.next_event().await;
        assert_eq!(busy["type"], "busy", "{busy}");
        let message = busy["message"].as_str().unwrap();
        assert!(message.contains("endless"), "{message}");
        v.send(json!({"type": "stop"})).await;
        let end = collect(&mut v, &["stopped", "done", "failed"], &mut got).await;
        assert_eq!(end["type"], "stopped", "{end}");
        let made = end["report"]["frames"].as_u64().unwrap() as usize;
        assert!(made >= 33, "{end}");
        let file = demo.video_file(end["report"]["video"].as_str().unwrap());
        assert_eq!(mp4_decoded_frames(&file), made);
    });
}
