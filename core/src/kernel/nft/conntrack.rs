//! UDP conntrack flush for host ports, over ctnetlink on the same NETLINK_NETFILTER socket.
//!
//! UDP has no handshake: a conntrack entry made before a DNAT existed (or towards a pod that
//! is gone) keeps steering the flow for as long as packets keep coming. Entries are dumped per
//! family (the kernel filters them when it can, CTA_FILTER, >= 5.8), checked again here, and
//! deleted by their original tuple and id.

use std::io;
use std::net::IpAddr;

use super::ruleset::{HostPort, Proto};
use super::uapi::{self, NFNL_SUBSYS_CTNETLINK, NLMSG_ERROR, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};
use super::wire::{self, Writer};
use super::{NftError, NftSocket};

const IPCTNL_MSG_CT_GET: u16 = 1;
const IPCTNL_MSG_CT_DELETE: u16 = 2;
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_REPLY: u16 = 2;
const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V6_SRC: u16 = 3;
const CTA_PROTO_SRC_PORT: u16 = 2;
const CTA_ID: u16 = 12;
const CTA_ZONE: u16 = 18;
const CTA_TUPLE_IP: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_IP_V4_DST: u16 = 2;
const CTA_IP_V6_DST: u16 = 4;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_DST_PORT: u16 = 3;
const CTA_FILTER: u16 = 25;
const CTA_FILTER_ORIG_FLAGS: u16 = 1;
const CTA_FILTER_F_CTA_IP_DST: u32 = 1 << 1;
const CTA_FILTER_F_CTA_PROTO_NUM: u32 = 1 << 3;
const CTA_FILTER_F_CTA_PROTO_DST_PORT: u32 = 1 << 5;
const UDP: u8 = 17;
/// Deletes per datagram: bounds the number of queued acks.
const DELETES_PER_SEND: usize = 256;

const fn ct_type(msg: u16) -> u16 {
    ((NFNL_SUBSYS_CTNETLINK as u16) << 8) | msg
}

/// One conntrack entry to delete: the raw attributes that identify it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    tuple: Vec<u8>,
    zone: Option<Vec<u8>>,
    id: Option<Vec<u8>>,
}

/// Parse one IPCTNL_MSG_CT_NEW dump message; keep it if it matches a UDP port of `ports`.
pub(crate) fn matching_entry(payload: &[u8], ports: &[&HostPort]) -> Option<Entry> {
    let attrs = payload.get(uapi::NFGENMSG_LEN..)?;
    let tuple = wire::attr(attrs, CTA_TUPLE_ORIG)?;
    let proto = wire::attr(tuple, CTA_TUPLE_PROTO)?;
    if wire::attr(proto, CTA_PROTO_NUM)?.first() != Some(&UDP) {
        return None;
    }
    let dport = wire::attr(proto, CTA_PROTO_DST_PORT)?;
    let dport = u16::from_be_bytes([*dport.first()?, *dport.get(1)?]);
    let ip = wire::attr(tuple, CTA_TUPLE_IP)?;
    let dst: Option<IpAddr> = if let Some(v4) = wire::attr(ip, CTA_IP_V4_DST) {
        <[u8; 4]>::try_from(v4).ok().map(IpAddr::from)
    } else {
        wire::attr(ip, CTA_IP_V6_DST).and_then(|v6| <[u8; 16]>::try_from(v6).ok()).map(IpAddr::from)
    };
    let hit = ports.iter().any(|p| {
        p.host_port == dport
            && p.pod_ip.is_ipv6() == dst.is_some_and(|d| d.is_ipv6())
            && p.host_ip.is_none_or(|h| Some(h) == dst)
    });
    hit.then(|| Entry {
        tuple: tuple.to_vec(),
        zone: wire::attr(attrs, CTA_ZONE).map(<[u8]>::to_vec),
        id: wire::attr(attrs, CTA_ID).map(<[u8]>::to_vec),
    })
}

