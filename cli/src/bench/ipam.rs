//! `podnet bench ipam`: time the cluster allocators at full scale. Allocates every node CIDR of a
//! cluster CIDR (default: every /24 of a /8) and every IP of a service range (default: a /12),
//! checks the counts are exact, and prints a summary followed by one JSON line.

use std::time::Instant;

use podnet::{Error, ErrorKind};
use podnet_cluster::{Cidr, ClusterCidr, NodeCidrAllocator, ServiceIpAllocator};

use crate::cmd::Run;
use crate::output::{emit, finish, EXIT_OK};

/// Target for allocating every node CIDR of the default /8, in milliseconds.
const NODE_CIDRS_TARGET_MS: f64 = 50.0;
/// Target for allocating every service IP of the default /12, in milliseconds.
const SERVICE_IPS_TARGET_MS: f64 = 500.0;

/// Arguments of `podnet bench ipam`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchIpamArgs {
    /// Cluster CIDR to split into node CIDRs.
    #[arg(long = "cluster-cidr", value_name = "CIDR", default_value = "10.0.0.0/8")]
    pub cluster_cidr: String,

    /// Node CIDR prefix length.
    #[arg(long = "node-mask", value_name = "BITS", default_value_t = 24)]
    pub node_mask: u8,

    /// Service range to fill.
    #[arg(long = "service-cidr", value_name = "CIDR", default_value = "172.16.0.0/12")]
    pub service_cidr: String,

    /// Repeat each measurement this many times and report the fastest.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub runs: u32,

    /// Seed for the service allocator's random band (default: from the clock).
    #[arg(long, value_name = "SEED")]
    pub seed: Option<u64>,
}

/// One full-scale measurement.
#[derive(Debug, Clone, serde::Serialize)]
struct Report {
    node_cidrs_all_ms: f64,
    service_ips_all_ms: f64,
    node_cidrs: u64,
    service_ips: u64,
    node_state_bytes: usize,
    service_state_bytes: usize,
    service_to_bytes_ms: f64,
    service_from_bytes_ms: f64,
    cluster_cidr: String,
    node_mask: u8,
    service_cidr: String,
    runs: u32,
    profile: &'static str,
    node_cidrs_target_ms: f64,
    service_ips_target_ms: f64,
    within_targets: bool,
}

/// Run `podnet bench ipam`: 0 when the run completed (whether or not it met the targets, which
/// the JSON reports), 2 on bad arguments, 1 when a count came out wrong.
impl Run for BenchIpamArgs {
    fn run(self) -> i32 {
        finish(bench(&self).and_then(|report| {
            let json = serde_json::to_string(&report)
                .map_err(|e| Error::new(ErrorKind::Internal, "encode benchmark report", e))?;
            emit(&format!("{}{json}\n", summary(&report)))?;
            Ok(EXIT_OK)
        }))
    }
}

fn ms(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0
}

