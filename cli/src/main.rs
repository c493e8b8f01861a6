//! The `podnet` command: the demo, the operator's tools over the same library calls runtimes
//! use, and benchmarks. This file only parses and dispatches: every command lives in its own
//! module (`cmd/`, `demo/`, `bench/`) as clap arguments implementing [`cmd::Run`], and prints
//! through `output` (tables, JSON, one-line errors, the exit codes of docs/cli.md).
#![allow(missing_docs, reason = "a binary: its documentation is --help and docs/cli.md")]
#![allow(
    rustdoc::broken_intra_doc_links,
    reason = "doc comments are clap help texts: usage brackets like [HOSTIP:] are not links"
)]

/// A clap subcommand enum whose every variant holds a [`cmd::Run`] value, and its dispatch:
/// adding a command is its module plus one line here (doc comment, variant, arguments type).
macro_rules! commands {
    ($(#[$meta:meta])* enum $name:ident { $($(#[$vmeta:meta])* $variant:ident($args:ty),)* }) => {
        $(#[$meta])*
        #[derive(clap::Subcommand, Debug)]
        pub enum $name {
            $($(#[$vmeta])* $variant($args),)*
        }

        impl $crate::cmd::Run for $name {
            fn run(self) -> i32 {
                match self {
                    $($name::$variant(a) => $crate::cmd::Run::run(a),)*
                }
            }
        }
    };
}

mod bench;
mod cmd;
mod demo;
mod modes;
mod output;

use clap::Parser;
use cmd::Run as _;

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

commands! {
    /// The top-level commands.
    enum Cmd {
        /// Build a two-node cluster in throwaway namespaces, prove every path with traffic, remove it.
        Demo(demo::DemoArgs),
        /// Initialize a node, show its status, repair its nftables table.
        Node(cmd::Group<cmd::node::NodeCmd>),
        /// Create, delete, list and check sandboxes (pod network namespaces).
        Sandbox(cmd::Group<cmd::sandbox::SandboxCmd>),
        /// Paths to other nodes' pods: add, delete, list, sync.
        Peer(cmd::Group<cmd::peer::PeerCmd>),
        /// Host ports of sandboxes: add, delete, list.
        Port(cmd::Group<cmd::port::PortCmd>),
        /// Services (ClusterIPs, NodePorts): program a node's whole set from a JSON file.
        Service(cmd::Group<cmd::service::ServiceCmd>),
        /// Delete sandboxes the runtime no longer has, and every orphan podnet left behind.
        Gc(cmd::gc::GcArgs),
        /// Check a cluster address plan: node CIDRs, pods per node, capacity, service IPs.
        Plan(cmd::plan::PlanArgs),
        /// The cluster agent: lease this node's pod CIDR from etcd and keep its peers programmed.
        Agent(cmd::agent::AgentArgs),
        /// Benchmarks (programs, not tests).
        #[command(subcommand)]
        Bench(bench::BenchCmd),
    }
}

fn main() {
    let cli = Cli::try_parse().unwrap_or_else(|e| output::usage_error(e));
    std::process::exit(cli.cmd.run());
}
