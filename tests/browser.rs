//! The web demo in a real browser: headless Chromium (Debian's `chromium`, which `.ci/run`
//! installs) loads the page from a server with the tiny models, the test types a prompt and
//! presses Start through the DevTools protocol, and checks that frames arrive and play, the
//! page shows completion, and the MP4 link serves the whole video; also the buttons' states,
//! a rejected start's message in the status, the fields' valid values, the fixed display size
//! and the per-chunk chart.
//!
//! Without a Chromium binary the test says so and passes, unless `SF_REQUIRE_BROWSER=1` (set
//! in CI) makes a missing browser a failure. `SF_CHROMIUM` points at another binary.

use crate::demo;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use demo::{Demo, mp4_decoded_frames};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

pub(crate) fn chromium() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("SF_CHROMIUM") {
        return Some(p.into());
    }
    [
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

/// The Chromium to test with; `None` (the test is skipped, and says so) where there is none,
/// unless `SF_REQUIRE_BROWSER=1` makes that a failure.
pub(crate) fn chromium_or_skip() -> Option<PathBuf> {
    let found = chromium();
    if found.is_none() {
        assert!(
            std::env::var("SF_REQUIRE_BROWSER").as_deref() != Ok("1"),
            "SF_REQUIRE_BROWSER=1 but no Chromium: apt-get install chromium, or set SF_CHROMIUM"
        );
        eprintln!("skipped: no Chromium (apt-get install chromium, or set SF_CHROMIUM)");
    }
    found
}

/// A headless Chromium with its DevTools port; killed on drop.
pub(crate) struct Browser {
    child: Child,
    profile: PathBuf,
    port: u16,
}

impl Browser {
    pub(crate) fn launch(binary: &PathBuf) -> Browser {
        // One profile per browser: the tests of this binary run in parallel.
        static LAUNCHED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = LAUNCHED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let profile =
            std::env::temp_dir().join(format!("sf-chromium-profile-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).unwrap();
        let child = Command::new(binary)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--window-size=1280,1000",
                "--remote-debugging-port=0",
                "--remote-allow-origins=*",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        // Chromium writes the port it picked to DevToolsActivePort in the profile.
        let deadline = Instant::now() + Duration::from_secs(60);
        let port = loop {
            if let Ok(text) = std::fs::read_to_string(profile.join("DevToolsActivePort"))
                && let Some(Ok(port)) = text.lines().next().map(str::parse::<u16>)
            {
                break port;
            }
            assert!(Instant::now() < deadline, "Chromium did not open DevTools");
            std::thread::sleep(Duration::from_millis(100));
        };
        Browser {
            child,
            profile,
            port,
        }
    }

    /// The DevTools WebSocket of the first page.
    pub(crate) fn page_socket(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = ureq::get(&format!("http://127.0.0.1:{}/json/list", self.port)).call() {
                let targets: Value = r.into_json().unwrap();
                if let Some(url) = targets
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|t| t["type"] == "page")
                    .and_then(|t| t["webSocketDebuggerUrl"].as_str())
                {
                    return url.to_string();
                }
            }
            assert!(Instant::now() < deadline, "Chromium has no page target");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// A DevTools protocol session on one page.
pub(crate) struct Page {
    pub(crate) ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    pub(crate) next_id: u64,
}

impl Page {
    pub(crate) async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let request = json!({"id": id, "method": method, "params": params});
        self.ws
            .send(Message::Text(request.to_string().into()))
            .await
            .unwrap();
        loop {
            let message = tokio::time::timeout(Duration::from_secs(60), self.ws.next())
                .await
                .expect("DevTools did not answer")
                .unwrap()
                .unwrap();
            if let Message::Text(t) = message {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["id"] == id {
                    assert!(v.get("error").is_none(), "{method}: {v}");
                    return v["result"].clone();
                }
            }
        }
    }

    /// Evaluates a JavaScript expression and returns its JSON value.
    pub(crate) async fn eval(&mut self, expression: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true}),
            )
            .await;
        assert!(r.get("exceptionDetails").is_none(), "{expression}: {r}");
        r["result"]["value"].clone()
    }

    /// Polls `expression` until it is `true`.
    pub(crate) async fn wait_for(&mut self, expression: &str, timeout: Duration, what: &str) {
        let deadline = Instant::now() + timeout;
        while self.eval(expression).await != json!(true) {
            if Instant::now() >= deadline {
                // Optional chaining: the page may still be loading (no such elements yet).
                let state = self
                    .eval("document.body?.dataset.state + ': ' + document.getElementById('state')?.textContent + ' | ' + document.getElementById('log')?.textContent")
                    .await;
                panic!("{what}: page shows {state}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Records every change of the page's state with the buttons' states and the status text.
const RECORDER: &str = "window.sfSeen = []; new MutationObserver(() => sfSeen.push({\
    state: document.body.dataset.state,\
    start: document.getElementById('start').disabled,\
    stop: document.getElementById('stop').disabled,\
    text: document.getElementById('state').textContent}))\
    .observe(document.body, {attributes: true, attributeFilter: ['data-state']}); true";

/// The display size of the canvas, `[width, height]` in CSS pixels.
const CANVAS_SIZE: &str = "(() => { const r = document.getElementById('video').getBoundingClientRect();\
    return [r.width, r.height]; })()";

#[test]
fn browser_starts_a_generation_and_plays_every_frame() {
    let Some(binary) = chromium_or_skip() else {
        return;
    };
    let demo = Demo::start("demo-browser", 32, 48);
    let browser = Browser::launch(&binary);
    let socket = browser.page_socket();
    let url = format!("http://{}/", demo.addr);
    let (report, before, seen) = demo.runtime.block_on(async {
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
        let device = page
            .eval("document.getElementById('device').textContent")
            .await;
        assert!(device.as_str().unwrap().contains("cpu"), "{device}");
        // Before any run: Start enabled, Stop disabled; the fields show the valid values.
        let form = page
            .eval(
                "(() => { const f = document.getElementById('frames');\
                 return {start: document.getElementById('start').disabled,\
                 stop: document.getElementById('stop').disabled, min: f.min, step: f.step,\
                 max: f.max, value: f.value, shift: document.getElementById('shift').value,\
                 stopColor: getComputedStyle(document.getElementById('stop')).backgroundColor}; })()",
            )
            .await;
        assert_eq!(form["start"], false, "{form}");
        assert_eq!(form["stop"], true, "{form}");
        assert_eq!(form["step"], "3", "one chunk: {form}");
        assert_eq!(form["min"], "3", "{form}");
        assert_eq!(form["max"], "21", "{form}");
        assert_eq!(form["value"], "3", "{form}");
        assert_eq!(form["shift"], "5", "{form}");
        assert_ne!(form["stopColor"], "rgb(187, 51, 51)", "a disabled Stop is not red: {form}");
        let before = page.eval(CANVAS_SIZE).await;
        assert_eq!(before[0], 640.0, "fixed display width: {before}");
        page.eval(RECORDER).await;
        // A start the pipeline refuses: its reason replaces the status.
        page.eval(
            "document.getElementById('prompt').value = 'a paper boat on a rainy street';\
             document.getElementById('frames').value = '4';\
             document.getElementById('start').click(); true",
        )
        .await;
        page.wait_for(
            "document.body.dataset.state === 'rejected'",
            Duration::from_secs(30),
            "the rejected start shows",
        )
        .await;
        let status = page
            .eval("document.getElementById('state').textContent")
            .await;
        assert!(
            status.as_str().unwrap().contains("multiple of 3"),
            "{status}"
        );
        page.eval(
            "document.getElementById('frames').value = '9';\
             document.getElementById('seed').value = '11';\
             document.getElementById('fps').value = '30';\
             document.getElementById('shift').value = '8';\
             document.getElementById('decoder').value = 'taehv';\
             document.getElementById('start').click(); true",
        )
        .await;
        page.wait_for(
            "document.body.dataset.state === 'done' && window.sfStats.framesShown === 33",
            Duration::from_secs(300),
            "generation completes and every frame plays",
        )
        .await;
        let seen = page
            .eval(
                "JSON.stringify({received: sfStats.framesReceived, shown: sfStats.framesShown,\
                 progress: document.getElementById('progress').value,\
                 result: document.getElementById('result').textContent,\
                 link: document.getElementById('video-link').getAttribute('href'),\
                 stopDisabled: document.getElementById('stop').disabled,\
                 startDisabled: document.getElementById('start').disabled,\
                 chart: sfStats.chart.length,\
                 lines: ['denoise-line', 'decode-line', 'memory-line']\
                   .map((id) => document.getElementById(id).points.numberOfItems),\
                 canvas: (() => { const r = document.getElementById('video').getBoundingClientRect();\
                   return [r.width, r.height]; })()})",
            )
            .await;
        let report = serde_json::from_str::<Value>(seen.as_str().unwrap()).unwrap();
        // The connection drops: both buttons off and the status says so; then it reconnects.
        page.eval("window.sfSocket.close(); true").await;
        page.wait_for(
            "sfSeen.some((s) => s.state === 'disconnected') && window.sfReady === true\
             && !document.getElementById('start').disabled",
            Duration::from_secs(30),
            "the page reconnects",
        )
        .await;
        let seen = page.eval("JSON.stringify(sfSeen)").await;
        let seen = serde_json::from_str::<Value>(seen.as_str().unwrap()).unwrap();
        (report, before, seen)
    });
    assert_eq!(report["received"], 33, "{report}");
    assert_eq!(report["progress"], 33, "{report}");
    assert_eq!(report["stopDisabled"], true, "{report}");
    assert_eq!(report["startDisabled"], false, "{report}");
    assert_eq!(report["chart"], 3, "one point per chunk: {report}");
    assert_eq!(report["lines"], json!([3, 3, 3]), "{report}");
    assert_eq!(report["canvas"], before, "no layout jump: {report}");
    assert!(
        report["result"]
            .as_str()
            .unwrap()
            .starts_with("done: 33/33 frames"),
        "{report}"
    );
    let states = seen.as_array().unwrap();
    let first = |state: &str| {
        states
            .iter()
            .find(|s| s["state"] == state)
            .unwrap_or_else(|| panic!("no {state} in {seen}"))
    };
    let running = first("running");
    assert_eq!(
        (&running["start"], &running["stop"]),
        (&json!(true), &json!(false)),
        "{seen}"
    );
    let rejected = first("rejected");
    assert_eq!(
        (&rejected["start"], &rejected["stop"]),
        (&json!(false), &json!(true)),
        "{seen}"
    );
    let lost = first("disconnected");
    assert_eq!(
        (&lost["start"], &lost["stop"]),
        (&json!(true), &json!(true)),
        "{seen}"
    );
    assert!(
        lost["text"].as_str().unwrap().contains("connection lost"),
        "{seen}"
    );
    let link = report["link"].as_str().unwrap();
    let (code, body) = demo.get(link);
    assert_eq!(code, 200);
    assert_eq!(&body[4..8], b"ftyp");
    assert_eq!(mp4_decoded_frames(&demo.video_file(link)), 33);
    drop(browser);
}
