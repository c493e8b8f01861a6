//! Node IPAM: hands out pod addresses from one of the node's pod CIDRs.
//!
//! State lives in files under the node's state dir (tmpfs: a reboot frees every address with
//! the netns that used it). One reservation file per address, created with `O_EXCL`, makes a
//! double allocation impossible; an in-process mutex plus `flock` serialize the
//! read-modify-write of the round-robin cursor across threads and processes.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

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
    /// The key already holds a different address than the one requested.
    #[error("{key} already holds {held}, not {requested}")]
    KeyHoldsOther {
        /// The key.
        key: String,
        /// What it holds.
        held: IpAddr,
        /// What was asked.
        requested: IpAddr,
    },
    /// No free address left.
    #[error("pool {cidr} is exhausted ({size} assignable addresses, all allocated)")]
    Exhausted {
        /// The pool.
        cidr: String,
        /// How many addresses it can hand out.
        size: u128,
    },
    /// A state file operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
}

impl IpamError {
    /// The stable kind.
    pub fn kind(&self) -> crate::ErrorKind {
        use crate::ErrorKind as K;
        match self {
            IpamError::InvalidPool { .. } | IpamError::NotInPool { .. } => K::InvalidArgument,
            IpamError::Taken { .. } | IpamError::KeyHoldsOther { .. } => K::Conflict,
            IpamError::Exhausted { .. } => K::Exhausted,
            IpamError::Io { source, .. } => source
                .raw_os_error()
                .map(crate::ErrorKind::from_errno)
                .map(|k| if k == K::Kernel { K::Io } else { k })
                .unwrap_or(K::Io),
        }
    }

