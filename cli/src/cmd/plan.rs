//! `podnet plan`: check a cluster's address plan before building it. Parses the flags, runs
//! [`podnet_cluster::plan`] and prints the result as an aligned table or one JSON object.

use std::fmt::Write as _;

use podnet::{Error, ErrorKind};
use podnet_cluster::{Cidr, MachinePlan, Plan, PlanInput, PodRangePlan, ServicePlan};

use super::Run;
use crate::output::{emit, finish, thousands, Align, Table, EXIT_OK};

/// Arguments of `podnet plan`. Every list flag may be repeated or comma-separated; dual-stack
/// lists take one IPv4 and one IPv6 entry, primary family first.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PlanArgs {
    /// Pod range(s) of the cluster, e.g. 10.10.0.0/16 or 10.10.0.0/16,fd00:10::/56.
    #[arg(long = "cluster-cidr", value_name = "CIDR", value_delimiter = ',', required = true)]
    pub cluster_cidr: Vec<String>,

    /// Node CIDR prefix length per cluster CIDR, same order (24 or /24). Default: 24 for IPv4,
    /// 64 for IPv6, as in Kubernetes.
    #[arg(long = "node-mask", value_name = "BITS", value_delimiter = ',')]
    pub node_mask: Vec<String>,

    /// Subnet the nodes' own addresses come from; limits the node count.
    #[arg(long = "machine-subnet", value_name = "CIDR")]
    pub machine_subnet: Option<String>,

    /// How many of the machines are control-plane nodes (they run no workload pods).
    // Negative numbers reach our parser, which names the flag, rather than clap's "unexpected
    // argument".
    #[arg(long = "control-plane", value_name = "N", default_value = "0", allow_negative_numbers = true)]
    pub control_plane: String,

    /// Service range(s), e.g. 10.0.0.0/16 or 10.0.0.0/16,fd00:96::/108.
    #[arg(long = "service-cidr", value_name = "CIDR", value_delimiter = ',')]
    pub service_cidr: Vec<String>,

    /// Print the plan as one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl Run for PlanArgs {
    /// Print the plan (warnings included): 0 on success (also with warnings), 2 on bad input, 1
    /// on anything else.
    fn run(self) -> i32 {
        finish(render(&self).and_then(|text| emit(&text)).map(|()| EXIT_OK))
    }
}

/// The complete output for `args`, or the error to report.
fn render(args: &PlanArgs) -> Result<String, Error> {
    let plan = podnet_cluster::plan(&parse_input(args)?)?;
    if args.json {
        let json =
            serde_json::to_string(&plan).map_err(|e| Error::new(ErrorKind::Internal, "encode plan as JSON", e))?;
        Ok(format!("{json}\n"))
    } else {
        Ok(table(&plan))
    }
}

/// Turn the flag strings into a [`PlanInput`], naming the flag in every error.
fn parse_input(args: &PlanArgs) -> Result<PlanInput, Error> {
    let cidrs = |flag: &str, values: &[String]| -> Result<Vec<Cidr>, Error> {
        values.iter().filter(|v| !v.trim().is_empty()).map(|v| Cidr::parse(v).map_err(|e| e.context(flag))).collect()
    };
    let node_masks = args
        .node_mask
        .iter()
        .filter(|v| !v.trim().is_empty())
        .map(|v| parse_mask(v))
        .collect::<Result<Vec<u8>, Error>>()?;
    let machine_subnet = match &args.machine_subnet {
        Some(v) => Some(Cidr::parse(v).map_err(|e| e.context("--machine-subnet"))?),
        None => None,
    };
    let control_plane = args.control_plane.trim().parse::<u64>().map_err(|_| {
        Error::invalid(
            "--control-plane",
            format!("{:?} is not a count of machines (a whole number, 0 or more)", args.control_plane),
        )
    })?;
    Ok(PlanInput {
        cluster_cidrs: cidrs("--cluster-cidr", &args.cluster_cidr)?,
        node_masks,
        machine_subnet,
        control_plane,
        service_cidrs: cidrs("--service-cidr", &args.service_cidr)?,
    })
}