/// Ask the kernel to dump only UDP entries, and only those of the one host port (and host IP)
/// when all wanted ports share it: on a busy node most entries are TCP, and every dumped entry
/// is copied to us. (The kernel still walks its whole hash table: a dump costs about 9 ms here
/// with 262144 buckets even when it returns nothing.)
pub(crate) fn dump_filter(w: &mut Writer, ports: &[&HostPort]) {
    let Some(first) = ports.first() else { return };
    let same_port = ports.iter().all(|p| p.host_port == first.host_port);
    let same_ip = same_port && first.host_ip.is_some() && ports.iter().all(|p| p.host_ip == first.host_ip);
    let mut flags = CTA_FILTER_F_CTA_PROTO_NUM;
    w.nest(CTA_TUPLE_ORIG, |w| {
        if let (true, Some(ip)) = (same_ip, first.host_ip) {
            flags |= CTA_FILTER_F_CTA_IP_DST;
            w.nest(CTA_TUPLE_IP, |w| match ip {
                IpAddr::V4(a) => w.attr(CTA_IP_V4_DST, &a.octets()),
                IpAddr::V6(a) => w.attr(CTA_IP_V6_DST, &a.octets()),
            });
        }
        w.nest(CTA_TUPLE_PROTO, |w| {
            w.attr(CTA_PROTO_NUM, &[UDP]);
            if same_port {
                flags |= CTA_FILTER_F_CTA_PROTO_DST_PORT;
                w.attr(CTA_PROTO_DST_PORT, &first.host_port.to_be_bytes());
            }
        });
    });
    // The flags are a host-order u32 (NLA_U32), unlike most ctnetlink integers.
    w.nest(CTA_FILTER, |w| w.attr(CTA_FILTER_ORIG_FLAGS, &flags.to_ne_bytes()));
}

/// Write one IPCTNL_MSG_CT_DELETE for `e`.
pub(crate) fn delete_msg(w: &mut Writer, family: u8, seq: u32, e: &Entry) {
    let start = w.begin_msg(ct_type(IPCTNL_MSG_CT_DELETE), NLM_F_REQUEST | NLM_F_ACK, seq, family, 0);
    w.nest(CTA_TUPLE_ORIG, |w| w.buf.extend_from_slice(&e.tuple));
    if let Some(z) = &e.zone {
        w.attr(CTA_ZONE, z);
    }
    // With the id, an entry that was replaced meanwhile by a new one of the same tuple is left
    // alone (the kernel answers ENOENT).
    if let Some(id) = &e.id {
        w.attr(CTA_ID, id);
    }
    w.end_msg(start);
}

pub(crate) fn flush_udp(s: &mut NftSocket, ports: &[HostPort]) -> Result<usize, NftError> {
    let mut deleted = 0;
    for (family, v6) in [(libc::AF_INET as u8, false), (libc::AF_INET6 as u8, true)] {
        let wanted: Vec<&HostPort> =
            ports.iter().filter(|p| p.protocol == Proto::Udp && p.pod_ip.is_ipv6() == v6).collect();
        if wanted.is_empty() {
            continue;
        }
        let op = || format!("dump conntrack table (family {family})");
        let mut entries = Vec::new();
        let filtered = s.query(
            op,
            ct_type(IPCTNL_MSG_CT_GET),
            NLM_F_DUMP,
            family,
            |w| dump_filter(w, &wanted),
            |m| {
                entries.extend(matching_entry(m.payload, &wanted));
                Ok(())
            },
        );
        match filtered {
            Ok(_) => {}
            // A kernel that refuses the filter: dump everything and filter here only.
            Err(e) if matches!(e.errno(), Some(libc::EINVAL | libc::EOPNOTSUPP)) => {
                entries.clear();
                s.query(
                    op,
                    ct_type(IPCTNL_MSG_CT_GET),
                    NLM_F_DUMP,
                    family,
                    |_| {},
                    |m| {
                        entries.extend(matching_entry(m.payload, &wanted));
                        Ok(())
                    },
                )?;
            }
            Err(e) => return Err(e),
        }
        for chunk in entries.chunks(DELETES_PER_SEND) {
            deleted += delete_entries(s, family, chunk)?;
        }
    }
    Ok(deleted)
}

/// The address and port of a tuple's source or destination.
fn tuple_end(tuple: &[u8], src: bool) -> Option<(IpAddr, u16)> {
    let ip = wire::attr(tuple, CTA_TUPLE_IP)?;
    let (a4, a6, pt) = if src {
        (CTA_IP_V4_SRC, CTA_IP_V6_SRC, CTA_PROTO_SRC_PORT)
    } else {
        (CTA_IP_V4_DST, CTA_IP_V6_DST, CTA_PROTO_DST_PORT)
    };
    let addr: IpAddr = if let Some(v4) = wire::attr(ip, a4) {
        IpAddr::from(<[u8; 4]>::try_from(v4).ok()?)
    } else {
        IpAddr::from(<[u8; 16]>::try_from(wire::attr(ip, a6)?).ok()?)
    };
    let port = wire::attr(wire::attr(tuple, CTA_TUPLE_PROTO)?, pt)?;
    Some((addr, u16::from_be_bytes([*port.first()?, *port.get(1)?])))
}

