//! loadgen: a Matrix client-server load generator (the Rust sibling of mxbench).
//!
//! Drives any homeserver (Roost, Synapse, ...) over the Client-Server API only, with the
//! scenarios and figure names of `mxbench.py`, but cheap enough per request to reach many
//! thousands of concurrent receivers:
//!
//! - `send`: one user, one room, N messages at each concurrency level.
//! - `fanout`: R receivers long-poll `/sync` in one public room; one sender sends M messages
//!   (optionally at `--rate` msgs/s) from a thread of its own; delivery latency from just
//!   before the sender's PUT to the arrival of the sync response holding the event at the
//!   receiver's socket (kernel receive stamps, `loadgen/arrival.rs`), and, as `processed_ms`,
//!   to the moment the receiver had parsed it (which adds the load generator's own queueing).
//! - `fanout-ws`: the same, with receivers on Roost's WebSocket sync
//!   (`/_matrix/client/unstable/org.roost.ws/sync`, see docs/websocket.md).
//!
//! ```sh
//! cargo bench --bench loadgen -- --url http://127.0.0.1:8008 --scenario fanout \
//!     --receivers 1000 --messages 100 --rate 10 --shared-secret S --json-out /tmp/lg.jsonl
//! ```
//!
//! One JSON line per scenario on stdout (also appended to `--json-out`), progress and a
//! human-readable summary on stderr.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[path = "loadgen/arrival.rs"]
mod arrival;
#[path = "loadgen/raw_http.rs"]
mod raw_http;
#[path = "loadgen/scan.rs"]
mod scan;
#[path = "loadgen/ws_client.rs"]
mod ws_client;
#[path = "loadgen/ws_loop.rs"]
mod ws_loop;

use clap::Parser;
use futures_util::{StreamExt as _, stream};
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use serde_json::{Value, json};
use sha1::Sha1;

/// mimalloc, as the server uses: glibc's malloc and free were a tenth of the machine's CPU
/// under fan-out, all of it load generator overhead.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PASSWORD: &str = "loadgen-Pa55word";
const CLIENT_API: &str = "/_matrix/client/v3";

