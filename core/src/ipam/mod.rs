//! Node IPAM policy: which addresses of a pod CIDR may be handed out (network, gateway,
//! broadcast, configured range and reserved addresses excluded) and in which order (round-robin
//! from the last one handed out). Pure: the reservations themselves are rows of the store, which
//! asks a [`Pool`] for candidates inside its transaction.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnetwork::IpNetwork;

/// Errors of the IPAM module.
#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    /// The pool configuration is unusable.
    #[error("invalid pool {cidr}: {reason}")]
    InvalidPool {
        /// The CIDR.
        cidr: String,
        /// Why.
        reason: String,
    },
    /// A requested address is not assignable from this pool.
    #[error("{ip} is not assignable from pool {cidr} ({reason})")]
    NotInPool {
        /// The address.
        ip: IpAddr,
        /// The pool.
        cidr: String,
        /// Why (outside, network, gateway, broadcast, reserved, outside range).
        reason: &'static str,
    },
    /// The address is held by another key.
    #[error("{ip} is already allocated to {holder}")]
    Taken {
        /// The address.
        ip: IpAddr,
        /// "sandbox/ifname" of the holder.
        holder: String,
    },
    /// No free address left.
    #[error("pool {cidr} is exhausted ({size} assignable addresses, all allocated)")]
    Exhausted {
        /// The pool.
        cidr: String,
        /// How many addresses it can hand out.
        size: u128,
    },
}

impl IpamError {
    /// The stable kind.
    pub fn kind(&self) -> crate::ErrorKind {
        use crate::ErrorKind as K;
        match self {
            IpamError::InvalidPool { .. } | IpamError::NotInPool { .. } => K::InvalidArgument,
            IpamError::Taken { .. } => K::Conflict,
            IpamError::Exhausted { .. } => K::Exhausted,
        }
    }

    /// Wrap into the top-level error.
    pub fn into_error(self, op: impl Into<String>) -> crate::Error {
        crate::Error::new(self.kind(), op, self)
    }
}

type IpamResult<T> = Result<T, IpamError>;

/// Who holds an address: one interface of one sandbox (CNI's attachment identity).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Key {
    /// Sandbox id (validated: `[A-Za-z0-9_.-]`).
    pub id: String,
    /// Interface name inside the sandbox (validated likewise).
    pub ifname: String,
}

impl Key {
    /// New key.
    pub fn new(id: impl Into<String>, ifname: impl Into<String>) -> Key {
        Key { id: id.into(), ifname: ifname.into() }
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.id, self.ifname)
    }
}

/// What a pool may hand out.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PoolConfig {
    /// The pod CIDR (host bits must be zero).
    pub cidr: IpNetwork,
    /// First address that may be handed out (default: first usable).
    pub range_start: Option<IpAddr>,
    /// Last address that may be handed out (default: last usable).
    pub range_end: Option<IpAddr>,
    /// Addresses never handed out.
    pub reserved: Vec<IpAddr>,
}

impl PoolConfig {
    /// A pool over the whole CIDR.
    pub fn new(cidr: IpNetwork) -> PoolConfig {
        PoolConfig { cidr, range_start: None, range_end: None, reserved: vec![] }
    }

    /// A pool over the whole CIDR, refusing one that cannot serve as a pod CIDR (host bits set,
    /// no assignable address, a special range).
    pub fn checked(cidr: IpNetwork) -> std::result::Result<PoolConfig, String> {
        layout(cidr).map_err(|e| e.to_string())?;
        if let Some(why) = special_range(&cidr) {
            return Err(format!("pod CIDR {cidr} cannot hold pods: {why}"));
        }
        Ok(PoolConfig::new(cidr))
    }
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    }
}

fn from_u128(v6: bool, n: u128) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(n))
    } else {
        IpAddr::V4(Ipv4Addr::from(n as u32))
    }
}

/// Why a CIDR cannot be a pod CIDR, if it overlaps a range the stack treats specially (or is
/// the whole address space): pods there would be unreachable or take the node's own traffic.
pub fn special_range(c: &IpNetwork) -> Option<&'static str> {
    if c.prefix() == 0 {
        return Some("it covers every address");
    }
    let special: &[(&str, &str)] = &[
        ("0.0.0.0/8", "\"this network\" (0.0.0.0/8)"),
        ("127.0.0.0/8", "loopback (127.0.0.0/8)"),
        ("169.254.0.0/16", "link-local (169.254.0.0/16)"),
        ("224.0.0.0/4", "multicast (224.0.0.0/4)"),
        ("240.0.0.0/4", "reserved and broadcast (240.0.0.0/4)"),
        ("::/127", "unspecified and loopback (::/127)"),
        ("fe80::/10", "link-local (fe80::/10)"),
        ("ff00::/8", "multicast (ff00::/8)"),
    ];
    special.iter().find_map(|(net, why)| {
        let s: IpNetwork = net.parse().ok()?;
        let same_family = s.is_ipv4() == c.is_ipv4();
        (same_family && (s.contains(c.network()) || c.contains(s.network()))).then_some(*why)
    })
}

