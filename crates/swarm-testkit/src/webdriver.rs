//! A real browser in a test: Debian's headless `chromium` driven through
//! `chromedriver` over WebDriver (W3C), with a minimal client (JSON over
//! HTTP/1.1 on loopback, std only). Nothing is downloaded at test time.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

use crate::proc::{Proc, free_port, loopback, wait_listening};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "chromedriver";
/// The W3C key of an element reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
/// Each WebDriver call's bound.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// A chromedriver process and one browser session, both ended on drop.
pub struct Browser {
    driver: Proc,
    addr: SocketAddr,
    session: String,
}

impl Browser {
    /// Starts chromedriver and a headless chromium (`width`x`height`),
    /// its profile under `profile_dir`.
    pub fn start(logs: &Path, profile_dir: &Path, width: u32, height: u32) -> Browser {
        let port = free_port();
        let mut cmd = Command::new(CHROMEDRIVER);
        cmd.arg(format!("--port={port}"));
        let driver = Proc::spawn("chromedriver", cmd, logs);
        let addr = loopback(port);
        assert!(
            wait_listening(addr, Duration::from_secs(30)),
            "chromedriver listens\n{}",
            driver.log_tail()
        );
        let mut b = Browser {
            driver,
            addr,
            session: String::new(),
        };
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu",
                    "--disable-dev-shm-usage", "--no-first-run",
                    format!("--window-size={width},{height}"),
                    format!("--user-data-dir={}", profile_dir.display()),
                ]
            }
        }}});
        let v = b.call("POST", "/session", Some(caps));
        b.session = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}\n{}", b.driver.log_tail()))
            .to_string();
        b
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.raw(method, path, body)
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"))
    }

    fn raw(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut s =
            TcpStream::connect_timeout(&self.addr, CALL_TIMEOUT).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(CALL_TIMEOUT)).ok();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
        // Read the head, then exactly Content-Length bytes (chromedriver
        // keeps the connection open whatever the request says).
        let mut resp = Vec::new();
        let mut buf = [0u8; 64 * 1024];
        let body_start = loop {
            let n = s.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                break resp.len();
            }
            resp.extend_from_slice(&buf[..n]);
            if let Some(i) = resp.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let head = String::from_utf8_lossy(&resp[..body_start]).to_ascii_lowercase();
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok());
        if let Some(length) = length {
            while resp.len() < body_start + length {
                let n = s.read(&mut buf).map_err(|e| e.to_string())?;
                if n == 0 {
                    break;
                }
                resp.extend_from_slice(&buf[..n]);
            }
        } else {
            s.read_to_end(&mut resp).map_err(|e| e.to_string())?;
        }
        let text = String::from_utf8_lossy(&resp);
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or(("", ""));
        let body = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(body)
        } else {
            body.to_string()
        };
        let v: Value = serde_json::from_str(&body)
            .map_err(|e| format!("chromedriver answered {text:.500}: {e}"))?;
        Ok(v.get("value").cloned().unwrap_or(v))
    }

    fn session_call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let p = format!("/session/{}{path}", self.session);
        let v = self.call(method, &p, body);
        if let Some(err) = v.get("error") {
            panic!("WebDriver {method} {path}: {err}: {}", v["message"]);
        }
        v
    }

    pub fn goto(&self, url: &str) {
        self.session_call("POST", "/url", Some(json!({"url": url})));
    }

    /// The first element matching the CSS selector, if any.
    pub fn find(&self, css: &str) -> Option<String> {
        let p = format!("/session/{}/element", self.session);
        let v = self.call(
            "POST",
            &p,
            Some(json!({"using": "css selector", "value": css})),
        );
        let id = v
            .get(ELEMENT_KEY)
            .and_then(Value::as_str)
            .map(str::to_string);
        if id.is_none() && v.get("error").is_none_or(|e| e != "no such element") {
            panic!("WebDriver find {css}: {v}");
        }
        id
    }

    pub fn click(&self, element: &str) {
        self.session_call(
            "POST",
            &format!("/element/{element}/click"),
            Some(json!({})),
        );
    }

    pub fn send_keys(&self, element: &str, text: &str) {
        self.session_call(
            "POST",
            &format!("/element/{element}/value"),
            Some(json!({"text": text})),
        );
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page.
    pub fn execute(&self, script: &str, args: Vec<Value>) -> Value {
        self.session_call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
    }

    /// A PNG of the window.
    pub fn screenshot(&self) -> Vec<u8> {
        let v = self.session_call("GET", "/screenshot", None);
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .expect("a base64 screenshot")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let p = format!("/session/{}", self.session);
            let _ = self.raw("DELETE", &p, None);
        }
    }
}

/// An HTTP/1.1 chunked body, joined.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}
