//! podnet's nf_tables programming over netlink: table `inet podnet` with host-port DNAT maps and
//! masquerade rules, built by our own encoder (no nft/iptables exec, no libnftnl), plus a UDP
//! conntrack flush for host ports. Blocking calls on one NETLINK_NETFILTER socket.
//!
//! # The table
//! ```text
//! table inet podnet {
//!   map hostports     { type inet_proto . inet_service : ipv4_addr . inet_service }
//!   map hostports_ip  { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service }
//!   map hostports6    { type inet_proto . inet_service : ipv6_addr . inet_service }
//!   map hostports6_ip { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service }
//!   set podnets4 / podnets6         { flags interval }   # this node's pod CIDRs
//!   set clusternets4 / clusternets6 { flags interval }   # cluster CIDRs: never egress-masqueraded
//!   set nomasq4 / nomasq6           { flags interval }   # extra no-NAT destinations (set_no_masq)
//!   chain hostports_dnat {
//!     meta nfproto ipv4 ip daddr . meta l4proto . th dport lookup @hostports_ip -> mark, dnat
//!     meta nfproto ipv4 meta l4proto . th dport lookup @hostports -> mark, dnat
//!     (the same for ipv6 with hostports6_ip, hostports6)
//!   }
//!   chain prerouting  { type nat hook prerouting priority -100; fib daddr type local jump hostports_dnat }
//!   chain output      { type nat hook output priority -100;     fib daddr type local jump hostports_dnat }
//!   chain postrouting { type nat hook postrouting priority 100;
//!     meta mark & M == M meta nfproto ipv4 ip saddr 127.0.0.0/8 masquerade fully-random
//!     meta mark & M == M meta nfproto ipv4 ip saddr @podnets4 masquerade fully-random
//!     meta mark & M == M meta nfproto ipv6 ip6 saddr @podnets6 masquerade fully-random
//!     # with egress_masquerade:
//!     meta nfproto ipv4 ip saddr @podnets4 ip daddr != @clusternets4 ip daddr != @nomasq4
//!       fib daddr type unicast masquerade fully-random      (and the ipv6 twin)
//!   }
//! }
//! ```
//! `M` is [`Ruleset::hostport_mark`]: the DNAT rules set it after a map hit, so the hairpin /
//! localhost masquerade applies only to connections this table DNATed. (Matching `ct status dnat`
//! instead would also masquerade pod-to-Service traffic DNATed by kube-proxy and hide the pod's
//! source address from the backend.)
//!
//! `nft list` prints the mark statement before `dnat ... map`, but it is encoded after the map
//! lookup (a miss must not leave the mark on the packet); the listing is not a faithful script.
//! Egress masquerade only hits unicast destinations (`fib daddr type unicast`: not local,
//! broadcast or multicast, which flannel excludes as 224.0.0.0/4); everything else the caller
//! wants untouched (peer node IPs, link-local, ...) goes into the no-masq sets.
//!
//! Host-port mappings are map elements: adding or removing one is one small batch, whatever the
//! number of mappings. Node requirements outside this table: `net.ipv4.ip_forward=1`,
//! `route_localnet=1` for 127.0.0.1 host ports, hairpin mode on bridge ports. IPv6 host ports
//! on `::1` cannot work (no route_localnet for IPv6).
//!
//! # Threading
//! [`NftSocket`] is `Send`, not shared: methods take `&mut self`. It lives in the netns it was
//! opened in (see [`NftSocket::open_in`]); the calling thread's namespace is never changed.

mod conntrack;
mod error;
mod expr;
mod sock;
mod table;
mod wire;

use std::fmt;
use std::net::IpAddr;
use std::os::fd::AsFd;

use ipnetwork::{Ipv4Network, Ipv6Network};

pub use error::NftError;

use table::{What, DELSETELEM, DESTROYSETELEM, NEWSETELEM, NEWTABLE};
use wire::Batch;

/// Name of podnet's table (family `inet`).
pub const TABLE: &str = "podnet";

/// NETLINK_NETFILTER, the netlink protocol of nf_tables and conntrack.
pub const NETLINK_NETFILTER: isize = 12;

/// Default [`Ruleset::hostport_mark`]: bit 13, the bit CNI portmap and netavark use for the same
/// "masquerade this host-port connection" purpose.
pub const DEFAULT_HOSTPORT_MARK: u32 = 0x2000;

