//! rtnetlink requests podnet needs: links (veth, bridge), addresses, routes, neighbours.
//!
//! A [`Netlink`] is one rtnetlink connection bound to one netns for its whole life (the socket
//! was opened there). This module knows nothing of sandboxes; the node composes these calls.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{FromRawFd, IntoRawFd, RawFd};

use futures_util::{StreamExt, TryStreamExt};
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_REQUEST};
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags};
use rtnetlink::packet_route::link::{
    AfSpecInet, AfSpecUnspec, InetDevConf, InfoData, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteScope};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::sys::{Socket, TokioSocket};
use rtnetlink::{Handle, LinkBridge, LinkBridgePort, LinkUnspec, LinkVeth, RouteMessageBuilder};

/// Routes podnet installs carry this protocol number so they can be told apart from others'
/// (`ip route` shows `proto 0x50`; iproute2's rt_protos has no name for it).
pub const ROUTE_PROTOCOL: u8 = 80;

/// Errors of the netlink module.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// The kernel answered with an error.
    #[error("{}", std::io::Error::from_raw_os_error(*.0))]
    Kernel(i32),
    /// rtnetlink failed without an errno (decode error, connection gone).
    #[error("netlink: {0}")]
    Protocol(String),
    /// Opening the socket failed.
    #[error("open netlink socket: {0}")]
    Socket(#[source] std::io::Error),
    /// The object is not there.
    #[error("{0} not found")]
    Missing(String),
    /// A link of that name exists and is of another kind (someone else's).
    #[error("{0}")]
    Taken(String),
}

impl NetlinkError {
    /// The errno, when the kernel gave one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetlinkError::Kernel(e) => Some(*e),
            NetlinkError::Socket(e) => e.raw_os_error(),
            NetlinkError::Missing(_) => Some(libc::ENODEV),
            NetlinkError::Protocol(_) | NetlinkError::Taken(_) => None,
        }
    }

    /// True when the error means "no such object".
    pub fn is_not_found(&self) -> bool {
        matches!(self.errno(), Some(libc::ENODEV) | Some(libc::ENOENT) | Some(libc::ESRCH) | Some(libc::EADDRNOTAVAIL))
    }

    /// True for EEXIST.
    pub fn is_exists(&self) -> bool {
        self.errno() == Some(libc::EEXIST)
    }

    /// Wrap into the top-level error.
    pub fn into_error(self, op: impl Into<String>) -> crate::Error {
        if let NetlinkError::Taken(_) = self {
            return crate::Error::new(crate::ErrorKind::Conflict, op, self);
        }
        match self.errno() {
            Some(e) => crate::Error::with_errno(crate::ErrorKind::from_errno(e), op, e, self),
            None => crate::Error::new(crate::ErrorKind::Kernel, op, self),
        }
    }
}

impl From<rtnetlink::Error> for NetlinkError {
    fn from(e: rtnetlink::Error) -> Self {
        match e {
            rtnetlink::Error::NetlinkError(m) => NetlinkError::Kernel(-m.raw_code()),
            other => NetlinkError::Protocol(other.to_string()),
        }
    }
}

type NlResult<T> = Result<T, NetlinkError>;

/// A link as read back from the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfoSummary {
    /// ifindex.
    pub index: u32,
    /// Name.
    pub name: String,
    /// MAC address.
    pub mac: Vec<u8>,
    /// Admin up.
    pub up: bool,
    /// MTU.
    pub mtu: u32,
    /// Index of the controller (bridge), if enslaved.
    pub controller: Option<u32>,
    /// `veth`, `bridge`, `vxlan`...
    pub kind: Option<String>,
    /// Device group (IFLA_GROUP; 0 by default).
    pub group: u32,
}

