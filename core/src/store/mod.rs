//! The node's state under `<state_dir>`, and the one module that writes there (besides the
//! address pools' reservations, `ipam/`): the node config (`node.json`), one JSON record per
//! sandbox (`sandboxes/`), one file per host-port mapping (`ports/`, so a change is O(1) however
//! many a sandbox has) and one per peer (`peers/`). Every file is written atomically (temp +
//! rename). The records are what `delete`, `check`, `list` and `gc` trust.

use std::fs;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnetwork::IpNetwork;

use crate::config::{NodeConfig, Peer, PodMode, PortMapping};
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

/// The state store of one node.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
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
        for d in [dir.clone(), state_dir.join("ports"), state_dir.join("peers")] {
            fs::create_dir_all(&d).map_err(|e| io_error(format!("create state dir {}", d.display()), e))?;
        }
        Ok(Store { root: state_dir.to_path_buf(), dir })
    }

    /// Record the config the node was opened with, so operator tools (`podnet ... --node N`)
    /// can reopen it by name.
    pub fn save_config(&self, cfg: &NodeConfig) -> Result<()> {
        let p = self.root.join("node.json");
        let data =
            serde_json::to_vec_pretty(cfg).map_err(|e| Error::new(ErrorKind::Internal, "encode node config", e))?;
        write_atomic(&p, &data).map_err(|e| io_error(format!("save {}", p.display()), e))
    }

    /// File of one host-port mapping: `<id>@<proto>-<port>-<host ip or any>` ('@' is outside
    /// the id alphabet; ':' of IPv6 host IPs is fine in a file name).
    fn port_path(&self, id: &str, m: &PortMapping) -> PathBuf {
        let hip = m.host_ip.map_or_else(|| "any".to_string(), |h| h.to_string());
        self.root.join("ports").join(format!("{id}@{}-{}-{hip}", m.protocol, m.host_port))
    }

    /// Keep one host-port mapping of sandbox `id`.
    pub fn save_port(&self, id: &str, m: &PortMapping) -> Result<()> {
        let p = self.port_path(id, m);
        let data = serde_json::to_vec(m).map_err(|e| Error::new(ErrorKind::Internal, "encode port mapping", e))?;
        write_atomic(&p, &data).map_err(|e| io_error(format!("write {}", p.display()), e))
    }

    /// Forget one host-port mapping; already gone is success.
    pub fn remove_port(&self, id: &str, m: &PortMapping) -> Result<()> {
        remove_file(&self.port_path(id, m))
    }

    /// Every recorded host-port mapping with its sandbox id (in no particular order).
    pub fn port_mappings(&self) -> Result<Vec<(String, PortMapping)>> {
        let mut out = vec![];
        for (name, path) in entries(&self.root.join("ports"))? {
            let Some((id, _)) = name.split_once('@') else { continue };
            let b = fs::read(&path).map_err(|e| io_error(format!("read {}", path.display()), e))?;
            let m = serde_json::from_slice(&b)
                .map_err(|e| Error::new(ErrorKind::Inconsistent, format!("parse {}", path.display()), e))?;
            out.push((id.to_string(), m));
        }
        Ok(out)
    }

    fn peer_path(&self, name: &str) -> PathBuf {
        self.root.join("peers").join(format!("{name}.json"))
    }

    /// One peer's record.
    pub fn peer(&self, name: &str) -> Result<Option<Peer>> {
        let p = self.peer_path(name);
        match fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| Error::new(ErrorKind::Inconsistent, format!("parse {}", p.display()), e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(format!("read {}", p.display()), e)),
        }
    }

    /// Every peer record, sorted by name.
    pub fn peers(&self) -> Result<Vec<Peer>> {
        let mut out = vec![];
        for (name, _) in entries(&self.root.join("peers"))? {
            if let Some(n) = name.strip_suffix(".json") {
                out.extend(self.peer(n)?);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Keep a peer's record.
    pub fn save_peer(&self, p: &Peer) -> Result<()> {
        let data = serde_json::to_vec(p).map_err(|e| Error::new(ErrorKind::Internal, "encode peer", e))?;
        let path = self.peer_path(&p.name);
        write_atomic(&path, &data).map_err(|e| io_error(format!("save peer {}", p.name), e))
    }

    /// Forget a peer; already gone is success.
    pub fn remove_peer(&self, name: &str) -> Result<()> {
        remove_file(&self.peer_path(name))
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
                .map_err(|e| Error::new(ErrorKind::Inconsistent, format!("parse record {}", p.display()), e)),
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
        write_atomic(&p, &data).map_err(|e| io_error(format!("write record {}", p.display()), e))
    }

    /// Remove a record; already gone is success.
    pub fn remove(&self, id: &str) -> Result<()> {
        remove_file(&self.path(id))
    }

    /// All records, sorted by id. An unreadable record fails the whole list, naming the file.
    pub fn list(&self) -> Result<Vec<Sandbox>> {
        let rd = fs::read_dir(&self.dir).map_err(|e| io_error(format!("list {}", self.dir.display()), e))?;
        let mut out = vec![];
        for e in rd.flatten() {
            let name = e.file_name();
            let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".json")) else { continue };
            // A damaged record is an error naming the file, never an absent sandbox: gc would
            // otherwise take the live pod for an orphan and tear it down.
            out.extend(self.load(id)?);
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }
}

/// Remove a file; already gone is success.
fn remove_file(p: &Path) -> Result<()> {
    match fs::remove_file(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error(format!("remove {}", p.display()), e)),
    }
}

/// The entries of a state dir, without the temp files of writes in progress (or killed).
fn entries(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let rd = fs::read_dir(dir).map_err(|e| io_error(format!("list {}", dir.display()), e))?;
    let mut out = vec![];
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if !name.contains(TMP_MARK) {
            out.push((name, e.path()));
        }
    }
    Ok(out)
}

/// Marks the temp file of an atomic write in its name.
const TMP_MARK: &str = ".tmp.";

/// Write a file atomically: temp file in the same dir, then rename over the target.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension(
        format!("{}{}.{:?}", &TMP_MARK[1..], std::process::id(), std::thread::current().id()).replace(['(', ')'], ""),
    );
    fs::write(&tmp, data)?;
    fs::rename(&tmp, path).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}