/// Transport protocol of a host port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    /// TCP (6).
    Tcp,
    /// UDP (17).
    Udp,
    /// SCTP (132).
    Sctp,
}

impl Proto {
    /// IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Proto::Tcp => 6,
            Proto::Udp => 17,
            Proto::Sctp => 132,
        }
    }

    /// The protocol with IP protocol number `n`, if it is one host ports support.
    pub fn from_number(n: u8) -> Option<Proto> {
        match n {
            6 => Some(Proto::Tcp),
            17 => Some(Proto::Udp),
            132 => Some(Proto::Sctp),
            _ => None,
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        })
    }
}

/// One host-port mapping: traffic to `[host_ip]:host_port` on this node goes to
/// `pod_ip:pod_port`.
///
/// The pod IP decides the family (an IPv4 pod IP goes into the IPv4 maps). `host_ip: None`
/// means every local address of that family; an unspecified host IP (`0.0.0.0`, `::`) is
/// treated as `None`. Its key (protocol, host IP, host port, family) identifies the element.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostPort {
    /// Transport protocol.
    pub protocol: Proto,
    /// Local address the mapping is limited to, or `None` for all local addresses.
    pub host_ip: Option<IpAddr>,
    /// Port on the node (non-zero).
    pub host_port: u16,
    /// Destination pod address.
    pub pod_ip: IpAddr,
    /// Destination pod port (non-zero).
    pub pod_port: u16,
}

impl HostPort {
    /// Check the mapping and bring it to its canonical form (unspecified host IP -> `None`).
    fn normalized(&self) -> Result<HostPort, NftError> {
        let bad = |why: &str| Err(NftError::Invalid(format!("host port {self}: {why}")));
        if self.host_port == 0 || self.pod_port == 0 {
            return bad("port 0");
        }
        if self.pod_ip.is_unspecified() || self.pod_ip.is_multicast() || self.pod_ip.is_loopback() {
            return bad("the pod IP must be a unicast, non-loopback address");
        }
        if let IpAddr::V4(a) = self.pod_ip {
            if a.is_broadcast() {
                return bad("the pod IP must be a unicast, non-loopback address");
            }
        }
        let host_ip = self.host_ip.filter(|h| !h.is_unspecified());
        if let Some(h) = host_ip {
            if h.is_ipv4() != self.pod_ip.is_ipv4() {
                return bad("host IP and pod IP are of different families");
            }
            if h.is_multicast() {
                return bad("the host IP is a multicast address");
            }
        }
        Ok(HostPort { host_ip, ..*self })
    }
}

/// Validate and normalize a list of mappings; with `check_conflicts`, two mappings of the same
/// key with different targets are refused (the kernel would reject the second with EEXIST).
fn normalize(ports: &[HostPort], check_conflicts: bool) -> Result<Vec<HostPort>, NftError> {
    let out = ports.iter().map(HostPort::normalized).collect::<Result<Vec<_>, _>>()?;
    if check_conflicts && out.len() > 1 {
        let mut seen = std::collections::HashMap::with_capacity(out.len());
        for p in &out {
            let key = (p.set(), p.protocol, p.host_ip, p.host_port);
            if let Some(prev) = seen.insert(key, *p) {
                if prev != *p {
                    return Err(NftError::Invalid(format!(
                        "host port {} is mapped twice: {prev} and {p}",
                        p.key_string()
                    )));
                }
            }
        }
    }
    Ok(out)
}

/// What table `inet podnet` must contain besides the host-port elements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruleset {
    /// This node's IPv4 pod CIDRs: the source match of the hairpin / pod-to-host-port
    /// masquerade and of egress masquerade.
    pub pod_cidrs_v4: Vec<Ipv4Network>,
    /// This node's IPv6 pod CIDRs.
    pub pod_cidrs_v6: Vec<Ipv6Network>,
    /// Cluster-wide IPv4 CIDRs (all nodes' pods, services): egress masquerade skips them.
    pub cluster_cidrs_v4: Vec<Ipv4Network>,
    /// Cluster-wide IPv6 CIDRs.
    pub cluster_cidrs_v6: Vec<Ipv6Network>,
    /// Extra IPv4 destinations never masqueraded (peer node underlay IPs, link-local, ...);
    /// replaceable later with [`NftSocket::set_no_masq`].
    pub no_masq_v4: Vec<Ipv4Network>,
    /// Extra IPv6 destinations never masqueraded.
    pub no_masq_v6: Vec<Ipv6Network>,
    /// Single hosts never masqueraded (peer node IPs), kept in hash sets so that one host is
    /// added or removed in O(1) ([`NftSocket::add_no_masq_hosts`]).
    pub no_masq_hosts: Vec<IpAddr>,
    /// Masquerade pod traffic leaving the cluster (to non-cluster, non-no-masq, unicast
    /// destinations) to the node's address.
    pub egress_masquerade: bool,
    /// Packet-mark bit(s) the DNAT rules set to ask postrouting for the hairpin / localhost
    /// masquerade; must be non-zero and not used otherwise on the node.
    /// Defaults to [`DEFAULT_HOSTPORT_MARK`].
    pub hostport_mark: u32,
}

