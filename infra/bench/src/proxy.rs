//! Part 11: the sync path against the reverse proxy people already run.
//!
//! As a user would try it: an independent load generator (`wrk`, 1 thread,
//! 32 keep-alive connections, a POST of a small JSON body) against nginx
//! as a reverse proxy (2 workers, then 1) and against the gateway, both in
//! front of the same instant backend (nginx answering 200 at once), all
//! on this machine's loopback. `wrk` and nginx come from the system's
//! packages (installed with apt-get when missing). Prints requests per
//! second and p99 of each, and the gateway's ratio to nginx's.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use failover_core::Policy;

use crate::build;
use crate::load::serve_router;

const CONNECTIONS: usize = 32;
const SECONDS: u64 = 10;

/// `name` on the PATH (or in /usr/sbin), installed from the system's
/// packages if it is not.
fn tool(name: &str, package: &str) -> anyhow::Result<PathBuf> {
    let find = || {
        std::env::var("PATH")
            .unwrap_or_default()
            .split(':')
            .chain(["/usr/sbin", "/sbin"])
            .map(|d| Path::new(d).join(name))
            .find(|p| p.is_file())
    };
    if let Some(p) = find() {
        return Ok(p);
    }
    eprintln!("{name} is missing: apt-get install -y {package}");
    let _ = Command::new("apt-get")
        .arg("update")
        .stdout(Stdio::null())
        .status();
    let ok = Command::new("apt-get")
        .args(["install", "-y", package])
        .stdout(Stdio::null())
        .status()
        .context("apt-get")?
        .success();
    anyhow::ensure!(ok, "could not install {package}");
    find().with_context(|| format!("{name} not found after installing {package}"))
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// An nginx of its own (prefix directory, no daemon), stopped on drop.
struct Nginx {
    child: Child,
    port: u16,
}

impl Nginx {
    fn start(
        bin: &Path,
        dir: &Path,
        name: &str,
        workers: usize,
        server: &str,
    ) -> anyhow::Result<Self> {
        let port = free_port()?;
        let prefix = dir.join(name);
        std::fs::create_dir_all(prefix.join("logs"))?;
        let conf = format!(
            "worker_processes {workers};\n\
             pid {pid};\n\
             error_log {err} warn;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n access_log off;\n\
             client_body_temp_path {tmp};\n proxy_temp_path {tmp};\n\
             {server}\n\
             server {{ listen 127.0.0.1:{port}; {location} }}\n}}\n",
            pid = prefix.join("nginx.pid").display(),
            err = prefix.join("logs/error.log").display(),
            tmp = prefix.display(),
            location = if server.is_empty() {
                "location / { default_type application/json; return 200 '{\"ok\":true}'; }"
                    .to_string()
            } else {
                "location / { proxy_pass http://backend; proxy_http_version 1.1; \
                 proxy_set_header Connection \"\"; }"
                    .to_string()
            },
        );
        let path = prefix.join("nginx.conf");
        std::fs::write(&path, conf)?;
        let child = Command::new(bin)
            .arg("-p")
            .arg(&prefix)
            .arg("-c")
            .arg(&path)
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting nginx")?;
        // Up when it accepts a connection.
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(Self { child, port });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        anyhow::bail!(
            "nginx {name} did not start (see {})",
            prefix.join("logs").display()
        )
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One `wrk` run: requests per second and p99 in milliseconds.
struct Run {
    rps: f64,
    p99_ms: f64,
    errors: bool,
}

fn millis(v: &str) -> Option<f64> {
    let (n, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic())?);
    let n: f64 = n.parse().ok()?;
    Some(match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        _ => return None,
    })
}

fn wrk(bin: &Path, script: &Path, url: &str, seconds: u64) -> anyhow::Result<Run> {
    let out = Command::new(bin)
        .args([
            "-t1",
            &format!("-c{CONNECTIONS}"),
            &format!("-d{seconds}s"),
            "--latency",
            "-s",
        ])
        .arg(script)
        .arg(url)
        .output()
        .context("running wrk")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(|r| r.trim().to_string()))
    };
    let rps = field("Requests/sec:").and_then(|v| v.parse().ok());
    let p99 = field("99%").and_then(|v| millis(&v));
    let errors = text.contains("Non-2xx") || text.contains("Socket errors");
    match (rps, p99) {
        (Some(rps), Some(p99_ms)) => Ok(Run {
            rps,
            p99_ms,
            errors,
        }),
        _ => anyhow::bail!("could not read wrk's output:\n{text}"),
    }
}

pub async fn run() -> anyhow::Result<()> {
    let (wrk_bin, nginx_bin) = (tool("wrk", "wrk")?, tool("nginx", "nginx-light")?);
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("post.lua");
    std::fs::write(
        &script,
        "wrk.method = \"POST\"\nwrk.body = '{\"amount\": 1}'\n\
         wrk.headers[\"Content-Type\"] = \"application/json\"\n",
    )?;
    let backend = Nginx::start(&nginx_bin, dir.path(), "backend", 1, "")?;
    let upstream = format!(
        "upstream backend {{ server 127.0.0.1:{}; keepalive 64; }}",
        backend.port
    );
    let proxy2 = Nginx::start(&nginx_bin, dir.path(), "proxy2", 2, &upstream)?;
    let proxy1 = Nginx::start(&nginx_bin, dir.path(), "proxy1", 1, &upstream)?;
    let store = tempfile::tempdir()?;
    let backend_url = format!("http://127.0.0.1:{}/", backend.port);
    let (app, _s) = build(Policy::default(), &backend_url, store.path())?;
    let gateway = format!("{}/requests", serve_router(app.router).await?);

    let targets = [
        (
            "nginx reverse proxy, 2 workers",
            format!("http://127.0.0.1:{}/requests", proxy2.port),
        ),
        (
            "nginx reverse proxy, 1 worker",
            format!("http://127.0.0.1:{}/requests", proxy1.port),
        ),
        ("the gateway (local mode)", gateway),
    ];
    let mut runs = Vec::new();
    for (name, url) in &targets {
        // Warm (connections, pools), then measure; wrk blocks, so off the runtime.
        let (w, s, u) = (wrk_bin.clone(), script.clone(), url.clone());
        tokio::task::spawn_blocking(move || wrk(&w, &s, &u, 2)).await??;
        let (w, s, u) = (wrk_bin.clone(), script.clone(), url.clone());
        let run = tokio::task::spawn_blocking(move || wrk(&w, &s, &u, SECONDS)).await??;
        anyhow::ensure!(!run.errors, "{name}: errors under load");
        runs.push((name, run));
    }
    println!(
        "## 11. Sync path vs nginx as a reverse proxy (wrk: 1 thread, {CONNECTIONS} connections, {SECONDS} s, instant backend)"
    );
    println!("| target | req/s | p99 ms |");
    println!("|---|---|---|");
    for (name, r) in &runs {
        println!("| {name} | {:.0} | {:.2} |", r.rps, r.p99_ms);
    }
    let (nginx, gateway) = (&runs[0].1, &runs[2].1);
    println!(
        "throughput ratio gateway/nginx (2 workers) {:.2} (target >= 1.0); p99 ratio {:.2}\n",
        gateway.rps / nginx.rps,
        gateway.p99_ms / nginx.p99_ms
    );
    Ok(())
}