fn summarize(m: &LinkMessage) -> LinkInfoSummary {
    let mut s = LinkInfoSummary {
        index: m.header.index,
        name: String::new(),
        mac: vec![],
        up: m.header.flags.contains(LinkFlags::Up),
        mtu: 0,
        controller: None,
        kind: None,
        group: 0,
    };
    for a in &m.attributes {
        match a {
            LinkAttribute::IfName(n) => s.name = n.clone(),
            LinkAttribute::Address(a) => s.mac = a.clone(),
            LinkAttribute::Mtu(m) => s.mtu = *m,
            LinkAttribute::Controller(c) => s.controller = Some(*c),
            LinkAttribute::Group(g) => s.group = *g,
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    if let LinkInfo::Kind(k) = i {
                        s.kind = Some(k.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    s
}

/// One rtnetlink connection bound to one netns.
///
/// Dropping it aborts the connection task, which closes the socket: a socket keeps its netns
/// alive, so pod-side handles must be dropped for the kernel to destroy the pod netns.
#[derive(Debug)]
pub struct Netlink {
    handle: Handle,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Netlink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Netlink {
    /// Wrap a NETLINK_ROUTE socket (already in its netns) into a connection on the current
    /// tokio runtime. Must be called from within a runtime.
    pub fn from_socket(sock: Socket) -> Netlink {
        let fd: RawFd = sock.into_raw_fd();
        // SAFETY: `fd` was just released by `into_raw_fd`, so it is open and owned by no one else;
        // TokioSocket takes ownership and closes it on drop.
        let ts = unsafe { TokioSocket::from_raw_fd(fd) };
        let (conn, handle, _) = rtnetlink::from_socket(ts);
        let task = tokio::spawn(conn);
        Netlink { handle, task }
    }

    /// The underlying rtnetlink handle, for requests this module does not wrap.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Look a link up by name. `Ok(None)` when it does not exist.
    pub async fn link_by_name(&self, name: &str) -> NlResult<Option<LinkInfoSummary>> {
        let mut s = self.handle.link().get().match_name(name.to_string()).execute();
        Ok(found(s.try_next().await)?.as_ref().map(summarize))
    }

    /// Look a link up by index.
    pub async fn link_by_index(&self, index: u32) -> NlResult<Option<LinkInfoSummary>> {
        let mut s = self.handle.link().get().match_index(index).execute();
        Ok(found(s.try_next().await)?.as_ref().map(summarize))
    }

    /// Dump all links.
    pub async fn links(&self) -> NlResult<Vec<LinkInfoSummary>> {
        let msgs: Vec<LinkMessage> = self.handle.link().get().execute().try_collect().await?;
        Ok(msgs.iter().map(summarize).collect())
    }

    /// Create a veth pair whose peer is born inside the netns `peer_ns_fd`, in one request.
    ///
    /// The host end may be enslaved to `controller` and brought up in the same request; the
    /// peer cannot be created up (ENOTCONN), bring it up from a socket inside its netns.
    #[expect(clippy::too_many_arguments, reason = "one kernel request, one parameter per attribute")]
    pub async fn create_veth_with(
        &self,
        host: &str,
        host_mac: Option<[u8; 6]>,
        peer: &str,
        peer_mac: [u8; 6],
        peer_ns_fd: RawFd,
        mtu: u32,
        controller: Option<u32>,
        host_up: bool,
        group: u32,
    ) -> NlResult<()> {
        let peer_msg =
            LinkUnspec::new_with_name(peer).setns_by_fd(peer_ns_fd).address(peer_mac.to_vec()).mtu(mtu).build();
        let mut b = LinkVeth::new(host, peer).mtu(mtu);
        if host_up {
            b = b.up();
        }
        if let Some(mac) = host_mac {
            b = b.address(mac.to_vec());
        }
        if let Some(c) = controller {
            b = b.controller(c);
        }
        if group != 0 {
            // Set at creation, before the device is registered: no notifier runs (an alias set
            // later is a NETDEV_CHANGE, which a bridge answers with work over all its ports).
            b = b.append_extra_attribute(LinkAttribute::Group(group));
        }
        let msg = b.set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg))).build();
        self.handle.link().add(msg).execute().await?;
        Ok(())
    }

    /// Delete a link by name; already gone is success. Synchronous veth deletion costs about
    /// 20 ms of RCU waiting in the kernel, so the node avoids it on the hot path.
    pub async fn delete_link(&self, name: &str) -> NlResult<()> {
        let Some(l) = self.link_by_name(name).await? else { return Ok(()) };
        gone_is_ok(self.handle.link().del(l.index).execute().await)
    }

    /// Set a link down, by name; a link already gone is `Ok(false)`. About 50 us, where deleting
    /// a veth waits for RCU (about 20 ms).
    pub async fn set_down_by_name(&self, name: &str) -> NlResult<bool> {
        match self.handle.link().set(LinkUnspec::new_with_name(name).down().build()).execute().await {
            Ok(()) => Ok(true),
            Err(e) => gone_is_ok(Err(e)).map(|()| false),
        }
    }

    /// Set a link up, by name (RTM_SETLINK resolves IFLA_IFNAME when the index is 0).
    pub async fn set_up_by_name(&self, name: &str) -> NlResult<()> {
        self.handle.link().set(LinkUnspec::new_with_name(name).up().build()).execute().await?;
        Ok(())
    }

    /// Set a link up, by index.
    pub async fn set_up(&self, index: u32) -> NlResult<()> {
        self.handle.link().set(LinkUnspec::new_with_index(index).up().build()).execute().await?;
        Ok(())
    }

    /// Configure a new bridge port by name before it goes up: hairpin on, and no IPv6 link-local
    /// address (`addr_gen_mode none`). A bridge port needs no L3 address; each link-local would
    /// add routes that every later IPv6 device event walks (O(pods) per pod, measured).
    pub async fn prepare_bridge_port(&self, name: &str) -> NlResult<()> {
        let mut msg = LinkBridgePort::new(0).hairpin(true).build();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        msg.attributes.push(no_linklocal());
        self.handle.link().set_port(msg).execute().await?;
        Ok(())
    }

    /// Stop the kernel from giving link `index` an IPv6 link-local address when it goes up
    /// (`addr_gen_mode none`), optionally setting IPv4 devconf values in the same request.
    pub async fn set_no_linklocal(&self, index: u32, conf: Option<InetDevConf>) -> NlResult<()> {
        let mut msg = LinkUnspec::new_with_index(index).build();
        msg.attributes.push(no_linklocal());
        if let Some(c) = conf {
            msg.attributes
                .push(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet(vec![AfSpecInet::DevConfRequest(c)])]));
        }
        self.handle.link().set(msg).execute().await?;
        Ok(())
    }

    /// Set per-interface IPv4 devconf values (proxy_arp, route_localnet...) over netlink, with
    /// no sysctl file and no namespace hop.
    pub async fn set_inet_devconf(&self, index: u32, conf: InetDevConf) -> NlResult<()> {
        let msg = LinkUnspec::new_with_index(index)
            .append_extra_attribute(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet(vec![
                AfSpecInet::DevConfRequest(conf),
            ])]))
            .build();
        self.handle.link().set(msg).execute().await?;
        Ok(())
    }

    /// Create the bridge if missing (idempotent), set its MTU and bring it up; returns its index.
    pub async fn ensure_bridge(&self, name: &str, mtu: u32) -> NlResult<u32> {
        if let Some(l) = self.link_by_name(name).await? {
            if l.kind.as_deref() != Some("bridge") {
                let kind = l.kind.as_deref().unwrap_or("device");
                return Err(NetlinkError::Taken(format!("{name} exists and is a {kind}, not a bridge")));
            }
            if l.mtu != mtu || !l.up {
                self.handle.link().set(LinkUnspec::new_with_index(l.index).mtu(mtu).up().build()).execute().await?;
            }
            let mut msg = LinkBridge::new(name).mcast_snooping(false).build();
            msg.header.index = l.index;
            self.handle.link().set(msg).execute().await?;
            return Ok(l.index);
        }
        // Multicast snooping off: pods do not rely on it, and with it every port add or carrier
        // change re-arms a multicast timer on every port (O(pods) per pod; measured).
        match self.handle.link().add(LinkBridge::new(name).mtu(mtu).mcast_snooping(false).build()).execute().await {
            Ok(()) => {}
            Err(e) => {
                let e = NetlinkError::from(e);
                if !e.is_exists() {
                    return Err(e);
                }
            }
        }
        let l = self.link_by_name(name).await?.ok_or_else(|| NetlinkError::Missing(name.to_string()))?;
        self.set_up(l.index).await?;
        Ok(l.index)
    }

    /// Create the VXLAN device if missing, or fix it in place; returns its index. A device of
    /// the same name with a different VNI, port, local address or underlay link is recreated.
    #[expect(clippy::too_many_arguments, reason = "one kernel request, one parameter per attribute")]
    pub async fn ensure_vxlan(
        &self,
        name: &str,
        vni: u32,
        port: u16,
        local: IpAddr,
        dev: u32,
        mtu: u32,
        mac: [u8; 6],
    ) -> NlResult<u32> {
        let mut s = self.handle.link().get().match_name(name.to_string()).execute();
        let existing = found(s.try_next().await)?;
        if let Some(m) = existing {
            let mut same = false;
            for a in &m.attributes {
                if let LinkAttribute::LinkInfo(infos) = a {
                    for i in infos {
                        if let LinkInfo::Data(InfoData::Vxlan(v)) = i {
                            use rtnetlink::packet_route::link::InfoVxlan as V;
                            let has = |want: &V| v.iter().any(|x| x == want);
                            let local_ok = match local {
                                IpAddr::V4(a) => has(&V::Local(a)),
                                IpAddr::V6(a) => has(&V::Local6(a)),
                            };
                            same = has(&V::Id(vni)) && has(&V::Port(port)) && has(&V::Link(dev)) && local_ok;
                        }
                    }
                }
            }
            if same {
                // Only send what differs: setting the MAC, even to the same value, makes the
                // kernel flush the device's neighbour table, i.e. every peer's permanent entry.
                let cur = summarize(&m);
                let mut b = LinkUnspec::new_with_index(m.header.index);
                let mut changed = false;
                if cur.mtu != mtu {
                    b = b.mtu(mtu);
                    changed = true;
                }
                if cur.mac != mac {
                    b = b.address(mac.to_vec());
                    changed = true;
                }
                if !cur.up {
                    b = b.up();
                    changed = true;
                }
                if changed {
                    self.handle.link().set(b.build()).execute().await?;
                }
                return Ok(m.header.index);
            }
            self.handle.link().del(m.header.index).execute().await?;
        }
        let mut b = rtnetlink::LinkVxlan::new(name, vni).dev(dev).port(port).learning(false);
        b = match local {
            IpAddr::V4(a) => b.local(a),
            IpAddr::V6(a) => b.local6(a),
        };
        let msg = b.mtu(mtu).address(mac.to_vec()).up().build();
        self.handle.link().add(msg).execute().await?;
        let l = self.link_by_name(name).await?.ok_or_else(|| NetlinkError::Missing(name.to_string()))?;
        Ok(l.index)
    }

    /// Add an address (replace semantics: re-adding is success). IPv6 skips DAD, which would
    /// otherwise keep the address tentative for about a second.
    pub async fn add_address(&self, index: u32, addr: IpAddr, prefix: u8) -> NlResult<()> {
        let mut req = self.handle.address().add(index, addr, prefix).replace();
        if addr.is_ipv6() {
            req.message_mut().attributes.push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        req.execute().await?;
        Ok(())
    }

    /// Addresses on a link, with their prefix lengths.
    pub async fn addresses(&self, index: u32) -> NlResult<Vec<(IpAddr, u8)>> {
        let msgs: Vec<_> = self.handle.address().get().set_link_index_filter(index).execute().try_collect().await?;
        let mut out = vec![];
        for m in msgs {
            if m.header.index != index {
                continue;
            }
            for a in &m.attributes {
                if let AddressAttribute::Address(ip) = a {
                    out.push((*ip, m.header.prefix_len));
                }
            }
        }
        Ok(out)
    }

    /// Add (or replace) a default route via `gw` on link `index`, marked on-link so the
    /// gateway need not be in a connected subnet (routed mode uses 169.254.1.1 / fe80::1).
    pub async fn replace_default_route(&self, index: u32, gw: IpAddr) -> NlResult<()> {
        fn onlink<T>(b: RouteMessageBuilder<T>, index: u32) -> RouteMessage {
            b.output_interface(index).onlink().protocol(RouteProtocol::Other(ROUTE_PROTOCOL)).build()
        }
        let msg = match gw {
            IpAddr::V4(g) => onlink(RouteMessageBuilder::<Ipv4Addr>::new().gateway(g), index),
            IpAddr::V6(g) => onlink(RouteMessageBuilder::<Ipv6Addr>::new().gateway(g), index),
        };
        self.handle.route().add(msg).replace().execute().await?;
        Ok(())
    }

    /// Add (or replace) a scope-link route to `dst/prefix` out of link `index`.
    pub async fn replace_link_route(&self, index: u32, dst: IpAddr, prefix: u8) -> NlResult<()> {
        let msg = match dst {
            IpAddr::V4(d) => RouteMessageBuilder::<Ipv4Addr>::new()
                .destination_prefix(d, prefix)
                .output_interface(index)
                .scope(RouteScope::Link)
                .protocol(RouteProtocol::Other(ROUTE_PROTOCOL))
                .build(),
            IpAddr::V6(d) => RouteMessageBuilder::<Ipv6Addr>::new()
                .destination_prefix(d, prefix)
                .output_interface(index)
                .protocol(RouteProtocol::Other(ROUTE_PROTOCOL))
                .build(),
        };
        self.handle.route().add(msg).replace().execute().await?;
        Ok(())
    }

    /// Add (or replace) a route to `dst/prefix` via `gw` out of `oif`, optionally on-link,
    /// marked with route protocol `protocol` (so a later dump can tell whose it is).
    pub async fn replace_gateway_route(
        &self,
        dst: IpAddr,
        prefix: u8,
        gw: IpAddr,
        oif: u32,
        onlink: bool,
        protocol: u8,
    ) -> NlResult<()> {
        let mut msg = match (dst, gw) {
            (IpAddr::V4(d), IpAddr::V4(g)) => {
                RouteMessageBuilder::<Ipv4Addr>::new().destination_prefix(d, prefix).gateway(g).build()
            }
            (IpAddr::V6(d), IpAddr::V6(g)) => {
                RouteMessageBuilder::<Ipv6Addr>::new().destination_prefix(d, prefix).gateway(g).build()
            }
            _ => return Err(NetlinkError::Kernel(libc::EAFNOSUPPORT)),
        };
        msg.header.protocol = RouteProtocol::Other(protocol);
        msg.attributes.push(RouteAttribute::Oif(oif));
        if onlink {
            msg.header.flags |= rtnetlink::packet_route::route::RouteFlags::Onlink;
        }
        self.handle.route().add(msg).replace().execute().await?;
        Ok(())
    }

    /// Delete a route to `dst/prefix` (main table); already gone is success.
    pub async fn delete_route(&self, dst: IpAddr, prefix: u8) -> NlResult<()> {
        let mut msg = match dst {
            IpAddr::V4(d) => RouteMessageBuilder::<Ipv4Addr>::new().destination_prefix(d, prefix).build(),
            IpAddr::V6(d) => RouteMessageBuilder::<Ipv6Addr>::new().destination_prefix(d, prefix).build(),
        };
        // The builder's defaults (proto static, scope universe, unicast) are match criteria on
        // delete: clear them, as `ip route del` does, so any route to the prefix matches.
        msg.header.protocol = RouteProtocol::Unspec;
        msg.header.scope = RouteScope::NoWhere;
        msg.header.kind = rtnetlink::packet_route::route::RouteType::Unspec;
        gone_is_ok(self.handle.route().del(msg).execute().await)
    }

    /// All routes of one family in the main table.
    pub async fn routes(&self, v6: bool) -> NlResult<Vec<RouteMessage>> {
        let msg = if v6 {
            RouteMessageBuilder::<Ipv6Addr>::new().build()
        } else {
            RouteMessageBuilder::<Ipv4Addr>::new().build()
        };
        Ok(self.handle.route().get(msg).execute().try_collect().await?)
    }

    /// Add (or replace) a permanent neighbour entry `ip -> mac` on link `index`.
    pub async fn replace_neighbour(&self, index: u32, ip: IpAddr, mac: &[u8]) -> NlResult<()> {
        self.handle
            .neighbours()
            .add(index, ip)
            .link_layer_address(mac)
            .state(NeighbourState::Permanent)
            .replace()
            .execute()
            .await?;
        Ok(())
    }

    /// Add a proxy neighbour entry (`ip -6 neigh add proxy IP dev IDX`): the host answers
    /// neighbour solicitations for `ip` on that link.
    pub async fn add_proxy_neighbour(&self, index: u32, ip: IpAddr) -> NlResult<()> {
        self.handle.neighbours().add(index, ip).flags(NeighbourFlags::Proxy).replace().execute().await?;
        Ok(())
    }

    /// Delete a proxy neighbour entry; already gone is success.
    pub async fn delete_proxy_neighbour(&self, index: u32, ip: IpAddr) -> NlResult<()> {
        let mut m = NeighbourMessage::default();
        m.header.family = if ip.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
        m.header.ifindex = index;
        m.header.flags = NeighbourFlags::Proxy;
        m.attributes.push(NeighbourAttribute::Destination(match ip {
            IpAddr::V4(a) => NeighbourAddress::Inet(a),
            IpAddr::V6(a) => NeighbourAddress::Inet6(a),
        }));
        gone_is_ok(self.handle.neighbours().del(m).execute().await)
    }

    /// Delete a neighbour entry; already gone is success.
    pub async fn delete_neighbour(&self, index: u32, ip: IpAddr) -> NlResult<()> {
        let mut m = NeighbourMessage::default();
        m.header.family = if ip.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
        m.header.ifindex = index;
        m.attributes.push(NeighbourAttribute::Destination(match ip {
            IpAddr::V4(a) => NeighbourAddress::Inet(a),
            IpAddr::V6(a) => NeighbourAddress::Inet6(a),
        }));
        gone_is_ok(self.handle.neighbours().del(m).execute().await)
    }

    /// Neighbour entries of a family (`AF_INET`, `AF_INET6`, `AF_BRIDGE` for the FDB) on a link.
    pub async fn neighbours(&self, index: u32, family: AddressFamily) -> NlResult<Vec<NeighbourMessage>> {
        let msgs: Vec<NeighbourMessage> =
            self.handle.neighbours().get().set_address_family(family).execute().try_collect().await?;
        Ok(msgs.into_iter().filter(|m| m.header.ifindex == index).collect())
    }

    /// `bridge fdb append <mac> dev <index> dst <ip> self permanent`: the builders always send
    /// EXCL or REPLACE, so the APPEND request is built by hand.
    pub async fn fdb_append(&self, index: u32, mac: [u8; 6], dst: IpAddr) -> NlResult<()> {
        let m = fdb_message(index, mac, dst);
        let mut req = NetlinkMessage::from(RouteNetlinkMessage::NewNeighbour(m));
        req.header.flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_APPEND;
        self.request_ack(req).await
    }

    /// `bridge fdb replace <mac> dev <index> dst <ip> self permanent`.
    pub async fn fdb_replace(&self, index: u32, mac: [u8; 6], dst: IpAddr) -> NlResult<()> {
        self.handle
            .neighbours()
            .add_bridge(index, &mac)
            .destination(dst)
            .flags(NeighbourFlags::Own)
            .state(NeighbourState::Other(0x80 | 0x40))
            .replace()
            .execute()
            .await?;
        Ok(())
    }

    /// Delete one FDB entry (`mac` + `dst`); already gone is success.
    pub async fn fdb_delete(&self, index: u32, mac: [u8; 6], dst: IpAddr) -> NlResult<()> {
        let m = fdb_message(index, mac, dst);
        gone_is_ok(self.handle.neighbours().del(m).execute().await)
    }

    async fn request_ack(&self, req: NetlinkMessage<RouteNetlinkMessage>) -> NlResult<()> {
        let mut h = self.handle.clone();
        let mut resp = h.request(req).map_err(NetlinkError::from)?;
        while let Some(msg) = resp.next().await {
            if let NetlinkPayload::Error(e) = msg.payload {
                if e.raw_code() != 0 {
                    return Err(NetlinkError::Kernel(-e.raw_code()));
                }
            }
        }
        Ok(())
    }
}