/// Keep a UDP entry that was DNATed to one of `eps` (its reply comes from the endpoint, its
/// original destination was another address: a service frontend).
pub(crate) fn dnat_entry(payload: &[u8], eps: &[(IpAddr, u16)]) -> Option<Entry> {
    let attrs = payload.get(uapi::NFGENMSG_LEN..)?;
    let orig = wire::attr(attrs, CTA_TUPLE_ORIG)?;
    if wire::attr(wire::attr(orig, CTA_TUPLE_PROTO)?, CTA_PROTO_NUM)?.first() != Some(&UDP) {
        return None;
    }
    let from = tuple_end(wire::attr(attrs, CTA_TUPLE_REPLY)?, true)?;
    let to = tuple_end(orig, false)?;
    (eps.contains(&from) && to.0 != from.0).then(|| Entry {
        tuple: orig.to_vec(),
        zone: wire::attr(attrs, CTA_ZONE).map(<[u8]>::to_vec),
        id: wire::attr(attrs, CTA_ID).map(<[u8]>::to_vec),
    })
}

/// Delete the UDP conntrack entries DNATed to the endpoints `eps` (ip, port).
pub(crate) fn flush_udp_endpoints(s: &mut NftSocket, eps: &[(IpAddr, u16)]) -> Result<usize, NftError> {
    let mut deleted = 0;
    for (family, v6) in [(libc::AF_INET as u8, false), (libc::AF_INET6 as u8, true)] {
        let wanted: Vec<(IpAddr, u16)> = eps.iter().filter(|(ip, _)| ip.is_ipv6() == v6).copied().collect();
        if wanted.is_empty() {
            continue;
        }
        let mut entries = Vec::new();
        s.query(
            || format!("dump conntrack table (family {family})"),
            ct_type(IPCTNL_MSG_CT_GET),
            NLM_F_DUMP,
            family,
            |_| {},
            |m| {
                entries.extend(dnat_entry(m.payload, &wanted));
                Ok(())
            },
        )?;
        for chunk in entries.chunks(DELETES_PER_SEND) {
            deleted += delete_entries(s, family, chunk)?;
        }
    }
    Ok(deleted)
}

