//! Starts and stops real Roost processes for tests.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub const SHARED_SECRET: &str = "integration-test-secret";

/// A running Roost.
pub struct Server {
    child: Child,
    pub base: String,
    pub data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    pub http: reqwest::Client,
}

/// A Roost command with a clean environment: only the variables a test sets reach it.
pub fn roost_command(data_dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_roost"));
    for (key, _) in std::env::vars() {
        if key.starts_with("ROOST_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("ROOST_SERVER_NAME", "localhost")
        .env("ROOST_DATABASE__PATH", data_dir)
        .env("ROOST_DATABASE__CACHE_MB", "16")
        .env("ROOST_LISTENERS__CLIENT", "127.0.0.1:0")
        .env("ROOST_REGISTRATION__MODE", "open")
        .env("ROOST_REGISTRATION__SHARED_SECRET", SHARED_SECRET)
        .env("ROOST_LOG__LEVEL", "warn")
        .kill_on_drop(true);
    cmd
}

impl Server {
    /// Start with open registration on a fresh data dir.
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// Start on a fresh data dir with extra `ROOST_*` variables.
    pub async fn start_with(env: &[(&str, &str)]) -> Self {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().to_path_buf();
        let mut server = Self::start_in(&dir, env).await;
        server._tmp = Some(tmp);
        server
    }

    /// Start on an existing data dir (for restarts).
    pub async fn start_in(dir: &Path, env: &[(&str, &str)]) -> Self {
        let mut cmd = roost_command(dir);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.arg("serve")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("spawn roost");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let base = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await.expect("read stdout") {
                if let Some(url) = line.strip_prefix("listening client ") {
                    return url.to_owned();
                }
            }
            panic!("roost exited before listening");
        })
        .await
        .expect("roost did not start within 60 s");
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self {
            child,
            base,
            data_dir: dir.to_path_buf(),
            _tmp: None,
            http: reqwest::Client::new(),
        }
    }

    /// Kill the process without warning (like a crash) and wait for it to be gone. The data
    /// dir is kept and returned with its owner so the test can start again on it.
    pub async fn crash(mut self) -> (PathBuf, Option<tempfile::TempDir>) {
        self.child.kill().await.expect("kill roost");
        (self.data_dir.clone(), self._tmp.take())
    }

    /// Send a request; returns status and JSON body (`Null` if the body is not JSON).
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request");
        let status = res.status();
        let bytes = res.bytes().await.expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Send raw bytes as the body.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{}", self.base, path))
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.expect("request");
        let status = res.status();
        let bytes = res.bytes().await.expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Join `room` as the holder of `token`; the response's status.
    pub async fn join(&self, token: &str, room: &str) -> StatusCode {
        let path = format!("/_matrix/client/v3/join/{room}");
        let body = Some(json!({}));
        self.request(Method::POST, &path, Some(token), body).await.0
    }

    /// Register through the dummy UIA flow; returns (user_id, access_token, device_id).
    pub async fn register(&self, name: &str, password: &str) -> (String, String, String) {
        let body = json!({ "username": name, "password": password });
        let (status, first) = self
            .request(
                Method::POST,
                "/_matrix/client/v3/register",
                None,
                Some(body.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{first}");
        let mut body = body;
        body["auth"] = json!({ "type": "m.login.dummy", "session": first["session"] });
        let (status, res) = self
            .request(
                Method::POST,
                "/_matrix/client/v3/register",
                None,
                Some(body),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{res}");
        (
            res["user_id"].as_str().unwrap().to_owned(),
            res["access_token"].as_str().unwrap().to_owned(),
            res["device_id"].as_str().unwrap().to_owned(),
        )
    }

    /// Password login; returns (status, body).
    pub async fn login(&self, user: &str, password: &str) -> (StatusCode, Value) {
        let body = json!({
            "type": "m.login.password",
            "identifier": { "type": "m.id.user", "user": user },
            "password": password,
        });
        self.request(Method::POST, "/_matrix/client/v3/login", None, Some(body))
            .await
    }
}

/// A unique name per call, so tests sharing nothing never collide.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}{}", uuid_like())
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{:x}{n}", t & 0xffff_ffff)
}

/// Assert a Matrix error: status and errcode.
#[track_caller]
pub fn assert_error(result: &(StatusCode, Value), status: StatusCode, errcode: &str) {
    assert_eq!(result.0, status, "body: {}", result.1);
    assert_eq!(result.1["errcode"], errcode, "body: {}", result.1);
}
