//! Headless Chromium (Debian's `chromium`) driven over the DevTools protocol:
//! one browser per test file, started as root with `--no-sandbox`, pages
//! opened and typed into with timestamped key events. A key's hold is
//! carried in the CDP `timestamp` of its keyDown and keyUp, so the page's
//! `event.timeStamp` sees exactly the hold the test chose, with no waiting
//! (../shared/reference/recipes/chromium-keys measured ±0.1 ms).
//!
//! ```text
//!  Chromium::launch ─► chromium --headless --remote-debugging-port=0 --user-data-dir=TMP
//!                      ─► TMP/DevToolsActivePort ─► websocket (browser target)
//!  Browser::page     ─► Target.attachToTarget (flatten) ─► Page/Runtime enabled
//!  Page::type_with_holds: Input.dispatchKeyEvent keyDown(t) / keyUp(t + hold)
//! ```

// DevTools messages are JSON read by key; a missing key reads as null.
#![allow(clippy::indexing_slicing)]

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

/// Debian's binary itself: the /usr/bin/chromium wrapper only adds flags and noise.
pub const CHROMIUM: &str = "/usr/lib/chromium/chromium";

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>;

/// A running headless Chromium and its DevTools connection.
pub struct Browser {
    child: std::process::Child,
    _profile: tempfile::TempDir,
    out: mpsc::UnboundedSender<Message>,
    pending: Pending,
    events: Arc<Mutex<Vec<Value>>>,
    next_id: AtomicU64,
}

/// One tab, attached with a flat session.
pub struct Page<'b> {
    browser: &'b Browser,
    session: String,
}

impl Browser {
    /// Starts Chromium with `extra` flags and connects to it.
    pub async fn launch(extra: &[&str]) -> Browser {
        let profile = tempfile::Builder::new().prefix("chromium").tempdir().unwrap();
        let child = std::process::Command::new(CHROMIUM)
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check"])
            .args(["--disable-extensions", "--disable-background-networking", "--remote-debugging-port=0"])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(["--window-size=640,720", "--hide-scrollbars", "--site-per-process"])
            .args(extra)
            .arg("about:blank")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(profile.path().join("chromium.log")).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("{CHROMIUM}: {e} (install Debian's chromium: scripts/install-deps.sh)"));
        let port_file = profile.path().join("DevToolsActivePort");
        let deadline = Instant::now() + Duration::from_secs(30);
        let (port, path) = loop {
            let text = std::fs::read_to_string(&port_file).unwrap_or_default();
            let mut lines = text.lines();
            if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                break (port.to_string(), path.to_string());
            }
            assert!(Instant::now() < deadline, "chromium did not open its DevTools port");
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}{path}")).await.unwrap();
        let (mut sink, mut stream) = ws.split();
        let (out, mut rx) = mpsc::unbounded_channel::<Message>();
        tokio::spawn(async move {
            while let Some(m) = rx.recv().await {
                if sink.send(m).await.is_err() {
                    break;
                }
            }
        });
        let pending: Pending = Arc::default();
        let events: Arc<Mutex<Vec<Value>>> = Arc::default();
        let (p, ev) = (pending.clone(), events.clone());
        tokio::spawn(async move {
            while let Some(Ok(Message::Text(text))) = stream.next().await {
                let msg: Value = serde_json::from_str(&text).unwrap_or_default();
                match msg["id"].as_u64() {
                    Some(id) => {
                        if let Some(tx) = p.lock().unwrap().remove(&id) {
                            let _ = tx.send(msg);
                        }
                    }
                    None => ev.lock().unwrap().push(msg),
                }
            }
        });
        Browser { child, _profile: profile, out, pending, events, next_id: AtomicU64::new(1) }
    }

    /// Sends one command (to `session`, if any) and returns its result; panics on a CDP error.
    pub async fn send(&self, session: Option<&str>, method: &str, params: Value) -> Value {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        let (tx, rx) = oneshot::channel();
        self.pending.lock().unwrap().insert(id, tx);
        self.out.send(Message::Text(msg.to_string().into())).unwrap();
        let reply =
            tokio::time::timeout(Duration::from_secs(60), rx).await.unwrap_or_else(|_| panic!("{method}: no answer"));
        let reply = reply.unwrap();
        assert!(reply.get("error").is_none(), "{method}: {}", reply["error"]);
        reply["result"].clone()
    }

    /// Every event received so far named `method` (for `session`, if given).
    pub fn events(&self, method: &str, session: Option<&str>) -> Vec<Value> {
        let all = self.events.lock().unwrap();
        all.iter()
            .filter(|e| e["method"] == method && session.is_none_or(|s| e["sessionId"] == s))
            .map(|e| e["params"].clone())
            .collect()
    }

    /// A new tab on about:blank, attached, with Page and Runtime events on.
    pub async fn page(&self) -> Page<'_> {
        let target = self.send(None, "Target.createTarget", json!({ "url": "about:blank" })).await;
        let attached =
            self.send(None, "Target.attachToTarget", json!({ "targetId": target["targetId"], "flatten": true })).await;
        let session = attached["sessionId"].as_str().unwrap().to_string();
        self.send(Some(&session), "Page.enable", json!({})).await;
        self.send(Some(&session), "Runtime.enable", json!({})).await;
        Page { browser: self, session }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser").field("pid", &self.child.id()).finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Page<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Page").field("session", &self.session).finish_non_exhaustive()
    }
}