impl Default for Ruleset {
    fn default() -> Ruleset {
        Ruleset {
            pod_cidrs_v4: Vec::new(),
            pod_cidrs_v6: Vec::new(),
            cluster_cidrs_v4: Vec::new(),
            cluster_cidrs_v6: Vec::new(),
            no_masq_v4: Vec::new(),
            no_masq_v6: Vec::new(),
            no_masq_hosts: Vec::new(),
            egress_masquerade: false,
            hostport_mark: DEFAULT_HOSTPORT_MARK,
        }
    }
}

/// A NETLINK_NETFILTER socket bound to one netns, programming table `inet podnet` there.
///
/// Every change is one nf_tables batch (one datagram): it applies completely or not at all.
/// Each message in it asks for an ack, so a failure names the message (and, for elements, the
/// element) the kernel rejected.
pub struct NftSocket {
    sock: rtnetlink::sys::Socket,
    seq: u32,
    /// Reused request buffer.
    sbuf: Vec<u8>,
    /// Reply buffer.
    rbuf: Vec<u8>,
    /// Current SO_SNDBUF: a batch must fit into it.
    sndbuf: usize,
    /// The kernel lacks DESTROYSETELEM (< 6.3): delete with DELSETELEM, skipping ENOENT.
    legacy_delete: bool,
}

impl fmt::Debug for NftSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NftSocket").field("seq", &self.seq).field("legacy_delete", &self.legacy_delete).finish()
    }
}

impl NftSocket {
    /// Wrap a NETLINK_NETFILTER socket (protocol 12) that was opened in the target netns, e.g.
    /// by [`crate::kernel::netns::netlink_socket_in`] or inside [`crate::kernel::netns::create`].
    pub fn from_socket(sock: rtnetlink::sys::Socket) -> Result<NftSocket, NftError> {
        NftSocket::setup(sock)
    }

    /// Open a socket inside the netns `ns` (a fresh thread enters it; this thread does not).
    pub fn open_in(ns: &impl AsFd) -> Result<NftSocket, NftError> {
        NftSocket::from_socket(crate::kernel::netns::netlink_socket_in(ns, NETLINK_NETFILTER)?)
    }

    /// Create or replace table `inet podnet` with everything `rs` asks for and exactly the
    /// host ports `ports`, in one batch: the old table is deleted and the new one added in the
    /// same transaction, so there is never a moment without rules. Idempotent.
    ///
    /// To keep the current host ports across a resync, pass what [`NftSocket::list_ports`]
    /// returned (or the node's records); a port added by someone else in between is dropped,
    /// so callers serialize resyncs with their own port changes. Large inputs must fit one datagram; the socket send
    /// buffer is raised as needed (SO_SNDBUFFORCE needs CAP_NET_ADMIN, which programming
    /// nf_tables needs anyway).
    pub fn ensure_table(&mut self, rs: &Ruleset, ports: &[HostPort]) -> Result<(), NftError> {
        if rs.hostport_mark == 0 {
            return Err(NftError::Invalid("hostport_mark must be non-zero".into()));
        }
        let ports = normalize(ports, true)?;
        let mut b = self.batch();
        table::build(&mut b, rs, &ports);
        self.commit(b)
    }

    /// Add host-port mappings in one batch. Re-adding an identical mapping succeeds; a
    /// mapping whose key exists with a different target fails with `EEXIST`
    /// ([`crate::ErrorKind::AlreadyExists`]) and nothing of the batch is applied.
    pub fn add_ports(&mut self, ports: &[HostPort]) -> Result<(), NftError> {
        let ports = normalize(ports, true)?;
        if ports.is_empty() {
            return Ok(());
        }
        let mut b = self.batch();
        table::port_elements(&mut b, NEWSETELEM, &ports);
        self.commit(b)
    }