#[derive(Parser, Debug, Clone)]
#[command(about = "Matrix homeserver load generator (client-server API only)")]
struct Args {
    /// Homeserver base URL.
    #[arg(long, default_value = "http://127.0.0.1:8008")]
    url: String,
    /// Comma list of scenarios, run in order: send, fanout, fanout-ws.
    #[arg(long, alias = "scenarios", default_value = "send,fanout")]
    scenario: String,
    /// Register through `/_synapse/admin/v1/register` with this shared secret (else UIA dummy).
    #[arg(long)]
    shared_secret: Option<String>,
    /// Concurrency of registration.
    #[arg(long, default_value_t = 16)]
    register_concurrency: usize,
    /// Concurrency of the other untimed setup steps (join, filter upload, initial sync).
    #[arg(long, default_value_t = 32)]
    setup_concurrency: usize,
    /// send: messages per concurrency level.
    #[arg(long, default_value_t = 300)]
    send_messages: usize,
    /// send: comma list of concurrency levels.
    #[arg(long, value_delimiter = ',', default_value = "1,10")]
    send_concurrency: Vec<usize>,
    /// send: warm-up messages before timing.
    #[arg(long, default_value_t = 10)]
    send_warmup: usize,
    /// send: padding added to each body.
    #[arg(long, default_value_t = 64)]
    body_bytes: usize,
    /// fanout: number of receivers.
    #[arg(long, alias = "fanout-receivers", default_value_t = 20)]
    receivers: usize,
    /// fanout: number of messages.
    #[arg(long, alias = "fanout-messages", default_value_t = 100)]
    messages: usize,
    /// fanout: sender rate cap in msgs/s (0 = back to back).
    #[arg(long, alias = "fanout-rate", default_value_t = 0.0)]
    rate: f64,
    /// fanout: other rooms each receiver is also in, where nothing is sent (a workspace user
    /// is in many channels; a sync is asked about all of them).
    #[arg(long, default_value_t = 0)]
    extra_rooms: usize,
    /// fanout: the sender types before each message, as chat clients do (typing starts half a
    /// send interval before the message and stops once it is sent: three stream writes per
    /// message; needs --rate).
    #[arg(long)]
    typing: bool,
    /// fanout: sender requests in flight.
    #[arg(long, default_value_t = 1)]
    fanout_send_concurrency: usize,
    /// fanout: seconds to let long-polls park once every receiver has started.
    #[arg(long, default_value_t = 1.0)]
    settle: f64,
    /// fanout: seconds to wait for deliveries after the last send.
    #[arg(long, default_value_t = 60.0)]
    fanout_timeout: f64,
    /// Long-poll timeout of /sync.
    #[arg(long, default_value_t = 30000)]
    sync_timeout_ms: u64,
    /// set_presence on /sync ('' = omit).
    #[arg(long, default_value = "offline")]
    set_presence: String,
    /// fanout-ws: ack every Nth response (1 = each; at most the server's window, 32): the
    /// rest are acknowledged by the next ack, or by one sent once the stream is quiet for
    /// `--ws-ack-idle-ms`.
    #[arg(long, default_value_t = 1)]
    ws_ack_every: usize,
    /// fanout-ws: threads reading the receivers' sockets (`loadgen/ws_loop.rs`).
    #[arg(long, default_value_t = 2)]
    ws_threads: usize,
    /// fanout-ws: a reading thread with no socket ready sleeps this long instead of waiting
    /// in epoll (0: it waits in epoll; see `loadgen/ws_loop.rs`).
    #[arg(long, default_value_t = 0)]
    ws_poll_pause_us: u64,
    /// fanout-ws: ack what is outstanding once no message came for this long.
    #[arg(long, default_value_t = 200)]
    ws_ack_idle_ms: u64,
    /// Receivers sharing one HTTP client (connection pool).
    #[arg(long, default_value_t = 100)]
    receivers_per_client: usize,
    /// Server PID: report its CPU and RSS.
    #[arg(long)]
    pid: Option<u32>,
    /// Label of the target in the JSON lines (default: the URL).
    #[arg(long)]
    label: Option<String>,
    /// Also append every JSON line to this file.
    #[arg(long)]
    json_out: Option<PathBuf>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

// ---------------------------------------------------------------------------------------------
// small helpers

/// How many responses Roost's WebSocket transport sends ahead of a client's acks
/// (docs/websocket.md).
const WS_WINDOW: usize = 32;

impl Args {
    /// `--ws-ack-every`, within what the server's window allows.
    fn ws_acks_every(&self) -> usize {
        self.ws_ack_every.clamp(1, WS_WINDOW)
    }
}

fn log(msg: impl AsRef<str>) {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
        % 86400;
    eprintln!(
        "[loadgen {:02}:{:02}:{:02}] {}",
        t / 3600,
        t / 60 % 60,
        t % 60,
        msg.as_ref()
    );
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Nearest-rank percentile of an ascending slice.
fn pct(sorted: &[f64], p: f64) -> f64 {
    let k = ((p / 100.0 * sorted.len() as f64).ceil() as usize).max(1);
    sorted[k.min(sorted.len()) - 1]
}

/// Latency summary in ms (input in ms), as mxbench's `stats_ms`.
fn stats_ms(v: &[f64]) -> Value {
    if v.is_empty() {
        return json!({"n": 0});
    }
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let r = |x: f64| (x * 100.0).round() / 100.0;
    json!({
        "n": v.len(),
        "mean": r(v.iter().sum::<f64>() / v.len() as f64),
        "min": r(v[0]),
        "p50": r(pct(&v, 50.0)),
        "p90": r(pct(&v, 90.0)),
        "p99": r(pct(&v, 99.0)),
        "max": r(v[v.len() - 1]),
    })
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn raise_nofile_limit() -> u64 {
    // SAFETY: plain libc calls on a stack-allocated struct.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur
    }
}

// ---------------------------------------------------------------------------------------------
// /proc monitoring (client CPU, server CPU + RSS, whole-host busy time)

fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if v > 0 { v as f64 } else { 100.0 }
}

fn proc_cpu_s(pid: &str) -> Option<f64> {
    let data = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &data[data.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let u: f64 = f.get(11)?.parse().ok()?;
    let s: f64 = f.get(12)?.parse().ok()?;
    Some((u + s) / clk_tck())
}

fn proc_status_kib(pid: u32, key: &str) -> Option<u64> {
    let data = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    data.lines()
        .find(|l| l.starts_with(key) && l[key.len()..].starts_with(':'))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
}

fn host_busy_s() -> Option<f64> {
    let data = std::fs::read_to_string("/proc/stat").ok()?;
    let v: Vec<f64> = data
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    if v.len() < 8 {
        return None;
    }
    let idle = v[3] + v[4];
    Some((v[..8].iter().sum::<f64>() - idle - v[7]) / clk_tck())
}

#[derive(Clone, Copy)]
struct Snap {
    t: Instant,
    client_cpu: Option<f64>,
    server_cpu: Option<f64>,
    host_busy: Option<f64>,
}

fn snapshot(pid: Option<u32>) -> Snap {
    Snap {
        t: Instant::now(),
        client_cpu: proc_cpu_s("self"),
        server_cpu: pid.and_then(|p| proc_cpu_s(&p.to_string())),
        host_busy: host_busy_s(),
    }
}

fn window(a: &Snap, b: &Snap, pid: Option<u32>, out: &mut serde_json::Map<String, Value>) {
    let wall = (b.t - a.t).as_secs_f64();
    out.insert("wall_s".into(), json!(round2(wall)));
    let mut used = 0.0;
    if let (Some(x), Some(y)) = (a.client_cpu, b.client_cpu) {
        used += y - x;
        out.insert("client_cpu_s".into(), json!(round2(y - x)));
        out.insert(
            "client_cpu_pct".into(),
            json!(round2(100.0 * (y - x) / wall)),
        );
    }
    if let (Some(x), Some(y)) = (a.server_cpu, b.server_cpu) {
        used += y - x;
        out.insert("server_cpu_s".into(), json!(round2(y - x)));
        out.insert(
            "server_cpu_pct".into(),
            json!(round2(100.0 * (y - x) / wall)),
        );
    }
    if let Some(p) = pid {
        if let Some(k) = proc_status_kib(p, "VmRSS") {
            out.insert("server_rss_mib".into(), json!(round2(k as f64 / 1024.0)));
        }
        if let Some(k) = proc_status_kib(p, "VmHWM") {
            out.insert("server_vmhwm_mib".into(), json!(round2(k as f64 / 1024.0)));
        }
    }
    if let (Some(x), Some(y)) = (a.host_busy, b.host_busy) {
        out.insert("host_busy_cores".into(), json!(round2((y - x) / wall)));
        out.insert(
            "foreign_cpu_pct".into(),
            json!(round2(100.0 * ((y - x) - used) / wall)),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Matrix client

#[derive(Default)]
struct Counters(Mutex<BTreeMap<String, u64>>);

impl Counters {
    fn add(&self, key: impl Into<String>) {
        *self.0.lock().unwrap().entry(key.into()).or_default() += 1;
    }
    /// Add counts taken from another set of counters.
    fn merge(&self, counts: BTreeMap<String, u64>) {
        let mut own = self.0.lock().unwrap();
        for (key, n) in counts {
            *own.entry(key).or_default() += n;
        }
    }
    fn take(&self) -> BTreeMap<String, u64> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

struct Api {
    base: String,
    /// Several clients (connection pools), picked by index: one pool per ~100 receivers.
    clients: Vec<reqwest::Client>,
    counters: Counters,
    timeout: Duration,
}

fn new_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .http1_only()
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(20))
        .timeout(timeout)
        .build()
        .expect("build reqwest client")
}

impl Api {
    fn client(&self, i: usize) -> &reqwest::Client {
        &self.clients[i % self.clients.len()]
    }

    fn ensure_clients(&mut self, n: usize) {
        while self.clients.len() < n.max(1) {
            self.clients.push(new_client(self.timeout));
        }
    }

    /// One JSON request, 429s retried. Returns (status, body) for statuses in `ok`.
    async fn call(
        &self,
        ci: usize,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        ok: &[u16],
    ) -> Result<(u16, Value), String> {
        let url = format!("{}{}", self.base, path);
        for attempt in 0..6 {
            let mut rb = self.client(ci).request(method.clone(), &url);
            if let Some(t) = token {
                rb = rb.bearer_auth(t);
            }
            if let Some(b) = body {
                rb = rb.json(b);
            }
            let resp = match rb.send().await {
                Ok(r) => r,
                Err(e) => {
                    self.counters.add("transport");
                    if attempt < 5 {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                    return Err(format!("{method} {path}: {e}"));
                }
            };
            let status = resp.status().as_u16();
            let bytes = resp.bytes().await.map_err(|e| format!("{path}: {e}"))?;
            let data: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            if status == 429 && !ok.contains(&429) && attempt < 5 {
                self.counters.add("429:M_LIMIT_EXCEEDED(retried)");
                let ms = data["retry_after_ms"]
                    .as_u64()
                    .unwrap_or(500)
                    .clamp(10, 5000);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                continue;
            }
            if !ok.contains(&status) {
                let key = match data["errcode"].as_str() {
                    Some(c) => format!("{status}:{c}"),
                    None => status.to_string(),
                };
                self.counters.add(key);
                let text = String::from_utf8_lossy(&bytes);
                return Err(format!(
                    "{method} {path} -> HTTP {status} {}",
                    &text[..text.len().min(300)]
                ));
            }
            return Ok((status, data));
        }
        unreachable!()
    }

    async fn register(
        &self,
        ci: usize,
        username: &str,
        secret: Option<&str>,
    ) -> Result<User, String> {
        use reqwest::Method;
        if let Some(secret) = secret {
            let path = "/_synapse/admin/v1/register";
            let (_, d) = self.call(ci, Method::GET, path, None, None, &[200]).await?;
            let nonce = d["nonce"].as_str().ok_or("no nonce")?.to_owned();
            let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("any key");
            mac.update(nonce.as_bytes());
            mac.update(b"\0");
            mac.update(username.as_bytes());
            mac.update(b"\0");
            mac.update(PASSWORD.as_bytes());
            mac.update(b"\0notadmin");
            let mac = hex::encode(mac.finalize().into_bytes());
            let body = json!({"nonce": nonce, "username": username, "password": PASSWORD,
                              "admin": false, "mac": mac});
            let (_, d) = self
                .call(ci, Method::POST, path, None, Some(&body), &[200])
                .await?;
            return User::from_json(&d);
        }
        let path = format!("{CLIENT_API}/register");
        let mut body = json!({"username": username, "password": PASSWORD,
                              "initial_device_display_name": "loadgen"});
        let (st, d) = self
            .call(ci, Method::POST, &path, None, Some(&body), &[200, 401])
            .await?;
        if st == 200 {
            return User::from_json(&d);
        }
        let mut auth = json!({"type": "m.login.dummy"});
        if let Some(s) = d["session"].as_str() {
            auth["session"] = json!(s);
        }
        body["auth"] = auth;
        let (_, d) = self
            .call(ci, Method::POST, &path, None, Some(&body), &[200])
            .await?;
        User::from_json(&d)
    }
}

struct User {
    user_id: String,
    token: String,
    txn_prefix: String,
    txn: AtomicU64,
}

impl User {
    fn from_json(d: &Value) -> Result<User, String> {
        let user_id = d["user_id"].as_str().ok_or("no user_id")?.to_owned();
        let token = d["access_token"]
            .as_str()
            .ok_or("no access_token")?
            .to_owned();
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        Ok(User {
            txn_prefix: format!("lg{n:x}{}", enc(&user_id).len()),
            user_id,
            token,
            txn: AtomicU64::new(0),
        })
    }

    async fn create_room(&self, api: &Api, name: &str) -> Result<String, String> {
        let body = json!({"preset": "public_chat", "name": name});
        let (_, d) = api
            .call(
                0,
                reqwest::Method::POST,
                &format!("{CLIENT_API}/createRoom"),
                Some(&self.token),
                Some(&body),
                &[200],
            )
            .await?;
        Ok(d["room_id"].as_str().ok_or("no room_id")?.to_owned())
    }

    async fn join(&self, api: &Api, ci: usize, room: &str) -> Result<(), String> {
        api.call(
            ci,
            reqwest::Method::POST,
            &format!("{CLIENT_API}/join/{}", enc(room)),
            Some(&self.token),
            Some(&json!({})),
            &[200],
        )
        .await
        .map(|_| ())
    }

    async fn send(&self, api: &Api, ci: usize, room: &str, content: &Value) -> Result<(), String> {
        let txn = format!(
            "{}-{}",
            self.txn_prefix,
            self.txn.fetch_add(1, Ordering::Relaxed)
        );
        api.call(
            ci,
            reqwest::Method::PUT,
            &format!(
                "{CLIENT_API}/rooms/{}/send/m.room.message/{}",
                enc(room),
                enc(&txn)
            ),
            Some(&self.token),
            Some(content),
            &[200],
        )
        .await
        .map(|_| ())
    }

    async fn typing(&self, api: &Api, room: &str, typing: bool) -> Result<(), String> {
        api.call(
            0,
            reqwest::Method::PUT,
            &format!(
                "{CLIENT_API}/rooms/{}/typing/{}",
                enc(room),
                enc(&self.user_id)
            ),
            Some(&self.token),
            Some(&json!({"typing": typing, "timeout": 30000})),
            &[200],
        )
        .await
        .map(|_| ())
    }

    async fn upload_filter(&self, api: &Api, ci: usize, filter: &Value) -> Result<String, String> {
        let (_, d) = api
            .call(
                ci,
                reqwest::Method::POST,
                &format!("{CLIENT_API}/user/{}/filter", enc(&self.user_id)),
                Some(&self.token),
                Some(filter),
                &[200],
            )
            .await?;
        Ok(d["filter_id"].as_str().ok_or("no filter_id")?.to_owned())
    }
}

// Only the parts of a /sync response the receivers look at (everything else is skipped by
// serde), borrowed from the response where no escape forces a copy: thousands of receivers
// parse a response each per message, and allocating every key and string was most of it.
#[derive(Deserialize)]
struct SyncResp<'a> {
    #[serde(borrow)]
    next_batch: Cow<'a, str>,
    #[serde(default, borrow)]
    rooms: Option<Rooms<'a>>,
}
#[derive(Deserialize, Default)]
struct Rooms<'a> {
    #[serde(default, borrow, deserialize_with = "map_entries")]
    join: Vec<(Cow<'a, str>, JoinedRoom<'a>)>,
}

/// A JSON object as its entries, in order (no map built for the one room a receiver is in).
fn map_entries<'de, D, K, V>(deserializer: D) -> Result<Vec<(K, V)>, D::Error>
where
    D: serde::Deserializer<'de>,
    K: Deserialize<'de>,
    V: Deserialize<'de>,
{
    struct Entries<K, V>(std::marker::PhantomData<(K, V)>);
    impl<'de, K: Deserialize<'de>, V: Deserialize<'de>> serde::de::Visitor<'de> for Entries<K, V> {
        type Value = Vec<(K, V)>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(entry) = map.next_entry()? {
                out.push(entry);
            }
            Ok(out)
        }
    }
    deserializer.deserialize_map(Entries(std::marker::PhantomData))
}
#[derive(Deserialize)]
struct JoinedRoom<'a> {
    #[serde(default, borrow)]
    timeline: Option<Timeline<'a>>,
}
#[derive(Deserialize)]
struct Timeline<'a> {
    #[serde(default, borrow)]
    events: Vec<Ev<'a>>,
    #[serde(default)]
    limited: bool,
}
#[derive(Deserialize)]
struct Ev<'a> {
    #[serde(default, borrow)]
    content: Option<EvContent<'a>>,
}
#[derive(Deserialize)]
struct EvContent<'a> {
    #[serde(default, borrow)]
    mxbench_run: Option<Cow<'a, str>>,
    #[serde(default)]
    mxbench_seq: Option<u64>,
}
#[derive(Deserialize)]
struct WsMsg<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    body: Option<SyncResp<'a>>,
}

