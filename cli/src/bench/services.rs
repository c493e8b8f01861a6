//! `podnet bench services`: program N services of E endpoints from empty, time one change
//! (one endpoint in, one out, one service added) at 100 and at N services, and TCP connects
//! through a ClusterIP at both sizes. The changes at the two sizes are taken alternately on two
//! nodes (one holding 100 services, one N), so that the machine's other load weighs on both
//! sides of the ratio alike; with `--vs-kube-proxy`, the same job done kube-proxy's
//! ways in the same run, in a private network namespace: its nftables ruleset applied with
//! `nft -f` and its iptables rules with `iptables-restore` (cold, and one service added with the
//! transaction kube-proxy would send).

use std::fmt::Write as _;
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use podnet::blocking::Node;
use podnet::internals::netns;
use podnet::{Affinity, Endpoint, PodMode, Protocol, SandboxSpec, Service, ServicePort, TrafficPolicy};
use serde_json::json;

use podnet_world::World;

use super::Stats;

/// Arguments of `podnet bench services`.
#[derive(clap::Args, Debug)]
pub struct BenchServicesArgs {
    /// Number of services.
    #[arg(long, default_value_t = 10000)]
    pub count: usize,
    /// Endpoints per service.
    #[arg(long, default_value_t = 10)]
    pub endpoints: usize,
    /// Samples per kind of change.
    #[arg(long, default_value_t = 100)]
    pub samples: usize,
    /// Also apply kube-proxy's nftables ruleset with `nft -f` and its iptables rules with
    /// `iptables-restore`, for the same services.
    #[arg(long)]
    pub vs_kube_proxy: bool,
}

impl crate::cmd::Run for BenchServicesArgs {
    fn run(self) -> i32 {
        match run_inner(&self) {
            Ok(()) => crate::output::EXIT_OK,
            Err(e) => crate::output::fail_text("bench", &e),
        }
    }
}

fn us(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e6
}

fn cluster_ip(i: usize) -> Ipv4Addr {
    // 10.96.0.0/16, skipping .0 and .255 of every /24
    Ipv4Addr::new(10, 96, (i / 250) as u8, (i % 250) as u8 + 1)
}

fn endpoint_ip(i: usize, j: usize) -> Ipv4Addr {
    let n = i * 64 + j;
    Ipv4Addr::new(10, 112u8.wrapping_add((n >> 16) as u8), (n >> 8) as u8, n as u8)
}