    /// Remove host-port mappings (matched by key: protocol, host IP, host port and the pod
    /// IP's family) in one batch. Missing mappings are success.
    pub fn remove_ports(&mut self, ports: &[HostPort]) -> Result<(), NftError> {
        let ports = normalize(ports, false)?;
        if ports.is_empty() {
            return Ok(());
        }
        if !self.legacy_delete {
            let mut b = self.batch();
            table::port_elements(&mut b, DESTROYSETELEM, &ports);
            match self.commit(b) {
                // Kernels before 6.3 do not know DESTROYSETELEM: nfnetlink answers EINVAL.
                Err(e) if matches!(e.errno(), Some(libc::EINVAL | libc::EOPNOTSUPP)) => {
                    tracing::debug!("DESTROYSETELEM refused ({e}); falling back to DELSETELEM");
                    self.legacy_delete = true;
                }
                other => return other,
            }
        }
        self.remove_ports_legacy(&ports)
    }

    /// Replace the contents of sets `nomasq4` / `nomasq6` atomically (flush + add, one batch).
    pub fn set_no_masq(&mut self, v4: &[Ipv4Network], v6: &[Ipv6Network]) -> Result<(), NftError> {
        let mut b = self.batch();
        for (set, iv) in
            [(table::SetId::NoMasq4, table::Intervals::v4(v4)), (table::SetId::NoMasq6, table::Intervals::v6(v6))]
        {
            table::flush_set(&mut b, set);
            let e = iv.elems();
            if !e.is_empty() {
                table::elements(&mut b, NEWSETELEM, set, &e);
            }
        }
        self.commit(b)
    }

    /// Add single hosts to the never-masqueraded host sets (one batch; re-adding is success).
    pub fn add_no_masq_hosts(&mut self, ips: &[IpAddr]) -> Result<(), NftError> {
        if ips.is_empty() {
            return Ok(());
        }
        let mut b = self.batch();
        host_elements(&mut b, NEWSETELEM, ips);
        self.commit(b)
    }

    /// Remove single hosts from the never-masqueraded host sets; missing ones are success.
    pub fn remove_no_masq_hosts(&mut self, ips: &[IpAddr]) -> Result<(), NftError> {
        if ips.is_empty() {
            return Ok(());
        }
        if !self.legacy_delete {
            let mut b = self.batch();
            for (set, e) in ips.iter().map(|ip| table::Elem::host(*ip)) {
                table::elements(&mut b, DESTROYSETELEM, set, &[e]);
            }
            match self.commit(b) {
                Err(e) if matches!(e.errno(), Some(libc::EINVAL | libc::EOPNOTSUPP)) => self.legacy_delete = true,
                other => return other,
            }
        }
        for ip in ips {
            let mut b = self.batch();
            let (set, e) = table::Elem::host(*ip);
            table::elements(&mut b, DELSETELEM, set, &[e]);
            match self.commit(b) {
                Err(e) if e.errno() == Some(libc::ENOENT) => {}
                other => other?,
            }
        }
        Ok(())
    }

    /// Replace the never-masqueraded host sets with exactly `ips` (flush + add, one batch).
    pub fn set_no_masq_hosts(&mut self, ips: &[IpAddr]) -> Result<(), NftError> {
        let mut b = self.batch();
        table::flush_set(&mut b, table::SetId::NoMasqHost4);
        table::flush_set(&mut b, table::SetId::NoMasqHost6);
        host_elements(&mut b, NEWSETELEM, ips);
        self.commit(b)
    }

