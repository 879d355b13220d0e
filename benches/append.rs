//! Event append throughput through the one pipeline (build, sign, auth-check, persist):
//! sequential appends into one room, and concurrent appends across many rooms.
//!
//!     cargo bench --bench append            # full run
//!     cargo bench --bench append -- --quick # smaller, for a smoke check
//!
//! Prints one line per scenario: events/s and per-append latency percentiles.

use std::sync::Arc;
use std::time::{Duration, Instant};

use roost::config::Config;
use roost::events::PduTemplate;
use roost::services::Services;
use ruma::{OwnedRoomId, UserId};
use serde_json::json;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn report(name: &str, total: Duration, mut latencies: Vec<Duration>) {
    latencies.sort();
    let n = latencies.len();
    println!(
        "{name}: {n} events in {:.2} s = {:.0} events/s; latency p50 {:.2} ms, p99 {:.2} ms",
        total.as_secs_f64(),
        n as f64 / total.as_secs_f64(),
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
    );
}

async fn room(services: &Services, creator: &UserId) -> OwnedRoomId {
    let request = roost::rooms::create::CreateRoom {
        public: true,
        ..Default::default()
    };
    services
        .rooms
        .create_room(creator, request)
        .await
        .expect("create room")
}

async fn append_n(
    services: Arc<Services>,
    room_id: OwnedRoomId,
    sender: ruma::OwnedUserId,
    n: usize,
) -> Vec<Duration> {
    let mut latencies = Vec::with_capacity(n);
    for i in 0..n {
        let template = PduTemplate::message(
            "m.room.message",
            json!({"msgtype": "m.text", "body": format!("message {i}")}),
        );
        let start = Instant::now();
        services
            .rooms
            .append(&room_id, &sender, template)
            .await
            .expect("append");
        latencies.push(start.elapsed());
    }
    latencies
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (one_room, rooms, per_room) = if quick {
        (300, 4, 100)
    } else {
        (3000, 16, 500)
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config::default();
    config.database.path = dir.path().to_path_buf();
    let services = Services::open(config).expect("open storage");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let sender = ruma::OwnedUserId::try_from("@bench:localhost").unwrap();
        services
            .accounts
            .create("bench", None, false)
            .await
            .expect("user");

        let room_id = room(&services, &sender).await;
        let start = Instant::now();
        let latencies = append_n(Arc::clone(&services), room_id, sender.clone(), one_room).await;
        report("one room, sequential", start.elapsed(), latencies);

        let mut ids = Vec::new();
        for _ in 0..rooms {
            ids.push(room(&services, &sender).await);
        }
        let start = Instant::now();
        let tasks: Vec<_> = ids
            .into_iter()
            .map(|room_id| {
                tokio::spawn(append_n(
                    Arc::clone(&services),
                    room_id,
                    sender.clone(),
                    per_room,
                ))
            })
            .collect();
        let mut latencies = Vec::new();
        for task in tasks {
            latencies.extend(task.await.expect("task"));
        }
        report(
            &format!("{rooms} rooms, concurrent"),
            start.elapsed(),
            latencies,
        );
    });
}