// ---------------------------------------------------------------------------------------------
// benchmark

struct Bench {
    args: Args,
    api: Api,
    run_id: String,
    uid: AtomicUsize,
    out: Option<std::fs::File>,
}

impl Bench {
    fn uname(&self, role: &str) -> String {
        let n = self.uid.fetch_add(1, Ordering::Relaxed);
        format!("lg{}{role}{n}", self.run_id)
    }

    async fn new_users(&self, n: usize, role: &str) -> Result<Vec<User>, String> {
        let names: Vec<String> = (0..n).map(|_| self.uname(role)).collect();
        let done = AtomicUsize::new(0);
        let t0 = Instant::now();
        let secret = self.args.shared_secret.as_deref();
        let res: Vec<Result<User, String>> = stream::iter(names.iter().enumerate())
            .map(|(i, name)| {
                let done = &done;
                async move {
                    let r = self.api.register(i, name, secret).await;
                    let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                    if d.is_multiple_of(1000) {
                        log(format!(
                            "registered {d}/{n} ({:.0} users/s)",
                            d as f64 / t0.elapsed().as_secs_f64()
                        ));
                    }
                    r
                }
            })
            .buffered(self.args.register_concurrency.max(1))
            .collect()
            .await;
        let users = res.into_iter().collect::<Result<Vec<_>, _>>()?;
        log(format!(
            "registered {n} users in {:.1} s ({})",
            t0.elapsed().as_secs_f64(),
            if secret.is_some() {
                "shared-secret admin API"
            } else {
                "UIA m.login.dummy"
            }
        ));
        Ok(users)
    }