/// `24` or `/24`. The family limit (32 or 128) is checked by the planner, which knows the family.
fn parse_mask(text: &str) -> Result<u8, Error> {
    let digits = text.trim().trim_start_matches('/');
    let value = (!digits.is_empty() && digits.len() <= 3 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse::<u32>().ok())
        .flatten()
        .ok_or_else(|| Error::invalid("--node-mask", format!("{text:?} is not a prefix length (write 24 or /24)")))?;
    u8::try_from(value).ok().filter(|m| *m <= 128).ok_or_else(|| {
        Error::invalid(
            "--node-mask",
            format!("/{value} is out of range: a node mask is at most /32 (IPv4) or /128 (IPv6)"),
        )
    })
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// A column of a plan section: its header, its alignment, and its cell for one item.
type Column<T> = (&'static str, Align, fn(&T) -> String);

/// One titled section of the plan: a table of `items`, one row each, under its title, then a
/// blank line.
fn grid<'a, T: 'a>(out: &mut String, title: &str, columns: &[Column<T>], items: impl IntoIterator<Item = &'a T>) {
    let header: Vec<(&str, Align)> = columns.iter().map(|(h, a, _)| (*h, *a)).collect();
    let mut t = Table::aligned(&header).indent(2).blank("");
    for item in items {
        t.row(columns.iter().map(|(_, _, cell)| cell(item)).collect());
    }
    out.push_str(title);
    out.push('\n');
    out.push_str(&t.render());
    out.push('\n');
}

/// The plan as readable, aligned tables.
fn table(plan: &Plan) -> String {
    use Align::{Left, Right};
    let mut out = String::new();

    let pod_ranges: &[Column<PodRangePlan>] = &[
        ("FAMILY", Left, |p| p.family.to_string()),
        ("CLUSTER CIDR", Left, |p| p.cluster_cidr.to_string()),
        ("NODE MASK", Right, |p| format!("/{}", p.node_mask)),
        ("NODE CIDRS", Right, |p| thousands(p.node_cidrs)),
        ("FIRST NODE CIDR", Left, |p| opt(p.first_node_cidr)),
        ("LAST NODE CIDR", Left, |p| opt(p.last_node_cidr)),
        ("PODS/NODE", Right, |p| thousands(p.pods_per_node)),
        ("POD CAPACITY", Right, |p| thousands(p.pod_capacity)),
    ];
    grid(&mut out, "Pod ranges", pod_ranges, &plan.pod_ranges);

    if let Some(m) = &plan.machines {
        let machines: &[Column<MachinePlan>] = &[
            ("MACHINE SUBNET", Left, |m| m.subnet.to_string()),
            ("NODES", Right, |m| thousands(m.nodes)),
            ("CONTROL PLANE", Right, |m| thousands(u128::from(m.control_plane))),
            ("WORKERS", Right, |m| thousands(m.workers)),
        ];
        grid(&mut out, "Machines", machines, [m]);
    }

    if !plan.services.is_empty() {
        let services: &[Column<ServicePlan>] = &[
            ("FAMILY", Left, |s| s.family.to_string()),
            ("SERVICE CIDR", Left, |s| s.cidr.to_string()),
            ("SERVICE IPS", Right, |s| thousands(s.service_ips)),
            ("STATIC BAND", Right, |s| thousands(u128::from(s.static_band))),
            ("API SERVER IP", Left, |s| opt(s.api_server_ip)),
        ];
        grid(&mut out, "Services", services, &plan.services);
    }

    let nodes_from = if plan.machines.is_some() {
        "smallest of machine addresses and node CIDRs"
    } else {
        "node CIDRs; no machine subnet given"
    };
    let summary = [
        ("Nodes", plan.nodes, nodes_from.to_owned()),
        ("Control plane", u128::from(plan.control_plane), String::new()),
        ("Workers", plan.workers, format!("{} nodes - {} control plane", thousands(plan.nodes), plan.control_plane)),
        ("Pods per node", plan.pods_per_node, String::new()),
        (
            "Pod capacity",
            plan.pod_capacity,
            format!("{} workers x {} pods per node", thousands(plan.workers), thousands(plan.pods_per_node)),
        ),
    ];
    let lines: &[Column<(&str, u128, String)>] =
        &[("", Left, |l| l.0.to_owned()), ("", Right, |l| thousands(l.1)), ("", Left, |l| l.2.clone())];
    grid(&mut out, "Summary", lines, &summary);

    if plan.warnings.is_empty() {
        out.push_str("Warnings: none\n");
    } else {
        out.push_str("Warnings\n");
        for w in &plan.warnings {
            let code =
                serde_json::to_value(w.code).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
            let _ = writeln!(out, "  - {code}: {}", w.message);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: PlanArgs,
    }

    fn args(argv: &[&str]) -> PlanArgs {
        Cli::try_parse_from(std::iter::once("plan").chain(argv.iter().copied())).unwrap().args
    }

    const WORKED: &[&str] = &[
        "--cluster-cidr",
        "10.10.0.0/16",
        "--node-mask",
        "24",
        "--machine-subnet",
        "10.1.0.0/24",
        "--control-plane",
        "9",
        "--service-cidr",
        "10.0.0.0/16",
    ];

    #[test]
    fn worked_example_table() {
        let text = render(&args(WORKED)).unwrap();
        for needle in [
            "10.10.0.0/24",
            "10.10.255.0/24",
            "62,230",
            "65,534",
            "245 workers x 254 pods per node",
            "10.0.0.1",
            "node_cidrs_exceed_machines",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        let header = text.lines().nth(1).unwrap();
        let row = text.lines().nth(2).unwrap();
        // Right-aligned numeric column: header and value end at the same place.
        let end = header.find("POD CAPACITY").unwrap() + "POD CAPACITY".len();
        assert_eq!(&row[end - "62,230".len()..end], "62,230", "\n{header}\n{row}");
    }

    #[test]
    fn worked_example_json() {
        let mut argv = WORKED.to_vec();
        argv.push("--json");
        let text = render(&args(&argv)).unwrap();
        assert_eq!(text.lines().count(), 1);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["pod_capacity"], 62_230);
        assert_eq!(v["workers"], 245);
        assert_eq!(v["pod_ranges"][0]["node_cidrs"], 256);
        assert_eq!(v["pod_ranges"][0]["pods_per_node"], 254);
        assert_eq!(v["pod_ranges"][0]["last_node_cidr"], "10.10.255.0/24");
        assert_eq!(v["machines"]["nodes"], 254);
        assert_eq!(v["services"][0]["service_ips"], 65_534);
    }

    #[test]
    fn dual_stack_flags_comma_separated_or_repeated() {
        let a = args(&["--cluster-cidr", "10.10.0.0/16,fd00:10::/56", "--node-mask", "24,/64"]);
        let b = args(&[
            "--cluster-cidr",
            "10.10.0.0/16",
            "--cluster-cidr",
            "fd00:10::/56",
            "--node-mask",
            "24",
            "--node-mask",
            "64",
        ]);
        let (pa, pb) = (parse_input(&a).unwrap(), parse_input(&b).unwrap());
        assert_eq!(pa, pb);
        assert_eq!(pa.node_masks, vec![24, 64]);
        let text = render(&a).unwrap();
        assert!(text.contains("IPv6") && text.contains("fd00:10:0:ff::/64"), "{text}");
        assert!(text.contains("18,446,744,073,709,551,615"), "{text}");
    }

    #[test]
    fn bad_input_is_one_clear_invalid_argument() {
        let cases: &[(&[&str], &str)] = &[
            (&["--cluster-cidr", "10.10.0.0"], "missing /prefix"),
            (&["--cluster-cidr", "10.10.0.1/16"], "did you mean 10.10.0.0/16"),
            (&["--cluster-cidr", "10.10.0.0/16", "--node-mask", "33"], "/33 is out of range"),
            (&["--cluster-cidr", "10.10.0.0/16", "--node-mask", "200"], "/200 is out of range"),
            (&["--cluster-cidr", "10.10.0.0/16", "--node-mask", "x"], "not a prefix length"),
            (&["--cluster-cidr", "10.10.0.0/16,10.11.0.0/16"], "dual-stack needs"),
            (&["--cluster-cidr", "::ffff:10.0.0.0/112"], "IPv4-mapped"),
            (
                &["--cluster-cidr", "10.0.0.0/8", "--service-cidr", "10.96.0.0/12"],
                "service range 10.96.0.0/12 overlaps cluster CIDR 10.0.0.0/8",
            ),
            (&["--cluster-cidr", "10.10.0.0/16", "--control-plane", "-1"], "--control-plane"),
            (&["--cluster-cidr", "10.10.0.0/16", "--machine-subnet", "x/8"], "--machine-subnet"),
        ];
        for (argv, needle) in cases {
            let e = render(&args(argv)).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{argv:?}");
            let line = format!("error ({}): {e}", e.kind());
            assert!(line.starts_with("error (invalid_argument): "), "{line}");
            assert!(line.contains(needle), "{line} lacks {needle:?}");
            assert!(!line.contains('\n'), "{line}");
        }
        assert_eq!(args(&["--cluster-cidr", "10.10.0.1/16"]).run(), 2);
        assert_eq!(args(WORKED).run(), 0);
    }

    #[test]
    fn mask_parsing() {
        assert_eq!(parse_mask("24").unwrap(), 24);
        assert_eq!(parse_mask(" /64 ").unwrap(), 64);
        assert!(parse_mask("").is_err());
        assert!(parse_mask("+24").is_err());
        assert!(parse_mask("129").is_err());
    }
}
