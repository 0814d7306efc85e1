//! The operator's tool: see `functions/ops`.

fn main() -> std::process::ExitCode {
    failover_ops::main()
}
