//! Blocking facade over the async [`crate::Node`], for sync Rust callers and the C ABI.
//!
//! The node owns a small multi-thread tokio runtime. Calls from many caller threads run
//! concurrently: each blocks its own thread on `Runtime::block_on` while the runtime's workers
//! drive the netlink connection. Do not call these from inside an async context.

use std::sync::Arc;

use crate::config::{NodeConfig, SandboxSpec};
use crate::sandbox::{CheckReport, GcReport};
use crate::state::Sandbox;
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
}
