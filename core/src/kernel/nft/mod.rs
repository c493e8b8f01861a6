//! podnet's nf_tables programming over netlink, without nft/iptables exec or libnftnl: the
//! generic message encoding (`uapi.rs` the kernel's numbers, `wire.rs` framing, `expr.rs` rule
//! expressions, `msg.rs` tables, chains, sets/maps, elements and rules), podnet's rulesets built
//! with it (`ruleset.rs`: table `inet podnet` with host ports and masquerade; `services.rs`: table
//! `inet podnet-services`), the transport (`sock.rs`) and a UDP conntrack flush (`conntrack.rs`).
//! Blocking calls on one NETLINK_NETFILTER socket.
//!
//! # Table `inet podnet`
//! ```text
//! table inet podnet {
//!   map hostports     { type inet_proto . inet_service : ipv4_addr . inet_service }
//!   map hostports_ip  { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service }
//!   map hostports6    { type inet_proto . inet_service : ipv6_addr . inet_service }
//!   map hostports6_ip { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service }
//!   set podnets4 / podnets6         { flags interval }   # this node's pod CIDRs
//!   set clusternets4 / clusternets6 { flags interval }   # cluster CIDRs: never egress-masqueraded
//!   set nomasqhosts4 / nomasqhosts6 { type ipv4_addr / ipv6_addr }  # peer node IPs (hash, O(1))
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
//!     meta nfproto ipv4 ip saddr @podnets4 ip daddr != @clusternets4 ip daddr != @nomasqhosts4
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
//! broadcast or multicast, which flannel excludes as 224.0.0.0/4); peer node IPs are single
//! elements of the `nomasqhosts` hash sets, one O(1) change per peer.
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
#[cfg(test)]
pub(crate) mod fuzz;
pub(crate) mod msg;
mod ruleset;
pub(crate) mod services;
mod sock;
mod uapi;
mod wire;

use std::fmt;
use std::net::IpAddr;
use std::os::fd::AsFd;

pub use error::NftError;
#[cfg_attr(not(feature = "internals"), allow(unused_imports, reason = "named by podnet's tests"))]
pub use msg::Cidrs;
#[cfg_attr(not(feature = "internals"), allow(unused_imports, reason = "the mark is for podnet's tests"))]
pub use ruleset::{HostPort, Proto, Ruleset, DEFAULT_HOSTPORT_MARK, TABLE};
pub use services::{Kind, ServiceTable, DEFAULT_SERVICE_MASQ_MARK, SERVICES_TABLE};

use msg::{Elem, SetDef, What};
use ruleset::normalize;
use uapi::{DELSETELEM, DESTROYSETELEM, NEWSETELEM, NEWTABLE};
use wire::Batch;

