//! Times host-port element updates with many mappings present, in a throwaway netns.
//!
//! Run as root: `cargo run --release -p podnet --example nft_bench [-- EXISTING ITERATIONS]`
//! (defaults 10000 and 2000). Prints p50/p90/p99 of one `add_ports` and one `remove_ports` of a
//! single mapping, plus the full-table calls. Nothing outside the temp netns is touched.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use podnet::internals::netns;
use podnet::internals::nft::{Cidrs, HostPort, NftSocket, Proto, Ruleset};

/// Removes the pinned netns and its directory, also on panic.
struct Guard(PathBuf);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = netns::remove(&self.0.join("bench"));
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn port(i: u32) -> HostPort {
    HostPort {
        protocol: if i % 2 == 0 { Proto::Tcp } else { Proto::Udp },
        host_ip: None,
        host_port: 10_000 + (i / 2) as u16,
        pod_ip: IpAddr::V4(Ipv4Addr::new(10, 88, (i / 250 % 250) as u8, (i % 250) as u8 + 1)),
        pod_port: 80,
    }
}

fn report(name: &str, v: &mut [Duration]) {
    v.sort_unstable();
    let q = |p: usize| v[(v.len() * p / 100).min(v.len() - 1)].as_secs_f64() * 1e6;
    println!("{name:<34} p50 {:>7.1} us  p90 {:>7.1} us  p99 {:>7.1} us  (n={})", q(50), q(90), q(99), v.len());
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<u32>());
    let existing = args.next().transpose()?.unwrap_or(10_000);
    let iterations = args.next().transpose()?.unwrap_or(2_000);
    assert!(existing + iterations <= 100_000, "host ports run out");

    let dir = std::env::temp_dir().join(format!("podnet-nft-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let _guard = Guard(dir.clone());
    let ns = netns::create(&dir.join("bench"), || ())?;
    let mut sock = NftSocket::open_in(&ns.file)?;

    let present: Vec<HostPort> = (0..existing).map(port).collect();
    let rs = Ruleset {
        pod_cidrs: Cidrs { v4: vec!["10.88.0.0/16".parse()?], v6: vec![] },
        cluster_cidrs: Cidrs { v4: vec!["10.88.0.0/16".parse()?], v6: vec![] },
        egress_masquerade: true,
        ..Ruleset::default()
    };
    let t = Instant::now();
    sock.ensure_table(&rs, &present)?;
    println!("ensure_table with {existing} ports: {:?}", t.elapsed());
    let t = Instant::now();
    let listed = sock.list_ports()?;
    println!("list_ports ({} ports): {:?}", listed.len(), t.elapsed());

    let (mut add, mut del) = (Vec::new(), Vec::new());
    for i in existing..existing + iterations {
        let p = [port(i)];
        let t = Instant::now();
        sock.add_ports(&p)?;
        add.push(t.elapsed());
        let t = Instant::now();
        sock.remove_ports(&p)?;
        del.push(t.elapsed());
    }
    report(&format!("add_ports(1) with {existing} present"), &mut add);
    report(&format!("remove_ports(1) with {existing} present"), &mut del);

    let mut flush = Vec::new();
    for i in 0..200 {
        let t = Instant::now();
        sock.flush_udp_conntrack(&[port(2 * i + 1)])?;
        flush.push(t.elapsed());
    }
    report("flush_udp_conntrack(1), empty table", &mut flush);
    Ok(())
}