    /// Wrap into the top-level error.
    pub fn into_error(self, op: impl Into<String>) -> crate::Error {
        let kind = self.kind();
        match &self {
            IpamError::Io { source, .. } if source.raw_os_error().is_some() => {
                let e = source.raw_os_error().unwrap_or(0);
                crate::Error::with_errno(kind, op, e, self)
            }
            _ => crate::Error::new(kind, op, self),
        }
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

    fn file_name(&self) -> String {
        // '@' is outside the validated alphabet of both parts, so the name is unambiguous.
        format!("{}@{}", self.id, self.ifname)
    }

    fn parse(s: &str) -> Option<Key> {
        let (id, ifname) = s.trim().split_once('@')?;
        Some(Key::new(id, ifname))
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
    /// no assignable address).
    pub fn checked(cidr: IpNetwork) -> std::result::Result<PoolConfig, String> {
        layout(cidr).map_err(|e| e.to_string())?;
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

/// One address pool backed by files in `dir`.
#[derive(Debug)]
pub struct Pool {
    cidr: IpNetwork,
    v6: bool,
    gateway: IpAddr,
    first: u128,
    last: u128,
    reserved: HashSet<u128>,
    dir: PathBuf,
    lock: Mutex<File>,
}

/// Guard: in-process mutex plus `flock` on the pool's lock file.
struct Locked<'a> {
    _guard: std::sync::MutexGuard<'a, File>,
}

impl Pool {
    /// Open (creating if needed) the pool stored under `dir`.
    pub fn open(cfg: &PoolConfig, dir: &Path) -> IpamResult<Pool> {
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
        fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> IpamError + 'a {
            move |source| IpamError::Io { what, path: path.to_path_buf(), source }
        }
        fs::create_dir_all(dir.join("ip")).map_err(io("create", dir))?;
        fs::create_dir_all(dir.join("key")).map_err(io("create", dir))?;
        let lock_path = dir.join("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io("open", &lock_path))?;
        Ok(Pool {
            cidr: cfg.cidr,
            v6,
            gateway: lay.gateway,
            first,
            last,
            reserved,
            dir: dir.to_path_buf(),
            lock: Mutex::new(lock),
        })
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

    fn locked(&self) -> IpamResult<Locked<'_>> {
        let guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        // The mutex orders threads of this process (flock is per open file description, so it
        // would not); flock orders processes sharing the state dir. Released when the guard
        // (and with it the fd's lock) drops: see Drop below.
        flock(&guard, libc::LOCK_EX).map_err(|source| IpamError::Io {
            what: "lock",
            path: self.dir.join("lock"),
            source,
        })?;
        Ok(Locked { _guard: guard })
    }

    fn ip_path(&self, n: u128) -> PathBuf {
        self.dir.join("ip").join(from_u128(self.v6, n).to_string())
    }

    fn key_path(&self, key: &Key) -> PathBuf {
        self.dir.join("key").join(key.file_name())
    }

    fn check_assignable(&self, ip: IpAddr) -> IpamResult<u128> {
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
        Ok(n)
    }

    /// Try to take address `n` for `key`. Ok(true) taken, Ok(false) held by someone else.
    fn try_take(&self, n: u128, key: &Key) -> IpamResult<bool> {
        let p = self.ip_path(n);
        match OpenOptions::new().write(true).create_new(true).open(&p) {
            Ok(mut f) => {
                f.write_all(key.file_name().as_bytes()).map_err(|source| IpamError::Io {
                    what: "write",
                    path: p.clone(),
                    source,
                })?;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(source) => Err(IpamError::Io { what: "create", path: p, source }),
        }
    }

    fn holder(&self, n: u128) -> Option<Key> {
        let mut s = String::new();
        File::open(self.ip_path(n)).ok()?.read_to_string(&mut s).ok()?;
        Key::parse(&s)
    }

    fn held_by_key(&self, key: &Key) -> Option<u128> {
        let s = fs::read_to_string(self.key_path(key)).ok()?;
        let ip: IpAddr = s.trim().parse().ok()?;
        let n = to_u128(ip);
        // The key file is only a hint; the reservation file is the truth.
        (self.holder(n).as_ref() == Some(key)).then_some(n)
    }

    fn write_key(&self, key: &Key, n: u128) -> IpamResult<()> {
        let p = self.key_path(key);
        write_atomic(&p, from_u128(self.v6, n).to_string().as_bytes()).map_err(|source| IpamError::Io {
            what: "write",
            path: p,
            source,
        })
    }

    /// Allocate an address for `key`, or return the one it already holds (idempotent).
    /// `requested` asks for a specific address.
    pub fn allocate(&self, key: &Key, requested: Option<IpAddr>) -> IpamResult<IpAddr> {
        let req = requested.map(|ip| self.check_assignable(ip)).transpose()?;
        let _l = self.locked()?;
        if let Some(held) = self.held_by_key(key) {
            if let Some(r) = req {
                if r != held {
                    return Err(IpamError::KeyHoldsOther {
                        key: key.to_string(),
                        held: from_u128(self.v6, held),
                        requested: from_u128(self.v6, r),
                    });
                }
            }
            return Ok(from_u128(self.v6, held));
        }
        if let Some(n) = req {
            if !self.try_take(n, key)? && self.holder(n).as_ref() != Some(key) {
                let holder = self.holder(n).map(|k| k.to_string()).unwrap_or_else(|| "an unknown holder".into());
                return Err(IpamError::Taken { ip: from_u128(self.v6, n), holder });
            }
            self.write_key(key, n)?;
            return Ok(from_u128(self.v6, n));
        }
        // Round-robin from the address after the last one handed out, so a just-freed address
        // is not reused at once (a stale peer might still have it in its ARP cache).
        let span = self.last - self.first + 1;
        let start = self
            .read_cursor()
            .map(|c| c.wrapping_add(1))
            .filter(|c| *c >= self.first && *c <= self.last)
            .unwrap_or(self.first);
        let mut n = start;
        for _ in 0..span {
            if !self.reserved.contains(&n) && self.try_take(n, key)? {
                self.write_key(key, n)?;
                self.write_cursor(n);
                return Ok(from_u128(self.v6, n));
            }
            n = if n == self.last { self.first } else { n + 1 };
        }
        Err(IpamError::Exhausted { cidr: self.cidr.to_string(), size: self.capacity() })
    }

    fn read_cursor(&self) -> Option<u128> {
        let s = fs::read_to_string(self.dir.join("last")).ok()?;
        s.trim().parse::<IpAddr>().ok().filter(|ip| ip.is_ipv6() == self.v6).map(to_u128)
    }

    fn write_cursor(&self, n: u128) {
        // A lost cursor only costs round-robin fairness, never correctness.
        let _ = write_atomic(&self.dir.join("last"), from_u128(self.v6, n).to_string().as_bytes());
    }

    /// The address `key` holds, if any.
    pub fn get(&self, key: &Key) -> Option<IpAddr> {
        self.held_by_key(key).map(|n| from_u128(self.v6, n))
    }

    /// Release what `key` holds. Returns the freed address; not holding anything is success.
    pub fn release(&self, key: &Key) -> IpamResult<Option<IpAddr>> {
        let _l = self.locked()?;
        let held = self.held_by_key(key);
        if let Some(n) = held {
            let p = self.ip_path(n);
            match fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(IpamError::Io { what: "remove", path: p, source }),
            }
        }
        let kp = self.key_path(key);
        match fs::remove_file(&kp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(IpamError::Io { what: "remove", path: kp, source }),
        }
        Ok(held.map(|n| from_u128(self.v6, n)))
    }

    /// Release an address by value, whoever holds it (used by gc for orphans).
    pub fn release_ip(&self, ip: IpAddr) -> IpamResult<()> {
        let _l = self.locked()?;
        let n = to_u128(ip);
        if let Some(k) = self.holder(n) {
            if self.held_by_key(&k) == Some(n) {
                let _ = fs::remove_file(self.key_path(&k));
            }
        }
        match fs::remove_file(self.ip_path(n)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(IpamError::Io { what: "remove", path: self.ip_path(n), source }),
        }
    }

    /// Every allocation: (address, holder). Holder is None for a reservation file whose
    /// content is unreadable (a crash between create and write); gc frees those.
    pub fn list(&self) -> IpamResult<Vec<(IpAddr, Option<Key>)>> {
        let d = self.dir.join("ip");
        let rd = fs::read_dir(&d).map_err(|source| IpamError::Io { what: "list", path: d.clone(), source })?;
        let mut out = vec![];
        for e in rd.flatten() {
            if let Some(ip) = e.file_name().to_str().and_then(|s| s.parse::<IpAddr>().ok()) {
                out.push((ip, self.holder(to_u128(ip))));
            }
        }
        out.sort();
        Ok(out)
    }
}

fn flock(f: &File, op: i32) -> io::Result<()> {
    loop {
        // SAFETY: flock on a valid fd owned by `f`, which outlives the call.
        let r = unsafe { libc::flock(f.as_raw_fd(), op) };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        let _ = flock(&self._guard, libc::LOCK_UN);
    }
}

/// Write a file atomically: temp file in the same dir, then rename over the target.
pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension(
        format!("tmp.{}.{:?}", std::process::id(), std::thread::current().id()).replace(['(', ')'], ""),
    );
    {
        let mut f = File::create(&tmp)?;
        f.write_all(data)?;
    }
    fs::rename(&tmp, path).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(
            format!("podnet-ipam-{tag}-{}-{:?}", std::process::id(), std::thread::current().id())
                .replace(['(', ')'], ""),
        );
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn pool(cidr: &str, tag: &str) -> (Pool, PathBuf) {
        let d = tmpdir(tag);
        (Pool::open(&PoolConfig::new(cidr.parse().unwrap()), &d).unwrap(), d)
    }

    fn k(i: usize) -> Key {
        Key::new(format!("sb{i}"), "eth0")
    }

    #[test]
    fn v4_24_skips_network_gateway_broadcast() {
        let (p, d) = pool("10.10.1.0/24", "v4");
        assert_eq!(p.gateway(), "10.10.1.1".parse::<IpAddr>().unwrap());
        assert_eq!(p.capacity(), 253);
        let mut seen = HashSet::new();
        for i in 0..253 {
            let ip = p.allocate(&k(i), None).unwrap();
            assert!(seen.insert(ip));
            let s = ip.to_string();
            assert!(s != "10.10.1.0" && s != "10.10.1.1" && s != "10.10.1.255", "{s}");
        }
        let e = p.allocate(&k(999), None).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Exhausted);
        fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn edge_prefixes() {
        let (p, d) = pool("10.0.0.0/30", "p30");
        assert_eq!(p.allocate(&k(0), None).unwrap().to_string(), "10.0.0.2");
        assert_eq!(p.allocate(&k(1), None).unwrap_err().kind(), crate::ErrorKind::Exhausted);
        fs::remove_dir_all(d).unwrap();
        let (p, d) = pool("10.0.0.0/31", "p31");
        assert_eq!(p.gateway().to_string(), "10.0.0.0");
        assert_eq!(p.allocate(&k(0), None).unwrap().to_string(), "10.0.0.1");
        assert_eq!(p.allocate(&k(1), None).unwrap_err().kind(), crate::ErrorKind::Exhausted);
        fs::remove_dir_all(d).unwrap();
        let d = tmpdir("p32");
        let e = Pool::open(&PoolConfig::new("10.0.0.7/32".parse().unwrap()), &d).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument);
        let (p, d2) = pool("fd00::/126", "p126");
        assert_eq!(p.allocate(&k(0), None).unwrap().to_string(), "fd00::2");
        assert_eq!(p.allocate(&k(1), None).unwrap().to_string(), "fd00::3");
        assert_eq!(p.allocate(&k(2), None).unwrap_err().kind(), crate::ErrorKind::Exhausted);
        fs::remove_dir_all(d2).unwrap();
        let _ = fs::remove_dir_all(d);
    }

    #[test]
    fn v6_64_allocates() {
        let (p, d) = pool("fd00:10:1::/64", "v664");
        assert_eq!(p.gateway().to_string(), "fd00:10:1::1");
        assert_eq!(p.allocate(&k(0), None).unwrap().to_string(), "fd00:10:1::2");
        assert_eq!(p.allocate(&k(1), None).unwrap().to_string(), "fd00:10:1::3");
        let r: IpAddr = "fd00:10:1::ffff:1".parse().unwrap();
        assert_eq!(p.allocate(&k(2), Some(r)).unwrap(), r);
        fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn host_bits_set_rejected() {
        let d = tmpdir("hb");
        let e = Pool::open(&PoolConfig::new("10.0.0.1/24".parse().unwrap()), &d).unwrap_err();
        assert!(e.to_string().contains("host bits"), "{e}");
    }

    #[test]
    fn idempotent_and_round_robin() {
        let (p, d) = pool("10.0.0.0/29", "rr");
        let a = p.allocate(&k(0), None).unwrap();
        assert_eq!(p.allocate(&k(0), None).unwrap(), a, "same key, same address");
        let b = p.allocate(&k(1), None).unwrap();
        assert_eq!(p.release(&k(0)).unwrap(), Some(a));
        assert_eq!(p.release(&k(0)).unwrap(), None, "release is idempotent");
        let c = p.allocate(&k(2), None).unwrap();
        assert_ne!(c, a, "freed address is not reused at once");
        assert_ne!(c, b);
        // .2 .3 .4 .5 .6 are assignable (5); after wrapping the freed one comes back.
        let mut got = vec![];
        for i in 3..6 {
            got.push(p.allocate(&k(i), None).unwrap());
        }
        assert_eq!(*got.last().unwrap(), a, "wraps around to the freed address last");
        fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn requested_ip_rules() {
        let mut cfg = PoolConfig::new("10.0.0.0/24".parse().unwrap());
        cfg.range_start = Some("10.0.0.10".parse().unwrap());
        cfg.range_end = Some("10.0.0.20".parse().unwrap());
        cfg.reserved = vec!["10.0.0.15".parse().unwrap()];
        let d = tmpdir("req");
        let p = Pool::open(&cfg, &d).unwrap();
        assert_eq!(p.capacity(), 10);
        for bad in ["10.0.0.0", "10.0.0.1", "10.0.0.255", "10.0.0.9", "10.0.0.21", "10.0.0.15", "10.0.1.5", "fd00::5"] {
            let e = p.allocate(&k(0), Some(bad.parse().unwrap())).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument, "{bad}: {e}");
        }
        assert!(p.list().unwrap().is_empty(), "bad requests change nothing");
        let ip: IpAddr = "10.0.0.12".parse().unwrap();
        assert_eq!(p.allocate(&k(0), Some(ip)).unwrap(), ip);
        let e = p.allocate(&k(1), Some(ip)).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Conflict);
        assert!(e.to_string().contains("sb0/eth0"), "{e}");
        let e = p.allocate(&k(0), Some("10.0.0.13".parse().unwrap())).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Conflict);
        // the first dynamic allocation starts at the range start, skipping reserved
        for i in 1..10 {
            let ip = p.allocate(&k(i), None).unwrap();
            assert_ne!(ip.to_string(), "10.0.0.15");
        }
        assert_eq!(p.allocate(&k(10), None).unwrap_err().kind(), crate::ErrorKind::Exhausted);
        fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn restart_from_state() {
        let d = tmpdir("restart");
        let cfg = PoolConfig::new("10.1.0.0/24".parse().unwrap());
        let (a, b) = {
            let p = Pool::open(&cfg, &d).unwrap();
            (p.allocate(&k(0), None).unwrap(), p.allocate(&k(1), None).unwrap())
        };
        let p = Pool::open(&cfg, &d).unwrap();
        assert_eq!(p.get(&k(0)), Some(a));
        assert_eq!(p.allocate(&k(1), None).unwrap(), b);
        let c = p.allocate(&k(2), None).unwrap();
        assert_ne!(c, a);
        assert_ne!(c, b);
        assert_eq!(p.list().unwrap().len(), 3);
        fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn many_threads_no_duplicates() {
        let (p, d) = pool("10.2.0.0/22", "threads");
        let p = std::sync::Arc::new(p);
        let mut hs = vec![];
        for t in 0..8 {
            let p = p.clone();
            hs.push(std::thread::spawn(move || {
                (0..100).map(|i| p.allocate(&k(t * 1000 + i), None).unwrap()).collect::<Vec<_>>()
            }));
        }
        let mut all = HashSet::new();
        for h in hs {
            for ip in h.join().unwrap() {
                assert!(all.insert(ip), "duplicate {ip}");
            }
        }
        assert_eq!(all.len(), 800);
        fs::remove_dir_all(d).unwrap();
    }
}
