//! The body of the local binary: open the store, pick the backend, print
//! how to try it, serve until shutdown.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use failover_adapters::http_backend::HttpBackend;
use failover_adapters::sqlite::{SqliteOptions, SqliteStore};
use failover_adapters::webhook_sender::HttpWebhookSender;

use failover_core::callback::CallbackRules;
use failover_core::ports::{Backend, SystemClock};
use failover_core::route::RouteTable;
use failover_core::webhook::WebhookSecret;
use rand::RngCore;
use tokio::net::TcpListener;

use crate::config::LocalConfig;
use crate::demo::DemoBackend;
use crate::{assemble, serve, Parts};

/// Human-readable logs, or JSON with `LOG_FORMAT=json`; `RUST_LOG` filters.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,tower_http=warn".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if std::env::var("LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// The webhook secret kept in the data directory, created on first start,
/// so a developer's receivers keep verifying across restarts. One that
/// exists but cannot be read stops start-up: replacing it would silently
/// break every receiver that verifies with it.
fn local_secret(dir: &Path) -> anyhow::Result<WebhookSecret> {
    let path = dir.join("webhook_secret");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            return WebhookSecret::parse(&text)
                .map_err(anyhow::Error::msg)
                .with_context(|| format!("{} is not a valid secret", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    let mut key = vec![0u8; 32];
    rand::rng().fill_bytes(&mut key);
    let secret = WebhookSecret::from_bytes(key);
    write_private(&path, secret.to_text().as_bytes())?;
    Ok(secret)
}

/// The data directory holds request bodies and the webhook secret: only
/// this user may enter it (0700), and its files are 0600.
fn private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating DATA_DIR {}", dir.display()))?;
    restrict(dir, 0o700)
}

#[cfg(unix)]
fn restrict(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("restricting {} to {mode:o}", path.display()))
}

#[cfg(not(unix))]
fn restrict(_: &Path, _: u32) -> anyhow::Result<()> {
    Ok(())
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    std::io::Write::write_all(&mut file, bytes)
        .with_context(|| format!("writing {}", path.display()))
}

pub async fn run(
    mut config: LocalConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    private_dir(&config.data_dir)?;
    let db = config.data_dir.join("failover.sqlite3");
    let clock = Arc::new(SystemClock);
    let options = SqliteOptions {
        lane_ageing: config.policy.lanes.ageing,
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open(&db, clock.clone(), options)
        .with_context(|| format!("opening {}", db.display()))?;
    for file in [
        "failover.sqlite3",
        "failover.sqlite3-wal",
        "failover.sqlite3-shm",
    ] {
        let path = config.data_dir.join(file);
        if path.exists() {
            restrict(&path, 0o600)?;
        }
    }
    let secret_from_env = config.policy.webhook_secret.is_some();
    if !secret_from_env {
        config.policy.webhook_secret = Some(local_secret(&config.data_dir)?);
    }
    let routed = config.routes_file.is_some();
    let demo = (config.backend_url.is_none() && !routed).then(DemoBackend::default);
    let backend_url = match (&config.backend_url, &demo) {
        (Some(url), _) => url.clone(),
        (None, Some(demo)) => demo.start().await.context("starting the demo backend")?,
        (None, None) => String::new(),
    };
    let backend: Arc<dyn Backend> =
        Arc::new(HttpBackend::new(config.policy.max_answer_bytes).map_err(anyhow::Error::msg)?);
    let policy = Arc::new(config.policy);
    let routes = Arc::new(match &config.routes_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("ROUTES_FILE {}: cannot read it", path.display()))?;
            RouteTable::parse(&text, &path.display().to_string(), &policy)?
        }
        None => RouteTable::single(&backend_url, policy.clone())?,
    });
    let backend_url = match &config.routes_file {
        Some(path) => format!("the routes of {}", path.display()),
        None => backend_url,
    };
    let rules = CallbackRules {
        allow_private: policy.allow_private_callbacks,
        allow_loopback: policy.allow_loopback_callbacks,
    };
    let webhooks = Arc::new(HttpWebhookSender::new(rules).map_err(anyhow::Error::msg)?);
    let store = Arc::new(store);
    purge_every_hour(store.clone(), policy.ticket_ttl);
    let parts = Parts {
        tickets: store.clone(),
        idempotency: store.clone(),
        queue: store.clone(),
        topic: store.clone(),
        backend,
        routes: routes.clone(),
        webhooks,
        clock,
        drills: Some(store.clone()),
        board: Some(store.clone()),
        tracer: failover_adapters::otlp::tracer(&|k| std::env::var(k).ok())
            .map_err(anyhow::Error::msg)?,
    };
    let mut app = assemble(policy.clone(), parts);
    if let Some(demo) = &demo {
        app.router = app.router.merge(demo.control_routes());
    }
    let listener = TcpListener::bind(("127.0.0.1", config.port))
        .await
        .with_context(|| format!("binding 127.0.0.1:{}", config.port))?;
    let addr = listener.local_addr()?;
    print_banner(
        &addr.to_string(),
        &db,
        &backend_url,
        &routes,
        demo.is_some(),
        &policy,
        secret_from_env,
        &config.data_dir,
    );
    serve(listener, app, config.worker_concurrency, shutdown)
        .await
        .context("serving")
}

