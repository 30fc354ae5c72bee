//! The web demo's prompt switch in headless Chromium (the browser of `tests/browser.rs`): the
//! Switch button's states, the Endless toggle refused without a rolling KV window, then a run
//! switched twice mid-stream, once with Enter in the prompt and once with the button: frames
//! keep coming in order, every one plays, the MP4 has all of them and the timeline under the
//! video shows the three prompts from the frames the server reported.

use crate::browser::{Browser, Page, chromium_or_skip};
use crate::demo;

use std::time::Duration;

use demo::{Demo, mp4_decoded_frames};
use serde_json::{Value, json};

/// Sets the prompt field (as typing would; the page reads it on Start and Switch).
fn set_prompt(text: &str) -> String {
    format!(
        "document.getElementById('prompt').value = {}; true",
        json!(text)
    )
}

/// Presses Enter in the focused element through the DevTools input events.
async fn press_enter(page: &mut Page) {
    for kind in ["keyDown", "keyUp"] {
        let mut event = json!({"type": kind, "key": "Enter", "code": "Enter",
            "windowsVirtualKeyCode": 13, "nativeVirtualKeyCode": 13});
        if kind == "keyDown" {
            event["text"] = json!("\r");
        }
        page.call("Input.dispatchKeyEvent", event).await;
    }
}

const SWITCH_DISABLED: &str = "document.getElementById('switch').disabled";

