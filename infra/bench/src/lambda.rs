//! Part 4: the Lambda binaries against a minimal `lambda_http` function.
//!
//! Builds the functions' executable (`failover-lambda`) and `hello-lambda`
//! with the release profile (the one Lambda deploys), then measures each
//! stripped binary's size and its cold start as the `api` and the `worker`
//! function: from exec to the first answer posted to a Lambda Runtime API on
//! loopback, for an invocation that needs no network (a 404 route for
//! `api`, an empty batch for `worker`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use failover_tests::events;
use failover_tests::lambda_runtime::LambdaHarness;
use serde_json::json;

const RUNS: usize = 15;

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"))
        .join("release")
}

fn build() -> anyhow::Result<()> {
    let status = std::process::Command::new(env!("CARGO"))
        .args([
            "build",
            "--release",
            "-p",
            "failover-lambda",
            "-p",
            "failover-bench",
            "--bin",
            "failover-lambda",
            "--bin",
            "hello-lambda",
        ])
        .status()
        .context("running cargo build")?;
    anyhow::ensure!(status.success(), "cargo build failed");
    Ok(())
}

/// Median time from exec to the first answer.
async fn cold_start(
    binary: &Path,
    handler: &str,
    event: serde_json::Value,
) -> anyhow::Result<Duration> {
    let env = [
        ("TABLE_NAME", "bench".to_string()),
        ("BODY_BUCKET", "bench".to_string()),
        (
            "QUEUE_URL",
            "http://127.0.0.1:9/000000000000/bench".to_string(),
        ),
        (
            "TOPIC_ARN",
            "arn:aws:sns:us-east-1:000000000000:bench".to_string(),
        ),
        ("BACKEND_URL", "http://127.0.0.1:9/".to_string()),
        ("AWS_REGION", "us-east-1".to_string()),
        ("AWS_ACCESS_KEY_ID", "bench".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "bench".to_string()),
    ];
    let mut samples = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let mut harness = LambdaHarness::start().await;
        let started = Instant::now();
        harness.spawn(binary.to_str().context("path")?, handler, &env);
        harness
            .invoke(event.clone(), Duration::from_secs(10))
            .await
            .map_err(anyhow::Error::msg)?;
        samples.push(started.elapsed());
        if let Some(mut child) = harness.child.take() {
            let _ = child.kill().await;
        }
    }
    samples.sort_unstable();
    Ok(samples[RUNS / 2])
}

pub async fn run() -> anyhow::Result<()> {
    build()?;
    let dir = target_dir();
    let (lambda, hello) = (dir.join("failover-lambda"), dir.join("hello-lambda"));
    let size = |p: &Path| -> anyhow::Result<f64> {
        Ok(std::fs::metadata(p)
            .with_context(|| p.display().to_string())?
            .len() as f64
            / 1_048_576.0)
    };
    let (sl, sh) = (size(&lambda)?, size(&hello)?);
    let not_found = events::http_api("GET", "/bench/not-found", "", &[], None);
    let ca = cold_start(&lambda, "api", not_found.clone()).await?;
    let cw = cold_start(&lambda, "worker", json!({"Records": []})).await?;
    let ch = cold_start(&hello, "hello", not_found).await?;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("## 4. Lambda binaries (release profile, stripped; cold start = median of {RUNS} execs to first answer)");
    println!("| binary | size MiB | size ratio | cold start ms | cold start ratio |");
    println!("|---|---|---|---|---|");
    println!(
        "| hello-lambda (reference) | {sh:.2} | 1.00 | {:.1} | 1.00 |",
        ms(ch)
    );
    println!(
        "| failover-lambda as api | {sl:.2} | {:.2} | {:.1} | {:.2} |",
        sl / sh,
        ms(ca),
        ms(ca) / ms(ch)
    );
    println!(
        "| failover-lambda as worker | {sl:.2} | {:.2} | {:.1} | {:.2} |",
        sl / sh,
        ms(cw),
        ms(cw) / ms(ch)
    );
    println!("targets: size <= 8x, cold start <= 3x\n");
    Ok(())
}
