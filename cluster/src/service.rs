//! The service IP allocator: a bitmap over a service range, like the one behind Kubernetes'
//! `--service-cluster-ip-range`. Bit `i` is the address `network + 1 + i`; the network address
//! (and the IPv4 broadcast address) are outside the bitmap so no call can ever hand them out.

use std::net::IpAddr;

use super::bitmap::Bitmap;
use super::cidr::{ip_to_u128, offset_ip, Cidr, Family};
use super::rng::SplitMix64;
use super::{api_server_ip, op_err, state, ClusterError};

/// Largest service bitmap, as a power of two: `2^20` addresses, a 128 KiB bitmap.
///
/// Kubernetes refuses service ranges larger than `/12` (IPv4) or `/108` (IPv6) for the same
/// reason: the whole bitmap is one value in etcd, whose default size limit is 1.5 MiB. IPv4
/// ranges larger than `/12` are refused. IPv6 ranges larger than `/108` are accepted but only
/// their first `2^20` addresses are allocatable: the IPv6 space is plentiful enough that a
/// `/64` service range is common and the tail is worthless, while silently using a sixteenth of
/// an IPv4 `/8` would surprise its owner.
pub const MAX_SERVICE_BITMAP_BITS: u8 = 20;

const MAGIC: &[u8; 4] = b"PNSV";
const WHAT: &str = "service IP allocator";

/// Allocates service (ClusterIP) addresses from one service range, one family.
///
/// For dual-stack services use one allocator per family.
///
/// * The first address after the network address is the API server's service IP
///   ([`api_server_ip`](Self::api_server_ip)): dynamic allocation never returns it; the
///   `kubernetes` service claims it with [`allocate`](Self::allocate).
/// * The low [`static_band`](Self::static_band) addresses are kept for user-chosen IPs:
///   [`allocate_next`](Self::allocate_next) picks a random free address in the upper band and
///   only falls back to the lower band when the upper band is full (Kubernetes KEP-3070, band
///   size `min(max(16, 2^hostbits / 16), 256)`).
/// * [`resize`](Self::resize) may grow (or shrink) the end of the range and keeps every
///   allocation; moving the start is refused.
/// * [`to_bytes`](Self::to_bytes) / [`from_bytes`](Self::from_bytes) give the whole state as
///   bytes for the caller's store.
#[derive(Debug, Clone)]
pub struct ServiceIpAllocator {
    cidr: Cidr,
    static_band: u64,
    bitmap: Bitmap,
    rng: SplitMix64,
}

/// Bitmap length and static band of a service range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    /// Addresses the allocator manages (network, broadcast excluded; IPv6 capped).
    pub(crate) size: u64,
    /// Low addresses kept for user-chosen IPs.
    pub(crate) static_band: u64,
}

/// Kubernetes' static band: `min(max(16, 2^hostbits / 16), 256)`, none below 16 addresses,
/// and never more than the range holds.
pub(crate) fn static_band(host_bits: u8, size: u64) -> u64 {
    let band = match host_bits {
        0..=3 => 0,
        4..=7 => 16,
        8..=11 => 1u64 << (host_bits - 4),
        _ => 256,
    };
    band.min(size)
}

