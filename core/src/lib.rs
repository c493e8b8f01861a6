//! podnet: Kubernetes pod networking as a library.
//!
//! A [`Node`] is bound to one network namespace (a Kubernetes node). With one call per pod it
//! creates the pod's pinned pause netns, allocates an IP from the node's pod CIDRs, attaches a
//! veth (bridge or routed mode) and tears all of it down again. See `README.md` and
//! `docs/threading.md` for the namespace and threading contract: the library never changes the
//! calling thread's namespaces and never forks or execs.

pub mod blocking;
pub mod config;
pub mod error;
pub mod ethtool;
pub mod ipam;
pub mod netlink;
pub mod netns;
pub mod nft;
pub mod node;
pub mod peers;
pub mod ports;
pub mod sandbox;
pub mod state;

pub use config::{
    CrossNodeMode, NetnsSpec, NodeConfig, PodMode, PortMapping, Protocol, SandboxSpec, Underlay, VxlanConfig,
};
pub use error::{Error, ErrorKind, Result};
pub use node::{FailPoint, Node};
pub use peers::{Peer, SyncReport};
pub use ports::{PortEntry, RepairReport};
pub use sandbox::{CheckReport, GcReport};
pub use state::Sandbox;