/// The addresses of a CIDR that podnet treats specially.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// The gateway: the first usable address (the bridge's address in bridge mode).
    pub gateway: IpAddr,
    /// First assignable address.
    pub first: IpAddr,
    /// Last assignable address.
    pub last: IpAddr,
}

/// Compute gateway and assignable bounds of a CIDR: the network address, the gateway (first
/// usable) and, for IPv4, the broadcast address are never assignable. /31 (and /127) have no
/// network or broadcast address (RFC 3021): the first is the gateway, the second assignable.
pub fn layout(cidr: IpNetwork) -> Result<Layout, IpamError> {
    let v6 = cidr.is_ipv6();
    let bits: u32 = if v6 { 128 } else { 32 };
    let p = cidr.prefix() as u32;
    let base = to_u128(cidr.network());
    if to_u128(cidr.ip()) != base {
        return Err(IpamError::InvalidPool { cidr: cidr.to_string(), reason: "host bits are set".into() });
    }
    let size: u128 = if bits - p >= 128 { u128::MAX } else { 1u128 << (bits - p) };
    let last_addr = base + (size - 1);
    let (gw, first, last) = match bits - p {
        0 => {
            return Err(IpamError::InvalidPool {
                cidr: cidr.to_string(),
                reason: "a single-address CIDR has no assignable address besides the gateway".into(),
            })
        }
        1 => (base, base + 1, base + 1),
        _ if v6 => (base + 1, base + 2, last_addr),
        _ => (base + 1, base + 2, last_addr - 1),
    };
    if first > last {
        return Err(IpamError::InvalidPool { cidr: cidr.to_string(), reason: "no assignable address".into() });
    }
    Ok(Layout { gateway: from_u128(v6, gw), first: from_u128(v6, first), last: from_u128(v6, last) })
}

/// One pod CIDR's allocation policy.
#[derive(Debug, Clone)]
pub struct Pool {
    cidr: IpNetwork,
    v6: bool,
    gateway: IpAddr,
    first: u128,
    last: u128,
    reserved: HashSet<u128>,
}