/// Validate a service range and compute its layout.
pub(crate) fn layout(cidr: &Cidr) -> Result<Layout, ClusterError> {
    let host_bits = cidr.host_bits();
    let out_of_range = |reason: String| ClusterError::MaskOutOfRange {
        what: format!("service range {cidr}"),
        mask: u32::from(cidr.prefix()),
        reason,
    };
    let size = match cidr.family() {
        Family::Ipv4 => {
            if host_bits > MAX_SERVICE_BITMAP_BITS {
                return Err(out_of_range(format!(
                    "an IPv4 service range may be at most /{} (2^{} addresses), as in \
                     Kubernetes, so its bitmap fits in one etcd value",
                    32 - MAX_SERVICE_BITMAP_BITS,
                    MAX_SERVICE_BITMAP_BITS
                )));
            }
            if host_bits < 2 {
                return Err(out_of_range(
                    "a /31 or /32 has no address left after the network and broadcast addresses".to_owned(),
                ));
            }
            (1u64 << host_bits) - 2
        }
        Family::Ipv6 => {
            if host_bits == 0 {
                return Err(out_of_range("a /128 has no address besides the network".to_owned()));
            }
            (1u64 << host_bits.min(MAX_SERVICE_BITMAP_BITS)) - 1
        }
    };
    Ok(Layout { size, static_band: static_band(host_bits, size) })
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredConfig {
    cidr: Cidr,
}

impl ServiceIpAllocator {
    /// An empty allocator for `cidr`, with a random seed for the dynamic band.
    ///
    /// Refuses IPv4 ranges larger than `/12` or smaller than `/30`, and `/128`; see
    /// [`MAX_SERVICE_BITMAP_BITS`] for the IPv6 cap.
    pub fn new(cidr: Cidr) -> podnet::Result<ServiceIpAllocator> {
        let layout = layout(&cidr).map_err(op_err("create service IP allocator"))?;
        Ok(ServiceIpAllocator {
            cidr,
            static_band: layout.static_band,
            bitmap: Bitmap::new(layout.size),
            rng: SplitMix64::from_entropy(),
        })
    }

    /// Replace the random seed, so tests and simulations get repeatable dynamic picks.
    pub fn with_seed(mut self, seed: u64) -> ServiceIpAllocator {
        self.rng = SplitMix64::new(seed);
        self
    }

    /// The service range.
    pub fn cidr(&self) -> Cidr {
        self.cidr
    }

    /// The address family of the range.
    pub fn family(&self) -> Family {
        self.cidr.family()
    }

    /// Number of addresses the allocator manages, the API server's included: `2^n - 2` for
    /// IPv4, `min(2^n, 2^20) - 1` for IPv6.
    pub fn size(&self) -> u64 {
        self.bitmap.len()
    }

    /// Number of low addresses kept for user-chosen IPs.
    pub fn static_band(&self) -> u64 {
        self.static_band
    }

    /// Number of allocated addresses.
    pub fn allocated(&self) -> u64 {
        self.bitmap.ones()
    }

    /// Number of free addresses (the API server's included when it is free).
    pub fn free(&self) -> u64 {
        self.size() - self.allocated()
    }

    /// The API server's service IP: the first address after the network address.
    pub fn api_server_ip(&self) -> IpAddr {
        api_server_ip(&self.cidr)
    }

    /// The lowest allocatable address (the API server's).
    pub fn first_ip(&self) -> IpAddr {
        self.ip_at(0)
    }

    /// The highest allocatable address.
    pub fn last_ip(&self) -> IpAddr {
        self.ip_at(self.size() - 1)
    }

    /// Whether `ip` is one of the addresses this allocator hands out.
    pub fn is_allocatable(&self, ip: IpAddr) -> bool {
        self.offset_of(ip).is_ok()
    }

    /// Whether `ip` is allocated; an error when it is not an allocatable address.
    pub fn is_allocated(&self, ip: IpAddr) -> podnet::Result<bool> {
        let offset = self.offset_of(ip).map_err(op_err(format_args!("look up service IP {ip}")))?;
        Ok(self.bitmap.get(offset))
    }

    /// Allocate a user-chosen address (anywhere in the range, the API server's included).
    pub fn allocate(&mut self, ip: IpAddr) -> podnet::Result<()> {
        let op = || op_err(format!("allocate service IP {ip}"));
        let offset = self.offset_of(ip).map_err(op())?;
        if !self.bitmap.set(offset) {
            return Err(op()(ClusterError::AlreadyAllocated(format!("service IP {ip}"))));
        }
        Ok(())
    }

    /// Allocate a free address chosen at random: from the upper band first, then the lower
    /// band, never the API server's.
    pub fn allocate_next(&mut self) -> podnet::Result<IpAddr> {
        match self.pick() {
            Some(offset) => {
                self.bitmap.set(offset);
                Ok(self.ip_at(offset))
            }
            None => Err(op_err(format_args!("allocate service IP from {}", self.cidr))(self.exhausted())),
        }
    }

    fn pick(&mut self) -> Option<u64> {
        let size = self.size();
        if self.bitmap.ones() == size {
            return None;
        }
        // Offset 0 is the API server's address; both bands start above it.
        let band = self.static_band;
        self.random_scan(band.max(1), size).or_else(|| self.random_scan(1, band))
    }

    /// A free offset in `lo..hi`, scanning forward from a random start and wrapping once.
    fn random_scan(&mut self, lo: u64, hi: u64) -> Option<u64> {
        if lo >= hi {
            return None;
        }
        let start = lo + self.rng.below(hi - lo);
        self.bitmap.find_clear(start, hi).or_else(|| self.bitmap.find_clear(lo, start))
    }

    fn exhausted(&self) -> ClusterError {
        let size = self.size();
        let detail = if self.bitmap.ones() == size {
            format!("all {size} addresses are allocated")
        } else {
            format!(
                "{} of {size} addresses are allocated and the only free one is the API server's \
                 service IP {}, which dynamic allocation never hands out",
                self.bitmap.ones(),
                self.api_server_ip()
            )
        };
        ClusterError::Exhausted { range: format!("service range {}", self.cidr), detail }
    }

    /// Release an address. Returns whether it was allocated; releasing a free address is not an
    /// error, so cleanup can be retried.
    pub fn release(&mut self, ip: IpAddr) -> podnet::Result<bool> {
        let offset = self.offset_of(ip).map_err(op_err(format_args!("release service IP {ip}")))?;
        Ok(self.bitmap.clear(offset))
    }

    /// Change the range to `cidr`, keeping every allocation at its address.
    ///
    /// The start (network address) must stay the same: allocations are offsets from it. The end
    /// may grow freely and may shrink as long as no allocated address lies beyond the new end.
    pub fn resize(&mut self, cidr: Cidr) -> podnet::Result<()> {
        let from = self.cidr;
        self.resize_inner(cidr).map_err(op_err(format_args!("resize service range {from} to {cidr}")))
    }

    fn resize_inner(&mut self, to: Cidr) -> Result<(), ClusterError> {
        if to.family() != self.family() {
            return Err(ClusterError::FamilyMismatch(format!(
                "{} is {} but the service range {} is {}",
                to,
                to.family(),
                self.cidr,
                self.family()
            )));
        }
        if to.network() != self.cidr.network() {
            return Err(ClusterError::RangeStartMoved { from: self.cidr, to });
        }
        let layout = layout(&to)?;
        if layout.size < self.size() {
            if let Some(first) = self.bitmap.find_set(layout.size, self.size()) {
                return Err(ClusterError::WouldOrphan {
                    to,
                    first: self.ip_at(first),
                    count: self.bitmap.count_from(layout.size),
                });
            }
        }
        self.bitmap.resize(layout.size);
        self.static_band = layout.static_band;
        self.cidr = to;
        Ok(())
    }

    /// Allocated addresses in increasing order.
    pub fn iter_allocated(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.bitmap.iter_ones().map(|offset| self.ip_at(offset))
    }

    /// The state as bytes (layout in the [module docs](crate#state-format)): a small
    /// versioned header, the range as JSON, the raw bitmap and a CRC-32. The random seed is not
    /// part of the state.
    pub fn to_bytes(&self) -> Vec<u8> {
        let config = StoredConfig { cidr: self.cidr };
        // Serializing a struct with one string field cannot fail.
        let json = serde_json::to_vec(&config).unwrap_or_default();
        state::encode(MAGIC, &[&json, &self.bitmap.to_bytes()])
    }

    /// Restore an allocator from [`to_bytes`](Self::to_bytes) output, with a fresh random seed.
    /// Every field is validated; damaged or foreign bytes are an error, never a panic.
    pub fn from_bytes(bytes: &[u8]) -> podnet::Result<ServiceIpAllocator> {
        ServiceIpAllocator::decode(bytes).map_err(op_err("load service IP allocator state"))
    }

    fn decode(bytes: &[u8]) -> Result<ServiceIpAllocator, ClusterError> {
        let corrupt = |reason: String| ClusterError::CorruptState { what: WHAT, reason };
        let sections = state::decode(bytes, MAGIC, WHAT)?;
        let [config, bitmap] = sections[..] else {
            return Err(corrupt(format!("{} sections, expected 2", sections.len())));
        };
        let config: StoredConfig =
            serde_json::from_slice(config).map_err(|e| corrupt(format!("configuration is not valid: {e}")))?;
        let layout = layout(&config.cidr).map_err(|e| corrupt(e.to_string()))?;
        let bitmap = Bitmap::from_bytes(bitmap, layout.size).map_err(corrupt)?;
        Ok(ServiceIpAllocator {
            cidr: config.cidr,
            static_band: layout.static_band,
            bitmap,
            rng: SplitMix64::from_entropy(),
        })
    }

    fn ip_at(&self, offset: u64) -> IpAddr {
        offset_ip(self.family(), ip_to_u128(self.cidr.network()) + 1 + u128::from(offset))
    }

    fn offset_of(&self, ip: IpAddr) -> Result<u64, ClusterError> {
        let not_in_range = |reason: &str| ClusterError::NotInRange {
            item: format!("service IP {ip}"),
            range: self.cidr,
            reason: reason.to_owned(),
        };
        if Family::of(ip) != self.family() {
            return Err(ClusterError::FamilyMismatch(format!(
                "service IP {ip} is {} but the service range {} is {}",
                Family::of(ip),
                self.cidr,
                self.family()
            )));
        }
        if !self.cidr.contains(ip) {
            return Err(not_in_range("outside the range"));
        }
        let delta = ip_to_u128(ip) - ip_to_u128(self.cidr.network());
        if delta == 0 {
            return Err(not_in_range("the network address is never allocated"));
        }
        let offset = delta - 1;
        if offset >= u128::from(self.size()) {
            return Err(not_in_range(match self.family() {
                Family::Ipv4 => "the broadcast address is never allocated",
                Family::Ipv6 => "IPv6 service ranges only allocate their first 2^20 addresses",
            }));
        }
        // offset < size <= 2^20.
        Ok(offset as u64)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use podnet::ErrorKind;

    fn c(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn alloc(s: &str) -> ServiceIpAllocator {
        ServiceIpAllocator::new(c(s)).unwrap().with_seed(1)
    }

    #[test]
    fn sizes_and_bands_follow_kubernetes() {
        let a = alloc("10.0.0.0/16");
        assert_eq!(a.size(), 65_534);
        assert_eq!(a.static_band(), 256);
        assert_eq!(a.api_server_ip(), ip("10.0.0.1"));
        assert_eq!(a.first_ip(), ip("10.0.0.1"));
        assert_eq!(a.last_ip(), ip("10.0.255.254"));
        assert_eq!(alloc("10.0.0.0/12").size(), 1_048_574);
        assert_eq!(alloc("10.0.0.0/24").static_band(), 16);
        assert_eq!(alloc("10.0.0.0/22").static_band(), 64);
        assert_eq!(alloc("10.0.0.0/28").size(), 14);
        assert_eq!(alloc("10.0.0.0/28").static_band(), 14);
        assert_eq!(alloc("10.0.0.0/29").static_band(), 0);
        assert_eq!(alloc("10.0.0.0/30").size(), 2);
        assert_eq!(alloc("fd00::/108").size(), (1 << 20) - 1);
        assert_eq!(alloc("fd00::/64").size(), (1 << 20) - 1);
        assert_eq!(alloc("fd00::/64").static_band(), 256);
        assert_eq!(alloc("fd00::/120").size(), 255);
        assert_eq!(alloc("fd00::/127").size(), 1);
        for bad in ["10.0.0.0/11", "10.0.0.0/31", "10.0.0.0/32", "fd00::/128"] {
            let e = ServiceIpAllocator::new(c(bad)).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{bad}");
        }
    }

    #[test]
    fn network_broadcast_and_foreign_addresses_are_refused() {
        let mut a = alloc("10.0.0.0/24");
        for bad in ["10.0.0.0", "10.0.0.255", "10.0.1.0", "fd00::1"] {
            let e = a.allocate(ip(bad)).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{bad}: {e}");
        }
        assert!(a.is_allocatable(ip("10.0.0.254")));
        assert!(!a.is_allocatable(ip("10.0.0.255")));
        let mut v6 = alloc("fd00::/64");
        assert!(v6.allocate(ip("fd00::10:0")).is_err(), "beyond the 2^20 cap");
        v6.allocate(ip("fd00::f:ffff")).unwrap();
    }

    #[test]
    fn explicit_allocation_and_double_allocation() {
        let mut a = alloc("10.0.0.0/24");
        a.allocate(ip("10.0.0.1")).unwrap();
        a.allocate(ip("10.0.0.10")).unwrap();
        let e = a.allocate(ip("10.0.0.10")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AlreadyExists);
        assert_eq!(e.to_string(), "allocate service IP 10.0.0.10: service IP 10.0.0.10 is already allocated");
        assert!(a.is_allocated(ip("10.0.0.10")).unwrap());
        assert!(a.release(ip("10.0.0.10")).unwrap());
        assert!(!a.release(ip("10.0.0.10")).unwrap(), "second release is a no-op");
        assert_eq!(a.allocated(), 1);
    }

    #[test]
    fn dynamic_prefers_upper_band_then_lower_never_api_server() {
        let mut a = alloc("10.0.0.0/24"); // 254 addresses, static band 16 (offsets 0..16)
        let mut seen = BTreeSet::new();
        for i in 0..(254 - 16) {
            let got = a.allocate_next().unwrap();
            let offset = a.offset_of(got).unwrap();
            assert!(offset >= 16, "allocation {i} landed in the static band: {got}");
            assert!(seen.insert(got));
        }
        for _ in 0..15 {
            let got = a.allocate_next().unwrap();
            let offset = a.offset_of(got).unwrap();
            assert!((1..16).contains(&offset), "{got}");
            assert!(seen.insert(got));
        }
        let e = a.allocate_next().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Exhausted);
        assert!(e.to_string().contains("API server"), "{e}");
        a.allocate(a.api_server_ip()).unwrap();
        assert_eq!(a.free(), 0);
        assert!(a.allocate_next().unwrap_err().to_string().contains("all 254 addresses"));
    }

    #[test]
    fn exhaustion_is_exact_at_capacity() {
        for range in ["10.0.0.0/30", "10.0.0.0/29", "10.0.0.0/28", "10.0.0.0/20", "fd00::/116"] {
            let mut a = alloc(range);
            a.allocate(a.api_server_ip()).unwrap();
            let mut n = 1;
            while a.allocate_next().is_ok() {
                n += 1;
            }
            assert_eq!(n, a.size(), "{range}");
            assert_eq!(a.allocated(), a.size());
            assert_eq!(a.iter_allocated().count() as u64, a.size());
        }
    }

    #[test]
    fn growing_the_end_keeps_every_allocation() {
        let mut a = alloc("10.0.0.0/24");
        for _ in 0..100 {
            a.allocate_next().unwrap();
        }
        a.allocate(ip("10.0.0.5")).unwrap();
        let before: Vec<IpAddr> = a.iter_allocated().collect();
        a.resize(c("10.0.0.0/16")).unwrap();
        assert_eq!(a.iter_allocated().collect::<Vec<_>>(), before);
        assert_eq!(a.size(), 65_534);
        assert_eq!(a.static_band(), 256);
        // The old broadcast address is an ordinary address now.
        a.allocate(ip("10.0.0.255")).unwrap();
        assert_eq!(a.allocated(), 102);
    }

    #[test]
    fn moving_the_start_is_refused_with_the_reason() {
        let mut a = alloc("10.0.0.0/24");
        a.allocate_next().unwrap();
        for to in ["10.0.1.0/24", "10.1.0.0/16"] {
            let e = a.resize(c(to)).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Conflict);
            let msg = e.to_string();
            assert!(msg.contains("offsets"), "{msg}");
            assert!(msg.contains("re-address or orphan"), "{msg}");
        }
        // 10.0.0.0/8 keeps the network address 10.0.0.0 but is larger than the /12 cap.
        assert_eq!(a.resize(c("10.0.0.0/8")).unwrap_err().kind(), ErrorKind::InvalidArgument);
        assert_eq!(a.resize(c("fd00::/120")).unwrap_err().kind(), ErrorKind::InvalidArgument);
        assert_eq!(a.cidr(), c("10.0.0.0/24"), "failed resizes change nothing");
    }

    #[test]
    fn shrinking_is_allowed_only_when_nothing_is_orphaned() {
        let mut a = alloc("10.0.0.0/16");
        a.allocate(ip("10.0.0.5")).unwrap();
        a.allocate(ip("10.0.1.7")).unwrap();
        a.allocate(ip("10.0.2.7")).unwrap();
        let e = a.resize(c("10.0.0.0/24")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Conflict);
        assert!(e.to_string().contains("2 allocated service IP(s)"), "{e}");
        assert!(e.to_string().contains("10.0.1.7"), "{e}");
        a.release(ip("10.0.1.7")).unwrap();
        a.release(ip("10.0.2.7")).unwrap();
        a.resize(c("10.0.0.0/24")).unwrap();
        assert_eq!(a.iter_allocated().collect::<Vec<_>>(), vec![ip("10.0.0.5")]);
        assert_eq!(a.size(), 254);
    }

    #[test]
    fn bytes_round_trip_and_garbage_is_refused() {
        let mut a = alloc("10.0.0.0/20");
        for _ in 0..500 {
            a.allocate_next().unwrap();
        }
        let bytes = a.to_bytes();
        assert!(bytes.len() < 4096 / 8 + 64, "compact: {} bytes", bytes.len());
        let b = ServiceIpAllocator::from_bytes(&bytes).unwrap();
        assert_eq!(b.cidr(), a.cidr());
        assert_eq!(b.iter_allocated().collect::<Vec<_>>(), a.iter_allocated().collect::<Vec<_>>());
        assert_eq!(b.to_bytes(), bytes);

        let e = ServiceIpAllocator::from_bytes(b"hello world, not state").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(e.to_string().starts_with("load service IP allocator state: corrupt"), "{e}");
        for cut in [0, 1, 5, 9, bytes.len() / 2, bytes.len() - 1] {
            assert!(ServiceIpAllocator::from_bytes(&bytes[..cut]).is_err(), "cut {cut}");
        }
    }

    #[test]
    fn well_framed_but_invalid_content_is_refused() {
        let bitmap = Bitmap::new(254).to_bytes();
        let frame = |config: &[u8], bitmap: &[u8]| state::encode(MAGIC, &[config, bitmap]);
        let bad_json = frame(b"{\"cidr\":\"10.0.0.1/24\"}", &bitmap);
        let unknown_field = frame(b"{\"cidr\":\"10.0.0.0/24\",\"x\":1}", &bitmap);
        let too_big = frame(b"{\"cidr\":\"10.0.0.0/8\"}", &bitmap);
        let short_bitmap = frame(b"{\"cidr\":\"10.0.0.0/24\"}", &bitmap[1..]);
        let mut padded = bitmap.clone();
        *padded.last_mut().unwrap() = 0xff;
        let padding = frame(b"{\"cidr\":\"10.0.0.0/24\"}", &padded);
        let one_section = state::encode(MAGIC, &[b"{\"cidr\":\"10.0.0.0/24\"}"]);
        for bytes in [bad_json, unknown_field, too_big, short_bitmap, padding, one_section] {
            let e = ServiceIpAllocator::from_bytes(&bytes).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        }
        let ok = frame(b"{\"cidr\":\"10.0.0.0/24\"}", &bitmap);
        assert_eq!(ServiceIpAllocator::from_bytes(&ok).unwrap().size(), 254);
    }

    #[test]
    fn property_random_operations_never_duplicate() {
        let mut rng = SplitMix64::new(2024);
        for round in 0..40 {
            let range = ["10.0.0.0/22", "10.0.0.0/26", "fd00::/118", "10.0.0.0/29"][round % 4];
            let mut a = alloc(range).with_seed(round as u64);
            let mut model = BTreeSet::new();
            for step in 0..3000 {
                match rng.below(10) {
                    0..=5 => match a.allocate_next() {
                        Ok(got) => {
                            assert_ne!(got, a.api_server_ip());
                            assert!(a.is_allocatable(got));
                            assert!(model.insert(got), "duplicate {got} in {range}");
                        }
                        Err(e) => {
                            assert_eq!(e.kind(), ErrorKind::Exhausted);
                            let dynamic_free = a.free() - u64::from(!model.contains(&a.api_server_ip()));
                            assert_eq!(dynamic_free, 0);
                        }
                    },
                    6 => {
                        let offset = rng.below(a.size());
                        let want = a.ip_at(offset);
                        match a.allocate(want) {
                            Ok(()) => assert!(model.insert(want)),
                            Err(e) => {
                                assert_eq!(e.kind(), ErrorKind::AlreadyExists);
                                assert!(model.contains(&want));
                            }
                        }
                    }
                    7 | 8 => {
                        if let Some(&victim) = model.iter().nth(rng.below(model.len() as u64 + 1) as usize) {
                            assert!(a.release(victim).unwrap());
                            model.remove(&victim);
                        }
                    }
                    _ => {
                        let restored = ServiceIpAllocator::from_bytes(&a.to_bytes()).unwrap();
                        assert_eq!(restored.to_bytes(), a.to_bytes(), "step {step}");
                        a = restored.with_seed(rng.next_u64());
                    }
                }
                assert_eq!(a.allocated(), model.len() as u64);
            }
            assert!(a.iter_allocated().eq(model.iter().copied()));
        }
    }

    #[test]
    fn property_grow_preserves_random_allocations() {
        let mut rng = SplitMix64::new(77);
        for round in 0..30u64 {
            let v6 = round % 2 == 1;
            let start = if v6 { 100 + rng.below(20) as u8 } else { 20 + rng.below(10) as u8 };
            let base = if v6 { "fd00::" } else { "10.0.0.0" };
            let mut a = alloc(&format!("{base}/{start}")).with_seed(round);
            let n = rng.below(a.size());
            for _ in 0..n {
                a.allocate_next().unwrap();
            }
            let before: Vec<IpAddr> = a.iter_allocated().collect();
            let min = if v6 { 64 } else { 12 };
            let grown = start - rng.below(u64::from(start - min) + 1) as u8;
            a.resize(c(&format!("{base}/{grown}"))).unwrap();
            assert!(a.iter_allocated().eq(before.iter().copied()), "{base}/{start} -> /{grown}");
            assert_eq!(a.allocated(), n);
        }
    }

    #[test]
    fn property_garbage_never_panics() {
        let mut rng = SplitMix64::new(5);
        let mut a = alloc("10.0.0.0/24");
        a.allocate_next().unwrap();
        let good = a.to_bytes();
        for _ in 0..3000 {
            let mut bytes = good.clone();
            match rng.below(3) {
                0 => {
                    let i = rng.below(bytes.len() as u64) as usize;
                    bytes[i] = rng.next_u64() as u8;
                }
                1 => bytes.truncate(rng.below(bytes.len() as u64) as usize),
                _ => {
                    bytes = (0..rng.below(200)).map(|_| rng.next_u64() as u8).collect();
                }
            }
            if bytes != good {
                assert!(ServiceIpAllocator::from_bytes(&bytes).is_err());
            }
        }
    }
}
