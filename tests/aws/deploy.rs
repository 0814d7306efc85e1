//! What SAM would upload is what was tested: the `bootstrap` executables
//! that `sam build --beta-features` wrote to `.aws-sam/build`
//! (infra/sam-build.sh runs it before the tests), found through the template
//! SAM wrote beside them, checked as Lambda takes them (arm64 ELF
//! executables within the package size limits) and run, under qemu-user on
//! an x86-64 machine, against the loopback Runtime API and the emulators: a
//! sync answer and a failover through `api`, an SQS batch through `worker`,
//! a sweep through `sweeper`.
//!
//! Without the build these tests fail and say how to make it: a deploy
//! nobody built is exactly what this file exists to catch.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use failover_core::ticket::Status;
use failover_lambda::Handler;
use failover_tests::events;
use failover_tests::mock_backend::Behaviour;

use crate::stack::{body, failures, Functions, Stack};

/// Lambda's limits for a .zip package: 50 MB zipped (direct upload),
/// 250 MB unzipped.
const MAX_ZIPPED: u64 = 50 * 1024 * 1024;
const MAX_UNZIPPED: u64 = 250 * 1024 * 1024;

/// ELF: machine AArch64, type executable or position-independent.
const EM_AARCH64: u16 = 183;
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;

fn build_dir() -> PathBuf {
    std::env::var_os("SAM_BUILD_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.aws-sam/build"))
}

/// Each function of the built template with its handler and the
/// `bootstrap` SAM would upload for it (functions built alike share one
/// artefact directory). Fails with instructions when nothing was built.
fn built_functions() -> Vec<(String, Handler, PathBuf)> {
    let dir = build_dir();
    let template = std::fs::read_to_string(dir.join("template.yaml")).unwrap_or_else(|e| {
        panic!(
            "{}/template.yaml: {e}: run infra/test-all, or infra/sam-build.sh \
             (sam build --beta-features), before the tests",
            dir.display()
        )
    });
    let template: serde_yaml::Value = serde_yaml::from_str(&template).expect("built template");
    let resources = template["Resources"].as_mapping().expect("resources");
    let functions: Vec<_> = resources
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::Serverless::Function")
        .map(|(name, r)| {
            let name = name.as_str().expect("logical id").to_string();
            let handler: Handler = r["Properties"]["Handler"]
                .as_str()
                .expect("handler")
                .parse()
                .expect("a handler the binary knows");
            let code = r["Properties"]["CodeUri"].as_str().expect("built CodeUri");
            (name, handler, dir.join(code).join("bootstrap"))
        })
        .collect();
    let handlers: BTreeSet<&str> = functions.iter().map(|(_, h, _)| h.name()).collect();
    let all: BTreeSet<&str> = Handler::ALL.iter().map(|h| h.name()).collect();
    assert_eq!(handlers, all, "one function per handler");
    functions
}

/// On an x86-64 machine the arm64 executables run under qemu-user, with the
/// arm64 C library of `libc6-arm64-cross` as their root.
fn arm64_runner() -> Vec<String> {
    if std::env::consts::ARCH == "aarch64" {
        return Vec::new();
    }
    ["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu"]
        .map(String::from)
        .to_vec()
}

fn sam_built() -> Functions {
    let mut f = Functions {
        runner: arm64_runner(),
        ..Functions::under_test()
    };
    for (_, handler, path) in built_functions() {
        let path = path.to_string_lossy().into_owned();
        match handler {
            Handler::Api => f.api = path,
            Handler::Worker => f.worker = path,
            Handler::Sweeper => f.sweeper = path,
            Handler::Events => f.events = path,
        }
    }
    f
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

/// The size of `bytes` deflated as `zip` stores them (level 6).
fn zipped_size(bytes: &[u8]) -> u64 {
    let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(6));
    z.write_all(bytes).expect("deflate");
    z.finish().expect("deflate").len() as u64
}

#[test]
fn sam_build_made_arm64_bootstraps_within_lambda_limits() {
    use std::os::unix::fs::PermissionsExt;
    for (function, _, path) in built_functions() {
        let bytes =
            std::fs::read(&path).unwrap_or_else(|e| panic!("{function}: {}: {e}", path.display()));
        assert!(bytes.len() > 64, "{function}: {} bytes", bytes.len());
        assert_eq!(&bytes[..4], b"\x7fELF", "{function}: not an ELF file");
        assert_eq!(bytes[4], 2, "{function}: not a 64-bit ELF");
        assert_eq!(bytes[5], 1, "{function}: not little-endian");
        let machine = u16_at(&bytes, 18);
        assert_eq!(
            machine, EM_AARCH64,
            "{function}: machine {machine}, not AArch64"
        );
        let kind = u16_at(&bytes, 16);
        assert!(
            kind == ET_EXEC || kind == ET_DYN,
            "{function}: ELF type {kind}"
        );
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert!(mode & 0o111 != 0, "{function}: not executable ({mode:o})");
        let unzipped = bytes.len() as u64;
        let zipped = zipped_size(&bytes);
        assert!(
            unzipped <= MAX_UNZIPPED,
            "{function}: {unzipped} bytes unzipped"
        );
        assert!(zipped <= MAX_ZIPPED, "{function}: {zipped} bytes zipped");
        println!("{function}: {unzipped} bytes, {zipped} zipped");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_arm64_functions_answer_fail_over_process_and_sweep() {
    // Emulated, a call takes longer: a deadline the emulator cannot miss,
    // and a failover that does not depend on timing (a 503).
    let slow_host = [("SYNC_DEADLINE_MS", "5000".to_string())];
    let s = Stack::start_on(sam_built(), &slow_host, &slow_host).await;

    s.backend
        .push(Behaviour::status(201, r#"{"payment":"p_1"}"#));
    let sync = s.post(&[], r#"{"amount": 1}"#).await;
    assert_eq!(sync["statusCode"], 201, "{sync}");
    assert_eq!(sync["headers"]["x-failover-mode"], "sync");
    assert_eq!(body(&sync)["payment"], "p_1");

    s.backend.push(Behaviour::status(503, r#"{"down":true}"#));
    s.backend
        .set_default(Behaviour::status(200, r#"{"paid":true}"#));
    let accepted = s.post(&[], r#"{"amount": 2}"#).await;
    assert_eq!(accepted["statusCode"], 202, "{accepted}");
    assert_eq!(body(&accepted)["reason"], "backend_error");
    let id = body(&accepted)["ticket_id"]
        .as_str()
        .expect("ticket id")
        .to_string();

    let messages = s.receive().await;
    assert_eq!(messages.len(), 1, "one queued message");
    let batch = s.work(&messages).await;
    assert!(failures(&batch).is_empty(), "{batch}");
    let done = s.ticket(&id).await;
    assert_eq!(done.status, Status::Succeeded);
    assert_eq!(done.result.as_ref().map(|r| r.status_code), Some(200));
    // The sync attempt (503) and the worker's call, both under the ticket id.
    assert_eq!(s.backend.answered_for(&id), 2);

    let lost = s.lost_ticket().await;
    let sweep = s
        .sweeper()
        .await
        .invoke(events::scheduled(), Duration::from_secs(60))
        .await
        .expect("sweeper answered");
    assert_eq!(sweep["reenqueued"], 1, "{sweep}");
    let resent = s.receive().await;
    assert_eq!(resent.len(), 1, "the lost ticket's message");
    assert_eq!(
        resent[0]
            .message_attributes()
            .and_then(|a| a.get("ticket_id"))
            .and_then(|v| v.string_value()),
        Some(lost.as_str())
    );
}