/// NETLINK_NETFILTER, the netlink protocol of nf_tables and conntrack.
pub const NETLINK_NETFILTER: isize = 12;

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
        ruleset::build(&mut b, rs, &ports);
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
        self.commit_ports(NEWSETELEM, &ports)
    }

    /// One batch of element messages `msg` for host ports.
    fn commit_ports(&mut self, msg: u8, ports: &[HostPort]) -> Result<(), NftError> {
        let mut b = self.batch();
        ruleset::port_elements(&mut b, msg, ports);
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
            match self.commit_ports(DESTROYSETELEM, &ports) {
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

    /// Add single hosts to the never-masqueraded host sets (one batch; re-adding is success).
    pub fn add_no_masq_hosts(&mut self, ips: &[IpAddr]) -> Result<(), NftError> {
        if ips.is_empty() {
            return Ok(());
        }
        let mut b = self.batch();
        ruleset::host_elements(&mut b, NEWSETELEM, ips);
        self.commit(b)
    }

    /// Remove single hosts from the never-masqueraded host sets; missing ones are success.
    pub fn remove_no_masq_hosts(&mut self, ips: &[IpAddr]) -> Result<(), NftError> {
        if ips.is_empty() {
            return Ok(());
        }
        if !self.legacy_delete {
            let mut b = self.batch();
            ruleset::host_elements(&mut b, DESTROYSETELEM, ips);
            match self.commit(b) {
                Err(e) if matches!(e.errno(), Some(libc::EINVAL | libc::EOPNOTSUPP)) => self.legacy_delete = true,
                other => return other,
            }
        }
        for ip in ips {
            let mut b = self.batch();
            ruleset::host_elements(&mut b, DELSETELEM, &[*ip]);
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
        ruleset::flush_hosts(&mut b);
        ruleset::host_elements(&mut b, NEWSETELEM, ips);
        self.commit(b)
    }

    /// Whether table `inet podnet` exists.
    pub fn table_exists(&mut self) -> Result<bool, NftError> {
        match self.get_table(TABLE) {
            Ok(_) => Ok(true),
            Err(e) if e.errno() == Some(libc::ENOENT) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// All host-port mappings in the four maps (dumped from the kernel), sorted.
    /// Fails with `ENOENT` when the table does not exist.
    pub fn list_ports(&mut self) -> Result<Vec<HostPort>, NftError> {
        let mut out = Vec::new();
        for set in ruleset::PORT_MAPS {
            self.dump_map(set, &mut out)?;
        }
        out.sort_unstable();
        Ok(out)
    }

    /// Delete table `inet podnet` and everything in it. A missing table is success.
    pub fn delete_table(&mut self) -> Result<(), NftError> {
        // NEWTABLE (no EXCL) + DELTABLE: idempotent on every kernel, DESTROYTABLE needs 6.3.
        let mut b = self.batch();
        msg::table_msg(&mut b, TABLE, NEWTABLE, "add");
        msg::table_msg(&mut b, TABLE, uapi::DELTABLE, "delete");
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

    /// Replace table `inet podnet-services` with the skeleton of `t`, the kinds `kinds` and
    /// exactly the elements `elems`, in one batch (the old table, if any, is deleted in the
    /// same transaction). Returns the new table's handle.
    pub(crate) fn services_rebuild(
        &mut self,
        t: &ServiceTable,
        kinds: &[Kind],
        elems: &[(&'static SetDef, Elem)],
    ) -> Result<u64, NftError> {
        if t.masq_mark == 0 {
            return Err(NftError::Invalid("the service masquerade mark must be non-zero".into()));
        }
        let mut b = self.batch();
        services::build(&mut b, t, kinds.iter(), elems);
        self.commit(b)?;
        self.get_table(SERVICES_TABLE)
    }

    /// One incremental change of the services table: new kinds, then element deletes, then
    /// element adds, in one batch.
    pub(crate) fn services_apply(
        &mut self,
        mark: u32,
        new_kinds: &[Kind],
        dels: &[(&'static SetDef, Elem)],
        adds: &[(&'static SetDef, Elem)],
    ) -> Result<(), NftError> {
        let mut b = self.batch();
        for k in new_kinds {
            services::kind(&mut b, k, mark);
        }
        let del = if self.legacy_delete { DELSETELEM } else { DESTROYSETELEM };
        services::elements(&mut b, del, dels);
        services::elements(&mut b, NEWSETELEM, adds);
        match self.commit(b) {
            Err(e)
                if !self.legacy_delete
                    && !dels.is_empty()
                    && matches!(e.errno(), Some(libc::EINVAL | libc::EOPNOTSUPP)) =>
            {
                self.legacy_delete = true;
                self.services_apply(mark, new_kinds, dels, adds)
            }
            other => other,
        }
    }

    /// The handle of table `inet podnet-services`, `None` when it does not exist.
    pub(crate) fn services_table(&mut self) -> Result<Option<u64>, NftError> {
        match self.get_table(SERVICES_TABLE) {
            Ok(h) => Ok(Some(h)),
            Err(e) if e.errno() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Delete table `inet podnet-services`. A missing table is success.
    pub fn delete_services_table(&mut self) -> Result<(), NftError> {
        let mut b = self.batch();
        msg::table_msg(&mut b, SERVICES_TABLE, NEWTABLE, "add");
        msg::table_msg(&mut b, SERVICES_TABLE, uapi::DELTABLE, "delete");
        self.commit(b)
    }

    /// Delete the UDP conntrack entries that were DNATed to the endpoints `eps` (ip, port):
    /// a removed service endpoint would keep receiving their flows. Returns how many.
    pub fn flush_udp_to_endpoints(&mut self, eps: &[(IpAddr, u16)]) -> Result<usize, NftError> {
        conntrack::flush_udp_endpoints(self, eps)
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
                    msg::elements(&mut b, TABLE, DELSETELEM, p.set(), &[p.elem()]);
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