    fn emit(
        &mut self,
        scenario: &str,
        a: &Snap,
        b: &Snap,
        fields: Value,
        ops: Option<usize>,
    ) -> Value {
        let mut out = serde_json::Map::new();
        out.insert("scenario".into(), json!(scenario));
        out.insert(
            "target".into(),
            json!(self.args.label.clone().unwrap_or(self.args.url.clone())),
        );
        out.insert("url".into(), json!(self.args.url));
        out.insert("tool".into(), json!("loadgen.rs"));
        out.insert("run_id".into(), json!(self.run_id));
        if let Value::Object(f) = fields {
            out.extend(f);
        }
        window(a, b, self.args.pid, &mut out);
        if let (Some(ops), Some(s)) = (ops, out.get("server_cpu_s").and_then(Value::as_f64))
            && ops > 0
        {
            out.insert(
                "server_cpu_ms_per_op".into(),
                json!(round2(1000.0 * s / ops as f64)),
            );
        }
        out.insert("http_errors".into(), json!(self.api.counters.take()));
        let cpu = out.get("client_cpu_pct").and_then(Value::as_f64);
        out.insert(
            "client_bound_warning".into(),
            json!(cpu.is_some_and(|c| c >= 85.0)),
        );
        let v = Value::Object(out);
        let line = v.to_string();
        println!("{line}");
        let _ = std::io::stdout().flush();
        if let Some(f) = &mut self.out {
            let _ = writeln!(f, "{line}");
        }
        v
    }

