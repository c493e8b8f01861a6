//! Cluster address planning: the capacity planner, the node CIDR allocator and the service IP
//! allocator. Pure and unprivileged: nothing here touches the kernel or keeps a store; the
//! allocators are values that serialize to bytes, so the caller keeps them wherever the cluster
//! keeps its truth (the Kubernetes API, etcd) and saves them with compare-and-swap.
//!
//! # State format
//!
//! `to_bytes` writes `magic (4) | version (1) | section count (1) | sections | CRC-32 (4)`, each
//! section a little-endian `u32` length and its bytes: first the configuration as JSON (ranges as
//! strings, readable in a dump), then each bitmap as raw bytes (bit `i` in byte `i / 8`, position
//! `i % 8`). A `/12` service range is 128 KiB; 65,536 node CIDRs are 8 KiB. `from_bytes` checks
//! every part and refuses anything else with [`podnet::ErrorKind::InvalidArgument`].
//!
//! ```
//! use podnet_cluster::{plan, Cidr, PlanInput};
//!
//! let plan = plan(&PlanInput {
//!     cluster_cidrs: vec!["10.10.0.0/16".parse()?],
//!     node_masks: vec![24],
//!     machine_subnet: Some("10.1.0.0/24".parse()?),
//!     control_plane: 9,
//!     service_cidrs: vec!["10.0.0.0/16".parse::<Cidr>()?],
//! })?;
//! assert_eq!(plan.workers, 245);
//! assert_eq!(plan.pod_capacity, 62_230);
//! # Ok::<(), podnet::Error>(())
//! ```

pub mod agent;
mod bitmap;
mod cidr;
mod nodecidr;
mod plan;
mod rng;
mod service;
mod state;

use std::net::IpAddr;

pub use cidr::{Cidr, Family, Subnets};
pub use nodecidr::{ClusterCidr, NodeCidrAllocator, NodeCidrUsage, MAX_NODE_MASK_DIFF_V4, MAX_NODE_MASK_DIFF_V6};
pub use plan::{
    plan, thousands, MachinePlan, Plan, PlanInput, PodRangePlan, ServicePlan, Warning, WarningCode,
    DEFAULT_NODE_MASK_V4, DEFAULT_NODE_MASK_V6,
};
pub use service::{ServiceIpAllocator, MAX_SERVICE_BITMAP_BITS};

use podnet::{Error, ErrorKind};

/// Everything that can go wrong while planning or allocating cluster addresses.
///
/// Messages name the values involved so a CLI can print them as they are.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// The text is not a CIDR (`address/prefix`).
    #[error("invalid CIDR {input:?}: {reason}")]
    InvalidCidr {
        /// What the caller wrote.
        input: String,
        /// Why it does not parse.
        reason: String,
    },
    /// The address has bits set beyond the prefix, so it names a host, not a range.
    #[error("{input} has host bits set; did you mean {suggestion}?")]
    HostBitsSet {
        /// What the caller wrote.
        input: String,
        /// The same prefix with the host bits cleared.
        suggestion: Cidr,
    },
    /// A prefix length or node mask is outside what the family or the allocator allows.
    #[error("{what}: /{mask} is out of range: {reason}")]
    MaskOutOfRange {
        /// Which mask, e.g. "node mask for 10.10.0.0/16".
        what: String,
        /// The offending prefix length.
        mask: u32,
        /// The rule it breaks.
        reason: String,
    },
    /// IPv4 and IPv6 were mixed where one family is required, or a dual-stack list repeats a
    /// family.
    #[error("{0}")]
    FamilyMismatch(String),
    /// Two ranges that must be disjoint overlap.
    #[error("{first} overlaps {second}")]
    Overlap {
        /// The range being checked, e.g. "service range 10.0.0.0/16".
        first: String,
        /// The range it collides with, e.g. "cluster CIDR 10.0.0.0/8".
        second: String,
    },
    /// Every address or node CIDR of a range is allocated.
    #[error("{range} is exhausted: {detail}")]
    Exhausted {
        /// The range, e.g. "cluster CIDR 10.10.0.0/16".
        range: String,
        /// How many entries are allocated and what is reserved.
        detail: String,
    },
    /// An address or node CIDR lies outside the allocator's range, or on an address the range
    /// never hands out (network, broadcast).
    #[error("{item} is not in {range}: {reason}")]
    NotInRange {
        /// The address or CIDR asked for.
        item: String,
        /// The range it was checked against.
        range: Cidr,
        /// Why it does not qualify.
        reason: String,
    },
    /// The address or node CIDR is allocated already.
    #[error("{0} is already allocated")]
    AlreadyAllocated(String),
    /// A resize tried to move the first address of a service range.
    #[error(
        "the start of the range would move from {} to {}. Allocations are stored as offsets \
         from the start of the range, so moving it would re-address or orphan every allocated \
         service IP (and change the API server's service IP {}); only the end of a range may \
         grow. Create a new allocator for the new range and migrate services to it instead",
        from.network(), to.network(), api_server_ip(from)
    )]
    RangeStartMoved {
        /// The current range.
        from: Cidr,
        /// The range asked for.
        to: Cidr,
    },
    /// A resize would shrink the range below addresses that are still allocated.
    #[error(
        "{count} allocated service IP(s) lie beyond the new end of the range ({to} ends at {}), \
         the first is {first}; release them before shrinking",
        to.last()
    )]
    WouldOrphan {
        /// The range asked for.
        to: Cidr,
        /// The lowest allocated address beyond the new end.
        first: IpAddr,
        /// How many allocated addresses lie beyond the new end.
        count: u64,
    },
    /// Serialized allocator state failed validation.
    #[error("corrupt {what} state: {reason}")]
    CorruptState {
        /// Which state, e.g. "service IP allocator".
        what: &'static str,
        /// The check that failed.
        reason: String,
    },
    /// Some other input rule was broken (counts that do not match, empty lists).
    #[error("{0}")]
    InvalidInput(String),
}

impl ClusterError {
    /// The stable kind this error maps to.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ClusterError::InvalidCidr { .. }
            | ClusterError::HostBitsSet { .. }
            | ClusterError::MaskOutOfRange { .. }
            | ClusterError::FamilyMismatch(_)
            | ClusterError::Overlap { .. }
            | ClusterError::NotInRange { .. }
            | ClusterError::InvalidInput(_) => ErrorKind::InvalidArgument,
            // The bytes come from the caller's store, not from a podnet bug, and nothing was
            // changed, so this is the caller's input being wrong rather than `Internal`.
            ClusterError::CorruptState { .. } => ErrorKind::InvalidArgument,
            ClusterError::Exhausted { .. } => ErrorKind::Exhausted,
            ClusterError::AlreadyAllocated(_) => ErrorKind::AlreadyExists,
            // Both are refused because of state that already exists (allocations), not because
            // the new range is malformed on its own.
            ClusterError::RangeStartMoved { .. } | ClusterError::WouldOrphan { .. } => ErrorKind::Conflict,
        }
    }
}

impl From<ClusterError> for Error {
    fn from(e: ClusterError) -> Error {
        Error::new(e.kind(), "", e)
    }
}

/// Attach the operation that failed to a module error.
fn op_err(op: impl std::fmt::Display) -> impl FnOnce(ClusterError) -> Error {
    move |e| Error::from(e).context(op)
}

/// The API server's service IP of a service range: the first address after the network address.
fn api_server_ip(range: &Cidr) -> IpAddr {
    cidr::offset_ip(range.family(), cidr::ip_to_u128(range.network()).wrapping_add(1))
}