/// A link lookup's answer; the kernel answers ENODEV (not an empty dump) for a missing link.
fn found(r: Result<Option<LinkMessage>, rtnetlink::Error>) -> NlResult<Option<LinkMessage>> {
    match r.map_err(NetlinkError::from) {
        Err(e) if e.is_not_found() => Ok(None),
        other => other,
    }
}

/// Deletes treat "no such object" as success: teardown is idempotent.
fn gone_is_ok(r: Result<(), rtnetlink::Error>) -> NlResult<()> {
    match r.map_err(NetlinkError::from) {
        Err(e) if e.is_not_found() => Ok(()),
        other => other,
    }
}

fn no_linklocal() -> LinkAttribute {
    use rtnetlink::packet_route::link::{AfSpecInet6, In6AddrGenMode};
    LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(vec![AfSpecInet6::AddrGenMode(In6AddrGenMode::None)])])
}

fn fdb_message(index: u32, mac: [u8; 6], dst: IpAddr) -> NeighbourMessage {
    let mut m = NeighbourMessage::default();
    m.header.family = AddressFamily::Bridge;
    m.header.ifindex = index;
    m.header.state = NeighbourState::Other(0x80 | 0x40);
    m.header.flags = NeighbourFlags::Own;
    m.attributes.push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
    m.attributes.push(NeighbourAttribute::Destination(match dst {
        IpAddr::V4(a) => NeighbourAddress::Inet(a),
        IpAddr::V6(a) => NeighbourAddress::Inet6(a),
    }));
    m
}