    async fn sc_send(&mut self) -> Result<(), String> {
        let u = self.new_users(1, "s").await?.remove(0);
        let room = u.create_room(&self.api, "loadgen send").await?;
        for i in 0..self.args.send_warmup {
            u.send(
                &self.api,
                0,
                &room,
                &json!({"msgtype": "m.text", "body": format!("warmup {i}")}),
            )
            .await?;
        }
        for conc in self.args.send_concurrency.clone() {
            let m = self.args.send_messages;
            log(format!("send: {m} messages, concurrency {conc}"));
            let pad = "x".repeat(self.args.body_bytes);
            let next = AtomicUsize::new(0);
            let lat = Mutex::new(Vec::with_capacity(m));
            let a = snapshot(self.args.pid);
            let workers = (0..conc.max(1)).map(|w| {
                let (next, lat, u, room, pad, api) = (&next, &lat, &u, &room, &pad, &self.api);
                async move {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= m {
                            return Ok::<(), String>(());
                        }
                        let c = json!({"msgtype": "m.text", "body": format!("bench message {i} {pad}")});
                        let t = Instant::now();
                        u.send(api, w, room, &c).await?;
                        lat.lock()
                            .unwrap()
                            .push(t.elapsed().as_secs_f64() * 1000.0);
                    }
                }
            });
            futures_util::future::try_join_all(workers).await?;
            let b = snapshot(self.args.pid);
            let wall = (b.t - a.t).as_secs_f64();
            let lat = lat.into_inner().unwrap();
            let r = self.emit(
                "send",
                &a,
                &b,
                json!({"messages": m, "concurrency": conc,
                       "msgs_per_s": round2(m as f64 / wall), "latency_ms": stats_ms(&lat)}),
                Some(m),
            );
            log(format!(
                "SUMMARY send c={conc}: {} msgs/s, p50 {} ms, p99 {} ms, client CPU {}%, server CPU {}%",
                r["msgs_per_s"],
                r["latency_ms"]["p50"],
                r["latency_ms"]["p99"],
                r["client_cpu_pct"],
                r.get("server_cpu_pct").unwrap_or(&Value::Null)
            ));
        }
        Ok(())
    }

    async fn sc_fanout(&mut self, ws: bool) -> Result<(), String> {
        let (k, m) = (self.args.receivers, self.args.messages);
        let scenario = if ws { "fanout-ws" } else { "fanout" };
        self.api
            .ensure_clients(k.div_ceil(self.args.receivers_per_client.max(1)) + 1);
        log(format!(
            "{scenario}: setup {k} receivers + 1 sender ({} HTTP clients)",
            self.api.clients.len()
        ));
        let mut users = self.new_users(k + 1, "f").await?;
        let sender = users.remove(0);
        let receivers = users;
        let room = sender.create_room(&self.api, "loadgen fanout").await?;
        let conc = self.args.setup_concurrency.max(1);
        let t0 = Instant::now();
        let api = &self.api;
        let mut joined = vec![room.clone()];
        for n in 0..self.args.extra_rooms {
            joined.push(
                sender
                    .create_room(api, &format!("loadgen quiet {n}"))
                    .await?,
            );
        }
        for each in &joined {
            stream::iter(receivers.iter().enumerate())
                .map(|(i, r)| r.join(api, i + 1, each))
                .buffer_unordered(conc)
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .collect::<Result<Vec<_>, _>>()?;
        }
        log(format!(
            "{scenario}: {k} receivers joined {} room(s) in {:.1} s",
            1 + self.args.extra_rooms,
            t0.elapsed().as_secs_f64()
        ));
        let flt = json!({"room": {"timeline": {"limit": m + 50}}});
        let fids: Vec<String> = stream::iter(receivers.iter().enumerate())
            .map(|(i, r)| r.upload_filter(api, i + 1, &flt))
            .buffered(conc)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?;
        // Since tokens from an initial sync that leaves out the room state (with many
        // receivers, the full member list per receiver would dominate setup); the room's
        // timeline from here on is what the receivers' own filter then gives.
        let setup_filter = enc(
            &json!({"room": {"state": {"types": []}, "timeline": {"limit": 0},
                     "ephemeral": {"types": []}, "account_data": {"types": []}},
                    "presence": {"types": []}, "account_data": {"types": []}})
            .to_string(),
        );
        let presence = if self.args.set_presence.is_empty() {
            String::new()
        } else {
            format!("&set_presence={}", enc(&self.args.set_presence))
        };
        let t1 = Instant::now();
        let sinces: Vec<String> = stream::iter(receivers.iter().enumerate())
            .map(|(i, r)| {
                // The receivers' presence from their first sync on: a setup sync without it
                // would bring them all online (the server default) and make the first
                // messages carry a presence storm.
                let path = format!("{CLIENT_API}/sync?timeout=0&filter={setup_filter}{presence}");
                async move {
                    let (_, d) = api
                        .call(
                            i + 1,
                            reqwest::Method::GET,
                            &path,
                            Some(&r.token),
                            None,
                            &[200],
                        )
                        .await?;
                    d["next_batch"]
                        .as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| "initial sync: no next_batch".to_owned())
                }
            })
            .buffered(conc)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?;
        log(format!(
            "{scenario}: filters + initial syncs in {:.1} s",
            t1.elapsed().as_secs_f64()
        ));

        let ctx = Arc::new(FanCtx {
            base: Instant::now(),
            base_realtime_ns: arrival::realtime_ns(),
            room: room.clone(),
            tag: format!("fan-{}", self.run_id),
            m,
            t_send: (0..m).map(|_| AtomicU64::new(0)).collect(),
            worst_us: (0..m).map(|_| AtomicU64::new(0)).collect(),
            late: (0..m).map(|_| AtomicU64::new(0)).collect(),
            delivery: Mutex::new(Vec::with_capacity(k * m)),
            processed: Mutex::new(Vec::with_capacity(k * m)),
            last_delivery: AtomicU64::new(0),
            started: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            sync_responses: AtomicU64::new(0),
            limited: AtomicU64::new(0),
            sync_errors: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let mut tasks = Vec::with_capacity(k);
        let loops = ws.then(|| {
            let acks = AckPolicy {
                every: self.args.ws_acks_every(),
                idle: Duration::from_millis(self.args.ws_ack_idle_ms),
            };
            let pause = Duration::from_micros(self.args.ws_poll_pause_us);
            Arc::new(ws_loop::Loops::start(
                self.args.ws_threads,
                &ctx,
                acks,
                pause,
            ))
        });
        for (i, ((r, fid), since)) in receivers.iter().zip(&fids).zip(sinces).enumerate() {
            let ctx = ctx.clone();
            let token = r.token.clone();
            if ws {
                // Plain ws:// only: the receivers stamp arrivals on their own sockets.
                let authority = raw_http::http_authority(&self.args.url)
                    .ok_or("fanout-ws needs an http:// URL")?;
                let path = format!(
                    "/_matrix/client/unstable/org.roost.ws/sync?filter={}{presence}",
                    enc(fid)
                );
                let loops = Arc::clone(loops.as_ref().expect("loops for fanout-ws"));
                tasks.push(tokio::spawn(ws_receiver(
                    ctx, loops, authority, path, token, since,
                )));
            } else {
                let path = format!(
                    "{CLIENT_API}/sync?filter={}&timeout={}{presence}",
                    enc(fid),
                    self.args.sync_timeout_ms
                );
                match raw_http::http_authority(&self.args.url) {
                    Some(authority) => {
                        tasks.push(tokio::spawn(raw_receiver(
                            ctx, authority, path, token, since,
                        )));
                    }
                    None => {
                        let url = format!("{}{path}", self.args.url.trim_end_matches('/'));
                        let client = self.api.client(i + 1).clone();
                        tasks.push(tokio::spawn(http_receiver(ctx, client, url, token, since)));
                    }
                }
            }
        }
        // every receiver has sent its first long-poll / opened its socket, then settle
        let t2 = Instant::now();
        while ctx.started.load(Ordering::Relaxed) < k && t2.elapsed() < Duration::from_secs(120) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        log(format!(
            "{scenario}: {}/{k} receivers started in {:.1} s; settling {} s",
            ctx.started.load(Ordering::Relaxed),
            t2.elapsed().as_secs_f64(),
            self.args.settle
        ));
        tokio::time::sleep(Duration::from_secs_f64(self.args.settle)).await;
        let pre_errors = ctx.sync_errors.load(Ordering::Relaxed);

        log(format!(
            "{scenario}: sending {m} messages (concurrency {}, rate {}/s) to {k} receivers",
            self.args.fanout_send_concurrency,
            if self.args.rate > 0.0 {
                self.args.rate.to_string()
            } else {
                "max".into()
            }
        ));
        let a = snapshot(self.args.pid);
        // The sender is another client: it runs on a thread and runtime of its own, so its
        // requests go out on time however busy the receivers' runtime is.
        let sending = SendPlan {
            api: Api {
                base: self.api.base.clone(),
                clients: vec![new_client(self.api.timeout)],
                counters: Counters::default(),
                timeout: self.api.timeout,
            },
            ctx: Arc::clone(&ctx),
            sender,
            room: room.clone(),
            messages: m,
            rate: self.args.rate,
            typing: self.args.typing && self.args.rate > 0.0,
            concurrency: self.args.fanout_send_concurrency.max(1),
        };
        let rate = self.args.rate;
        let sent = tokio::task::spawn_blocking(move || sending.run_on_own_thread())
            .await
            .map_err(|e| format!("sender thread: {e}"))?;
        self.api.counters.merge(sent.http_errors);
        let (send_lat, send_lat_by_seq, send_res) =
            (sent.latency_ms, sent.latency_us_by_seq, sent.result);
        let t_sent = Instant::now();
        if let Err(e) = &send_res {
            log(format!("{scenario}: sender failed: {e}"));
        }
        let deadline = t_sent + Duration::from_secs_f64(self.args.fanout_timeout);
        let mut last_log = Instant::now();
        while ctx.done.load(Ordering::Relaxed) < k && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
            if last_log.elapsed() > Duration::from_secs(5) {
                last_log = Instant::now();
                log(format!(
                    "{scenario}: {}/{k} receivers complete, {} deliveries",
                    ctx.done.load(Ordering::Relaxed),
                    ctx.delivery.lock().unwrap().len()
                ));
            }
        }
        if ctx.done.load(Ordering::Relaxed) < k {
            log(format!("{scenario}: timeout waiting for deliveries"));
        }
        let b = snapshot(self.args.pid);
        ctx.stop.store(true, Ordering::Relaxed);
        for t in &tasks {
            t.abort();
        }
        for t in tasks {
            let _ = t.await;
        }
        if let Some(loops) = &loops {
            loops.join();
        }
        let delivery = std::mem::take(&mut *ctx.delivery.lock().unwrap());
        let processed = std::mem::take(&mut *ctx.processed.lock().unwrap());
        let delivered = delivery.len();
        let last = ctx.last_delivery.load(Ordering::Relaxed);
        let span = if last > 0 {
            (last as f64 / 1e9) - (a.t - ctx.base).as_secs_f64()
        } else {
            (b.t - a.t).as_secs_f64()
        };
        let responses = ctx.sync_responses.load(Ordering::Relaxed);
        let r = self.emit(
            scenario,
            &a,
            &b,
            json!({
                "receivers": k,
                "extra_rooms": self.args.extra_rooms,
                "typing": self.args.typing,
                "messages": m,
                "transport": if ws { "websocket" } else { "long-poll" },
                "ws_ack_every": if ws { json!(self.args.ws_acks_every()) } else { Value::Null },
                "ws_threads": if ws { json!(self.args.ws_threads) } else { Value::Null },
                "ws_poll_pause_us": if ws { json!(self.args.ws_poll_pause_us) } else { Value::Null },
                "send_concurrency": self.args.fanout_send_concurrency,
                "send_rate_limit": if rate > 0.0 { json!(rate) } else { Value::Null },
                "set_presence": if self.args.set_presence.is_empty() { "(server default)" } else { &self.args.set_presence },
                "expected_deliveries": k * m,
                "deliveries": delivered,
                "missing": k * m - delivered,
                "deliveries_per_s": if span > 0.0 { json!((delivered as f64 / span * 10.0).round() / 10.0) } else { Value::Null },
                "send_msgs_per_s": round2(send_lat.len() as f64 / (t_sent - a.t).as_secs_f64()),
                "send_latency_ms": stats_ms(&send_lat),
                "delivery_ms": stats_ms(&delivery),
                "processed_ms": stats_ms(&processed),
                "sync_responses": responses,
                "events_per_sync_response": if responses > 0 { json!(round2(delivered as f64 / responses as f64)) } else { Value::Null },
                "limited_timelines": ctx.limited.load(Ordering::Relaxed),
                "sync_errors": ctx.sync_errors.load(Ordering::Relaxed),
                "sync_errors_before_send": pre_errors,
                "ws_reconnects": ctx.reconnects.load(Ordering::Relaxed),
                "sender_error": send_res.err(),
            }),
            Some(delivered),
        );
        let d = &r["delivery_ms"];
        let p = &r["processed_ms"];
        let worst = largest_first(&ctx.worst_us);
        log(format!(
            "slowest messages (seq: worst delivery / send ms): {}",
            worst
                .iter()
                .take(8)
                .map(|(w, i)| format!(
                    "{i}: {:.0}/{:.0}",
                    *w as f64 / 1e3,
                    send_lat_by_seq[*i] as f64 / 1e3
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        let mut late = largest_first(&ctx.late);
        late.retain(|(n, _)| *n > 0);
        log(format!(
            "deliveries over {} ms: {} in {} messages; most (seq: count): {}",
            LATE_NS / 1_000_000,
            late.iter().map(|(n, _)| n).sum::<u64>(),
            late.len(),
            late.iter()
                .take(8)
                .map(|(n, i)| format!("{i}: {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        log(format!(
            "SUMMARY {scenario} {k} rx x {m} msgs: {delivered}/{} delivered ({} missing), {} deliveries/s, \
             latency p50 {} / p99 {} / max {} ms (processed: p50 {} / p99 {}), sender {} msgs/s, sync errors {}, \
             client CPU {}%, server CPU {}%, errors {}",
            k * m,
            r["missing"],
            r["deliveries_per_s"],
            d["p50"],
            d["p99"],
            d["max"],
            p["p50"],
            p["p99"],
            r["send_msgs_per_s"],
            r["sync_errors"],
            r["client_cpu_pct"],
            r.get("server_cpu_pct").unwrap_or(&Value::Null),
            r["http_errors"]
        ));
        Ok(())
    }
}

/// The fan-out's sender: `messages` messages into `room`, at most `rate` per second.
struct SendPlan {
    api: Api,
    ctx: Arc<FanCtx>,
    sender: User,
    room: String,
    messages: usize,
    rate: f64,
    /// Type before each message (see `--typing`).
    typing: bool,
    concurrency: usize,
}

/// What the sender saw.
struct Sent {
    latency_ms: Vec<f64>,
    latency_us_by_seq: Vec<u64>,
    http_errors: BTreeMap<String, u64>,
    result: Result<(), String>,
}

impl SendPlan {
    /// Send everything from a new thread with its own single-threaded runtime (blocks until
    /// done).
    fn run_on_own_thread(self) -> Sent {
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("sender runtime")
                .block_on(self.run())
        })
        .join()
        .unwrap_or_else(|_| Sent {
            latency_ms: Vec::new(),
            latency_us_by_seq: Vec::new(),
            http_errors: BTreeMap::new(),
            result: Err("sender thread panicked".into()),
        })
    }

    async fn run(self) -> Sent {
        let m = self.messages;
        let latency_ms = Mutex::new(Vec::with_capacity(m));
        let by_seq: Vec<AtomicU64> = (0..m).map(|_| AtomicU64::new(0)).collect();
        let next = AtomicUsize::new(0);
        let t_start = Instant::now();
        let workers = (0..self.concurrency).map(|_| {
            let (next, latency_ms, by_seq, this) = (&next, &latency_ms, &by_seq, &self);
            async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= m {
                        return Ok::<(), String>(());
                    }
                    if this.rate > 0.0 {
                        let due = t_start + Duration::from_secs_f64(i as f64 / this.rate);
                        if this.typing {
                            let lead = Duration::from_secs_f64(0.5 / this.rate);
                            tokio::time::sleep_until(due.checked_sub(lead).unwrap_or(due).into())
                                .await;
                            this.sender.typing(&this.api, &this.room, true).await?;
                        }
                        tokio::time::sleep_until(due.into()).await;
                    }
                    let ctx = &this.ctx;
                    let c = json!({"msgtype": "m.text", "body": format!("fanout {i}"),
                                   "mxbench_run": ctx.tag, "mxbench_seq": i});
                    let t = Instant::now();
                    ctx.t_send[i].store(ctx.ns(t), Ordering::Release);
                    this.sender.send(&this.api, 0, &this.room, &c).await?;
                    by_seq[i].store(t.elapsed().as_micros() as u64, Ordering::Relaxed);
                    latency_ms
                        .lock()
                        .unwrap()
                        .push(t.elapsed().as_secs_f64() * 1000.0);
                    if this.typing {
                        this.sender.typing(&this.api, &this.room, false).await?;
                    }
                }
            }
        });
        let result = futures_util::future::try_join_all(workers)
            .await
            .map(|_| ());
        Sent {
            latency_ms: latency_ms.into_inner().unwrap(),
            latency_us_by_seq: by_seq.into_iter().map(AtomicU64::into_inner).collect(),
            http_errors: self.api.counters.take(),
            result,
        }
    }
}

struct FanCtx {
    base: Instant,
    /// `base` on the kernel's receive-stamp clock (`CLOCK_REALTIME` ns).
    base_realtime_ns: u64,
    room: String,
    tag: String,
    m: usize,
    /// ns since `base` (+1) just before each message's PUT; 0 = not sent yet.
    t_send: Vec<AtomicU64>,
    /// per message: the slowest delivery, µs (to see whether stalls cluster)
    worst_us: Vec<AtomicU64>,
    /// per message: deliveries later than the 100 ms target (whether a p99 above it comes
    /// from all messages or a few)
    late: Vec<AtomicU64>,
    /// delivery latencies, ms: send to arrival at the receiver's socket
    delivery: Mutex<Vec<f64>>,
    /// send to the receiver having parsed the response, ms (adds the load generator's own
    /// queueing: see `loadgen/arrival.rs`)
    processed: Mutex<Vec<f64>>,
    last_delivery: AtomicU64,
    started: AtomicUsize,
    done: AtomicUsize,
    sync_responses: AtomicU64,
    limited: AtomicU64,
    sync_errors: AtomicU64,
    reconnects: AtomicU64,
    stop: AtomicBool,
}

impl FanCtx {
    fn ns(&self, t: Instant) -> u64 {
        (t - self.base).as_nanos() as u64 + 1
    }

    /// `base`-relative ns of a kernel receive stamp; `processed` (the moment the response was
    /// parsed) when there is none.
    fn arrival(&self, stamp: Option<u64>, processed: Instant) -> Arrival {
        let processed = self.ns(processed);
        let arrived = stamp
            .map(|ns| ns.saturating_sub(self.base_realtime_ns) + 1)
            .filter(|&a| a <= processed)
            .unwrap_or(processed);
        Arrival { arrived, processed }
    }

    /// Records the deliveries in one sync body; returns its next_batch.
    fn process(
        &self,
        resp: SyncResp<'_>,
        rx: Arrival,
        got: &mut Received,
        sink: &mut Deliveries,
    ) -> String {
        let next_batch = resp.next_batch.into_owned();
        let timeline = resp
            .rooms
            .and_then(|r| r.join.into_iter().find(|(id, _)| *id == self.room))
            .and_then(|(_, j)| j.timeline);
        let Some(tl) = timeline else {
            self.record(std::iter::empty(), false, rx, got, sink);
            return next_batch;
        };
        let seqs = tl.events.into_iter().filter_map(|ev| {
            let c = ev.content?;
            (c.mxbench_run.as_deref() == Some(self.tag.as_str()))
                .then_some(c.mxbench_seq)
                .flatten()
        });
        self.record(seqs, tl.limited, rx, got, sink);
        next_batch
    }

    /// Records one response's deliveries: the sequence numbers of the run's messages in it.
    /// Their latencies wait in `sink` until [`FanCtx::flush`].
    fn record(
        &self,
        seqs: impl Iterator<Item = u64>,
        limited: bool,
        rx: Arrival,
        got: &mut Received,
        sink: &mut Deliveries,
    ) {
        self.sync_responses.fetch_add(1, Ordering::Relaxed);
        if limited {
            self.limited.fetch_add(1, Ordering::Relaxed);
        }
        let mut any = false;
        for sq in seqs {
            let sq = sq as usize;
            if sq >= self.m || got.seen[sq] {
                continue;
            }
            let ts = self.t_send[sq].load(Ordering::Acquire);
            if ts == 0 {
                continue;
            }
            got.seen[sq] = true;
            got.n += 1;
            let ns = rx.arrived.saturating_sub(ts);
            self.worst_us[sq].fetch_max(ns / 1000, Ordering::Relaxed);
            if ns > LATE_NS {
                self.late[sq].fetch_add(1, Ordering::Relaxed);
            }
            sink.delivery.push(ns as f64 / 1e6);
            sink.processed
                .push(rx.processed.saturating_sub(ts) as f64 / 1e6);
            any = true;
        }
        if any {
            sink.last = sink.last.max(rx.processed);
        }
    }

    /// Hands the latencies recorded in `sink` to the run's figures.
    fn flush(&self, sink: &mut Deliveries) {
        if sink.delivery.is_empty() {
            return;
        }
        self.delivery.lock().unwrap().append(&mut sink.delivery);
        self.processed.lock().unwrap().append(&mut sink.processed);
        self.last_delivery.fetch_max(sink.last, Ordering::Relaxed);
    }
}

/// Per-message figures with their message's sequence number, largest first.
fn largest_first(per_message: &[AtomicU64]) -> Vec<(u64, usize)> {
    let mut figures: Vec<(u64, usize)> = per_message
        .iter()
        .enumerate()
        .map(|(seq, figure)| (figure.load(Ordering::Relaxed), seq))
        .collect();
    figures.sort_unstable_by(|a, b| b.cmp(a));
    figures
}

/// The delivery latency target (the sync issue's p99 ≤ 100 ms): later deliveries are counted
/// per message.
const LATE_NS: u64 = 100_000_000;

/// Which of the run's messages one receiver has had.
struct Received {
    seen: Vec<bool>,
    n: usize,
}

impl Received {
    fn new(m: usize) -> Self {
        Self {
            seen: vec![false; m],
            n: 0,
        }
    }
}

/// Latencies recorded and not yet handed to the [`FanCtx`] (one lock per response was
/// contended once a few threads did nothing else).
#[derive(Default)]
struct Deliveries {
    delivery: Vec<f64>,
    processed: Vec<f64>,
    /// The latest `processed` among them.
    last: u64,
}

/// When a response reached a receiver, as ns since [`FanCtx::base`].
#[derive(Clone, Copy)]
struct Arrival {
    /// Its last byte arrived at the socket.
    arrived: u64,
    /// The receiver had parsed it.
    processed: u64,
}

async fn http_receiver(
    ctx: Arc<FanCtx>,
    client: reqwest::Client,
    url: String,
    token: String,
    mut since: String,
) {
    let mut got = Received::new(ctx.m);
    let mut sink = Deliveries::default();
    let mut first = true;
    let auth = format!("Bearer {token}");
    while got.n < ctx.m && !ctx.stop.load(Ordering::Relaxed) {
        let req = client
            .get(format!("{url}&since={}", enc(&since)))
            .header(reqwest::header::AUTHORIZATION, &auth);
        if first {
            first = false;
            ctx.started.fetch_add(1, Ordering::Relaxed);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                ctx.sync_errors.fetch_add(1, Ordering::Relaxed);
                log_err_once(&ctx, &format!("sync transport error: {e}"));
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let status = resp.status().as_u16();
        let body = resp.bytes().await;
        let t_rx = ctx.arrival(None, Instant::now());
        let body = match (status, body) {
            (200, Ok(b)) => b,
            (s, b) => {
                ctx.sync_errors.fetch_add(1, Ordering::Relaxed);
                log_err_once(
                    &ctx,
                    &format!(
                        "sync HTTP {s}: {}",
                        b.map(|b| String::from_utf8_lossy(&b[..b.len().min(200)]).into_owned())
                            .unwrap_or_else(|e| e.to_string())
                    ),
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        match serde_json::from_slice::<SyncResp>(&body) {
            Ok(resp) => {
                since = ctx.process(resp, t_rx, &mut got, &mut sink);
                ctx.flush(&mut sink);
            }
            Err(e) => {
                ctx.sync_errors.fetch_add(1, Ordering::Relaxed);
                log_err_once(&ctx, &format!("bad sync body: {e}"));
            }
        }
    }
    ctx.done.fetch_add(1, Ordering::Relaxed);
}

/// [`http_receiver`] on [`raw_http::RawConn`]: one keep-alive connection per receiver.
async fn raw_receiver(
    ctx: Arc<FanCtx>,
    authority: String,
    path: String,
    token: String,
    mut since: String,
) {
    let mut got = Received::new(ctx.m);
    let mut sink = Deliveries::default();
    let mut first = true;
    let mut conn: Option<raw_http::RawConn> = None;
    while got.n < ctx.m && !ctx.stop.load(Ordering::Relaxed) {
        let request =
            raw_http::get_request(&authority, &format!("{path}&since={}", enc(&since)), &token);
        if first {
            first = false;
            ctx.started.fetch_add(1, Ordering::Relaxed);
        }
        let c = match conn.take() {
            Some(c) => c,
            None => match raw_http::RawConn::connect(&authority).await {
                Ok(c) => c,
                Err(e) => {
                    ctx.sync_errors.fetch_add(1, Ordering::Relaxed);
                    log_err_once(&ctx, &format!("sync connect: {e}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let c = conn.insert(c);
        let response = match c.roundtrip(&request).await {
            Ok(r) => r,
            Err(e) => {
                conn = None;
                ctx.sync_errors.fetch_add(1, Ordering::Relaxed);
                log_err_once(&ctx, &format!("sync transport error: {e}"));
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let t_rx = ctx.arrival(c.arrived_ns(), Instant::now());
        let body = c.body(&response);
        if response.status != 200 {
            ctx.sync_errors.fetch_add(1, Ordering::Relaxed);
            log_err_once(
                &ctx,
                &format!(
                    "sync HTTP {}: {}",
                    response.status,
                    String::from_utf8_lossy(&body[..body.len().min(200)])
                ),
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        } else {
            match serde_json::from_slice::<SyncResp>(body) {
                Ok(resp) => {
                    since = ctx.process(resp, t_rx, &mut got, &mut sink);
                    ctx.flush(&mut sink);
                }
                Err(e) => {
                    ctx.sync_errors.fetch_add(1, Ordering::Relaxed);
                    log_err_once(&ctx, &format!("bad sync body: {e}"));
                }
            }
        }
        if !c.reusable() {
            conn = None;
        }
    }
    ctx.done.fetch_add(1, Ordering::Relaxed);
}

static ERR_LOGGED: AtomicU64 = AtomicU64::new(0);

fn log_err_once(_ctx: &FanCtx, msg: &str) {
    // the first few errors verbatim, then only counts
    if ERR_LOGGED.fetch_add(1, Ordering::Relaxed) < 5 {
        log(format!("receiver: {msg}"));
    }
}

/// When a WebSocket receiver acknowledges what it processed (docs/websocket.md: an ack covers
/// every earlier response; the server sends at most 32 ahead).
#[derive(Clone, Copy)]
struct AckPolicy {
    every: usize,
    idle: Duration,
}

/// `path` (with its query) on the server at `authority`, over plain `ws://`: connected and
/// upgraded here, then read and acked by one of the `loops` until done or failed (then
/// reconnected from the last `next_batch` processed).
async fn ws_receiver(
    ctx: Arc<FanCtx>,
    loops: Arc<ws_loop::Loops>,
    authority: String,
    path: String,
    token: String,
    mut since: String,
) {
    let mut got = Received::new(ctx.m);
    let mut first = true;
    // Masking keys differ per connection.
    static CONNECTIONS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    while got.n < ctx.m && !ctx.stop.load(Ordering::Relaxed) {
        let full_path = format!("{path}&since={}", enc(&since));
        let seed = CONNECTIONS
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(2_654_435_761);
        let connected = ws_client::WsClient::connect(&authority, &full_path, &token, seed).await;
        let parts = connected.and_then(ws_client::WsClient::into_parts);
        let (stream, leftover, mask) = match parts {
            Ok(parts) => parts,
            Err(e) => {
                ctx.sync_errors.fetch_add(1, Ordering::Relaxed);
                log_err_once(&ctx, &format!("ws connect: {e}"));
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        if first {
            first = false;
            ctx.started.fetch_add(1, Ordering::Relaxed);
        } else {
            ctx.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        let (report, outcome) = tokio::sync::oneshot::channel();
        loops.hand(ws_loop::Handoff {
            stream,
            leftover,
            mask,
            got,
            since,
            report,
        });
        match outcome.await {
            Ok(ws_loop::Outcome::Done) => break,
            Ok(ws_loop::Outcome::Failed { got: g, since: s }) => (got, since) = (g, s),
            Ok(ws_loop::Outcome::Stopped) | Err(_) => return,
        }
    }
    ctx.done.fetch_add(1, Ordering::Relaxed);
}

fn ack_message(next_batch: &str) -> Vec<u8> {
    json!({"type": "ack", "next_batch": next_batch})
        .to_string()
        .into_bytes()
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let nofile = raise_nofile_limit();
    log(format!("open-file limit (RLIMIT_NOFILE): {nofile}"));
    let scenarios: Vec<String> = args
        .scenario
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    for s in &scenarios {
        if !["send", "fanout", "fanout-ws"].contains(&s.as_str()) {
            eprintln!("unknown scenario {s:?}; choose from send, fanout, fanout-ws");
            std::process::exit(2);
        }
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let run_id = format!("{:x}{:x}", now.as_secs() % 0xffffff, std::process::id());
    let timeout = Duration::from_millis(args.sync_timeout_ms + 60_000);
    let out = args.json_out.as_ref().map(|p| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .expect("open --json-out")
    });
    let mut bench = Bench {
        api: Api {
            base: args.url.trim_end_matches('/').to_owned(),
            clients: vec![new_client(timeout)],
            counters: Counters::default(),
            timeout,
        },
        args,
        run_id,
        uid: AtomicUsize::new(0),
        out,
    };
    match bench
        .api
        .call(
            0,
            reqwest::Method::GET,
            "/_matrix/client/versions",
            None,
            None,
            &[200],
        )
        .await
    {
        Ok((_, v)) => log(format!(
            "target {}: versions {} run_id {}",
            bench.args.url, v["versions"], bench.run_id
        )),
        Err(e) => {
            eprintln!("server not reachable: {e}");
            std::process::exit(1);
        }
    }
    for sc in scenarios {
        let res = match sc.as_str() {
            "send" => bench.sc_send().await,
            "fanout" => bench.sc_fanout(false).await,
            _ => bench.sc_fanout(true).await,
        };
        if let Err(e) = res {
            log(format!("scenario {sc} FAILED: {e}"));
            let line = json!({"scenario": sc, "url": bench.args.url, "error": e,
                              "http_errors": bench.api.counters.take()})
            .to_string();
            println!("{line}");
            if let Some(f) = &mut bench.out {
                let _ = writeln!(f, "{line}");
            }
        }
    }
}