/// Keeps the data file bounded: expired tickets, keys, old publications
/// and dead letters go (see [`SqliteStore::purge`]). Idempotent, so the
/// process may stop at any point of it.
fn purge_every_hour(store: Arc<SqliteStore>, keep: std::time::Duration) {
    tokio::spawn(async move {
        loop {
            match store.purge(keep).await {
                Ok(p) => tracing::info!(?p, "purged what is past its retention"),
                Err(e) => tracing::warn!(error = %e, "purge failed; next hour again"),
            }
            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
        }
    });
}

#[allow(clippy::too_many_arguments)]
fn print_banner(
    addr: &str,
    db: &Path,
    backend: &str,
    routes: &RouteTable,
    demo: bool,
    policy: &failover_core::Policy,
    secret_from_env: bool,
    dir: &Path,
) {
    let base = format!("http://{addr}");
    let secret = if secret_from_env {
        "WEBHOOK_SECRET".to_string()
    } else {
        format!("{}/webhook_secret", dir.display())
    };
    println!("failover gateway (local mode) listening on {base}");
    println!("  store:   {} (SQLite, WAL)", db.display());
    println!(
        "  backend: {backend}{}",
        if demo { " (built-in demo backend)" } else { "" }
    );
    for r in routes.routes() {
        println!(
            "    {} {} -> {} (breaker {})",
            r.method, r.path, r.backend, r.group
        );
    }
    println!(
        "  sync deadline {} ms, force mode {}, webhook secret in {secret}",
        policy.sync_deadline.as_millis(),
        policy.force_mode.as_str()
    );
    println!();
    println!("Try it:");
    if routes.is_default() {
        println!("  curl -i -X POST {base}/requests -H 'content-type: application/json' -d '{{\"amount\": 42}}'");
    } else if let Some(r) = routes.routes().first() {
        // The first route, its parameters as `1`.
        let path: String = r
            .path
            .split('/')
            .map(|seg| if seg.starts_with('{') { "1" } else { seg })
            .collect::<Vec<_>>()
            .join("/");
        let body = match r.method.as_str() {
            "POST" | "PUT" | "PATCH" => " -H 'content-type: application/json' -d '{}'",
            _ => "",
        };
        println!("  curl -i -X {} {base}{path}{body}", r.method);
    }
    if demo {
        println!("  # make the backend slow, so requests fail over to 202 + ticket:");
        println!(
            "  curl -X POST {base}/demo/backend -H 'content-type: application/json' -d '{{\"latency_ms\": {}, \"error_rate\": 0}}'",
            policy.sync_deadline.as_millis() + 2000
        );
        println!("  curl -i -X POST {base}/requests -H 'content-type: application/json' -d '{{\"amount\": 42}}'");
        println!(
            "  curl '{base}/tickets/<ticket_id>?wait=20'    # completes once the worker is done"
        );
        println!("  curl -X POST {base}/demo/backend -H 'content-type: application/json' -d '{{\"latency_ms\": 50, \"error_rate\": 0}}'");
    } else {
        println!("  curl '{base}/tickets/<ticket_id>?wait=20'");
    }
    println!("  curl {base}/health");
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down: finishing requests and messages in progress");
}
