//! The operator's tool, built inside this package (with AWS mode) so the
//! tests can run it (`CARGO_BIN_EXE_failover-under-test`). The same line
//! as `functions/local/src/bin/failover.rs`.

fn main() -> std::process::ExitCode {
    failover_ops::main()
}
