//! The ADD result in each version's format, and the prevResult comparison CHECK makes.
//!
//! 0.3.x/0.4.0 results carry `version` on each IP; 1.0.0 drops it; 1.1.0 adds the interface
//! `mtu`. Interfaces: the host veth (index 0) and the pod interface (index 1, with `sandbox`).

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnetwork::IpNetwork;
use podnet::Sandbox;
use serde_json::{json, Value};

use crate::conf::Version;
use crate::error::{code, CniError};

/// The result of an ADD for `sb`, in version `v`.
pub fn add_result(v: Version, sb: &Sandbox, mtu: u32, dns: Option<&Value>) -> Value {
    let mut pod_if = json!({"name": sb.ifname, "mac": sb.mac, "sandbox": sb.netns_path});
    if v >= Version::V1_1_0 {
        pod_if["mtu"] = json!(mtu);
    }
    let gw_of = |ip: &IpNetwork| sb.gateways.iter().copied().find(|g| g.is_ipv4() == ip.is_ipv4());
    let ips: Vec<Value> = sb
        .ips
        .iter()
        .map(|n| {
            let mut e = json!({"address": n.to_string(), "interface": 1});
            if let Some(gw) = gw_of(n) {
                e["gateway"] = json!(gw.to_string());
            }
            if v < Version::V1_0_0 {
                e["version"] = json!(if n.is_ipv4() { "4" } else { "6" });
            }
            e
        })
        .collect();
    let routes: Vec<Value> = sb
        .gateways
        .iter()
        .map(|gw| json!({"dst": if gw.is_ipv4() { "0.0.0.0/0" } else { "::/0" }, "gw": gw.to_string()}))
        .collect();
    json!({
        "cniVersion": v.as_str(),
        "interfaces": [{"name": sb.host_ifname}, pod_if],
        "ips": ips,
        "routes": routes,
        "dns": dns.cloned().unwrap_or_else(|| json!({})),
    })
}

/// CHECK: the prevResult the runtime cached must describe the sandbox podnet has: the same
/// addresses, and the pod interface by name in the same netns (with the same MAC if given).
pub fn compare_prev(prev: &Value, sb: &Sandbox) -> Result<(), CniError> {
    let bad = |m: String| CniError::new(code::INCONSISTENT, format!("CHECK {}: {m}", sb.id));
    let mut prev_ips = BTreeSet::new();
    for ip in prev.get("ips").and_then(Value::as_array).into_iter().flatten() {
        let a = ip.get("address").and_then(Value::as_str).unwrap_or_default();
        let n: IpNetwork =
            a.parse().map_err(|_| CniError::new(code::DECODE, format!("prevResult: address {a:?} is not a CIDR")))?;
        prev_ips.insert(n);
    }
    let have: BTreeSet<IpNetwork> = sb.ips.iter().copied().collect();
    if prev_ips != have {
        let show = |s: &BTreeSet<IpNetwork>| s.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(", ");
        return Err(bad(format!("prevResult has addresses [{}], the sandbox has [{}]", show(&prev_ips), show(&have))));
    }
    let ifs = prev.get("interfaces").and_then(Value::as_array).cloned().unwrap_or_default();
    let pod_if = ifs.iter().find(|i| {
        i.get("name").and_then(Value::as_str) == Some(sb.ifname.as_str())
            && i.get("sandbox").and_then(Value::as_str).is_some_and(|s| !s.is_empty())
    });
    let Some(pod_if) = pod_if else {
        return Err(bad(format!("prevResult lists no interface {} in a sandbox", sb.ifname)));
    };
    let ns = pod_if.get("sandbox").and_then(Value::as_str).unwrap_or_default();
    if std::path::Path::new(ns) != sb.netns_path {
        return Err(bad(format!(
            "prevResult puts {} in {ns}, the sandbox is in {}",
            sb.ifname,
            sb.netns_path.display()
        )));
    }
    if let Some(mac) = pod_if.get("mac").and_then(Value::as_str).filter(|m| !m.is_empty()) {
        if !mac.eq_ignore_ascii_case(&sb.mac) {
            return Err(bad(format!("prevResult has MAC {mac}, {} has {}", sb.ifname, sb.mac)));
        }
    }
    Ok(())
}

/// The default gateway of each family a result names (for tests and tools).
pub fn gateways(result: &Value) -> Vec<IpAddr> {
    result
        .get("routes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("gw").and_then(Value::as_str)?.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sb() -> Sandbox {
        Sandbox {
            id: "c1".into(),
            ifname: "eth0".into(),
            netns_path: "/run/netns/x".into(),
            owns_netns: false,
            host_ifname: "pn0123456789ab".into(),
            mac: "0a:58:0a:00:00:02".into(),
            ips: vec!["10.0.0.2/24".parse().unwrap(), "fd00::2/64".parse().unwrap()],
            gateways: vec!["10.0.0.1".parse().unwrap(), "fd00::1".parse().unwrap()],
            mode: podnet::PodMode::Bridge,
            ports: vec![],
            labels: Default::default(),
        }
    }

    #[test]
    fn formats_per_version() {
        let old = add_result(Version::V0_3_1, &sb(), 1500, None);
        assert_eq!(old["cniVersion"], "0.3.1");
        assert_eq!(old["ips"][0]["version"], "4");
        assert_eq!(old["ips"][1]["version"], "6");
        assert_eq!(old["ips"][0]["gateway"], "10.0.0.1");
        assert!(old["interfaces"][1].get("mtu").is_none());
        let v1 = add_result(Version::V1_0_0, &sb(), 1500, None);
        assert!(v1["ips"][0].get("version").is_none());
        let v11 = add_result(Version::V1_1_0, &sb(), 1450, Some(&json!({"nameservers": ["10.96.0.10"]})));
        assert_eq!(v11["interfaces"][1]["mtu"], 1450);
        assert_eq!(v11["interfaces"][1]["sandbox"], "/run/netns/x");
        assert_eq!(v11["routes"][1]["dst"], "::/0");
        assert_eq!(v11["dns"]["nameservers"][0], "10.96.0.10");
        assert_eq!(gateways(&v11).len(), 2);
    }

    #[test]
    fn prev_result_comparison() {
        let prev = add_result(Version::V0_4_0, &sb(), 1500, None);
        compare_prev(&prev, &sb()).unwrap();
        let mut other = sb();
        other.ips.pop();
        assert_eq!(compare_prev(&prev, &other).unwrap_err().code, code::INCONSISTENT);
        let mut moved = sb();
        moved.netns_path = "/run/netns/y".into();
        assert_eq!(compare_prev(&prev, &moved).unwrap_err().code, code::INCONSISTENT);
        let mut mac = sb();
        mac.mac = "0a:58:0a:00:00:09".into();
        assert_eq!(compare_prev(&prev, &mac).unwrap_err().code, code::INCONSISTENT);
        assert_eq!(compare_prev(&json!({"ips": [{"address": "x"}]}), &sb()).unwrap_err().code, code::DECODE);
    }
}