fn bench(args: &BenchIpamArgs) -> Result<Report, Error> {
    let cluster = Cidr::parse(&args.cluster_cidr).map_err(|e| e.context("--cluster-cidr"))?;
    let service = Cidr::parse(&args.service_cidr).map_err(|e| e.context("--service-cidr"))?;
    if args.runs == 0 {
        return Err(Error::invalid("--runs", "at least one run is needed"));
    }
    let pool = ClusterCidr { cidr: cluster, node_mask: args.node_mask };

    let mut node_best = f64::INFINITY;
    let mut service_best = f64::INFINITY;
    let mut last = None;
    for run in 0..args.runs {
        let (node_ms, nodes) = fill_node_cidrs(pool, service)?;
        let seed = args.seed.map(|s| s.wrapping_add(u64::from(run)));
        let (service_ms, services) = fill_service_ips(service, seed)?;
        node_best = node_best.min(node_ms);
        service_best = service_best.min(service_ms);
        last = Some((nodes, services));
    }
    let Some((nodes, services)) = last else {
        return Err(Error::invalid("--runs", "at least one run is needed"));
    };

    let start = Instant::now();
    let service_bytes = services.to_bytes();
    let service_to_bytes_ms = ms(start);
    let start = Instant::now();
    let restored = ServiceIpAllocator::from_bytes(&service_bytes)?;
    let service_from_bytes_ms = ms(start);
    if restored.allocated() != services.allocated() {
        return Err(Error::new(
            ErrorKind::Internal,
            "check restored service allocator",
            format!("{} allocated after restore, {} before", restored.allocated(), services.allocated()),
        ));
    }

    let within_targets = node_best < NODE_CIDRS_TARGET_MS && service_best < SERVICE_IPS_TARGET_MS;
    Ok(Report {
        node_cidrs_all_ms: round3(node_best),
        service_ips_all_ms: round3(service_best),
        node_cidrs: nodes.usage()[0].allocated,
        service_ips: services.allocated(),
        node_state_bytes: nodes.to_bytes().len(),
        service_state_bytes: service_bytes.len(),
        service_to_bytes_ms: round3(service_to_bytes_ms),
        service_from_bytes_ms: round3(service_from_bytes_ms),
        cluster_cidr: cluster.to_string(),
        node_mask: args.node_mask,
        service_cidr: service.to_string(),
        runs: args.runs,
        profile: if cfg!(debug_assertions) { "debug" } else { "release" },
        node_cidrs_target_ms: NODE_CIDRS_TARGET_MS,
        service_ips_target_ms: SERVICE_IPS_TARGET_MS,
        within_targets,
    })
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Allocate node CIDRs until the allocator is exhausted; the count must equal the capacity.
fn fill_node_cidrs(pool: ClusterCidr, service: Cidr) -> Result<(f64, NodeCidrAllocator), Error> {
    // The service range is passed only when it lies outside the cluster CIDR, so the default
    // pair and a user's overlapping pair both still measure the allocator rather than failing.
    let services: &[Cidr] = if service.overlaps(&pool.cidr) { &[] } else { &[service] };
    let start = Instant::now();
    let mut alloc = NodeCidrAllocator::new(&[pool], services)?;
    let (count, exhausted) = until_exhausted(0, || alloc.allocate());
    let elapsed = ms(start);
    check_exact("node CIDRs", count, alloc.capacity(), &exhausted)?;
    Ok((elapsed, alloc))
}

/// Claim the API server's IP, then allocate dynamically until exhausted; the count must equal
/// the range size.
fn fill_service_ips(service: Cidr, seed: Option<u64>) -> Result<(f64, ServiceIpAllocator), Error> {
    let start = Instant::now();
    let mut alloc = ServiceIpAllocator::new(service)?;
    if let Some(seed) = seed {
        alloc = alloc.with_seed(seed);
    }
    alloc.allocate(alloc.api_server_ip())?;
    let (count, exhausted) = until_exhausted(1, || alloc.allocate_next());
    let elapsed = ms(start);
    check_exact("service IPs", count, alloc.size(), &exhausted)?;
    Ok((elapsed, alloc))
}

/// Call `next` until it fails; the count of successes (plus `start`) and the error it stopped with.
fn until_exhausted<T>(start: u64, mut next: impl FnMut() -> Result<T, Error>) -> (u64, Error) {
    let mut count = start;
    loop {
        match next() {
            Ok(_) => count += 1,
            Err(e) => return (count, e),
        }
    }
}

fn check_exact(what: &str, count: u64, capacity: u64, stop: &Error) -> Result<(), Error> {
    if stop.kind() != ErrorKind::Exhausted || count != capacity {
        return Err(Error::new(
            ErrorKind::Internal,
            format!("fill all {what}"),
            format!("allocated {count} of {capacity}, then stopped with: {stop}"),
        ));
    }
    Ok(())
}

fn summary(r: &Report) -> String {
    let line = |label: &str, count: u64, what: String, ms: f64, target: f64| {
        let verdict = if ms < target { "ok" } else { "OVER TARGET" };
        format!("  {label:<12} {count:>9} {what} {ms:>10.3} ms  (target < {target} ms: {verdict})\n")
    };
    let mut out = format!("podnet bench ipam ({} build, best of {} run(s))\n", r.profile, r.runs);
    out += &line(
        "node CIDRs:",
        r.node_cidrs,
        format!("/{}s of {:<16}", r.node_mask, r.cluster_cidr),
        r.node_cidrs_all_ms,
        r.node_cidrs_target_ms,
    );
    out += &line(
        "service IPs:",
        r.service_ips,
        format!("IPs of {:<17}", r.service_cidr),
        r.service_ips_all_ms,
        r.service_ips_target_ms,
    );
    out += &format!(
        "  state: node allocator {} bytes, service allocator {} bytes \
         (to_bytes {:.3} ms, from_bytes {:.3} ms)\n",
        r.node_state_bytes, r.service_state_bytes, r.service_to_bytes_ms, r.service_from_bytes_ms
    );
    if r.profile == "debug" {
        out += "  note: debug build; the targets apply to release builds (cargo build --release)\n";
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_ranges_fill_exactly() {
        let args = BenchIpamArgs {
            cluster_cidr: "10.0.0.0/16".to_owned(),
            node_mask: 24,
            service_cidr: "172.16.0.0/20".to_owned(),
            runs: 2,
            seed: Some(1),
        };
        let r = bench(&args).unwrap();
        assert_eq!(r.node_cidrs, 256);
        assert_eq!(r.service_ips, 4094);
        let json = serde_json::to_value(&r).unwrap();
        assert!(json["node_cidrs_all_ms"].is_number());
        assert!(json["service_ips_all_ms"].is_number());
        assert_eq!(args.run(), 0);
    }

    #[test]
    fn bad_arguments_exit_2() {
        let args = BenchIpamArgs {
            cluster_cidr: "10.0.0.1/8".to_owned(),
            node_mask: 24,
            service_cidr: "172.16.0.0/12".to_owned(),
            runs: 1,
            seed: None,
        };
        assert_eq!(args.clone().run(), 2);
        assert_eq!(BenchIpamArgs { cluster_cidr: "10.0.0.0/8".into(), runs: 0, ..args }.run(), 2);
    }
}