fn service(i: usize, endpoints: usize) -> Service {
    Service {
        name: format!("default/svc{i}"),
        cluster_ips: vec![IpAddr::V4(cluster_ip(i))],
        ports: vec![ServicePort { protocol: Protocol::Tcp, port: 80, target_port: 8080, node_port: None }],
        external_ips: vec![],
        endpoints: (0..endpoints)
            .map(|j| Endpoint { ip: IpAddr::V4(endpoint_ip(i, j)), ports: vec![], ready: true, local: false })
            .collect(),
        affinity: Affinity::None,
        external_traffic_policy: TrafficPolicy::Cluster,
    }
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Samples of one size: endpoint in, endpoint out, service added, and all of them.
#[derive(Default)]
struct Changes {
    add_ep: Stats,
    del_ep: Stats,
    add_svc: Stats,
    all: Vec<f64>,
}

impl Changes {
    /// One change of each kind on `node`, which holds services `0..have` (sample `k`).
    fn sample(&mut self, node: &Node, have: usize, k: usize, a: &BenchServicesArgs) -> Result<(), String> {
        let n = node.inner();
        let i = (k * 7919) % have;
        let mut s = service(i, a.endpoints);
        s.endpoints.push(Endpoint { ip: IpAddr::V4(endpoint_ip(i, 63)), ports: vec![], ready: true, local: false });
        let t = Instant::now();
        node.block_on(n.set_service(&s)).map_err(err)?;
        let x = us(t);
        self.add_ep.push(x);
        self.all.push(x);
        let t = Instant::now();
        node.block_on(n.set_service(&service(i, a.endpoints))).map_err(err)?;
        let x = us(t);
        self.del_ep.push(x);
        self.all.push(x);
        let extra = service(a.count + 100 + k, a.endpoints);
        let t = Instant::now();
        node.block_on(n.set_service(&extra)).map_err(err)?;
        let x = us(t);
        self.add_svc.push(x);
        self.all.push(x);
        node.block_on(n.remove_service(&extra.name)).map_err(err)
    }
}

/// TCP connects (handshake only) from inside `client` to `to`.
fn connects(client: &Path, to: SocketAddr, n: usize) -> Result<Stats, String> {
    let f = File::open(client).map_err(err)?;
    netns::run_in(&f, move || -> Result<Stats, String> {
        let mut st = Stats::default();
        for _ in 0..n {
            let t = Instant::now();
            let c =
                TcpStream::connect_timeout(&to, Duration::from_secs(2)).map_err(|e| format!("connect {to}: {e}"))?;
            st.push(us(t));
            drop(c);
        }
        Ok(st)
    })
    .map_err(err)?
}

fn run_inner(a: &BenchServicesArgs) -> Result<(), String> {
    if a.count < 100 || a.count > 60000 || a.endpoints == 0 || a.endpoints > 60 || a.samples == 0 {
        return Err("--count must be 100..=60000, --endpoints 1..=60, --samples at least 1".into());
    }
    let mut w = World::try_new("bench-services")?;
    let ns = w.try_netns("node")?;
    let ns_small = w.try_netns("small")?;
    let open = |name: &str, ns: &Path| -> Result<Node, String> {
        let cfg = w
            .node_config(name, ns)
            .mode(PodMode::Bridge)
            .pod_cidr("10.99.0.0/16".parse().map_err(err)?)
            .cluster_cidr("10.96.0.0/11".parse().map_err(err)?)
            .service_cidr("10.96.0.0/16".parse().map_err(err)?);
        Node::open(cfg).map_err(err)
    };
    let node = open("bench", &ns)?;
    let node_small = open("bench-small", &ns_small)?;
    let n = node.inner().clone();
    let client = node.create_sandbox(&SandboxSpec::new("client")).map_err(err)?;
    let server = node.create_sandbox(&SandboxSpec::new("server")).map_err(err)?;
    let server_ip = server.ipv4().ok_or("server has no IPv4")?;
    let l = netns::run_in(&File::open(&server.netns_path).map_err(err)?, || TcpListener::bind(("0.0.0.0", 8080)))
        .map_err(err)?
        .map_err(err)?;
    l.set_nonblocking(true).map_err(err)?;
    let stop = Arc::new(AtomicBool::new(false));
    let st = stop.clone();
    let acceptor = std::thread::spawn(move || {
        while !st.load(Ordering::Relaxed) {
            if l.accept().is_err() {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    });
    // The probe service: one real endpoint, for the connect latency.
    let mut probe = service(a.count + 1, 0);
    probe.name = "default/probe".into();
    probe.endpoints = vec![Endpoint { ip: server_ip, ports: vec![], ready: true, local: true }];
    let probe_addr = SocketAddr::new(probe.cluster_ips[0], 80);
    let mut svcs: Vec<Service> = (0..a.count).map(|i| service(i, a.endpoints)).collect();
    svcs.push(probe.clone());
    let connects_n = 300;

    eprintln!("at 100 services...");
    let mut small = svcs[..100].to_vec();
    small.push(probe.clone());
    node.block_on(n.sync_services(&small)).map_err(err)?;
    connects(&client.netns_path, probe_addr, 20)?; // warm the neighbour entries
    let conn_small = connects(&client.netns_path, probe_addr, connects_n)?;
    node_small.block_on(node_small.inner().sync_services(&small)).map_err(err)?;

    eprintln!("programming {} services x {} endpoints from empty...", a.count, a.endpoints);
    node.block_on(n.sync_services(&[])).map_err(err)?;
    let t = Instant::now();
    node.block_on(n.sync_services(&svcs)).map_err(err)?;
    let cold_ms = us(t) / 1000.0;
    eprintln!("cold: {cold_ms:.1} ms; one change at 100 and at {}, alternately...", a.count);
    let (mut at_small, mut at_big) = (Changes::default(), Changes::default());
    for k in 0..a.samples {
        // alternate which size goes first, too
        if k % 2 == 0 {
            at_small.sample(&node_small, 100, k, a)?;
            at_big.sample(&node, a.count, k, a)?;
        } else {
            at_big.sample(&node, a.count, k, a)?;
            at_small.sample(&node_small, 100, k, a)?;
        }
    }
    let conn_big = connects(&client.netns_path, probe_addr, connects_n)?;
    let listed = node.block_on(n.list_services()).map_err(err)?.len();

    stop.store(true, Ordering::Relaxed);
    let _ = acceptor.join();
    node.block_on(n.sync_services(&[])).map_err(err)?;
    for id in ["client", "server"] {
        node.delete_sandbox(id).map_err(err)?;
    }
    node_small.block_on(node_small.inner().sync_services(&[])).map_err(err)?;
    drop(node);
    drop(node_small);
    drop(w);

    let (one_small, one_big) = (Stats::from_vec(at_small.all), Stats::from_vec(at_big.all));
    let c = a.count;
    let mut out = json!({
        "count": c,
        "endpoints": a.endpoints,
        "samples_per_kind": a.samples,
        "listed": listed,
        "cold_ms": cold_ms,
        "one_change_at_100_us": one_small.p50(),
        "one_change_at_100_p99_us": one_small.p99(),
        format!("one_change_at_{c}_us"): one_big.p50(),
        format!("one_change_at_{c}_p99_us"): one_big.p99(),
        "add_endpoint_at_100_us": at_small.add_ep.p50(),
        "remove_endpoint_at_100_us": at_small.del_ep.p50(),
        "add_service_at_100_us": at_small.add_svc.p50(),
        format!("add_endpoint_at_{c}_us"): at_big.add_ep.p50(),
        format!("remove_endpoint_at_{c}_us"): at_big.del_ep.p50(),
        format!("add_service_at_{c}_us"): at_big.add_svc.p50(),
        format!("one_change_ratio_{c}_over_100"): one_big.p50() / one_small.p50(),
        "connect_p50_us_at_100": conn_small.p50(),
        "connect_p99_us_at_100": conn_small.p99(),
        format!("connect_p50_us_at_{c}"): conn_big.p50(),
        format!("connect_p99_us_at_{c}"): conn_big.p99(),
        format!("connect_ratio_{c}_over_100"): conn_big.p50() / conn_small.p50(),
    });
    eprintln!(
        "podnet: cold {cold_ms:.1} ms; one change p50 {:.1} us at 100, {:.1} us at {c}; connect p50 {:.1} / {:.1} us",
        one_small.p50(),
        one_big.p50(),
        conn_small.p50(),
        conn_big.p50()
    );
    if a.vs_kube_proxy {
        let kp = kube_proxy(a)?;
        out["kube_proxy_nft_cold_ms"] = json!(kp.0);
        out["kube_proxy_nft_one_change_us"] = json!(kp.1.p50());
        out["iptables_restore_cold_ms"] = json!(kp.2);
        out["iptables_restore_one_change_us"] = json!(kp.3.p50());
        out["speedup_one_change"] = json!(kp.1.p50() / one_big.p50());
        out["speedup_one_change_vs_iptables"] = json!(kp.3.p50() / one_big.p50());
    }
    println!("{out}");
    if listed != a.count + 1 {
        return Err(format!("listed {listed} services, expected {}", a.count + 1));
    }
    Ok(())
}

// ---- kube-proxy's ways ----

fn kp_chain(i: usize) -> String {
    format!("service-{:08X}-default/svc{i}/tcp/p80", (i as u32).wrapping_mul(2_654_435_761))
}

fn kp_ep_chain(i: usize, j: usize) -> String {
    format!(
        "endpoint-{:08X}-default/svc{i}/tcp/p80__{}/8080",
        ((i * 64 + j) as u32).wrapping_mul(2_246_822_519),
        endpoint_ip(i, j)
    )
}

/// The rules kube-proxy's nftables mode writes for service `i` (chains, rules, elements).
fn kp_service(out: &mut String, i: usize, endpoints: usize) {
    let t = "ip kube-proxy";
    let ch = kp_chain(i);
    let cip = cluster_ip(i);
    // endpoint chains first: the service chain's vmap refers to them
    for j in 0..endpoints {
        let ec = kp_ep_chain(i, j);
        let ip = endpoint_ip(i, j);
        let _ = writeln!(out, "add chain {t} {ec}");
        let _ = writeln!(out, "flush chain {t} {ec}");
        let _ = writeln!(out, "add rule {t} {ec} ip saddr {ip} jump mark-for-masquerade");
        let _ = writeln!(out, "add rule {t} {ec} meta l4proto tcp dnat to {ip}:8080");
    }
    let _ = writeln!(out, "add chain {t} {ch}");
    let _ = writeln!(out, "flush chain {t} {ch}");
    let _ = writeln!(
        out,
        "add rule {t} {ch} ip daddr {cip} tcp dport 80 ip saddr != 10.99.0.0/16 jump mark-for-masquerade"
    );
    let vmap: Vec<String> = (0..endpoints).map(|j| format!("{j} : goto {}", kp_ep_chain(i, j))).collect();
    let _ = writeln!(out, "add rule {t} {ch} numgen random mod {endpoints} vmap {{ {} }}", vmap.join(" , "));
    let _ = writeln!(out, "add element {t} cluster-ips {{ {cip} }}");
    let _ = writeln!(out, "add element {t} service-ips {{ {cip} . tcp . 80 : goto {ch} }}");
}

/// kube-proxy's base ruleset (pkg/proxy/nftables), for a service CIDR of 10.96.0.0/16.
const KP_BASE: &str = r#"add table ip kube-proxy { comment "rules for kube-proxy" ; }
add set ip kube-proxy cluster-ips { type ipv4_addr ; comment "Active ClusterIPs" ; }
add set ip kube-proxy nodeport-ips { type ipv4_addr ; comment "IPs that accept NodePort traffic" ; }
add map ip kube-proxy firewall-ips { type ipv4_addr . inet_proto . inet_service : verdict ; }
add map ip kube-proxy no-endpoint-nodeports { type inet_proto . inet_service : verdict ; }
add map ip kube-proxy no-endpoint-services { type ipv4_addr . inet_proto . inet_service : verdict ; }
add map ip kube-proxy service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; }
add map ip kube-proxy service-nodeports { type inet_proto . inet_service : verdict ; }
add chain ip kube-proxy cluster-ips-check
add chain ip kube-proxy filter-prerouting-pre-dnat { type filter hook prerouting priority -110 ; }
add chain ip kube-proxy filter-output-pre-dnat { type filter hook output priority -110 ; }
add chain ip kube-proxy filter-forward { type filter hook forward priority 0 ; }
add chain ip kube-proxy filter-input { type filter hook input priority 0 ; }
add chain ip kube-proxy filter-output { type filter hook output priority 0 ; }
add chain ip kube-proxy firewall-check
add chain ip kube-proxy mark-for-masquerade
add chain ip kube-proxy masquerading
add chain ip kube-proxy nat-output { type nat hook output priority -100 ; }
add chain ip kube-proxy nat-postrouting { type nat hook postrouting priority 100 ; }
add chain ip kube-proxy nat-prerouting { type nat hook prerouting priority -100 ; }
add chain ip kube-proxy nodeport-endpoints-check
add chain ip kube-proxy reject-chain
add chain ip kube-proxy services
add chain ip kube-proxy service-endpoints-check
add rule ip kube-proxy cluster-ips-check ip daddr @cluster-ips reject
add rule ip kube-proxy cluster-ips-check ip daddr { 10.96.0.0/16 } drop
add rule ip kube-proxy filter-prerouting-pre-dnat ct state new jump firewall-check
add rule ip kube-proxy filter-forward ct state new jump service-endpoints-check
add rule ip kube-proxy filter-forward ct state new jump cluster-ips-check
add rule ip kube-proxy filter-input ct state new jump nodeport-endpoints-check
add rule ip kube-proxy filter-input ct state new jump service-endpoints-check
add rule ip kube-proxy filter-output ct state new jump service-endpoints-check
add rule ip kube-proxy filter-output-pre-dnat ct state new jump firewall-check
add rule ip kube-proxy filter-output ct state new jump cluster-ips-check
add rule ip kube-proxy firewall-check ip daddr . meta l4proto . th dport vmap @firewall-ips
add rule ip kube-proxy mark-for-masquerade mark set mark or 0x4000
add rule ip kube-proxy masquerading mark and 0x4000 == 0 return
add rule ip kube-proxy masquerading mark set mark xor 0x4000
add rule ip kube-proxy masquerading masquerade fully-random
add rule ip kube-proxy nat-output jump services
add rule ip kube-proxy nat-postrouting jump masquerading
add rule ip kube-proxy nat-prerouting jump services
add rule ip kube-proxy nodeport-endpoints-check ip daddr @nodeport-ips meta l4proto . th dport vmap @no-endpoint-nodeports
add rule ip kube-proxy reject-chain reject
add rule ip kube-proxy services ip daddr . meta l4proto . th dport vmap @service-ips
add rule ip kube-proxy services ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports
add rule ip kube-proxy service-endpoints-check ip daddr . meta l4proto . th dport vmap @no-endpoint-services
"#;

/// The iptables-restore input kube-proxy's iptables mode writes for `services` (nat table).
fn ipt_rules(out: &mut String, services: std::ops::Range<usize>, endpoints: usize, services_chain: &[usize]) {
    let svc_chain = |i: usize| format!("KUBE-SVC-{:016X}", (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let sep_chain =
        |i: usize, j: usize| format!("KUBE-SEP-{:016X}", ((i * 64 + j) as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F));
    out.push_str("*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-MARK-MASQ - [0:0]\n:KUBE-POSTROUTING - [0:0]\n");
    for i in services.clone() {
        let _ = writeln!(out, ":{} - [0:0]", svc_chain(i));
        for j in 0..endpoints {
            let _ = writeln!(out, ":{} - [0:0]", sep_chain(i, j));
        }
    }
    out.push_str("-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000\n");
    out.push_str("-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN\n");
    out.push_str("-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0\n");
    out.push_str("-A KUBE-POSTROUTING -j MASQUERADE --random-fully\n");
    // KUBE-SERVICES holds one rule per service: kube-proxy rewrites it whole on every sync.
    for &i in services_chain {
        let _ = writeln!(
            out,
            "-A KUBE-SERVICES -d {}/32 -p tcp -m comment --comment \"default/svc{i}:p80 cluster IP\" -m tcp --dport 80 -j {}",
            cluster_ip(i),
            svc_chain(i)
        );
    }
    for i in services {
        let sc = svc_chain(i);
        let _ = writeln!(
            out,
            "-A {sc} ! -s 10.99.0.0/16 -d {}/32 -p tcp -m tcp --dport 80 -j KUBE-MARK-MASQ",
            cluster_ip(i)
        );
        for j in 0..endpoints {
            let left = endpoints - j;
            if left > 1 {
                let _ = writeln!(
                    out,
                    "-A {sc} -m statistic --mode random --probability {:.11} -j {}",
                    1.0 / left as f64,
                    sep_chain(i, j)
                );
            } else {
                let _ = writeln!(out, "-A {sc} -j {}", sep_chain(i, j));
            }
            let ep = endpoint_ip(i, j);
            let _ = writeln!(out, "-A {} -s {ep}/32 -j KUBE-MARK-MASQ", sep_chain(i, j));
            let _ = writeln!(out, "-A {} -p tcp -m tcp -j DNAT --to-destination {ep}:8080", sep_chain(i, j));
        }
    }
    out.push_str("COMMIT\n");
}

/// Run `prog args` inside `ns` with `input` on stdin; returns the wall time in microseconds.
fn timed(ns: &Path, prog: &str, args: &[&str], input: &str) -> Result<f64, String> {
    let t = Instant::now();
    let mut child = Command::new("nsenter")
        .arg(format!("--net={}", ns.display()))
        .arg("--")
        .arg(prog)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("run {prog}: {e}"))?;
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().ok_or("no stdin")?;
        stdin.write_all(input.as_bytes()).map_err(err)?;
    }
    let o = child.wait_with_output().map_err(err)?;
    let dt = us(t);
    if !o.status.success() {
        return Err(format!("{prog} {args:?} failed: {}", String::from_utf8_lossy(&o.stderr)));
    }
    Ok(dt)
}

/// (nft cold ms, nft one-change samples, iptables-restore cold ms, iptables one-change samples)
fn kube_proxy(a: &BenchServicesArgs) -> Result<(f64, Stats, f64, Stats), String> {
    let samples = a.samples.clamp(1, 5);
    let dir = std::env::temp_dir().join(format!("podnet-bench-kp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(err)?;
    let ns = dir.join("kp");
    let res = (|| {
        netns::create(&ns, || ()).map_err(err)?;
        eprintln!("kube-proxy nftables: nft -f of {} services x {} endpoints...", a.count, a.endpoints);
        let mut cold = String::from(KP_BASE);
        for i in 0..a.count {
            kp_service(&mut cold, i, a.endpoints);
        }
        let nft_cold = timed(&ns, "nft", &["-f", "-"], &cold)? / 1000.0;
        drop(cold);
        eprintln!("  cold {nft_cold:.0} ms; one service added per transaction...");
        let mut nft_one = Stats::default();
        for k in 0..samples {
            let mut tx = String::from("add table ip kube-proxy { comment \"rules for kube-proxy\" ; }\n");
            kp_service(&mut tx, a.count + 10 + k, a.endpoints);
            nft_one.push(timed(&ns, "nft", &["-f", "-"], &tx)?);
        }
        eprintln!("  one change p50 {:.0} us", nft_one.p50());
        eprintln!("kube-proxy iptables: iptables-restore of {} services...", a.count);
        let mut ipt = String::new();
        let mut in_chain: Vec<usize> = (0..a.count).collect();
        ipt_rules(&mut ipt, 0..a.count, a.endpoints, &in_chain);
        let ipt_cold = timed(&ns, "iptables-restore", &["-w"], &ipt)? / 1000.0;
        drop(ipt);
        eprintln!("  cold {ipt_cold:.0} ms; one service added (KUBE-SERVICES rewritten, --noflush)...");
        let mut ipt_one = Stats::default();
        for k in 0..samples {
            let new = a.count + 10 + k;
            in_chain.push(new);
            let mut tx = String::new();
            ipt_rules(&mut tx, new..new + 1, a.endpoints, &in_chain);
            ipt_one.push(timed(&ns, "iptables-restore", &["-w", "--noflush"], &tx)?);
        }
        eprintln!("  one change p50 {:.0} us", ipt_one.p50());
        Ok((nft_cold, nft_one, ipt_cold, ipt_one))
    })();
    let _ = netns::remove(&ns);
    let _ = std::fs::remove_dir_all(&dir);
    res
}
