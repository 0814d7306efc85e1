//! The local binary as a process: `kill -9` durability, graceful shutdown,
//! the demo backend a newcomer starts with, and refusing bad configuration.

use std::process::Stdio;
use std::time::Duration;

use failover_tests::mock_backend::{Behaviour, MockBackend};
use serde_json::Value;
use tokio::process::{Child, Command};

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn gateway(port: u16, dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gateway-under-test"));
    cmd.env("PORT", port.to_string())
        .env("DATA_DIR", dir)
        .env_remove("BACKEND_URL")
        .env_remove("WEBHOOK_SECRET")
        .env_remove("FORCE_MODE")
        .kill_on_drop(true);
    cmd
}

async fn wait_ready(port: u16) {
    let client = reqwest::Client::new();
    let health = format!("http://127.0.0.1:{port}/health");
    for _ in 0..200 {
        if client.get(&health).send().await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the gateway did not start on port {port}");
}

async fn start(port: u16, dir: &std::path::Path, backend: &str) -> Child {
    let child = gateway(port, dir)
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
        .spawn()
        .expect("spawn the gateway");
    wait_ready(port).await;
    child
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

/// Sends `signal` to `child` and waits (at most 20 s) for a clean exit.
async fn stop(child: &mut Child, signal: &str) {
    let pid = child.id().expect("pid").to_string();
    let sent = std::process::Command::new("kill")
        .args([signal, &pid])
        .status()
        .expect("kill");
    assert!(sent.success());
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("exits after the signal")
        .expect("exit status");
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_writes_the_answer_of_a_call_kept_running_after_its_202() {
    let slow = Duration::from_millis(1500);
    let backend = MockBackend::start(Behaviour::slow(201, r#"{"paid":true}"#, slow)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let spawn = || {
        gateway(port, dir.path())
            .env("BACKEND_URL", &backend.url)
            .env("SYNC_DEADLINE_MS", "200")
            .env("WORKER_DEADLINE_MS", "5000")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the gateway")
    };
    let mut child = spawn();
    wait_ready(port).await;
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{base}/requests"))
        .header("content-type", "application/json")
        .body(r#"{"amount": 7}"#)
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.expect("json")["ticket_id"]
        .as_str()
        .expect("ticket id")
        .to_string();
    // SIGTERM while the backend is still working on it: the process waits
    // for that answer and writes it before it exits.
    stop(&mut child, "-TERM").await;
    let _child = spawn();
    wait_ready(port).await;
    let t: Value = client
        .get(format!("{base}/tickets/{id}"))
        .send()
        .await
        .expect("GET ticket")
        .json()
        .await
        .expect("ticket json");
    assert_eq!(t["status"], "succeeded", "{t}");
    assert_eq!(t["result"]["status_code"], 201, "{t}");
    assert_eq!(backend.calls().len(), 1, "the backend was called once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_backend_shows_both_paths_and_ctrl_c_stops_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut child = gateway(port, dir.path())
        .env("SYNC_DEADLINE_MS", "300")
        .env("RETRY_BASE_MS", "100")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    wait_ready(port).await;
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let post = |body: &'static str| {
        client
            .post(format!("{base}/requests"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let demo = |body: &'static str| {
        client
            .post(format!("{base}/demo/backend"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };

    // Healthy demo backend: sync.
    let r = post(r#"{"amount": 1}"#).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-failover-mode"], "sync");

    // Bad settings are problems.
    for bad in [
        r#"{"latency_ms": 5}"#,
        r#"{"latency_ms": 5, "error_rate": 2}"#,
        "nope",
    ] {
        let r = demo(bad).await.unwrap();
        assert_eq!(r.status(), 400, "{bad}");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
    }

    // Slow: failover to 202, and the worker still completes the ticket.
    assert_eq!(
        demo(r#"{"latency_ms": 1000, "error_rate": 0}"#)
            .await
            .unwrap()
            .status(),
        200
    );
    let r = post(r#"{"amount": 2}"#).await.unwrap();
    assert_eq!(r.status(), 202);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["reason"], "timeout");
    let id = body["ticket_id"].as_str().unwrap().to_string();
    let until = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let t: Value = client
            .get(format!("{base}/tickets/{id}?wait=5"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if t["status"] == "succeeded" {
            assert_eq!(t["result"]["body"]["request"]["amount"], 2);
            break;
        }
        assert!(tokio::time::Instant::now() < until, "{t}");
    }

    // Failing: 202 with backend_error.
    assert_eq!(
        demo(r#"{"latency_ms": 0, "error_rate": 1}"#)
            .await
            .unwrap()
            .status(),
        200
    );
    let r = post(r#"{"amount": 3}"#).await.unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(r.json::<Value>().await.unwrap()["reason"], "backend_error");

    // Ctrl-C: a clean exit, and the banner told the user how to try it.
    stop(&mut child, "-INT").await;
    let mut out = String::new();
    use tokio::io::AsyncReadExt;
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .await
        .unwrap();
    assert!(
        out.contains(&format!("listening on http://127.0.0.1:{port}")),
        "{out}"
    );
    assert!(out.contains("curl"), "{out}");
    assert!(dir.path().join("failover.sqlite3").exists());
}

#[tokio::test]
async fn bad_configuration_stops_start_up_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = gateway(free_port(), dir.path())
        .env("SYNC_DEADLINE_MS", "soon")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("SYNC_DEADLINE_MS"), "{err}");
}