/// CDP key parameters for one character (US layout for letters and digits).
fn key_params(c: char) -> Value {
    let code = if c.is_ascii_alphabetic() {
        format!("Key{}", c.to_ascii_uppercase())
    } else if c.is_ascii_digit() {
        format!("Digit{c}")
    } else {
        String::new()
    };
    let vk = if c.is_ascii_alphanumeric() { u32::from(c.to_ascii_uppercase()) } else { 0 };
    json!({ "key": c.to_string(), "code": code, "windowsVirtualKeyCode": vk, "text": c.to_string() })
}

impl Page<'_> {
    /// This tab's session id.
    pub fn session(&self) -> &str {
        &self.session
    }

    /// A command to this tab.
    pub async fn send(&self, method: &str, params: Value) -> Value {
        self.browser.send(Some(&self.session), method, params).await
    }

    /// Navigates and waits for the load event.
    pub async fn goto(&self, url: &str) {
        let before = self.browser.events("Page.loadEventFired", Some(&self.session)).len();
        self.send("Page.navigate", json!({ "url": url })).await;
        self.wait(|| self.browser.events("Page.loadEventFired", Some(&self.session)).len() > before, url).await;
        // The load event counted may be the previous page's: wait for this one.
        let url = json!(url);
        self.wait_for(&format!("document.readyState === 'complete' && location.href === new URL({url}).href")).await;
    }

    async fn wait(&self, done: impl Fn() -> bool, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Evaluates `expr` (awaiting a promise) and returns its JSON value.
    pub async fn eval(&self, expr: &str) -> Value {
        let r = self
            .send("Runtime.evaluate", json!({ "expression": expr, "returnByValue": true, "awaitPromise": true }))
            .await;
        assert!(r.get("exceptionDetails").is_none(), "{expr}: {}", r["exceptionDetails"]);
        r["result"]["value"].clone()
    }

    /// Waits until `expr` is truthy; returns its value.
    pub async fn wait_for(&self, expr: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let v = self.eval(expr).await;
            if !(v.is_null() || v == json!(false) || v == json!("")) {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {expr}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Focuses the element with `id`.
    pub async fn focus(&self, id: &str) {
        self.eval(&format!("document.getElementById({}).focus()", json!(id))).await;
    }

    /// Types `text` into the focused element, key `i` held `holds_ms[i]` ms
    /// (stamped event times: no waiting). Characters without a hold are typed
    /// with 80 ms.
    pub async fn type_with_holds(&self, text: &str, holds_ms: &[u32]) {
        let hold = |i: usize| f64::from(holds_ms.get(i).copied().unwrap_or(80)) / 1000.0;
        // Stamped from now on: event.timeStamp counts from the page's time
        // origin, so an earlier stamp would read as 0. The typing then takes
        // its stamped time in real time too, so the next one does not start
        // further ahead of the clock (the recipe's stamps were ≤ 6 s ahead).
        let span: f64 = (0..text.chars().count()).map(|i| hold(i) + 0.06).sum();
        let mut t = dirbroker::clock::now().unix_timestamp_nanos() as f64 / 1e9;
        let done = Instant::now() + Duration::from_secs_f64(span);
        for (i, c) in text.chars().enumerate() {
            let hold = hold(i);
            let down_at = t;
            t += hold + 0.06;
            let p = key_params(c);
            let mut down = p.clone();
            down["type"] = json!("keyDown");
            down["timestamp"] = json!(down_at);
            self.send("Input.dispatchKeyEvent", down).await;
            let mut up = p;
            up.as_object_mut().unwrap().remove("text");
            up["type"] = json!("keyUp");
            up["timestamp"] = json!(down_at + hold);
            self.send("Input.dispatchKeyEvent", up).await;
        }
        tokio::time::sleep_until(done.into()).await;
    }

    /// Presses a named key (Enter, Tab, Backspace) once.
    pub async fn press(&self, key: &str, code: &str, vk: u32) {
        let p = json!({ "key": key, "code": code, "windowsVirtualKeyCode": vk });
        let mut down = p.clone();
        down["type"] = json!("rawKeyDown");
        if key == "Enter" {
            down["text"] = json!("\r");
            down["type"] = json!("keyDown");
        }
        self.send("Input.dispatchKeyEvent", down).await;
        let mut up = p;
        up["type"] = json!("keyUp");
        self.send("Input.dispatchKeyEvent", up).await;
    }

    /// A PNG of the whole page to `path`.
    pub async fn screenshot(&self, path: &Path) {
        use base64::Engine as _;
        let shot = self.send("Page.captureScreenshot", json!({ "format": "png", "captureBeyondViewport": true })).await;
        let png = base64::engine::general_purpose::STANDARD.decode(shot["data"].as_str().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }

    /// The frame tree (Page.getFrameTree).
    pub async fn frame_tree(&self) -> Value {
        self.send("Page.getFrameTree", json!({})).await["frameTree"].clone()
    }
}