/// Destination prefix of a route message, if any.
pub fn route_destination(m: &RouteMessage) -> Option<(IpAddr, u8)> {
    for a in &m.attributes {
        if let RouteAttribute::Destination(d) = a {
            let ip = match d {
                RouteAddress::Inet(a) => IpAddr::V4(*a),
                RouteAddress::Inet6(a) => IpAddr::V6(*a),
                _ => return None,
            };
            return Some((ip, m.header.destination_prefix_length));
        }
    }
    None
}

/// Gateway of a route message, if any.
pub fn route_gateway(m: &RouteMessage) -> Option<IpAddr> {
    for a in &m.attributes {
        if let RouteAttribute::Gateway(g) = a {
            return match g {
                RouteAddress::Inet(a) => Some(IpAddr::V4(*a)),
                RouteAddress::Inet6(a) => Some(IpAddr::V6(*a)),
                _ => None,
            };
        }
    }
    None
}

/// Output interface of a route message, if any.
pub fn route_oif(m: &RouteMessage) -> Option<u32> {
    m.attributes.iter().find_map(|a| if let RouteAttribute::Oif(o) = a { Some(*o) } else { None })
}

/// Address families for neighbour dumps (`Bridge` = the FDB).
pub type Family = AddressFamily;

/// The route protocol value for a protocol number (for comparing dumped routes).
pub fn route_protocol(n: u8) -> RouteProtocol {
    RouteProtocol::Other(n)
}
