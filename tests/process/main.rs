//! The local binary as a process: `kill -9` durability, graceful shutdown,
//! the demo backend a newcomer starts with, and refusing bad configuration.

use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use failover_tests::mock_backend::{Behaviour, MockBackend};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The gateway on a port of its own choosing (`PORT=0`: no race with other
/// tests for a free port), read back from its banner.
fn gateway(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gateway-under-test"));
    cmd.env("PORT", "0")
        .env("DATA_DIR", dir)
        .env_remove("BACKEND_URL")
        .env_remove("WEBHOOK_SECRET")
        .env_remove("FORCE_MODE")
        .stdout(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// A started gateway: the process, its base URL, and what it printed.
struct Running {
    child: Child,
    base: String,
    stdout: Arc<Mutex<String>>,
    /// Ends when the process closed its output.
    drained: tokio::task::JoinHandle<()>,
}

/// Spawns `cmd` and waits for its banner (it prints it once listening).
async fn launch(cmd: &mut Command) -> Running {
    let mut child = cmd.spawn().expect("spawn the gateway");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let stdout = Arc::new(Mutex::new(String::new()));
    let base = loop {
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("the gateway printed its banner in time")
            .expect("read stdout")
            .expect("the gateway started");
        stdout.lock().expect("lock").push_str(&format!("{line}\n"));
        if let Some(url) = line.split("listening on ").nth(1) {
            break url.trim().to_string();
        }
    };
    // Keep reading, so that its output never blocks it.
    let sink = stdout.clone();
    let drained = tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            sink.lock().expect("lock").push_str(&format!("{line}\n"));
        }
    });
    Running {
        child,
        base,
        stdout,
        drained,
    }
}

async fn start(dir: &std::path::Path, backend: &str) -> Running {
    launch(
        gateway(dir)
            .env("BACKEND_URL", backend)
            .env("SYNC_DEADLINE_MS", "200")
            .env("WORKER_DEADLINE_MS", "400")
            .env("CAPTURE_TIMEOUT_MS", "500")
            .env("RETRY_BASE_MS", "100")
            .env("RETRY_MAX_MS", "400")
            .env("MAX_ATTEMPTS", "1000")
            .env("RUST_LOG", "warn")
            .stderr(Stdio::inherit()),
    )
    .await
}

