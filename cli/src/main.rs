//! The `podnet` command: the demo, the operator's tools over the same library calls runtimes
//! use, and benchmarks. Exit codes (docs/cli.md): 0 ok, 1 operation failed, 2 invalid input,
//! 3 a check failed.
#![allow(missing_docs, reason = "a binary: its documentation is --help and docs/cli.md")]

mod agent;
mod bench_ipam;
mod bench_peers;
mod bench_ports;
mod bench_sandbox;
mod demo;
mod ops;
mod output;
mod plan;
mod stats;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "podnet",
    version,
    about = "Kubernetes pod networking as a library: demo, operator tools, benchmarks",
    after_help = "Exit codes: 0 ok, 1 operation failed, 2 invalid input, 3 a check failed. See docs/cli.md."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Build a two-node cluster in throwaway namespaces, prove every path with traffic, remove it.
    Demo(demo::DemoArgs),
    /// Initialize a node, show its status, repair its nftables table.
    Node(ops::NodeArgs),
    /// Create, delete, list and check sandboxes (pod network namespaces).
    Sandbox(ops::SandboxArgs),
    /// Paths to other nodes' pods: add, delete, list, sync.
    Peer(ops::PeerArgs),
    /// Host ports of sandboxes: add, delete, list.
    Port(ops::PortArgs),
    /// Delete sandboxes the runtime no longer has, and every orphan podnet left behind.
    Gc(ops::GcArgs),
    /// Check a cluster address plan: node CIDRs, pods per node, capacity, service IPs.
    Plan(plan::PlanArgs),
    /// The cluster agent: lease this node's pod CIDR from etcd and keep its peers programmed.
    Agent(agent::AgentArgs),
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
    /// N agents (own node netns each, in-process) join one etcd; then one more joins and leaves.
    Agent(agent::BenchAgentArgs),
    #[command(hide = true)]
    PortmapWorker(bench_ports::PortmapWorkerArgs),
    #[command(hide = true)]
    CniWorker(bench_sandbox::CniWorkerArgs),
}

/// Parse the command line; a usage error becomes one line, `error (invalid_argument): ...`,
/// with the usage appended, and exit code 2. Help and version print as clap prints them.
fn parse() -> Cli {
    use clap::error::ErrorKind as K;
    match Cli::try_parse() {
        Ok(c) => c,
        Err(e)
            if matches!(e.kind(), K::DisplayHelp | K::DisplayVersion | K::DisplayHelpOnMissingArgumentOrSubcommand) =>
        {
            e.exit()
        }
        Err(e) => {
            let text = e.render().to_string();
            // The message is the first paragraph ("...not provided:" continues on indented lines).
            let msg: Vec<&str> = text.lines().take_while(|l| !l.trim().is_empty()).map(str::trim).collect();
            let msg = msg.join(" ");
            let msg = msg.strip_prefix("error: ").unwrap_or(&msg);
            // Clap prints the usage for some errors only; always point at the help.
            let usage = text
                .lines()
                .find_map(|l| l.strip_prefix("Usage: "))
                .map(|u| format!("; usage: {u}"))
                .unwrap_or_else(|| "; see --help".into());
            eprintln!("error ({}): {msg}{usage}", podnet::ErrorKind::InvalidArgument);
            std::process::exit(output::EXIT_INVALID);
        }
    }
}

fn main() {
    let cli = parse();
    let code = match cli.cmd {
        Cmd::Demo(a) => demo::run(&a),
        Cmd::Node(a) => ops::run_node(a),
        Cmd::Sandbox(a) => ops::run_sandbox(a),
        Cmd::Peer(a) => ops::run_peer(a),
        Cmd::Port(a) => ops::run_port(a),
        Cmd::Gc(a) => ops::run_gc(a),
        Cmd::Plan(a) => plan::run_plan(a),
        Cmd::Agent(a) => agent::run(a),
        Cmd::Bench(BenchCmd::Agent(a)) => agent::bench(&a),
        Cmd::Bench(BenchCmd::Sandbox(a)) => bench_sandbox::run(&a),
        Cmd::Bench(BenchCmd::Peers(a)) => bench_peers::run(&a),
        Cmd::Bench(BenchCmd::Ports(a)) => bench_ports::run(&a),
        Cmd::Bench(BenchCmd::PortmapWorker(a)) => bench_ports::portmap_worker(&a),
        Cmd::Bench(BenchCmd::Ipam(a)) => bench_ipam::run_bench_ipam(a),
        Cmd::Bench(BenchCmd::CniWorker(a)) => bench_sandbox::cni_worker(&a),
    };
    std::process::exit(code);
}