#[test]
fn browser_switches_the_prompt_mid_run_and_the_timeline_shows_it() {
    let Some(binary) = chromium_or_skip() else {
        return;
    };
    // 256x384 makes each chunk long enough for two switches to land mid-run.
    let demo = Demo::start("demo-browser-switch", 256, 384);
    let browser = Browser::launch(&binary);
    let socket = browser.page_socket();
    let url = format!("http://{}/", demo.addr);
    let prompts = [
        "a lighthouse in a storm",
        "a quiet beach at noon",
        "a city street at night",
    ];
    let seen = demo.runtime.block_on(async {
        let (ws, _) = tokio_tungstenite::connect_async(socket.as_str())
            .await
            .unwrap();
        let mut page = Page { ws, next_id: 0 };
        page.call("Page.navigate", json!({"url": url})).await;
        page.wait_for(
            "window.sfReady === true",
            Duration::from_secs(60),
            "page ready",
        )
        .await;
        assert_eq!(page.eval(SWITCH_DISABLED).await, true, "no run: no Switch");
        let hint = page
            .eval("document.getElementById('endless-hint').textContent")
            .await;
        assert!(
            hint.as_str().unwrap().contains("rolling KV window"),
            "{hint}"
        );
        // Endless is sent with the start, and refused by these models with the reason.
        page.eval(&set_prompt(prompts[0])).await;
        page.eval(
            "document.getElementById('endless').checked = true;\
             document.getElementById('start').click(); true",
        )
        .await;
        page.wait_for(
            "document.body.dataset.state === 'rejected'",
            Duration::from_secs(30),
            "the endless start is refused",
        )
        .await;
        let status = page
            .eval("document.getElementById('state').textContent")
            .await;
        assert!(
            status
                .as_str()
                .unwrap()
                .contains("Endless needs a rolling KV window"),
            "{status}"
        );
        page.eval(
            "document.getElementById('endless').checked = false;\
             document.getElementById('frames').value = '21';\
             document.getElementById('fps').value = '60';\
             document.getElementById('start').click(); true",
        )
        .await;
        page.wait_for(
            "window.sfStats.chart.length >= 1",
            Duration::from_secs(300),
            "the first chunk arrives",
        )
        .await;
        assert_eq!(page.eval(SWITCH_DISABLED).await, false, "a run: Switch");
        // Enter in the prompt switches (and adds no new line).
        page.eval(&set_prompt(prompts[1])).await;
        page.eval("document.getElementById('prompt').focus(); true")
            .await;
        press_enter(&mut page).await;
        let value = page.eval("document.getElementById('prompt').value").await;
        assert_eq!(value, prompts[1], "Enter switched instead of typing");
        page.wait_for(
            "window.sfStats.switches.length === 1",
            Duration::from_secs(300),
            "the first switch is applied",
        )
        .await;
        page.eval(&set_prompt(prompts[2])).await;
        page.eval("document.getElementById('switch').click(); true")
            .await;
        page.wait_for(
            "window.sfStats.switches.length === 2",
            Duration::from_secs(300),
            "the second switch is applied",
        )
        .await;
        page.wait_for(
            "document.body.dataset.state === 'done' && window.sfStats.framesShown === 81",
            Duration::from_secs(300),
            "the run completes and every frame plays",
        )
        .await;
        let seen = page
            .eval(
                "JSON.stringify({received: sfStats.framesReceived, shown: sfStats.framesShown,\
                 outOfOrder: sfStats.outOfOrder, shownOutOfOrder: sfStats.shownOutOfOrder,\
                 switched: sfStats.switches.map((s) => [s.prompt, s.frame]),\
                 segments: [...document.querySelectorAll('#timeline .segment')].map((b) =>\
                   ({prompt: b.dataset.prompt, frame: Number(b.dataset.frame),\
                     left: parseFloat(b.style.left), width: parseFloat(b.style.width),\
                     text: b.textContent})),\
                 cursor: parseFloat(document.getElementById('timeline-cursor').style.left),\
                 switchDisabled: document.getElementById('switch').disabled,\
                 result: document.getElementById('result').textContent,\
                 link: document.getElementById('video-link').getAttribute('href')})",
            )
            .await;
        serde_json::from_str::<Value>(seen.as_str().unwrap()).unwrap()
    });
    assert_eq!(seen["received"], 81, "{seen}");
    assert_eq!(seen["shown"], 81, "{seen}");
    assert_eq!(seen["outOfOrder"], 0, "frames came in order: {seen}");
    assert_eq!(seen["shownOutOfOrder"], 0, "frames played in order: {seen}");
    assert_eq!(seen["switchDisabled"], true, "no run: no Switch: {seen}");
    assert!(
        seen["result"]
            .as_str()
            .unwrap()
            .starts_with("done: 81/81 frames, 3 prompts"),
        "{seen}"
    );
    // The server's record of the switches is what the page shows.
    let report = demo.status()["last"].clone();
    let switches = report["switches"].as_array().unwrap();
    assert_eq!(switches.len(), 2, "{report}");
    let frames: Vec<u64> = switches
        .iter()
        .map(|s| s["frame"].as_u64().unwrap())
        .collect();
    assert!(
        0 < frames[0] && frames[0] < frames[1] && frames[1] < 81,
        "{report}"
    );
    assert_eq!(
        seen["switched"],
        json!([[prompts[1], frames[0]], [prompts[2], frames[1]]]),
        "{seen}"
    );
    let segments = seen["segments"].as_array().unwrap();
    assert_eq!(segments.len(), 3, "{seen}");
    let starts = [0, frames[0], frames[1], 81];
    for (i, segment) in segments.iter().enumerate() {
        assert_eq!(segment["prompt"], prompts[i], "{seen}");
        assert_eq!(segment["frame"], starts[i], "{seen}");
        assert!(
            segment["text"].as_str().unwrap().contains(prompts[i]),
            "{seen}"
        );
        let left = 100.0 * starts[i] as f64 / 81.0;
        let width = 100.0 * (starts[i + 1] - starts[i]) as f64 / 81.0;
        let near = |a: &Value, b: f64| (a.as_f64().unwrap() - b).abs() < 0.05;
        assert!(
            near(&segment["left"], left),
            "segment {i} at {left}%: {seen}"
        );
        assert!(
            near(&segment["width"], width),
            "segment {i} {width}% wide: {seen}"
        );
    }
    assert_eq!(
        seen["cursor"], 100.0,
        "the cursor is at the last frame: {seen}"
    );
    let link = seen["link"].as_str().unwrap();
    assert_eq!(mp4_decoded_frames(&demo.video_file(link)), 81);
    drop(browser);
}