/// The ticket as `GET /tickets/{id}` shows it (`wait` seconds at most).
async fn ticket(client: &reqwest::Client, base: &str, id: &str, wait: u64) -> Value {
    client
        .get(format!("{base}/tickets/{id}?wait={wait}"))
        .send()
        .await
        .expect("GET ticket")
        .json()
        .await
        .expect("ticket json")
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
async fn kill_minus_nine_loses_no_accepted_request() {
    let backend = MockBackend::start(Behaviour::Hang).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut gateway = start(dir.path(), &backend.url).await;
    let client = reqwest::Client::new();

    // A stream of requests, half of them skipping the sync attempt.
    let accepted_so_far = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..60 {
        let (client, url) = (client.clone(), format!("{}/requests", gateway.base));
        let count = accepted_so_far.clone();
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
            count.fetch_add(1, Ordering::SeqCst);
            Some(body["ticket_id"].as_str()?.to_string())
        }));
    }
    // Kill it in the middle of accepting and processing: once a handful
    // of requests have their 202, while the rest are still coming.
    while accepted_so_far.load(Ordering::SeqCst) < 5 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    gateway.child.kill().await.expect("kill -9");
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
    let gateway = start(dir.path(), &backend.url).await;
    let until = tokio::time::Instant::now() + Duration::from_secs(60);
    for id in &accepted {
        loop {
            let t = ticket(&client, &gateway.base, id, 5).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_writes_the_answer_of_a_call_kept_running_after_its_202() {
    let slow = Duration::from_millis(1500);
    let backend = MockBackend::start(Behaviour::slow(201, r#"{"paid":true}"#, slow)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let spawn = || async {
        launch(
            gateway(dir.path())
                .env("BACKEND_URL", &backend.url)
                .env("SYNC_DEADLINE_MS", "200")
                .env("WORKER_DEADLINE_MS", "5000")
                .env("RUST_LOG", "warn")
                .stderr(Stdio::inherit()),
        )
        .await
    };
    let mut first = spawn().await;
    let base = first.base.clone();
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
    stop(&mut first.child, "-TERM").await;
    let again = spawn().await;
    let t = ticket(&client, &again.base, &id, 0).await;
    assert_eq!(t["status"], "succeeded", "{t}");
    assert_eq!(t["result"]["status_code"], 201, "{t}");
    assert_eq!(backend.calls().len(), 1, "the backend was called once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_backend_shows_both_paths_and_ctrl_c_stops_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut running = launch(
        gateway(dir.path())
            .env("SYNC_DEADLINE_MS", "300")
            .env("RETRY_BASE_MS", "100")
            .stderr(Stdio::null()),
    )
    .await;
    let base = running.base.clone();
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
        let t = ticket(&client, &base, &id, 5).await;
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
    stop(&mut running.child, "-INT").await;
    running.drained.await.expect("stdout read to its end");
    let out = running.stdout.lock().expect("lock").clone();
    assert!(out.contains(&format!("listening on {base}")), "{out}");
    assert!(out.contains("curl"), "{out}");
    assert!(dir.path().join("failover.sqlite3").exists());
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_directory_is_private_and_an_unreadable_secret_stops_start_up() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut running = launch(gateway(&data).stderr(Stdio::null())).await;
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("exists").permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700, "DATA_DIR");
    assert_eq!(mode(&data.join("failover.sqlite3")), 0o600);
    assert_eq!(mode(&data.join("webhook_secret")), 0o600);
    stop(&mut running.child, "-TERM").await;

    // A secret that exists but cannot be read (here: not text) is not
    // silently replaced: receivers verify with the old one.
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).expect("mkdir");
    let unreadable = [0xff, 0xfe, 0x00, 0x01];
    std::fs::write(other.join("webhook_secret"), unreadable).expect("write");
    let out = gateway(&other).output().await.expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("webhook_secret"), "{err}");
    let kept = std::fs::read(other.join("webhook_secret")).expect("read");
    assert_eq!(kept, unreadable, "the secret file is left as it was");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_ignore_proxy_variables() {
    // A proxy would resolve the callback's name itself, past the guard.
    let hook = failover_tests::receiver::Receiver::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = gateway(dir.path());
    for var in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "all_proxy",
    ] {
        cmd.env(var, "http://127.0.0.1:9");
    }
    // The (demo) backend is reached directly; the callback goes to a name
    // the proxy variables do cover.
    cmd.env("NO_PROXY", "127.0.0.1").env_remove("no_proxy");
    let callback = hook.url.replace("127.0.0.1", "localhost");
    let running = launch(cmd.stderr(Stdio::null())).await;
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{}/requests", running.base))
        .header("content-type", "application/json")
        .header("prefer", "respond-async")
        .header("callback-url", &callback)
        .body(r#"{"amount": 5}"#)
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 202);
    let until = tokio::time::Instant::now() + Duration::from_secs(20);
    while hook.deliveries().is_empty() {
        assert!(tokio::time::Instant::now() < until, "no webhook arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn bad_configuration_stops_start_up_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (vars, named) in [
        (vec![("SYNC_DEADLINE_MS", "soon")], "SYNC_DEADLINE_MS"),
        (
            vec![("NOTICE_TEMPLATE_SMS", "Request {nope}")],
            "NOTICE_TEMPLATE_SMS",
        ),
        (
            vec![
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ],
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ),
    ] {
        let out = gateway(dir.path()).envs(vars).output().await.unwrap();
        assert!(!out.status.success(), "{named}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(named), "{err}");
    }
}

/// A routes file with a mistake stops the binary, naming the file, the
/// line and the reason; a good one serves its routes (and not /requests).
#[tokio::test]
async fn a_routes_file_is_checked_at_start_and_then_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let routes = dir.path().join("routes.toml");
    std::fs::write(
        &routes,
        "[[route]]\nname = \"a\"\nmethod = \"POST\"\npath = \"/a\"\nbackend = \"http://127.0.0.1:9/a\"\ncolour = \"red\"\n",
    )
    .unwrap();
    let out = gateway(dir.path())
        .env("ROUTES_FILE", &routes)
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let place = format!("{}:6:", routes.display());
    assert!(err.contains(&place) && err.contains("colour"), "{err}");

    std::fs::write(
        &routes,
        "[[route]]\nname = \"a\"\nmethod = \"POST\"\npath = \"/a\"\nbackend = \"http://127.0.0.1:9/a\"\n",
    )
    .unwrap();
    let running = launch(
        gateway(dir.path())
            .env("ROUTES_FILE", &routes)
            .stderr(Stdio::null()),
    )
    .await;
    let client = reqwest::Client::new();
    let post = |path: &str| {
        client
            .post(format!("{}{path}", running.base))
            .header("content-type", "application/json")
            .header("prefer", "respond-async")
            .body("{}")
            .send()
    };
    assert_eq!(post("/a").await.unwrap().status(), 202);
    assert_eq!(post("/requests").await.unwrap().status(), 404);
}
