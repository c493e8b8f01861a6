//! `podnet gc`: delete the sandboxes the runtime no longer has, then every orphan.

use std::path::PathBuf;

use clap::Args;
use podnet::{Error, Result};

use super::{impl_run, read_input, valid_id, Target};
use crate::output::{fail_text, finish, show, Table, EXIT_OK};

/// Arguments of `podnet gc`. Which sandboxes are alive must be said explicitly: a bare
/// `podnet gc` would otherwise delete every sandbox of the node.
#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("which").required(true).multiple(true).args(["live", "live_file", "orphans_only", "all"])))]
pub struct GcArgs {
    #[command(flatten)]
    pub target: Target,
    /// A sandbox id the runtime still has (repeatable); every other sandbox is deleted.
    #[arg(long, value_name = "ID", conflicts_with_all = ["orphans_only", "all"])]
    pub live: Vec<String>,
    /// A file of live sandbox ids, one per line (`#` comments; `-` reads stdin).
    #[arg(long = "live-file", value_name = "FILE", conflicts_with_all = ["orphans_only", "all"])]
    pub live_file: Option<PathBuf>,
    /// Keep every recorded sandbox; remove only orphans (reservations, pins, veths without a record).
    #[arg(long = "orphans-only", conflicts_with = "all")]
    pub orphans_only: bool,
    /// No sandbox is live: delete every sandbox of the node, then the orphans.
    #[arg(long)]
    pub all: bool,
}

impl_run!(GcArgs => finish(gc));

fn gc(a: &GcArgs) -> Result<i32> {
    let t = &a.target;
    let mut live: Vec<String> = a.live.clone();
    if let Some(f) = &a.live_file {
        let data = read_input(f, "live list")?;
        let text = String::from_utf8(data)
            .map_err(|_| Error::invalid(format!("read live list {}", f.display()), "not UTF-8 text"))?;
        for l in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
            live.push(l.to_string());
        }
    }
    for id in &live {
        valid_id(id, "gc: live sandbox")?;
    }
    let (_, node) = t.open()?;
    let rep = if a.orphans_only {
        // Not gc(list): a sandbox created between the list and the gc would be taken for dead.
        node.gc_orphans()?
    } else {
        let refs: Vec<&str> = live.iter().map(String::as_str).collect();
        node.gc(&refs)?
    };
    show(t.json, &rep, || {
        let mut tb = Table::new(&["REMOVED", "WHAT"]);
        let rows = [
            ("sandbox", rep.sandboxes.clone()),
            ("address", rep.ips.iter().map(|ip| ip.to_string()).collect()),
            ("netns pin", rep.netns.iter().map(|p| p.display().to_string()).collect()),
            ("host veth", rep.links.clone()),
        ];
        for (what, items) in rows {
            for i in items {
                tb.row(vec![what.into(), i]);
            }
        }
        tb.render()
    })?;
    if rep.errors.is_empty() {
        return Ok(EXIT_OK);
    }
    // The library reports gc's per-step failures as text, without a kind.
    Ok(fail_text("gc", &format!("{} step(s) failed: {}", rep.errors.len(), rep.errors.join("; "))))
}
