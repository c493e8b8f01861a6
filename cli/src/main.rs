//! The `podnet` command: demo, operator tools and benchmarks over the same library calls
//! runtimes use. Exit codes: 0 ok, 1 operation failed, 2 bad input.
#![allow(missing_docs, reason = "a binary: its documentation is --help")]

mod bench_ipam;
mod bench_peers;
mod bench_ports;
mod bench_sandbox;
mod plan;
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
    /// Check a cluster address plan: node CIDRs, pods per node, capacity, service IPs.
    Plan(plan::PlanArgs),
    /// Benchmarks (programs, not tests).
    #[command(subcommand)]
    Bench(BenchCmd),
}

#[derive(Subcommand, Debug)]
enum BenchCmd {
    /// Create then delete N sandboxes; compare with the bare kernel requests and the CNI chain.
    Sandbox(bench_sandbox::BenchSandboxArgs),
    /// Sync N peers from empty, then time one peer change against N and against 10.
    Peers(bench_peers::BenchPeersArgs),
    /// Add then remove N host-port mappings; compare with the CNI portmap plugin.
    Ports(bench_ports::BenchPortsArgs),
    /// Allocate every node CIDR of a /8 and every service IP of a /12.
    Ipam(bench_ipam::BenchIpamArgs),
    #[command(hide = true)]
    PortmapWorker(bench_ports::PortmapWorkerArgs),
    #[command(hide = true)]
    CniWorker(bench_sandbox::CniWorkerArgs),
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.cmd {
        Cmd::Plan(a) => plan::run_plan(a),
        Cmd::Bench(BenchCmd::Sandbox(a)) => bench_sandbox::run(&a),
        Cmd::Bench(BenchCmd::Peers(a)) => bench_peers::run(&a),
        Cmd::Bench(BenchCmd::Ports(a)) => bench_ports::run(&a),
        Cmd::Bench(BenchCmd::PortmapWorker(a)) => bench_ports::portmap_worker(&a),
        Cmd::Bench(BenchCmd::Ipam(a)) => bench_ipam::run_bench_ipam(a),
        Cmd::Bench(BenchCmd::CniWorker(a)) => bench_sandbox::cni_worker(&a),
    };
    std::process::exit(code);
}
