//! `podnet bench peers`: sync N peers from empty, then time one peer change against N and
//! against 10 peers (must be O(1)), and read the kernel's route/neighbour/FDB counts back.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use podnet::blocking::Node;
use podnet::{CrossNodeMode, Peer};
use serde_json::{json, Value};

use super::{finish, timed, BenchNode};
use crate::bench::Stats;
use crate::cmd::impl_run;
use crate::modes::parser;

/// Arguments of `podnet bench peers`.
#[derive(clap::Args, Debug)]
pub struct BenchPeersArgs {
    /// Number of peers.
    #[arg(long, default_value_t = 1000)]
    pub count: usize,
    /// Cross-node mode: overlay (3 kernel entries per peer) or routed (1).
    #[arg(long, default_value = CrossNodeMode::default().name(), value_parser = parser::<CrossNodeMode>())]
    pub mode: CrossNodeMode,
    /// Repetitions of the single-peer change.
    #[arg(long, default_value_t = 200)]
    pub changes: usize,
}

fn peer(i: usize, alt: bool) -> Peer {
    let host = 2 + i as u32 + if alt { 20000 } else { 0 };
    let ul = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 200, 0, 0)) + host);
    let cidr = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 100, 0, 0)) + ((i as u32) << 8));
    Peer::new(format!("peer{i}"), IpAddr::V4(ul), vec![format!("{cidr}/24").parse().expect("static")])
}

fn world(mode: CrossNodeMode, tag: &str) -> Result<(BenchNode, Node), String> {
    let w = BenchNode::new(tag)?;
    podnet_world::underlay(&w.ns, "10.200.0.1/16")?;
    let cfg = w
        .config(podnet::PodMode::Bridge, "10.99.0.0/24")
        .underlay("10.200.0.1".parse().expect("static"))
        .cross_node(mode)
        .cluster_cidr("10.0.0.0/8".parse().expect("static"));
    let node = Node::open(cfg).map_err(|e| e.to_string())?;
    Ok((w, node))
}

fn one_change(node: &Node, n: usize, reps: usize) -> Result<Stats, String> {
    // Alternate between two versions of one peer, so every call changes something.
    let versions = [peer(n / 2, true), peer(n / 2, false)];
    timed(reps, |r| node.block_on(node.inner().add_peer(&versions[r % 2])).map_err(|e| e.to_string()))
}

impl_run!(BenchPeersArgs => finish(bench));

fn bench(a: &BenchPeersArgs) -> Result<Value, String> {
    let mode = a.mode;
    if a.count < 10 || a.count > 60000 {
        return Err("--count must be between 10 and 60000".into());
    }
    let (w, node) = world(mode, "peers")?;
    let peers: Vec<Peer> = (0..a.count).map(|i| peer(i, false)).collect();
    eprintln!("sync_peers with {} peers from empty ({:?})...", a.count, mode);
    let t = Instant::now();
    let rep = node.block_on(node.inner().sync_peers(&peers)).map_err(|e| e.to_string())?;
    let sync_ms = t.elapsed().as_secs_f64() * 1e3;
    // Read back from the kernel.
    let (routes, neigh, fdb) = node.block_on(async {
        let nl = node.inner().netlink();
        let mut routes = 0;
        for r in nl.routes(false).await.map_err(|e| e.to_string())? {
            if r.header.protocol == podnet::internals::netlink::route_protocol(podnet::internals::PEER_ROUTE_PROTOCOL) {
                routes += 1;
            }
        }
        let vx = nl.link_by_name("podnet.1").await.map_err(|e| e.to_string())?;
        let (mut neigh, mut fdb) = (0, 0);
        if let Some(vx) = vx {
            neigh = nl
                .neighbours(vx.index, podnet::internals::netlink::Family::Inet)
                .await
                .map_err(|e| e.to_string())?
                .len();
            fdb = nl
                .neighbours(vx.index, podnet::internals::netlink::Family::Bridge)
                .await
                .map_err(|e| e.to_string())?
                .len();
        }
        Ok::<_, String>((routes, neigh, fdb))
    })?;
    let expect_overlay = mode == CrossNodeMode::Overlay;
    let counts_match = routes == a.count && (!expect_overlay || (neigh == a.count && fdb == a.count));
    eprintln!("one peer change against {} peers...", a.count);
    let big = one_change(&node, a.count, a.changes)?;
    let resync_t = Instant::now();
    node.block_on(node.inner().sync_peers(&peers)).map_err(|e| e.to_string())?;
    let resync_ms = resync_t.elapsed().as_secs_f64() * 1e3;
    drop(node);
    drop(w);
    eprintln!("one peer change against 10 peers...");
    let (w10, node10) = world(mode, "peers10")?;
    let small: Vec<Peer> = (0..10).map(|i| peer(i, false)).collect();
    node10.block_on(node10.inner().sync_peers(&small)).map_err(|e| e.to_string())?;
    let small_s = one_change(&node10, 10, a.changes)?;
    drop(node10);
    drop(w10);
    let out = json!({
        "count": a.count,
        "mode": mode.name(),
        "sync_added": rep.added,
        "kernel_routes": routes, "kernel_neighbours": neigh, "kernel_fdb": fdb, "counts_match": counts_match,
        "resync_noop_ms": resync_ms,
        "one_change_at_10_us": small_s.p50(), "one_change_at_10_p99_us": small_s.p99(),
        "one_change_at_1000_us": big.p50(), "one_change_at_1000_p99_us": big.p99(),
        "change_ratio": big.p50() / small_s.p50(),
        "sync_1000_ms": sync_ms,
    });
    eprintln!(
        "sync {} peers {:.1} ms; one change p50 {:.0} us at {} vs {:.0} us at 10; kernel counts match: {}",
        a.count,
        sync_ms,
        big.p50(),
        a.count,
        small_s.p50(),
        counts_match
    );
    if counts_match {
        Ok(out)
    } else {
        let _ = crate::output::emit_json_line(&out);
        Err(format!("kernel counts differ: {routes} routes, {neigh} neighbours, {fdb} fdb for {} peers", a.count))
    }
}
