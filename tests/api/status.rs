//! `GET /status` in a real headless browser: it loads without console
//! errors, its numbers match `/health`, it changes when the backend goes
//! down and comes back, and it fits a phone. Screenshots of each state are
//! kept in `.artefacts/status/`.

use std::path::PathBuf;
use std::time::Duration;

use failover_core::Policy;
use failover_tests::mock_backend::Behaviour;
use failover_tests::spawn::{spawn_app_with, test_policy, TestApp};
use serde_json::Value;

use crate::browser::Browser;

const WAIT: Duration = Duration::from_secs(10);

fn artefact(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../.artefacts/status")
        .join(name)
}

/// What the page shows of the breaker, mode and queue, as `/health` would
/// render it: equal once the page has a sample taken after the last change.
async fn page_matches_health(app: &TestApp, page: &mut Browser) {
    let end = tokio::time::Instant::now() + WAIT;
    loop {
        let h: Value = app.get("/health").await.json().await.unwrap();
        let (group, b) = h["breakers"].as_object().unwrap().iter().next().unwrap();
        let expected = serde_json::json!({
            "mode": h["mode"],
            "state": b["state"].as_str().unwrap().replace('_', "-"),
            "calls": b["calls"].to_string(),
            "errors": format!("{:.1} %", b["error_rate"].as_f64().unwrap() * 100.0),
            "depth": h["queue"]["depth"].to_string(),
            "dead": h["queue"]["dead_letters"].to_string(),
        });
        let shown = page
            .eval(&format!(
                r#"(() => {{
                    const g = document.querySelector('[data-group="{group}"]');
                    const t = (s) => g && g.querySelector(s) ? g.querySelector(s).textContent : null;
                    return {{
                        mode: document.getElementById('mode').textContent,
                        state: t('.state'), calls: t('.calls'), errors: t('.error-rate'),
                        depth: document.getElementById('depth').textContent,
                        dead: document.getElementById('dead').textContent,
                    }};
                }})()"#
            ))
            .await;
        if shown == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "the page shows {shown} where /health says {expected}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn post_until(app: &TestApp, status: u16) {
    let end = tokio::time::Instant::now() + WAIT;
    while app.post(r#"{"n":1}"#).send().await.unwrap().status() != status {
        assert!(tokio::time::Instant::now() < end, "never {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_follows_the_backend_down_and_back() {
    let policy = Policy {
        breaker_min_calls: 2,
        breaker_open: Duration::from_secs(1),
        breaker_close_after: 1,
        ..test_policy()
    };
    let app = spawn_app_with(policy, Behaviour::ok("{}")).await;
    for _ in 0..3 {
        post_until(&app, 200).await;
    }
    let mut page = Browser::open(&format!("{}/status", app.base), 1280, 800, false).await;
    page.until(
        "document.getElementById('mode').textContent === 'sync'",
        WAIT,
    )
    .await;
    page_matches_health(&app, &mut page).await;
    page.screenshot(&artefact("1-healthy.png")).await;

    // Down: requests fail over, the breaker opens, the page says so.
    app.backend.set_default(Behaviour::status(503, "down"));
    for _ in 0..3 {
        post_until(&app, 202).await;
    }
    page.until(
        "document.getElementById('mode').textContent === 'async' && \
         document.querySelector('[data-group] .state').textContent === 'open'",
        WAIT,
    )
    .await;
    page.until("Number(document.getElementById('rate-accepted').textContent) >= 0 && document.getElementById('transitions').textContent.includes('→ open')", WAIT).await;
    page.screenshot(&artefact("2-backend-down.png")).await;

    // Back: the probe finds it healthy, the breaker closes, the page follows.
    app.backend.set_default(Behaviour::ok("{}"));
    post_until(&app, 200).await;
    page.until(
        "document.getElementById('mode').textContent === 'sync'",
        WAIT,
    )
    .await;
    page_matches_health(&app, &mut page).await;
    page.until(
        "document.getElementById('transitions').textContent.includes('→ closed')",
        WAIT,
    )
    .await;
    page.screenshot(&artefact("3-backend-back.png")).await;
    assert!(page.errors.is_empty(), "console errors: {:?}", page.errors);

    // A phone: everything fits the width, nothing scrolls sideways.
    let mut phone = Browser::open(&format!("{}/status", app.base), 390, 844, true).await;
    phone
        .until(
            "document.getElementById('mode').textContent === 'sync'",
            WAIT,
        )
        .await;
    let fits = phone
        .eval("document.documentElement.scrollWidth <= window.innerWidth")
        .await;
    assert_eq!(fits, Value::Bool(true), "the page is wider than a phone");
    phone.screenshot(&artefact("4-phone.png")).await;
    assert!(
        phone.errors.is_empty(),
        "console errors: {:?}",
        phone.errors
    );
}