    /// Whether table `inet podnet` exists.
    pub fn table_exists(&mut self) -> Result<bool, NftError> {
        match self.get_table() {
            Ok(()) => Ok(true),
            Err(e) if e.errno() == Some(libc::ENOENT) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// All host-port mappings in the four maps (dumped from the kernel), sorted.
    /// Fails with `ENOENT` when the table does not exist.
    pub fn list_ports(&mut self) -> Result<Vec<HostPort>, NftError> {
        let mut out = Vec::new();
        for set in table::SetId::PORT_MAPS {
            self.dump_map(set, &mut out)?;
        }
        out.sort_unstable();
        Ok(out)
    }

    /// Delete table `inet podnet` and everything in it. A missing table is success.
    pub fn delete_table(&mut self) -> Result<(), NftError> {
        // NEWTABLE (no EXCL) + DELTABLE: idempotent on every kernel, DESTROYTABLE needs 6.3.
        let mut b = self.batch();
        table::table_msg(&mut b, NEWTABLE, "add");
        table::table_msg(&mut b, table::DELTABLE, "delete");
        self.commit(b)
    }

    /// Delete the conntrack entries of UDP host ports: every UDP entry of the mapping's family
    /// whose original destination port is the host port (and, for a host-IP mapping, whose
    /// original destination address is that IP). Non-UDP mappings are ignored. Returns how many
    /// entries were deleted.
    ///
    /// Call it after adding a UDP mapping (an entry created before the DNAT existed would keep
    /// steering the flow to the host) and after removing one (entries would keep sending to
    /// the old pod), once for all UDP mappings of the operation: each call dumps the conntrack
    /// table of the family (about 9 ms here, dominated by the kernel walking its hash table,
    /// even when nothing matches). Like CNI portmap, it does not check that the destination
    /// was local.
    pub fn flush_udp_conntrack(&mut self, ports: &[HostPort]) -> Result<usize, NftError> {
        let ports = normalize(ports, false)?;
        conntrack::flush_udp(self, &ports)
    }

    /// Use DELSETELEM instead of DESTROYSETELEM for removals, as on kernels before 6.3
    /// (for tests of that path; it is picked automatically when the kernel needs it).
    #[doc(hidden)]
    pub fn force_legacy_delete(&mut self, on: bool) {
        self.legacy_delete = on;
    }

    fn batch(&mut self) -> Batch<What> {
        Batch::new(std::mem::take(&mut self.sbuf), self.seq)
    }

    /// Pre-6.3 removal: one element per message so that each ENOENT is reported for its own
    /// element; the batch is resent without the missing ones until it commits.
    fn remove_ports_legacy(&mut self, ports: &[HostPort]) -> Result<(), NftError> {
        // Bounded so that the acks of one batch always fit the receive buffer.
        for chunk in ports.chunks(256) {
            let mut todo: Vec<HostPort> = chunk.to_vec();
            while !todo.is_empty() {
                let mut b = self.batch();
                for p in &todo {
                    table::elements(&mut b, DELSETELEM, p.set(), &[p.elem()]);
                }
                let missing = self.commit_collect(b, libc::ENOENT)?;
                if missing.is_empty() {
                    break;
                }
                todo = todo.into_iter().enumerate().filter(|(i, _)| !missing.contains(i)).map(|(_, p)| p).collect();
            }
        }
        Ok(())
    }
}

/// Element messages for single hosts, grouped per family set.
fn host_elements(b: &mut Batch<What>, msg: u8, ips: &[IpAddr]) {
    for family_v4 in [true, false] {
        let mut set = None;
        let elems: Vec<table::Elem> = ips
            .iter()
            .filter(|ip| ip.is_ipv4() == family_v4)
            .map(|ip| {
                let (s, e) = table::Elem::host(*ip);
                set = Some(s);
                e
            })
            .collect();
        if let Some(set) = set {
            table::elements(b, msg, set, &elems);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hp(host_ip: Option<&str>, port: u16, pod: &str) -> HostPort {
        HostPort {
            protocol: Proto::Tcp,
            host_ip: host_ip.map(|s| s.parse().unwrap()),
            host_port: port,
            pod_ip: pod.parse().unwrap(),
            pod_port: 80,
        }
    }

    #[test]
    fn validation() {
        assert!(hp(None, 0, "10.0.0.1").normalized().is_err());
        assert!(hp(None, 80, "0.0.0.0").normalized().is_err());
        assert!(hp(None, 80, "127.0.0.1").normalized().is_err());
        assert!(hp(Some("fd00::1"), 80, "10.0.0.1").normalized().is_err());
        assert_eq!(hp(Some("0.0.0.0"), 80, "10.0.0.1").normalized().unwrap(), hp(None, 80, "10.0.0.1"));
        let e = normalize(&[hp(None, 80, "10.0.0.1"), hp(None, 80, "10.0.0.2")], true).unwrap_err();
        assert_eq!(e.to_string(), "host port tcp/80 is mapped twice: tcp/80 -> 10.0.0.1:80 and tcp/80 -> 10.0.0.2:80");
        // same key, other family: two different maps
        assert!(normalize(&[hp(None, 80, "10.0.0.1"), hp(None, 80, "fd00::1"), hp(None, 80, "10.0.0.1")], true).is_ok());
    }
}