impl Pool {
    /// The policy of one configured pool; refuses a CIDR or range that cannot hand out anything.
    pub fn new(cfg: &PoolConfig) -> IpamResult<Pool> {
        let lay = layout(cfg.cidr)?;
        let v6 = cfg.cidr.is_ipv6();
        let mut first = to_u128(lay.first);
        let mut last = to_u128(lay.last);
        let check = |ip: IpAddr, which: &'static str| -> IpamResult<u128> {
            if ip.is_ipv6() != v6 || !cfg.cidr.contains(ip) {
                return Err(IpamError::NotInPool { ip, cidr: cfg.cidr.to_string(), reason: which });
            }
            Ok(to_u128(ip))
        };
        if let Some(s) = cfg.range_start {
            first = first.max(check(s, "range start outside the CIDR")?);
        }
        if let Some(e) = cfg.range_end {
            last = last.min(check(e, "range end outside the CIDR")?);
        }
        if first > last {
            return Err(IpamError::InvalidPool {
                cidr: cfg.cidr.to_string(),
                reason: "range start is after range end".into(),
            });
        }
        let mut reserved = HashSet::new();
        for r in &cfg.reserved {
            reserved.insert(check(*r, "reserved address outside the CIDR")?);
        }
        Ok(Pool { cidr: cfg.cidr, v6, gateway: lay.gateway, first, last, reserved })
    }

    /// The pool's CIDR.
    pub fn cidr(&self) -> IpNetwork {
        self.cidr
    }

    /// The gateway address (first usable).
    pub fn gateway(&self) -> IpAddr {
        self.gateway
    }

    /// How many addresses the pool can hand out.
    pub fn capacity(&self) -> u128 {
        let n = self.last - self.first + 1;
        n - self.reserved.iter().filter(|r| **r >= self.first && **r <= self.last).count() as u128
    }

    /// Refuse an address this pool never hands out, saying why.
    pub fn check_assignable(&self, ip: IpAddr) -> IpamResult<()> {
        let cidr = self.cidr.to_string();
        if ip.is_ipv6() != self.v6 || !self.cidr.contains(ip) {
            return Err(IpamError::NotInPool { ip, cidr, reason: "outside the CIDR" });
        }
        let n = to_u128(ip);
        if ip == self.gateway {
            return Err(IpamError::NotInPool { ip, cidr, reason: "it is the gateway" });
        }
        if n == to_u128(self.cidr.network()) && self.cidr.prefix() < if self.v6 { 127 } else { 31 } {
            return Err(IpamError::NotInPool { ip, cidr, reason: "it is the network address" });
        }
        if !self.v6 && self.cidr.prefix() < 31 && ip == self.cidr.broadcast() {
            return Err(IpamError::NotInPool { ip, cidr, reason: "it is the broadcast address" });
        }
        if n < self.first || n > self.last {
            return Err(IpamError::NotInPool { ip, cidr, reason: "outside the configured range" });
        }
        if self.reserved.contains(&n) {
            return Err(IpamError::NotInPool { ip, cidr, reason: "it is reserved" });
        }
        Ok(())
    }

    /// The first address `is_free` accepts, round-robin from the one after `cursor` (the last
    /// handed out), so a just-freed address is not reused at once (a stale peer might still have
    /// it in its ARP cache). `Ok(None)` when every candidate is taken.
    pub fn pick<E>(
        &self,
        cursor: Option<IpAddr>,
        mut is_free: impl FnMut(IpAddr) -> Result<bool, E>,
    ) -> Result<Option<IpAddr>, E> {
        let span = self.last - self.first + 1;
        let start = cursor
            .filter(|c| c.is_ipv6() == self.v6)
            .map(|c| to_u128(c).wrapping_add(1))
            .filter(|c| *c >= self.first && *c <= self.last)
            .unwrap_or(self.first);
        let mut n = start;
        let mut tried: u128 = 0;
        while tried < span {
            if !self.reserved.contains(&n) && is_free(from_u128(self.v6, n))? {
                return Ok(Some(from_u128(self.v6, n)));
            }
            n = if n == self.last { self.first } else { n + 1 };
            tried += 1;
        }
        Ok(None)
    }

    /// The error for a pool with nothing left.
    pub fn exhausted(&self) -> IpamError {
        IpamError::Exhausted { cidr: self.cidr.to_string(), size: self.capacity() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(cidr: &str) -> Pool {
        Pool::new(&PoolConfig::new(cidr.parse().unwrap())).unwrap()
    }

    fn all(p: &Pool) -> Vec<IpAddr> {
        let mut taken = HashSet::new();
        let mut cursor = None;
        while let Some(ip) = p.pick::<()>(cursor, |ip| Ok(!taken.contains(&ip))).unwrap() {
            taken.insert(ip);
            cursor = Some(ip);
        }
        let mut v: Vec<IpAddr> = taken.into_iter().collect();
        v.sort();
        v
    }

    #[test]
    fn v4_24_skips_network_gateway_broadcast() {
        let p = pool("10.10.1.0/24");
        assert_eq!(p.gateway(), "10.10.1.1".parse::<IpAddr>().unwrap());
        assert_eq!(p.capacity(), 253);
        let v = all(&p);
        assert_eq!(v.len(), 253);
        for s in ["10.10.1.0", "10.10.1.1", "10.10.1.255"] {
            assert!(!v.contains(&s.parse().unwrap()), "{s}");
        }
    }

    #[test]
    fn edge_prefixes() {
        assert_eq!(all(&pool("10.0.0.0/30")), ["10.0.0.2".parse::<IpAddr>().unwrap()]);
        let p = pool("10.0.0.0/31");
        assert_eq!(p.gateway().to_string(), "10.0.0.0");
        assert_eq!(all(&p), ["10.0.0.1".parse::<IpAddr>().unwrap()]);
        let e = Pool::new(&PoolConfig::new("10.0.0.7/32".parse().unwrap())).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument);
        let v: Vec<String> = all(&pool("fd00::/126")).iter().map(|i| i.to_string()).collect();
        assert_eq!(v, ["fd00::2", "fd00::3"]);
        let e = Pool::new(&PoolConfig::new("10.0.0.1/24".parse().unwrap())).unwrap_err();
        assert!(e.to_string().contains("host bits"), "{e}");
    }

    #[test]
    fn round_robin_wraps_to_the_freed_address_last() {
        let p = pool("10.0.0.0/29");
        let free = |_| Ok::<_, ()>(true);
        let a = p.pick(None, free).unwrap().unwrap();
        assert_eq!(a.to_string(), "10.0.0.2");
        let b = p.pick(Some(a), free).unwrap().unwrap();
        assert_eq!(b.to_string(), "10.0.0.3");
        let last: IpAddr = "10.0.0.6".parse().unwrap();
        assert_eq!(p.pick(Some(last), free).unwrap(), Some(a), "wraps to the first");
    }

    #[test]
    fn assignable_rules() {
        let mut cfg = PoolConfig::new("10.0.0.0/24".parse().unwrap());
        cfg.range_start = Some("10.0.0.10".parse().unwrap());
        cfg.range_end = Some("10.0.0.20".parse().unwrap());
        cfg.reserved = vec!["10.0.0.15".parse().unwrap()];
        let p = Pool::new(&cfg).unwrap();
        assert_eq!(p.capacity(), 10);
        for bad in ["10.0.0.0", "10.0.0.1", "10.0.0.255", "10.0.0.9", "10.0.0.21", "10.0.0.15", "10.0.1.5", "fd00::5"] {
            let e = p.check_assignable(bad.parse().unwrap()).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument, "{bad}: {e}");
        }
        assert!(p.check_assignable("10.0.0.12".parse().unwrap()).is_ok());
        let v = all(&p);
        assert_eq!(v.len(), 10);
        assert!(!v.contains(&"10.0.0.15".parse().unwrap()));
    }
}
