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

    /// See [`crate::Node::create_sandbox`].
    pub fn create_sandbox(&self, spec: &SandboxSpec) -> Result<Sandbox> {
        self.rt.block_on(self.inner.create_sandbox(spec))
    }

    /// See [`crate::Node::delete_sandbox`].
    pub fn delete_sandbox(&self, id: &str) -> Result<()> {
        self.rt.block_on(self.inner.delete_sandbox(id))
    }

    /// See [`crate::Node::get_sandbox`].
    pub fn get_sandbox(&self, id: &str) -> Result<Sandbox> {
        self.rt.block_on(self.inner.get_sandbox(id))
    }

    /// See [`crate::Node::list_sandboxes`].
    pub fn list_sandboxes(&self) -> Result<Vec<Sandbox>> {
        self.rt.block_on(self.inner.list_sandboxes())
    }

    /// See [`crate::Node::check_sandbox`].
    pub fn check_sandbox(&self, id: &str) -> Result<CheckReport> {
        self.rt.block_on(self.inner.check_sandbox(id))
    }

    /// See [`crate::Node::gc`].
    pub fn gc(&self, live: &[&str]) -> Result<GcReport> {
        self.rt.block_on(self.inner.gc(live))
    }

    /// See [`crate::Node::gc_orphans`].
    pub fn gc_orphans(&self) -> Result<GcReport> {
        self.rt.block_on(self.inner.gc_orphans())
    }

    /// See [`crate::Node::add_peer`].
    pub fn add_peer(&self, peer: &Peer) -> Result<()> {
        self.rt.block_on(self.inner.add_peer(peer))
    }

    /// See [`crate::Node::remove_peer`].
    pub fn remove_peer(&self, name: &str) -> Result<()> {
        self.rt.block_on(self.inner.remove_peer(name))
    }

    /// See [`crate::Node::sync_peers`].
    pub fn sync_peers(&self, peers: &[Peer]) -> Result<SyncReport> {
        self.rt.block_on(self.inner.sync_peers(peers))
    }

    /// See [`crate::Node::list_peers`].
    pub fn list_peers(&self) -> Result<Vec<Peer>> {
        self.rt.block_on(self.inner.list_peers())
    }

    /// See [`crate::Node::add_ports`].
    pub fn add_ports(&self, id: &str, ports: &[PortMapping]) -> Result<Sandbox> {
        self.rt.block_on(self.inner.add_ports(id, ports))
    }

    /// See [`crate::Node::remove_ports`].
    pub fn remove_ports(&self, id: &str, ports: &[PortMapping]) -> Result<Sandbox> {
        self.rt.block_on(self.inner.remove_ports(id, ports))
    }

    /// See [`crate::Node::list_ports`].
    pub fn list_ports(&self) -> Result<Vec<PortEntry>> {
        self.rt.block_on(self.inner.list_ports())
    }

    /// See [`crate::Node::repair`].
    pub fn repair(&self) -> Result<RepairReport> {
        self.rt.block_on(self.inner.repair())
    }

    /// See [`crate::Node::set_service`].
    pub fn set_service(&self, svc: &Service) -> Result<()> {
        self.rt.block_on(self.inner.set_service(svc))
    }

    /// See [`crate::Node::remove_service`].
    pub fn remove_service(&self, name: &str) -> Result<()> {
        self.rt.block_on(self.inner.remove_service(name))
    }

    /// See [`crate::Node::sync_services`].
    pub fn sync_services(&self, svcs: &[Service]) -> Result<()> {
        self.rt.block_on(self.inner.sync_services(svcs))
    }

    /// See [`crate::Node::list_services`].
    pub fn list_services(&self) -> Result<Vec<Service>> {
        self.rt.block_on(self.inner.list_services())
    }

    /// See [`crate::Node::repair_services`].
    pub fn repair_services(&self) -> Result<bool> {
        self.rt.block_on(self.inner.repair_services())
    }
}
