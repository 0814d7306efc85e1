//! Process-level durability: `kill -9` the local binary while requests are
//! being accepted and processed, restart it on the same data dir, and every
//! request that got a 202 reaches `succeeded`, with the backend answering
//! each ticket once.

use std::process::Stdio;
use std::time::Duration;

use failover_tests::mock_backend::{Behaviour, MockBackend};
use serde_json::Value;
use tokio::process::{Child, Command};

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

async fn start(port: u16, dir: &std::path::Path, backend: &str) -> Child {
    let child = Command::new(env!("CARGO_BIN_EXE_gateway-under-test"))
        .env("PORT", port.to_string())
        .env("DATA_DIR", dir)
        .env("BACKEND_URL", backend)
        .env("SYNC_DEADLINE_MS", "200")
        .env("WORKER_DEADLINE_MS", "400")
        .env("CAPTURE_TIMEOUT_MS", "500")
        .env("RETRY_BASE_MS", "100")
        .env("RETRY_MAX_MS", "400")
        .env("MAX_ATTEMPTS", "1000")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the gateway");
    let client = reqwest::Client::new();
    let health = format!("http://127.0.0.1:{port}/health");
    for _ in 0..200 {
        if client.get(&health).send().await.is_ok() {
            return child;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the gateway did not start on port {port}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_minus_nine_loses_no_accepted_request() {
    let backend = MockBackend::start(Behaviour::Hang).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut gateway = start(port, dir.path(), &backend.url).await;
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();

    // A stream of requests, half of them skipping the sync attempt.
    let mut tasks = Vec::new();
    for i in 0..60 {
        let (client, url) = (client.clone(), format!("{base}/requests"));
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(i * 10)).await;
            let mut req = client
                .post(url)
                .header("content-type", "application/json")
                .body(format!(r#"{{"n": {i}}}"#));
            if i % 2 == 0 {
                req = req.header("prefer", "respond-async");
            }
            let resp = req.send().await.ok()?;
            if resp.status() != 202 {
                return None;
            }
            let body: Value = resp.json().await.ok()?;
            Some(body["ticket_id"].as_str()?.to_string())
        }));
    }
    // Kill it in the middle of accepting and processing.
    tokio::time::sleep(Duration::from_millis(400)).await;
    gateway.kill().await.expect("kill -9");
    let mut accepted = Vec::new();
    for t in tasks {
        if let Some(id) = t.await.expect("task") {
            accepted.push(id);
        }
    }
    assert!(
        accepted.len() >= 5,
        "only {} accepted before the kill",
        accepted.len()
    );

    // The backend is healthy again; restart on the same data.
    backend.set_default(Behaviour::ok(r#"{"ok":true}"#));
    let _gateway = start(port, dir.path(), &backend.url).await;
    let until = tokio::time::Instant::now() + Duration::from_secs(60);
    for id in &accepted {
        loop {
            let t: Value = client
                .get(format!("{base}/tickets/{id}?wait=5"))
                .send()
                .await
                .expect("GET ticket")
                .json()
                .await
                .expect("ticket json");
            if t["status"] == "succeeded" {
                break;
            }
            assert_ne!(t["status"], "failed", "{t}");
            assert!(
                tokio::time::Instant::now() < until,
                "ticket {id} stuck: {t}"
            );
        }
        assert_eq!(backend.answered_for(id), 1, "ticket {id} answered once");
    }
    eprintln!(
        "{} requests accepted before kill -9; all succeeded after restart",
        accepted.len()
    );
}
