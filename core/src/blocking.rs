//! Blocking facade over the async [`crate::Node`], for sync Rust callers and the C ABI.
//!
//! The node owns a small multi-thread tokio runtime. Calls from many caller threads run
//! concurrently: each blocks its own thread on `Runtime::block_on` while the runtime's workers
//! drive the netlink connection. Do not call these from inside an async context.

use std::sync::Arc;

use crate::config::Peer;
use crate::config::{NodeConfig, PortMapping, SandboxSpec};
use crate::peers::SyncReport;
use crate::pods::{CheckReport, GcReport};
use crate::ports::{PortEntry, RepairReport};
use crate::services::Service;
use crate::store::Sandbox;
use crate::{Error, ErrorKind, Result};

/// A node with blocking methods. `Send + Sync`: share it across threads freely.
#[derive(Debug)]
pub struct Node {
    inner: Arc<crate::Node>,
    rt: tokio::runtime::Runtime,
}

impl Node {
    /// Open and initialize a node (see [`crate::Node::open`]).
    pub fn open(cfg: NodeConfig) -> Result<Node> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("podnet-rt")
            .enable_all()
            .build()
            .map_err(|e| Error::new(ErrorKind::Io, "start podnet runtime", e))?;
        let inner = rt.block_on(crate::Node::open(cfg))?;
        Ok(Node { inner: Arc::new(inner), rt })
    }

    /// The async node, for callers that mix both styles.
    pub fn inner(&self) -> &Arc<crate::Node> {
        &self.inner
    }

    /// Run any future of the node on its runtime.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }
}

/// `blocking! { name(arg: Type, ...) -> Output; ... }`: for each async [`crate::Node`] method, the
/// method of the same name and arguments that blocks the caller's thread on the node's runtime.
macro_rules! blocking {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $out:ty;)+) => {
        impl Node {
            $(
                #[doc = concat!("See [`crate::Node::", stringify!($name), "`].")]
                pub fn $name(&self, $($arg: $ty),*) -> Result<$out> {
                    self.rt.block_on(self.inner.$name($($arg),*))
                }
            )+
        }
    };
}

blocking! {
    create_sandbox(spec: &SandboxSpec) -> Sandbox;
    delete_sandbox(id: &str) -> ();
    get_sandbox(id: &str) -> Sandbox;
    list_sandboxes() -> Vec<Sandbox>;
    check_sandbox(id: &str) -> CheckReport;
    gc(live: &[&str]) -> GcReport;
    gc_orphans() -> GcReport;
    add_peer(peer: &Peer) -> ();
    remove_peer(name: &str) -> ();
    sync_peers(peers: &[Peer]) -> SyncReport;
    list_peers() -> Vec<Peer>;
    add_ports(id: &str, ports: &[PortMapping]) -> Sandbox;
    remove_ports(id: &str, ports: &[PortMapping]) -> Sandbox;
    list_ports() -> Vec<PortEntry>;
    repair() -> RepairReport;
    set_service(svc: &Service) -> ();
    remove_service(name: &str) -> ();
    sync_services(svcs: &[Service]) -> ();
    list_services() -> Vec<Service>;
    repair_services() -> bool;
}
