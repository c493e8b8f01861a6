//! `podnet sandbox add | del | list | check`.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use podnet::blocking::Node;
use podnet::{NetnsSpec, PodMode, PortMapping, Result, Sandbox, SandboxSpec};
use serde_json::json;

use super::port::{parse_port, port_str};
use super::{valid_id, NodeCommand, Target};
use crate::modes::parser;
use crate::output::{emit, emit_json, join, show, Table, EXIT_CHECK_FAILED, EXIT_OK};

/// Sandbox commands.
#[derive(Subcommand, Debug)]
pub enum SandboxCmd {
    /// Create a sandbox: pinned netns, addresses, veth, host ports (idempotent).
    Add(SandboxAddArgs),
    /// Delete a sandbox (idempotent: an unknown id is success).
    #[command(visible_alias = "delete")]
    Del {
        /// Sandbox id.
        id: String,
    },
    /// List the node's sandboxes.
    #[command(visible_alias = "ls")]
    List,
    /// Compare a sandbox's kernel state with its record (exit 3 when they differ).
    Check {
        /// Sandbox id.
        id: String,
    },
}

/// Arguments of `podnet sandbox add`.
#[derive(Args, Debug)]
pub struct SandboxAddArgs {
    /// Sandbox id (letters, digits, '_', '.', '-').
    pub id: String,
    /// Interface name inside the pod.
    #[arg(long, value_name = "NAME", default_value = "eth0")]
    pub ifname: String,
    /// Attach to this existing netns (the runtime's) instead of creating one.
    #[arg(long, value_name = "PATH")]
    pub netns: Option<PathBuf>,
    /// Ask for this address (at most one per family).
    #[arg(long = "ip", value_name = "IP")]
    pub ips: Vec<IpAddr>,
    /// Host port, [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|udp|sctp] (repeatable).
    #[arg(long = "port", value_name = "SPEC", value_parser = parse_port)]
    pub ports: Vec<PortMapping>,
    /// Attach this pod unlike the node's default mode [default: the node's].
    #[arg(long, value_name = "MODE", value_parser = parser::<PodMode>())]
    pub mode: Option<PodMode>,
}

/// Sandboxes as a table: ID, IPS, MODE, IFNAME, HOST IF, NETNS, PORTS.
fn table(sbs: &[Sandbox]) -> String {
    let mut t = Table::new(&["ID", "IPS", "MODE", "IFNAME", "HOST IF", "NETNS", "PORTS"]);
    for sb in sbs {
        let ips: Vec<IpAddr> = sb.ips.iter().map(|n| n.ip()).collect();
        t.row(vec![
            sb.id.clone(),
            join(&ips),
            sb.mode.name().into(),
            sb.ifname.clone(),
            sb.host_ifname.clone(),
            sb.netns_path.display().to_string(),
            sb.ports.iter().map(port_str).collect::<Vec<_>>().join(","),
        ]);
    }
    t.render()
}

impl NodeCommand for SandboxCmd {
    fn run(self, t: &Target) -> Result<i32> {
        match self {
            Self::Add(s) => add(t, s),
            Self::Del { id } => del(t, &id),
            Self::List => t.list(Node::list_sandboxes, |sbs| table(sbs)),
            Self::Check { id } => check(t, &id),
        }
    }
}

fn add(t: &Target, a: SandboxAddArgs) -> Result<i32> {
    valid_id(&a.id, "validate sandbox")?;
    let cfg = t.load()?;
    let mut spec = SandboxSpec::new(a.id);
    spec.ifname = a.ifname;
    spec.netns = a.netns.map(NetnsSpec::Path).unwrap_or(NetnsSpec::Create);
    spec.ips = a.ips;
    spec.ports = a.ports;
    spec.mode = a.mode;
    // Bad input fails here, before the node is even opened.
    spec.validate(&cfg)?;
    let node = Node::open(cfg)?;
    let sb = node.create_sandbox(&spec)?;
    show(t.json, &sb, || table(std::slice::from_ref(&sb)))?;
    Ok(EXIT_OK)
}

fn del(t: &Target, id: &str) -> Result<i32> {
    valid_id(id, "delete sandbox")?;
    let (_, node) = t.open()?;
    node.delete_sandbox(id)?;
    if t.json {
        emit_json(&json!({"deleted": id}))?;
    }
    Ok(EXIT_OK)
}

fn check(t: &Target, id: &str) -> Result<i32> {
    valid_id(id, "check sandbox")?;
    let (_, node) = t.open()?;
    let rep = node.check_sandbox(id)?;
    if t.json {
        emit_json(&json!({"id": rep.id, "ok": rep.is_ok(), "problems": rep.problems}))?;
    } else if rep.is_ok() {
        emit(&format!("{}: ok\n", rep.id))?;
    } else {
        let mut s = format!("{}: {} problem(s)\n", rep.id, rep.problems.len());
        for p in &rep.problems {
            s.push_str(&format!("  - {p}\n"));
        }
        emit(&s)?;
    }
    Ok(if rep.is_ok() { EXIT_OK } else { EXIT_CHECK_FAILED })
}
