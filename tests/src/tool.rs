//! Running the operator's tool (`failover`) as a process, as an operator's
//! script would: no terminal on stdin, a known operator name.

use std::time::Duration;

use serde_json::Value;

/// What one run of the tool printed, and how it exited.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }
}

/// Runs the tool at `binary` (a test's `CARGO_BIN_EXE_failover-under-test`)
/// with these environment variables (none of the caller's `TABLE_NAME`)
/// and arguments.
pub async fn run(binary: &str, env: &[(&str, String)], args: &[&str]) -> Run {
    let mut cmd = tokio::process::Command::new(binary);
    cmd.args(args)
        .env_remove("TABLE_NAME")
        .env_remove("ROUTES_FILE")
        .env("FAILOVER_OPERATOR", "tester")
        .stdin(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("the tool hung")
        .expect("the tool runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
