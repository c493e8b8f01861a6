//! podnet: Kubernetes pod networking as a library.
//!
//! A [`Node`] is bound to one network namespace (a Kubernetes node). With one call per pod it
//! creates the pod's pinned pause netns, allocates an IP from the node's pod CIDRs, attaches a
//! veth (bridge or routed mode) and tears all of it down again. See `README.md` and
//! `docs/threading.md` for the namespace and threading contract: the library never changes the
//! calling thread's namespaces and never forks or execs.

mod base;
pub mod blocking;
mod config;
mod error;
mod node;

// Components: one folder each, implemented on `Node`'s owned parts.
mod peers;
mod pods;
mod ports;
mod services;

// Private infrastructure: no component or caller reaches below these.
mod ipam;
mod kernel;
mod store;

/// Kernel plumbing for podnet's own tools, benchmarks and tests (feature `internals`): not part of
/// the supported API and free to change in any release.
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod internals {
    pub mod ethtool {
        //! SIOCETHTOOL offload switches.
        pub use crate::kernel::ethtool::*;
    }
    pub mod ipam {
        //! The node's address pools.
        pub use crate::ipam::*;
    }
    pub mod netlink {
        //! rtnetlink requests.
        pub use crate::kernel::netlink::*;
    }
    pub mod netns {
        //! Network namespace switching and pins.
        pub use crate::kernel::netns::*;
    }
    pub mod nft {
        //! nf_tables over netlink.
        pub use crate::kernel::nft::*;
    }
    pub use crate::peers::PEER_ROUTE_PROTOCOL;
    pub use crate::pods::{link_group, pod_netns_setup};
    pub use crate::store::{counts as state_counts, Counts as StateCounts, Store};
}

pub use base::{ROUTED_GW_V4, ROUTED_GW_V6};
pub use config::{
    parse_mac, validate_ifname, validate_mac, validate_name, vtep_mac, CrossNodeMode, NetnsSpec, NodeConfig, Peer,
    PodMode, PortMapping, Protocol, SandboxSpec, Underlay, VxlanConfig, MAX_ID_LEN, MAX_IFNAME_LEN, MAX_LABELS,
    MAX_LABEL_KEY_LEN, MAX_LABEL_VALUE_LEN,
};
pub use error::{Error, ErrorKind, Result};
pub use ipam::PoolConfig;
pub use node::Node;
pub use peers::{Path as PeerPath, SyncReport};
pub use pods::{CheckReport, FailPoint, GcReport};
pub use ports::{PortEntry, RepairReport};
pub use services::{Affinity, Endpoint, Service, ServicePort, TrafficPolicy, MAX_AFFINITY_SECS, MAX_SERVICE_NAME_LEN};
pub use store::Sandbox;
