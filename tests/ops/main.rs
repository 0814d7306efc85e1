//! The operator's tool, `failover`, run as a process against a running
//! local gateway's data directory (`local.rs`) and against the AWS table
//! and queues on the emulators (`aws.rs`): output, JSON shapes, exit codes
//! and refusals.

mod aws;
mod local;

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

/// Runs the tool with these environment variables and arguments, with no
/// terminal on stdin (as in a script).
pub async fn failover(env: &[(&str, String)], args: &[&str]) -> Run {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_failover-under-test"));
    cmd.args(args)
        .env_remove("TABLE_NAME")
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
