//! Sandbox records: one JSON file per sandbox under `<state_dir>/sandboxes/`, written
//! atomically (temp + rename). The record is what `delete`, `check`, `list` and `gc` trust.

use std::fs;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnetwork::IpNetwork;

use crate::config::{PodMode, PortMapping};
use crate::{Error, ErrorKind, Result};

/// A sandbox as created: what the runtime gets back, and what podnet records.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Sandbox {
    /// Sandbox id.
    pub id: String,
    /// Interface name in the pod.
    pub ifname: String,
    /// Path of the pod's netns.
    pub netns_path: PathBuf,
    /// True when podnet created the netns (and removes it on delete).
    pub owns_netns: bool,
    /// Host end of the veth.
    pub host_ifname: String,
    /// MAC of the pod interface.
    pub mac: String,
    /// Pod addresses with the prefix length configured on the interface.
    pub ips: Vec<IpNetwork>,
    /// Default gateways, one per family.
    pub gateways: Vec<IpAddr>,
    /// How the pod is attached.
    pub mode: PodMode,
    /// Host ports mapped to this pod.
    pub ports: Vec<PortMapping>,
    /// Metadata given at create ([`crate::SandboxSpec::labels`]).
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
}

impl Sandbox {
    /// The pod's IPv4 address, if any.
    pub fn ipv4(&self) -> Option<IpAddr> {
        self.ips.iter().find(|n| n.is_ipv4()).map(|n| n.ip())
    }

    /// The pod's IPv6 address, if any.
    pub fn ipv6(&self) -> Option<IpAddr> {
        self.ips.iter().find(|n| n.is_ipv6()).map(|n| n.ip())
    }
}

/// The record store of one node.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
}

fn io_error(op: String, e: io::Error) -> Error {
    match e.raw_os_error() {
        Some(n) => Error::with_errno(ErrorKind::Io, op, n, e),
        None => Error::new(ErrorKind::Io, op, e),
    }
}

impl Store {
    /// Open (creating) the store under `state_dir`.
    pub fn open(state_dir: &Path) -> Result<Store> {
        let dir = state_dir.join("sandboxes");
        fs::create_dir_all(&dir).map_err(|e| io_error(format!("create state dir {}", dir.display()), e))?;
        Ok(Store { dir })
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// Load a record; `Ok(None)` when there is none.
    pub fn load(&self, id: &str) -> Result<Option<Sandbox>> {
        let p = self.path(id);
        match fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| Error::new(ErrorKind::Io, format!("parse record {}", p.display()), e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(format!("read record {}", p.display()), e)),
        }
    }

    /// Write a record atomically. Host ports are not part of it: each mapping has its own file
    /// (see `ports.rs`), so adding one is O(1) however many a sandbox has.
    pub fn save(&self, sb: &Sandbox) -> Result<()> {
        let p = self.path(&sb.id);
        let data = if sb.ports.is_empty() {
            serde_json::to_vec_pretty(sb)
        } else {
            serde_json::to_vec_pretty(&Sandbox { ports: vec![], ..sb.clone() })
        }
        .map_err(|e| Error::new(ErrorKind::Internal, "encode record", e))?;
        crate::ipam::write_atomic(&p, &data).map_err(|e| io_error(format!("write record {}", p.display()), e))
    }

    /// Remove a record; already gone is success.
    pub fn remove(&self, id: &str) -> Result<()> {
        let p = self.path(id);
        match fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error(format!("remove record {}", p.display()), e)),
        }
    }

    /// All records, sorted by id. Unreadable records are skipped (and reported by `check`).
    pub fn list(&self) -> Result<Vec<Sandbox>> {
        let rd = fs::read_dir(&self.dir).map_err(|e| io_error(format!("list {}", self.dir.display()), e))?;
        let mut out = vec![];
        for e in rd.flatten() {
            let name = e.file_name();
            let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".json")) else { continue };
            if let Ok(Some(sb)) = self.load(id) {
                out.push(sb);
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }
}