/// Send the deletes in one datagram (netlink processes every message of it in order, inside
/// sendmsg) and count the successful ones; ENOENT means the entry went away by itself.
fn delete_entries(s: &mut NftSocket, family: u8, entries: &[Entry]) -> Result<usize, NftError> {
    let first = s.next_seq();
    let mut w = Writer { buf: std::mem::take(&mut s.sbuf) };
    w.buf.clear();
    for (i, e) in entries.iter().enumerate() {
        let seq = if i == 0 { first } else { s.next_seq() };
        delete_msg(&mut w, family, seq, e);
    }
    let sent = s.send(&w.buf);
    s.sbuf = w.buf;
    sent?;
    let mut answered = 0;
    let mut deleted = 0;
    while answered < entries.len() {
        let n = match s.recv(libc::MSG_DONTWAIT) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(NftError::Io { what: "receive conntrack ack", source: e }),
        };
        for m in wire::messages(&s.rbuf[..n]) {
            let m = m.map_err(NftError::Protocol)?;
            if m.ty != NLMSG_ERROR {
                continue;
            }
            let ack = wire::parse_ack(&m).map_err(NftError::Protocol)?;
            if ack.seq.wrapping_sub(first) as usize >= entries.len() {
                continue;
            }
            answered += 1;
            match ack.errno {
                0 => deleted += 1,
                libc::ENOENT => {}
                errno => return Err(NftError::kernel("delete conntrack entry".into(), errno, ack.msg)),
            }
        }
    }
    if answered < entries.len() {
        return Err(NftError::Protocol(format!("conntrack answered {answered} of {} deletes", entries.len())));
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::nft::ruleset::tests::hp;

    /// A dump message as ctnetlink sends it (nfgenmsg + attributes), for one UDP entry.
    fn ct_msg(dst: [u8; 4], dport: u16, proto: u8) -> Vec<u8> {
        let mut w = Writer::default();
        w.buf.extend_from_slice(&[2, 0, 0, 0]);
        w.nest(CTA_TUPLE_ORIG, |w| {
            w.nest(CTA_TUPLE_IP, |w| {
                w.attr(1, &[192, 168, 200, 2]);
                w.attr(CTA_IP_V4_DST, &dst);
            });
            w.nest(CTA_TUPLE_PROTO, |w| {
                w.attr(CTA_PROTO_NUM, &[proto]);
                w.attr(2, &40000u16.to_be_bytes());
                w.attr(CTA_PROTO_DST_PORT, &dport.to_be_bytes());
            });
        });
        w.attr(CTA_ID, &7u32.to_be_bytes());
        w.buf
    }

    #[test]
    fn filters_and_builds_delete() {
        let any = hp(Proto::Udp, None, 5353, "10.88.0.2", 53);
        let only = HostPort { host_ip: Some("192.168.200.1".parse().unwrap()), host_port: 6000, ..any };
        let ports = [&any, &only];
        assert!(matching_entry(&ct_msg([192, 168, 200, 1], 5353, 17), &ports).is_some());
        assert!(matching_entry(&ct_msg([10, 0, 0, 1], 5353, 17), &ports).is_some());
        assert!(matching_entry(&ct_msg([192, 168, 200, 1], 5353, 6), &ports).is_none());
        assert!(matching_entry(&ct_msg([192, 168, 200, 1], 6000, 17), &ports).is_some());
        assert!(matching_entry(&ct_msg([10, 0, 0, 1], 6000, 17), &ports).is_none());
        assert!(matching_entry(&ct_msg([10, 0, 0, 1], 53, 17), &ports).is_none());

        let e = matching_entry(&ct_msg([192, 168, 200, 1], 5353, 17), &ports).unwrap();
        let mut w = Writer::default();
        delete_msg(&mut w, 2, 9, &e);
        let m = wire::messages(&w.buf).next().unwrap().unwrap();
        assert_eq!((m.ty, m.flags, m.seq), (0x0102, NLM_F_REQUEST | NLM_F_ACK, 9));
        let attrs = &m.payload[4..];
        assert_eq!(wire::attr(attrs, CTA_TUPLE_ORIG).unwrap(), &e.tuple[..]);
        assert_eq!(wire::attr(attrs, CTA_ID).unwrap(), 7u32.to_be_bytes());
    }

    fn filter_flags(ports: &[&HostPort]) -> (u32, Vec<u8>) {
        let mut w = Writer::default();
        dump_filter(&mut w, ports);
        let f = wire::attr(wire::attr(&w.buf, CTA_FILTER).unwrap(), CTA_FILTER_ORIG_FLAGS).unwrap();
        (u32::from_ne_bytes(f.try_into().unwrap()), wire::attr(&w.buf, CTA_TUPLE_ORIG).unwrap().to_vec())
    }

    #[test]
    fn kernel_filter_narrows_when_it_can() {
        let a = hp(Proto::Udp, Some("192.168.200.1"), 5353, "10.88.0.2", 53);
        let b = HostPort { host_ip: None, ..a };
        let c = HostPort { host_port: 6000, ..a };
        let (f, tuple) = filter_flags(&[&a]);
        assert_eq!(f, CTA_FILTER_F_CTA_PROTO_NUM | CTA_FILTER_F_CTA_PROTO_DST_PORT | CTA_FILTER_F_CTA_IP_DST);
        assert_eq!(wire::attr(wire::attr(&tuple, CTA_TUPLE_IP).unwrap(), CTA_IP_V4_DST).unwrap(), [192, 168, 200, 1]);
        let proto = wire::attr(&tuple, CTA_TUPLE_PROTO).unwrap();
        assert_eq!(wire::attr(proto, CTA_PROTO_NUM).unwrap(), [17]);
        assert_eq!(wire::attr(proto, CTA_PROTO_DST_PORT).unwrap(), 5353u16.to_be_bytes());
        assert_eq!(filter_flags(&[&a, &b]).0, CTA_FILTER_F_CTA_PROTO_NUM | CTA_FILTER_F_CTA_PROTO_DST_PORT);
        assert_eq!(filter_flags(&[&a, &c]).0, CTA_FILTER_F_CTA_PROTO_NUM);
    }
}
