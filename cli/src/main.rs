//! The `podnet` command: demo, operator tools and benchmarks over the same library calls
//! runtimes use. Exit codes: 0 ok, 1 operation failed, 2 bad input.
#![allow(missing_docs, reason = "a binary: its documentation is --help")]

mod bench_sandbox;
mod stats;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "podnet", version, about = "Kubernetes pod networking as a library: demo, operator tools, benchmarks")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Benchmarks (programs, not tests).
    #[command(subcommand)]
    Bench(BenchCmd),
}

#[derive(Subcommand, Debug)]
enum BenchCmd {
    /// Create then delete N sandboxes; compare with the bare kernel requests and the CNI chain.
    Sandbox(bench_sandbox::BenchSandboxArgs),
    #[command(hide = true)]
    CniWorker(bench_sandbox::CniWorkerArgs),
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.cmd {
        Cmd::Bench(BenchCmd::Sandbox(a)) => bench_sandbox::run(&a),
        Cmd::Bench(BenchCmd::CniWorker(a)) => bench_sandbox::cni_worker(&a),
    };
    std::process::exit(code);
}
