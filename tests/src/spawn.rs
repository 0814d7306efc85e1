//! `spawn_app()`: the local-mode service on port 0 with a fresh data dir,
//! a fault-injecting store and a mock backend, driven over real HTTP.

use std::sync::Arc;

use failover_core::trace::{NoTracer, Tracer};
use std::time::Duration;

use failover_adapters::fault::{Faults, Faulty};
use failover_adapters::http_backend::HttpBackend;
use failover_adapters::sqlite::{SqliteOptions, SqliteStore};
use failover_adapters::webhook_sender::HttpWebhookSender;
use failover_core::callback::CallbackRules;
use failover_core::ports::SystemClock;
use failover_core::route::RouteTable;
use failover_core::webhook::WebhookSecret;
use failover_core::Policy;
use failover_local::{assemble, serve, Parts};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::mock_backend::{Behaviour, MockBackend};

/// The secret every test app signs webhooks with.
pub const TEST_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A policy with short deadlines so that tests run in seconds.
pub fn test_policy() -> Policy {
    Policy {
        sync_deadline: Duration::from_millis(300),
        slow_call: Duration::from_millis(300),
        worker_deadline: Duration::from_millis(500),
        retry_base: Duration::from_millis(50),
        retry_max: Duration::from_millis(400),
        capture_timeout: Duration::from_millis(1000),
        notify_schedule: "100ms,200ms,400ms".parse().expect("schedule"),
        webhook_secret: WebhookSecret::parse(TEST_SECRET).ok(),
        allow_loopback_callbacks: true,
        // Health-based failover has its own tests; here one slow call must
        // not open the breaker for the next test step.
        breaker_min_calls: 1000,
        ..Policy::default()
    }
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub backend: MockBackend,
    pub store: SqliteStore,
    pub faults: Faults,
    pub policy: Arc<Policy>,
    /// The app's worker (it runs already; tests may also sweep with it).
    pub worker: Arc<failover_worker::Worker>,
    _dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A daily window of one minute that opens two hours from now, for `lane`
/// (as `LANE_WINDOWS` takes it): the lane's requests wait.
pub fn window_in_two_hours(lane: &str) -> String {
    let minute = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
        / 60;
    let at = |m: u64| format!("{:02}:{:02}", (m % 1440) / 60, m % 60);
    format!(
        r#"{{"{lane}":["{}-{} UTC"]}}"#,
        at(minute + 120),
        at(minute + 121)
    )
}

/// An app whose every request waits in the queue (`normal`'s only window
/// opens in two hours), with a healthy backend.
pub async fn spawn_app_waiting() -> TestApp {
    let mut lanes = failover_core::lane::Lanes::default();
    lanes
        .set_windows(&window_in_two_hours("normal"))
        .expect("windows");
    let policy = Policy {
        lanes: Arc::new(lanes),
        ..test_policy()
    };
    spawn_app_with(policy, Behaviour::ok("{}")).await
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(test_policy(), Behaviour::ok(r#"{"ok":true}"#)).await
}

pub async fn spawn_app_with(policy: Policy, backend: Behaviour) -> TestApp {
    let backend = MockBackend::start(backend).await;
    let url = backend.url.clone();
    spawn(policy, backend, &url).await
}

/// An app whose backend is at `url` (e.g. a closed port).
pub async fn spawn_app_at(policy: Policy, url: &str) -> TestApp {
    let backend = MockBackend::start(Behaviour::Hang).await;
    spawn(policy, backend, url).await
}

/// An app with a routes file (its `backend` is unused: routes name theirs).
pub async fn spawn_app_routed(policy: Policy, routes_toml: &str) -> TestApp {
    let backend = MockBackend::start(Behaviour::Hang).await;
    let routes = RouteTable::parse(routes_toml, "routes.toml", &policy).expect("routes");
    spawn_routes(policy, backend, routes, Arc::new(NoTracer)).await
}

async fn spawn(policy: Policy, backend: MockBackend, url: &str) -> TestApp {
    let routes = RouteTable::single(url, Arc::new(policy.clone())).expect("backend url");
    spawn_routes(policy, backend, routes, Arc::new(NoTracer)).await
}

/// An app whose spans go to `tracer`.
pub async fn spawn_app_traced(
    policy: Policy,
    backend: Behaviour,
    tracer: Arc<dyn Tracer>,
) -> TestApp {
    let backend = MockBackend::start(backend).await;
    let routes = RouteTable::single(&backend.url, Arc::new(policy.clone())).expect("url");
    spawn_routes(policy, backend, routes, tracer).await
}

async fn spawn_routes(
    policy: Policy,
    backend: MockBackend,
    routes: RouteTable,
    tracer: Arc<dyn Tracer>,
) -> TestApp {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(SystemClock);
    let store = SqliteStore::open(
        // The server's file name, so that the operator's tool finds it.
        &dir.path().join("failover.sqlite3"),
        clock.clone(),
        SqliteOptions::default(),
    )
    .expect("open store");
    let faults = Faults::default();
    let faulty = Arc::new(Faulty::new(store.clone(), faults.clone()));
    let policy = Arc::new(policy);
    let rules = CallbackRules {
        allow_private: policy.allow_private_callbacks,
        allow_loopback: policy.allow_loopback_callbacks,
    };
    let parts = Parts {
        tickets: faulty.clone(),
        idempotency: faulty.clone(),
        queue: faulty.clone(),
        topic: Arc::new(store.clone()),
        backend: Arc::new(HttpBackend::new(policy.max_answer_bytes).expect("backend client")),
        routes: Arc::new(routes),
        webhooks: Arc::new(HttpWebhookSender::new(rules).expect("webhook client")),
        clock,
        drills: Some(Arc::new(store.clone())),
        board: Some(Arc::new(store.clone())),
        tracer,
    };
    let app = assemble(policy.clone(), parts);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, stopped) = oneshot::channel::<()>();
    let worker = app.worker.clone();
    tokio::spawn(serve(listener, app, 8, async move {
        let _ = stopped.await;
    }));
    TestApp {
        base,
        client: reqwest::Client::new(),
        backend,
        store,
        faults,
        policy,
        worker,
        _dir: dir,
        stop: Some(stop),
    }
}

impl TestApp {
    /// Its data directory (`DATA_DIR`), for the operator's tool.
    /// Stops serving (the data directory stays until the app is dropped).
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    pub fn data_dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    pub fn post(&self, body: &str) -> reqwest::RequestBuilder {
        self.client
            .post(format!("{}/requests", self.base))
            .header("content-type", "application/json")
            .body(body.to_string())
    }

    /// A request that skips the sync attempt (`Prefer: respond-async`).
    pub fn post_async(&self, body: &str) -> reqwest::RequestBuilder {
        self.post(body).header("prefer", "respond-async")
    }

    /// Posts with `Prefer: respond-async`; the 202's ticket id.
    pub async fn accepted(&self) -> String {
        let resp = self.post_async(r#"{"n":1}"#).send().await.expect("post");
        assert_eq!(resp.status(), 202);
        let b: Value = resp.json().await.expect("json");
        b["ticket_id"].as_str().expect("ticket id").to_string()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("GET")
    }

    pub async fn ticket(&self, id: &str) -> Value {
        self.get(&format!("/tickets/{id}"))
            .await
            .json()
            .await
            .expect("ticket json")
    }

    /// Polls until the ticket is terminal (30 s at most).
    pub async fn wait_terminal(&self, id: &str) -> Value {
        let until = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let t: Value = self
                .get(&format!("/tickets/{id}?wait=5"))
                .await
                .json()
                .await
                .expect("ticket json");
            let status = t["status"].as_str().unwrap_or_default().to_string();
            if status == "succeeded" || status == "failed" {
                return t;
            }
            assert!(
                tokio::time::Instant::now() < until,
                "ticket {id} stuck: {t}"
            );
        }
    }

    /// Polls until `check` holds for the ticket (30 s at most).
    pub async fn wait_for(&self, id: &str, check: impl Fn(&Value) -> bool) -> Value {
        let until = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let t = self.ticket(id).await;
            if check(&t) {
                return t;
            }
            assert!(
                tokio::time::Instant::now() < until,
                "condition never held: {t}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
