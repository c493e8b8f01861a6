//! The node's state, and the one module that writes under `<state_dir>`: an SQLite database
//! (`state.db`: sandboxes with their host ports, address reservations, peers), the node config
//! for operator tools (`node.json`), and one owner file per open node (`owners/`).
//!
//! Every multi-step change is recoverable from one durable intent: a sandbox row is written in
//! the `creating` (or `deleting`) phase, together with its addresses and host ports, in one
//! transaction before the first kernel step, and carries its owner. An owner is alive while the
//! process that opened the node holds the `flock` on its owner file, which the kernel drops when
//! the process dies however it dies; so the next call for that id, `gc` or `open` finishes (tears
//! down) exactly the intents whose owner is dead, and never touches one whose owner is alive.
//!
//! An address is reserved from before any kernel object uses it until after no kernel object can
//! carry it: a deleted sandbox's addresses stay reserved ("draining", bound to its host veth)
//! until that veth is verified gone or deleted, see `Pods::reap`.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use ipnetwork::IpNetwork;
use rusqlite::types::FromSql;
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

use crate::config::{NodeConfig, Peer, PodMode, PortMapping};
use crate::ipam::{IpamError, Key, Pool};
use crate::{Error, ErrorKind, Result};

/// Bumped when the schema changes; an unknown version is refused, never guessed at.
const SCHEMA_VERSION: i64 = 1;

/// The `meta` key of the time host ports were last removed ([`Store::ports_removed_ms`]).
const PORTS_REMOVED: &str = "ports_removed_ms";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sandboxes (
    id     TEXT PRIMARY KEY,
    phase  TEXT NOT NULL CHECK (phase IN ('creating', 'ready', 'deleting')),
    owner  TEXT,
    seq    INTEGER NOT NULL,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS addresses (
    pool    TEXT NOT NULL,
    ip      TEXT NOT NULL,
    sandbox TEXT,
    ifname  TEXT,
    drain_link  TEXT,
    drain_since INTEGER,
    PRIMARY KEY (pool, ip)
);
CREATE INDEX IF NOT EXISTS addresses_by_holder ON addresses (sandbox, ifname);
CREATE INDEX IF NOT EXISTS addresses_by_drain ON addresses (drain_link);
CREATE TABLE IF NOT EXISTS cursors (pool TEXT PRIMARY KEY, last TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ports (
    sandbox   TEXT NOT NULL,
    protocol  TEXT NOT NULL,
    host_port INTEGER NOT NULL,
    host_ip   TEXT NOT NULL,
    mapping   TEXT NOT NULL,
    PRIMARY KEY (sandbox, protocol, host_port, host_ip)
);
CREATE INDEX IF NOT EXISTS ports_by_port ON ports (protocol, host_port);
CREATE TABLE IF NOT EXISTS peers (name TEXT PRIMARY KEY, peer TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS gates (owner TEXT PRIMARY KEY, reason TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS services (name TEXT PRIMARY KEY, spec TEXT NOT NULL);
";

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
    pub labels: BTreeMap<String, String>,
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

/// Where a sandbox is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Reserved, kernel objects being made (or left half-made by a dead owner).
    Creating,
    /// Fully created.
    Ready,
    /// Being torn down.
    Deleting,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::Creating => "creating",
            Phase::Ready => "ready",
            Phase::Deleting => "deleting",
        }
    }
}

/// A sandbox row: the record, its phase and who is working on it.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) sandbox: Sandbox,
    pub(crate) phase: Phase,
    /// The owner token of the process working on it (None: nobody, or a failed rollback).
    pub(crate) owner: Option<String>,
    /// Creation order, to tell rows created after a point in time.
    pub(crate) seq: i64,
}

/// An address still reserved for a deleted sandbox until its host veth is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Draining {
    pub(crate) link: String,
    /// Milliseconds since the epoch when the sandbox was deleted.
    pub(crate) since_ms: i64,
}

/// Row counts, for podnet's tests and tools.
#[cfg(feature = "internals")]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Sandbox rows, any phase.
    pub sandboxes: usize,
    /// Reserved addresses held by a sandbox.
    pub addresses: usize,
    /// Reserved addresses of deleted sandboxes whose veth may still exist.
    pub draining: usize,
    /// Host-port mappings.
    pub ports: usize,
}

/// The state store of one node.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    db_path: PathBuf,
    db: Mutex<Connection>,
    owner: Owner,
}

/// This open node's identity in intent rows: a file under `owners/` it holds an exclusive
/// `flock` on while it lives.
#[derive(Debug)]
struct Owner {
    token: String,
    path: PathBuf,
    _file: File,
}

impl Drop for Owner {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

fn io_error(op: String, e: io::Error) -> Error {
    match e.raw_os_error() {
        Some(n) => Error::with_errno(ErrorKind::from_errno(n).or_io(), op, n, e),
        None => Error::new(ErrorKind::Io, op, e),
    }
}

trait OrIo {
    fn or_io(self) -> ErrorKind;
}

impl OrIo for ErrorKind {
    /// A file error is never the kernel's netlink refusing something.
    fn or_io(self) -> ErrorKind {
        if self == ErrorKind::Kernel {
            ErrorKind::Io
        } else {
            self
        }
    }
}

/// One value of the `meta` table.
fn meta_get(c: &Connection, key: &str) -> rusqlite::Result<Option<String>> {
    c.prepare_cached("SELECT value FROM meta WHERE key = ?1")
        .and_then(|mut st| st.query_row([key], |r| r.get(0)).optional())
}

/// Every row `sql` returns for `params`, each read by `row`.
fn query_all<T>(
    c: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    row: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Vec<T>> {
    let mut st = c.prepare_cached(sql)?;
    let rows = st.query_map(params, row)?.collect();
    rows
}

/// A row's first two columns.
fn pair<A: FromSql, B: FromSql>(r: &Row<'_>) -> rusqlite::Result<(A, B)> {
    Ok((r.get(0)?, r.get(1)?))
}

/// A JSON record read back from the database (`what` names it); a damaged one is an error.
fn decode_json<T: serde::de::DeserializeOwned>(what: impl std::fmt::Display, json: &str) -> Result<T> {
    serde_json::from_str(json)
        .map_err(|e| Error::new(ErrorKind::Inconsistent, format!("read {what}"), format!("damaged: {e}")))
}

/// Write one value of the `meta` table.
fn meta_put(c: &Connection, key: &str, value: &str) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )
    .and_then(|mut st| st.execute([key, value]))
    .map(drop)
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn flock(f: &File, op: i32) -> io::Result<()> {
    // SAFETY: flock(2) on a file descriptor this `File` owns for the duration of the call.
    if unsafe { libc::flock(f.as_raw_fd(), op) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn host_ip_key(m: &PortMapping) -> String {
    m.host_ip.map_or_else(|| "any".to_string(), |h| h.to_string())
}

impl Store {
    /// Open (creating) the store under `state_dir` for a node with `pools`. Refuses a state dir
    /// of the earlier file format, a database it cannot read (naming the file, which it leaves
    /// in place), and pools that no longer cover addresses still reserved.
    pub fn open(state_dir: &Path, pools: &[Pool]) -> Result<Store> {
        let store = Store::open_unchecked(state_dir)?;
        store.check_pools(pools)?;
        Ok(store)
    }

    fn open_unchecked(state_dir: &Path) -> Result<Store> {
        let db_path = state_dir.join("state.db");
        if !db_path.exists() {
            for old in ["sandboxes", "ipam", "ports", "peers"] {
                if state_dir.join(old).is_dir() {
                    return Err(Error::new(
                        ErrorKind::Conflict,
                        format!("open state dir {}", state_dir.display()),
                        format!(
                            "it holds state of podnet's earlier file format ({old}/); this version keeps node \
                             state in {}. Delete the node's sandboxes with the podnet that made them, or reboot \
                             (the state dir is on tmpfs), then remove {}",
                            db_path.display(),
                            state_dir.display()
                        ),
                    ));
                }
            }
        }
        let owners = state_dir.join("owners");
        fs::create_dir_all(&owners).map_err(|e| io_error(format!("create state dir {}", owners.display()), e))?;
        let fail = |e: rusqlite::Error| {
            let damaged = matches!(
                e.sqlite_error_code(),
                Some(rusqlite::ErrorCode::NotADatabase) | Some(rusqlite::ErrorCode::DatabaseCorrupt)
            );
            let (kind, note) = if damaged {
                (ErrorKind::Inconsistent, " (the file is left in place for inspection; nothing was changed)")
            } else {
                (ErrorKind::Io, "")
            };
            Error::new(kind, format!("open state database {}", db_path.display()), format!("{e}{note}"))
        };
        let conn = Connection::open(&db_path).map_err(fail)?;
        conn.busy_timeout(std::time::Duration::from_secs(30)).map_err(fail)?;
        // Switching a new database to WAL and creating the schema take locks the busy handler
        // does not always wait for (SQLite returns BUSY at once where waiting could deadlock):
        // several processes opening a new node at once retry here.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let mut wait = std::time::Duration::from_millis(1);
        let version = loop {
            match Self::init(&conn) {
                Ok(v) => break v,
                Err(e)
                    if matches!(
                        e.sqlite_error_code(),
                        Some(rusqlite::ErrorCode::DatabaseBusy) | Some(rusqlite::ErrorCode::DatabaseLocked)
                    ) && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(std::time::Duration::from_millis(50));
                }
                Err(e) => return Err(fail(e)),
            }
        };
        if version != SCHEMA_VERSION.to_string() {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!("open state database {}", db_path.display()),
                format!("schema version {version} is not this podnet's ({SCHEMA_VERSION})"),
            ));
        }
        let owner = Owner::new(&owners)?;
        Ok(Store { root: state_dir.to_path_buf(), db_path, db: Mutex::new(conn), owner })
    }

    /// WAL mode, the schema, and the schema version (written when new).
    fn init(conn: &Connection) -> rusqlite::Result<String> {
        // NORMAL is durable across a process kill (the database lives on tmpfs, so a power cut
        // takes the kernel objects with it anyway); a per-connection setting.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // A database whose schema is this text already needs no DDL: parsing it is most of an
        // open's CPU, which a process per call (the CNI plugin) pays every time.
        let digest = format!("{:016x}", crate::config::fnv1a(SCHEMA.as_bytes()));
        // (No meta table yet, a new database, reads as no digest.)
        let current = meta_get(conn, "schema_digest").unwrap_or(None);
        if current.as_deref() == Some(digest.as_str()) {
            return conn.query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| r.get(0));
        }
        // WAL: readers never wait for the writer (a property of the file: set once).
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            conn.pragma_update(None, "journal_mode", "WAL")?;
        }
        conn.execute_batch(SCHEMA)?;
        conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', ?1), ('seq', '0'), ('services_seq', '0')",
            [SCHEMA_VERSION.to_string()],
        )?;
        let version: String = conn.query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| r.get(0))?;
        if version == SCHEMA_VERSION.to_string() {
            meta_put(conn, "schema_digest", &digest)?;
        }
        Ok(version)
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn db_err(&self, op: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> Error + '_ {
        let op = op.into();
        move |e| {
            let kind = match e.sqlite_error_code() {
                Some(rusqlite::ErrorCode::NotADatabase) | Some(rusqlite::ErrorCode::DatabaseCorrupt) => {
                    ErrorKind::Inconsistent
                }
                Some(rusqlite::ErrorCode::DatabaseBusy) | Some(rusqlite::ErrorCode::DatabaseLocked) => {
                    ErrorKind::Conflict
                }
                _ => ErrorKind::Io,
            };
            Error::new(kind, op, format!("{e} (state database {})", self.db_path.display()))
        }
    }

    /// This node's owner token.
    pub(crate) fn me(&self) -> &str {
        &self.owner.token
    }

    /// Refuse pools that drop addresses still reserved: deleting those sandboxes later could
    /// not release them.
    fn check_pools(&self, pools: &[Pool]) -> Result<()> {
        let rows: Vec<(String, i64)> =
            query_all(&self.conn(), "SELECT pool, COUNT(*) FROM addresses GROUP BY pool", [], pair)
                .map_err(self.db_err("read pools"))?;
        for (pool, n) in rows {
            if !pools.iter().any(|p| p.cidr().to_string() == pool) {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    "open node",
                    format!(
                        "{n} address(es) of pod CIDR {pool} are still reserved, and the new configuration no \
                         longer has that CIDR: delete those sandboxes first (with the old configuration)"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Is the owner behind `token` alive (its process still holds its owner file)?
    pub(crate) fn owner_alive(&self, token: &str) -> bool {
        if token == self.owner.token {
            return true;
        }
        if token.contains('/') || token.is_empty() {
            return false;
        }
        let path = self.root.join("owners").join(token);
        let Ok(f) = File::open(&path) else { return false };
        match flock(&f, libc::LOCK_SH | libc::LOCK_NB) {
            Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => true,
            Err(_) => true, // cannot tell: never take over a live owner's work
            Ok(()) => {
                // Nobody holds it: that process is gone. Its file is litter now.
                let _ = fs::remove_file(&path);
                false
            }
        }
    }

    // --- sandboxes

    fn decode(&self, id: &str, json: &str) -> Result<Sandbox> {
        serde_json::from_str(json).map_err(|e| {
            Error::new(
                ErrorKind::Inconsistent,
                format!("read sandbox {id}"),
                format!("its record in {} is damaged: {e}; it is kept as it is", self.db_path.display()),
            )
        })
    }

    fn phase(s: &str) -> Phase {
        match s {
            "ready" => Phase::Ready,
            "deleting" => Phase::Deleting,
            _ => Phase::Creating,
        }
    }

    fn ports_of(&self, c: &Connection, id: &str) -> Result<Vec<PortMapping>> {
        let rows: Vec<String> =
            query_all(c, "SELECT mapping FROM ports WHERE sandbox = ?1 ORDER BY rowid", [id], |r| r.get(0))
                .map_err(self.db_err("read ports"))?;
        rows.iter().map(|j| decode_json(format_args!("host ports of {id}"), j)).collect()
    }

    /// One sandbox row with its ports.
    pub(crate) fn entry(&self, id: &str) -> Result<Option<Entry>> {
        let c = self.conn();
        let row: Option<(String, Option<String>, i64, String)> = c
            .prepare_cached("SELECT phase, owner, seq, record FROM sandboxes WHERE id = ?1")
            .and_then(|mut st| st.query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))).optional())
            .map_err(self.db_err(format!("read sandbox {id}")))?;
        let Some((phase, owner, seq, record)) = row else { return Ok(None) };
        let mut sandbox = self.decode(id, &record)?;
        sandbox.ports = self.ports_of(&c, id)?;
        Ok(Some(Entry { sandbox, phase: Self::phase(&phase), owner, seq }))
    }

    /// Every sandbox row, sorted by id. A damaged record fails the whole list, naming it: gc
    /// would otherwise take the live pod for an orphan and tear it down.
    pub(crate) fn entries(&self) -> Result<Vec<Entry>> {
        self.entries_in(&self.conn())
    }

    /// Run `f` on every row read under the node's write lock (an IMMEDIATE transaction that
    /// changes nothing), held until `f` returns: meanwhile no create can reserve host ports and
    /// no delete can claim its row, in any process. For rebuilding a kernel table from the rows
    /// without losing the change of a create or delete in flight: a create's rows are read
    /// (its later programming re-adds what the rebuild already added), and a delete's claim
    /// either came before (its row says so) or waits.
    pub(crate) fn with_entries_locked<T>(&self, op: &str, f: impl FnOnce(Vec<Entry>) -> Result<T>) -> Result<T> {
        let mut c = self.conn();
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(self.db_err(op))?;
        let out = f(self.entries_in(&tx)?)?;
        tx.commit().map_err(self.db_err(op))?;
        Ok(out)
    }

    fn entries_in(&self, c: &Connection) -> Result<Vec<Entry>> {
        let mut ports: HashMap<String, Vec<PortMapping>> = HashMap::new();
        let rows: Vec<(String, String)> = query_all(c, "SELECT sandbox, mapping FROM ports ORDER BY rowid", [], pair)
            .map_err(self.db_err("read ports"))?;
        for (id, j) in rows {
            let m = decode_json(format_args!("host ports of {id}"), &j)?;
            ports.entry(id).or_default().push(m);
        }
        let rows: Vec<(String, String, Option<String>, i64, String)> =
            query_all(c, "SELECT id, phase, owner, seq, record FROM sandboxes ORDER BY id", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .map_err(self.db_err("list sandboxes"))?;
        let mut out = vec![];
        for (id, phase, owner, seq, record) in rows {
            let mut sandbox = self.decode(&id, &record)?;
            sandbox.ports = ports.remove(&id).unwrap_or_default();
            out.push(Entry { sandbox, phase: Self::phase(&phase), owner, seq });
        }
        Ok(out)
    }

    /// The rows of creates and deletes in flight (or interrupted), without reading the others.
    pub(crate) fn in_flight(&self) -> Result<Vec<Entry>> {
        let ids: Vec<String> =
            query_all(&self.conn(), "SELECT id FROM sandboxes WHERE phase <> 'ready'", [], |r| r.get(0))
                .map_err(self.db_err("list sandboxes in flight"))?;
        let mut out = vec![];
        for id in ids {
            // Read again, apart: a create may have finished in between.
            out.extend(self.entry(&id)?.filter(|e| e.phase != Phase::Ready));
        }
        Ok(out)
    }

    /// The newest sandbox row's sequence number.
    pub(crate) fn seq(&self) -> Result<i64> {
        let c = self.conn();
        c.query_row("SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'seq'", [], |r| r.get(0))
            .map_err(self.db_err("read sequence"))
    }

    /// The durable intent of a create, in one transaction: reserve one address per pool (the
    /// requested one, or round-robin), check and reserve the host ports, and write the row in
    /// phase `creating` owned by this node. `record` turns the reserved addresses into the
    /// sandbox record. Nothing is written when any part is refused.
    pub fn begin_create(
        &self,
        id: &str,
        ifname: &str,
        pools: &[Pool],
        requested: &[IpAddr],
        ports: &[PortMapping],
        record: impl FnOnce(Vec<IpAddr>) -> Result<Sandbox>,
    ) -> Result<Sandbox> {
        let op = format!("reserve addresses for {id}");
        let mut c = self.conn();
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(self.db_err(op.clone()))?;
        let exists: Option<i64> = tx
            .prepare_cached("SELECT 1 FROM sandboxes WHERE id = ?1")
            .and_then(|mut st| st.query_row([id], |r| r.get(0)).optional())
            .map_err(self.db_err(op.clone()))?;
        if exists.is_some() {
            return Err(Error::new(ErrorKind::Conflict, op, "another call created this sandbox meanwhile"));
        }
        let key = Key::new(id, ifname);
        let mut ips = vec![];
        for p in pools {
            let pool = p.cidr().to_string();
            let req = requested.iter().copied().find(|ip| ip.is_ipv4() == p.cidr().is_ipv4());
            let ip = match req {
                Some(ip) => {
                    p.check_assignable(ip).map_err(|e| e.into_error(op.clone()))?;
                    let holder: Option<(Option<String>, Option<String>)> = tx
                        .query_row(
                            "SELECT sandbox, ifname FROM addresses WHERE pool = ?1 AND ip = ?2",
                            params![pool, ip.to_string()],
                            |r| Ok((r.get(0)?, r.get(1)?)),
                        )
                        .optional()
                        .map_err(self.db_err(op.clone()))?;
                    if let Some((sb, ifn)) = holder {
                        let holder = match (sb, ifn) {
                            (Some(s), Some(i)) => Key::new(s, i).to_string(),
                            _ => "a deleted sandbox whose interface is not gone yet".to_string(),
                        };
                        return Err(IpamError::Taken { ip, holder }.into_error(op));
                    }
                    ip
                }
                None => {
                    let cursor: Option<String> = tx
                        .prepare_cached("SELECT last FROM cursors WHERE pool = ?1")
                        .and_then(|mut st| st.query_row([&pool], |r| r.get(0)).optional())
                        .map_err(self.db_err(op.clone()))?;
                    let cursor = cursor.and_then(|s| s.parse().ok());
                    let mut probe = tx
                        .prepare_cached("SELECT 1 FROM addresses WHERE pool = ?1 AND ip = ?2")
                        .map_err(self.db_err(op.clone()))?;
                    let picked = p
                        .pick(cursor, |ip| probe.exists(params![pool, ip.to_string()]).map(|taken| !taken))
                        .map_err(self.db_err(op.clone()))?;
                    drop(probe);
                    let ip = picked.ok_or_else(|| p.exhausted().into_error(op.clone()))?;
                    tx.prepare_cached(
                        "INSERT INTO cursors (pool, last) VALUES (?1, ?2)
                         ON CONFLICT (pool) DO UPDATE SET last = excluded.last",
                    )
                    .and_then(|mut st| st.execute(params![pool, ip.to_string()]))
                    .map_err(self.db_err(op.clone()))?;
                    ip
                }
            };
            tx.prepare_cached("INSERT INTO addresses (pool, ip, sandbox, ifname) VALUES (?1, ?2, ?3, ?4)")
                .and_then(|mut st| st.execute(params![pool, ip.to_string(), id, ifname]))
                .map_err(self.db_err(op.clone()))?;
            ips.push(ip);
        }
        let _ = key;
        Self::insert_ports(&tx, id, ports).map_err(|e| e.context(op.clone()))?;
        let sb = record(ips)?;
        let json = serde_json::to_string(&Sandbox { ports: vec![], ..sb.clone() })
            .map_err(|e| Error::new(ErrorKind::Internal, "encode record", e))?;
        tx.prepare_cached("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'seq'")
            .and_then(|mut st| st.execute([]))
            .map_err(self.db_err(op.clone()))?;
        tx.prepare_cached(
            "INSERT INTO sandboxes (id, phase, owner, seq, record)
             VALUES (?1, 'creating', ?2, (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'seq'), ?3)",
        )
        .and_then(|mut st| st.execute(params![id, self.owner.token, json]))
        .map_err(self.db_err(op.clone()))?;
        tx.commit().map_err(self.db_err(op))?;
        Ok(sb)
    }

    /// Conflict-check and insert host ports inside a transaction. A wildcard host IP conflicts
    /// with every specific one of the same protocol and port, and the other way round.
    fn insert_ports(tx: &rusqlite::Transaction<'_>, id: &str, ports: &[PortMapping]) -> Result<()> {
        let db = |e: rusqlite::Error| Error::new(ErrorKind::Io, "reserve host ports", e);
        for m in ports {
            let holders: Vec<(String, String)> = query_all(
                tx,
                "SELECT sandbox, host_ip FROM ports WHERE protocol = ?1 AND host_port = ?2 AND sandbox <> ?3",
                params![m.protocol.to_string(), m.host_port, id],
                pair,
            )
            .map_err(db)?;
            let mine = host_ip_key(m);
            for (holder, hip) in holders {
                if hip == "any" || mine == "any" || hip == mine {
                    let at = m.host_ip.map(|i| format!("{i}:")).unwrap_or_default();
                    let theirs = if hip == "any" { String::new() } else { format!(" on {hip}") };
                    return Err(Error::new(
                        ErrorKind::Conflict,
                        "reserve host ports",
                        format!(
                            "host port {at}{}/{} is already mapped by sandbox {holder}{theirs}",
                            m.host_port, m.protocol
                        ),
                    ));
                }
            }
            let json = serde_json::to_string(m).map_err(|e| Error::new(ErrorKind::Internal, "encode port", e))?;
            tx.execute(
                "INSERT OR IGNORE INTO ports (sandbox, protocol, host_port, host_ip, mapping) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, m.protocol.to_string(), m.host_port, mine, json],
            )
            .map_err(db)?;
        }
        Ok(())
    }

    /// The create finished: the row becomes `ready` with its final record.
    pub(crate) fn mark_ready(&self, sb: &Sandbox) -> Result<()> {
        let json = serde_json::to_string(&Sandbox { ports: vec![], ..sb.clone() })
            .map_err(|e| Error::new(ErrorKind::Internal, "encode record", e))?;
        let c = self.conn();
        c.prepare_cached(
            "UPDATE sandboxes SET phase = 'ready', owner = NULL, record = ?2 WHERE id = ?1 AND owner = ?3",
        )
        .and_then(|mut st| st.execute(params![sb.id, json, self.owner.token]))
        .map_err(self.db_err(format!("record sandbox {}", sb.id)))?;
        Ok(())
    }

    /// Take the row `e` (as read) over for `phase` (a delete, or the recovery of a dead owner's
    /// intent) if it is still exactly that row: same sequence number (not a later sandbox of the
    /// same id), owner and phase. False when it moved on meanwhile (another process took it, or
    /// the create it was reading finished).
    pub(crate) fn claim(&self, e: &Entry, phase: Phase) -> Result<bool> {
        let id = &e.sandbox.id;
        let c = self.conn();
        let n = c
            .prepare_cached(
                "UPDATE sandboxes SET owner = ?2, phase = ?3
                 WHERE id = ?1 AND seq = ?4 AND owner IS ?5 AND phase = ?6",
            )
            .and_then(|mut st| {
                st.execute(params![id, self.owner.token, phase.as_str(), e.seq, e.owner, e.phase.as_str()])
            })
            .map_err(self.db_err(format!("claim sandbox {id}")))?;
        Ok(n == 1)
    }

    /// Give up a row this node could not finish (a rollback or teardown that failed): the next
    /// call for the id, gc or open finishes it.
    pub(crate) fn disown(&self, id: &str) -> Result<()> {
        let c = self.conn();
        c.execute("UPDATE sandboxes SET owner = NULL WHERE id = ?1 AND owner = ?2", params![id, self.owner.token])
            .map_err(self.db_err(format!("disown sandbox {id}")))?;
        Ok(())
    }

    /// The sandbox's kernel objects are gone or going: forget it. Its addresses stay reserved,
    /// draining, until `link` (its host veth) is verified gone; with `link_gone` (podnet deleted
    /// it itself) they are released at once, with any earlier ones waiting for the same name.
    pub(crate) fn finish_teardown(&self, id: &str, link: &str, link_gone: bool) -> Result<()> {
        let op = format!("forget sandbox {id}");
        let mut c = self.conn();
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(self.db_err(op.clone()))?;
        if link_gone {
            tx.execute(
                "DELETE FROM addresses WHERE sandbox = ?1 OR (sandbox IS NULL AND drain_link = ?2)",
                params![id, link],
            )
        } else {
            tx.execute(
                "UPDATE addresses SET sandbox = NULL, ifname = NULL, drain_link = ?2, drain_since = ?3 WHERE sandbox = ?1",
                params![id, link, now_ms()],
            )
        }
        .map_err(self.db_err(op.clone()))?;
        if tx.execute("DELETE FROM ports WHERE sandbox = ?1", [id]).map_err(self.db_err(op.clone()))? > 0 {
            meta_put(&tx, PORTS_REMOVED, &now_ms().to_string()).map_err(self.db_err(op.clone()))?;
        }
        tx.execute("DELETE FROM sandboxes WHERE id = ?1", [id]).map_err(self.db_err(op.clone()))?;
        tx.commit().map_err(self.db_err(op))
    }

    /// Deleted sandboxes' host veths whose addresses are still reserved.
    pub(crate) fn draining(&self) -> Result<Vec<Draining>> {
        query_all(
            &self.conn(),
            "SELECT drain_link, MIN(drain_since) FROM addresses WHERE sandbox IS NULL GROUP BY drain_link",
            [],
            |r| Ok(Draining { link: r.get::<_, Option<String>>(0)?.unwrap_or_default(), since_ms: r.get(1)? }),
        )
        .map_err(self.db_err("read draining addresses"))
    }

    /// The oldest draining reservation's age in milliseconds, if any (cheap: one index read).
    pub(crate) fn oldest_draining_ms(&self) -> Result<Option<i64>> {
        let c = self.conn();
        let since: Option<i64> = c
            .prepare_cached("SELECT MIN(drain_since) FROM addresses WHERE sandbox IS NULL")
            .and_then(|mut st| st.query_row([], |r| r.get(0)))
            .map_err(self.db_err("read draining addresses"))?;
        Ok(since.map(|s| now_ms() - s))
    }

    /// Release the addresses that waited for `link` to disappear; returns them.
    pub(crate) fn release_draining(&self, link: &str) -> Result<Vec<IpAddr>> {
        let ips: Vec<String> = query_all(
            &self.conn(),
            "DELETE FROM addresses WHERE sandbox IS NULL AND drain_link IS ?1 RETURNING ip",
            [link],
            |r| r.get(0),
        )
        .map_err(self.db_err("release addresses"))?;
        Ok(ips.iter().filter_map(|s| s.parse().ok()).collect())
    }

    /// The address `key` holds in `pool`, if any.
    pub(crate) fn address_of(&self, pool: &Pool, key: &Key) -> Result<Option<IpAddr>> {
        let c = self.conn();
        let ip: Option<String> = c
            .prepare_cached("SELECT ip FROM addresses WHERE pool = ?1 AND sandbox = ?2 AND ifname = ?3")
            .and_then(|mut st| {
                st.query_row(params![pool.cidr().to_string(), key.id, key.ifname], |r| r.get(0)).optional()
            })
            .map_err(self.db_err("read addresses"))?;
        Ok(ip.and_then(|s| s.parse().ok()))
    }

    /// How many rows of each kind there are.
    #[cfg(feature = "internals")]
    pub fn counts(&self) -> Result<Counts> {
        let c = self.conn();
        let q = |sql: &str| -> Result<usize> {
            c.query_row(sql, [], |r| r.get::<_, i64>(0)).map(|n| n as usize).map_err(self.db_err("count state"))
        };
        Ok(Counts {
            sandboxes: q("SELECT COUNT(*) FROM sandboxes")?,
            addresses: q("SELECT COUNT(*) FROM addresses WHERE sandbox IS NOT NULL")?,
            draining: q("SELECT COUNT(*) FROM addresses WHERE sandbox IS NULL")?,
            ports: q("SELECT COUNT(*) FROM ports")?,
        })
    }

    // --- host ports of existing sandboxes

    /// Reserve more host ports for sandbox `id` (conflict-checked against every process).
    pub(crate) fn add_ports(&self, id: &str, ports: &[PortMapping]) -> Result<()> {
        let mut c = self.conn();
        let tx =
            c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(self.db_err("reserve host ports"))?;
        Self::insert_ports(&tx, id, ports)?;
        tx.commit().map_err(self.db_err("reserve host ports"))
    }

    /// Forget host ports of sandbox `id`; unknown ones are ignored.
    pub(crate) fn remove_ports(&self, id: &str, ports: &[PortMapping]) -> Result<()> {
        let c = self.conn();
        let mut removed = 0;
        for m in ports {
            removed += c
                .execute(
                    "DELETE FROM ports WHERE sandbox = ?1 AND protocol = ?2 AND host_port = ?3 AND host_ip = ?4",
                    params![id, m.protocol.to_string(), m.host_port, host_ip_key(m)],
                )
                .map_err(self.db_err("forget host ports"))?;
        }
        if removed > 0 {
            meta_put(&c, PORTS_REMOVED, &now_ms().to_string()).map_err(self.db_err("forget host ports"))?;
        }
        Ok(())
    }

    /// When host ports were last removed on this node (by any process), in ms since the epoch.
    pub(crate) fn ports_removed_ms(&self) -> Result<Option<i64>> {
        let v = meta_get(&self.conn(), PORTS_REMOVED).map_err(self.db_err("read node state"))?;
        Ok(v.and_then(|v| v.parse().ok()))
    }

    // --- small node-wide values

    /// A node-wide value kept with the state (e.g. what the nftables table was built for).
    pub(crate) fn meta(&self, key: &str) -> Result<Option<String>> {
        meta_get(&self.conn(), &format!("x.{key}")).map_err(self.db_err("read node state"))
    }

    /// Keep a node-wide value.
    pub(crate) fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        meta_put(&self.conn(), &format!("x.{key}"), value).map_err(self.db_err("write node state"))
    }

    // --- services

    /// Run `f` in one write transaction over the node's service rows, committed when `f`
    /// succeeds: every process's service change is serialized by it, with its kernel batch
    /// inside, so the services table and the rows move together.
    pub(crate) fn services_txn<T>(&self, f: impl FnOnce(&ServiceRows<'_, '_>) -> Result<T>) -> Result<T> {
        let mut c = self.conn();
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(self.db_err("change services"))?;
        let out = f(&ServiceRows { tx: &tx, store: self })?;
        tx.commit().map_err(self.db_err("record services"))?;
        Ok(out)
    }

    // --- the readiness gate

    /// Close (`Some(reason)`) or open (`None`) this node handle's gate on sandbox creates; it
    /// holds for every process on the node while this handle's process lives.
    pub(crate) fn set_gate(&self, reason: Option<&str>) -> Result<()> {
        let c = self.conn();
        match reason {
            Some(r) => c.execute(
                "INSERT INTO gates (owner, reason) VALUES (?1, ?2)
                 ON CONFLICT (owner) DO UPDATE SET reason = excluded.reason",
                params![self.owner.token, r],
            ),
            None => c.execute("DELETE FROM gates WHERE owner = ?1", [&self.owner.token]),
        }
        .map_err(self.db_err("write the readiness gate"))?;
        Ok(())
    }

    /// Why creates are refused now: the reason of a gate a live handle closed (gates of dead
    /// processes are dropped), or None.
    pub(crate) fn gate(&self) -> Result<Option<String>> {
        let rows: Vec<(String, String)> =
            query_all(&self.conn(), "SELECT owner, reason FROM gates", [], pair).map_err(self.db_err("read gates"))?;
        for (owner, reason) in rows {
            if self.owner_alive(&owner) {
                return Ok(Some(reason));
            }
            let c = self.conn();
            c.execute("DELETE FROM gates WHERE owner = ?1", [&owner]).map_err(self.db_err("drop a dead gate"))?;
        }
        Ok(None)
    }

    // --- peers

    /// One peer's record.
    pub fn peer(&self, name: &str) -> Result<Option<Peer>> {
        let c = self.conn();
        let json: Option<String> = c
            .prepare_cached("SELECT peer FROM peers WHERE name = ?1")
            .and_then(|mut st| st.query_row([name], |r| r.get(0)).optional())
            .map_err(self.db_err(format!("read peer {name}")))?;
        json.map(|j| decode_json(format_args!("peer {name}"), &j)).transpose()
    }

    /// Every peer record, sorted by name.
    pub fn peers(&self) -> Result<Vec<Peer>> {
        let rows: Vec<(String, String)> =
            query_all(&self.conn(), "SELECT name, peer FROM peers ORDER BY name", [], pair)
                .map_err(self.db_err("list peers"))?;
        rows.iter().map(|(n, j)| decode_json(format_args!("peer {n}"), j)).collect()
    }

    /// Keep a peer's record.
    pub fn save_peer(&self, p: &Peer) -> Result<()> {
        let json = serde_json::to_string(p).map_err(|e| Error::new(ErrorKind::Internal, "encode peer", e))?;
        let c = self.conn();
        c.execute(
            "INSERT INTO peers (name, peer) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET peer = excluded.peer",
            params![p.name, json],
        )
        .map_err(self.db_err(format!("save peer {}", p.name)))?;
        Ok(())
    }

    /// Forget a peer; already gone is success.
    pub fn remove_peer(&self, name: &str) -> Result<()> {
        let c = self.conn();
        c.execute("DELETE FROM peers WHERE name = ?1", [name]).map_err(self.db_err(format!("remove peer {name}")))?;
        Ok(())
    }

    // --- node config

    /// Record the config the node was opened with in `node.json`, so operator tools (`podnet
    /// ... --node N`) can reopen it by name ([`NodeConfig::load`]). Written under the database's
    /// write lock, so one fixed temp name serves every process; unchanged content is not
    /// rewritten.
    pub fn save_config(&self, cfg: &NodeConfig) -> Result<()> {
        let p = self.root.join("node.json");
        let data =
            serde_json::to_vec_pretty(cfg).map_err(|e| Error::new(ErrorKind::Internal, "encode node config", e))?;
        if fs::read(&p).is_ok_and(|old| old == data) {
            return Ok(());
        }
        let mut c = self.conn();
        let tx =
            c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(self.db_err("save node config"))?;
        let tmp = self.root.join(".node.json.tmp");
        fs::write(&tmp, &data)
            .and_then(|()| fs::rename(&tmp, &p))
            .map_err(|e| io_error(format!("save {}", p.display()), e))?;
        tx.commit().map_err(self.db_err("save node config"))
    }
}

/// The service rows inside [`Store::services_txn`]: each service's spec as JSON (the store
/// does not know the type), and a sequence number bumped by every change, by which a process
/// sees that another one changed the services since it last looked.
pub(crate) struct ServiceRows<'t, 'c> {
    tx: &'t rusqlite::Transaction<'c>,
    store: &'t Store,
}

impl ServiceRows<'_, '_> {
    /// The services' sequence number.
    pub(crate) fn seq(&self) -> Result<i64> {
        let v = meta_get(self.tx, "services_seq").map_err(self.store.db_err("read services"))?;
        Ok(v.and_then(|v| v.parse().ok()).unwrap_or(0))
    }

    /// Bump the sequence number (after a change) and return it.
    pub(crate) fn bump(&self) -> Result<i64> {
        let n = self.seq()? + 1;
        meta_put(self.tx, "services_seq", &n.to_string()).map_err(self.store.db_err("record services"))?;
        Ok(n)
    }

    /// Every service row, (name, spec), by name.
    pub(crate) fn load(&self) -> Result<Vec<(String, String)>> {
        query_all(self.tx, "SELECT name, spec FROM services ORDER BY name", [], pair)
            .map_err(self.store.db_err("read services"))
    }

    /// Write (insert or replace) one service's row.
    pub(crate) fn put(&self, name: &str, spec: &str) -> Result<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO services (name, spec) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET spec = excluded.spec",
            )
            .and_then(|mut st| st.execute(params![name, spec]))
            .map_err(self.store.db_err(format!("record service {name}")))?;
        Ok(())
    }

    /// Remove one service's row (a missing one is fine).
    pub(crate) fn delete(&self, name: &str) -> Result<()> {
        self.tx
            .prepare_cached("DELETE FROM services WHERE name = ?1")
            .and_then(|mut st| st.execute([name]))
            .map_err(self.store.db_err(format!("forget service {name}")))?;
        Ok(())
    }

    /// What the store says of the services table in the kernel (its handle and kinds, as
    /// JSON), written by whoever last rebuilt or extended it.
    pub(crate) fn table(&self) -> Result<Option<String>> {
        meta_get(self.tx, "services_table").map_err(self.store.db_err("read services"))
    }

    /// Record the services table's description (see [`ServiceRows::table`]).
    pub(crate) fn set_table(&self, json: &str) -> Result<()> {
        meta_put(self.tx, "services_table", json).map_err(self.store.db_err("record services"))
    }

    /// Remove every service row.
    pub(crate) fn clear(&self) -> Result<()> {
        self.tx.execute("DELETE FROM services", []).map_err(self.store.db_err("forget services"))?;
        Ok(())
    }
}

impl Owner {
    fn new(dir: &Path) -> Result<Owner> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let token = format!("{}-{}-{n}", std::process::id(), now_ms());
        let path = dir.join(&token);
        let file = File::create(&path).map_err(|e| io_error(format!("create owner file {}", path.display()), e))?;
        flock(&file, libc::LOCK_EX | libc::LOCK_NB)
            .map_err(|e| io_error(format!("lock owner file {}", path.display()), e))?;
        Ok(Owner { token, path, _file: file })
    }
}

/// The row counts of the node state under `state_dir` (podnet's tests and tools).
#[cfg(feature = "internals")]
pub fn counts(state_dir: &Path) -> Result<Counts> {
    Store::open_unchecked(state_dir).and_then(|s| s.counts())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipam::PoolConfig;

    struct Dir(PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn dir(tag: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("podnet-store-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        Dir(d)
    }

    fn pool(c: &str) -> Pool {
        Pool::new(&PoolConfig::new(c.parse().unwrap())).unwrap()
    }

    fn rec(id: &str, ips: Vec<IpAddr>) -> Result<Sandbox> {
        Ok(Sandbox {
            id: id.into(),
            ifname: "eth0".into(),
            netns_path: "/x".into(),
            owns_netns: true,
            host_ifname: format!("h{id}"),
            mac: String::new(),
            ips: ips.into_iter().map(|i| IpNetwork::new(i, 24).unwrap()).collect(),
            gateways: vec![],
            mode: PodMode::Bridge,
            ports: vec![],
            labels: BTreeMap::new(),
        })
    }

    /// A fresh state dir and the one pool its stores are opened with.
    struct Fixture {
        dir: Dir,
        pools: [Pool; 1],
    }

    impl Fixture {
        fn new(tag: &str, cidr: &str) -> Fixture {
            Fixture { dir: dir(tag), pools: [pool(cidr)] }
        }

        /// One more store (one more node handle) on the dir.
        fn open(&self) -> Store {
            Store::open(&self.dir.0, &self.pools).unwrap()
        }

        /// Create sandbox `id` through `s`, with a dynamic address and no ports.
        fn create(&self, s: &Store, id: &str) -> Result<Sandbox> {
            s.begin_create(id, "eth0", &self.pools, &[], &[], |ips| rec(id, ips))
        }
    }

    #[test]
    fn reserve_release_round_robin_and_exhaustion() {
        let f = Fixture::new("rr", "10.0.0.0/29");
        let s = f.open();
        let a = f.create(&s, "a").unwrap();
        assert_eq!(a.ipv4().unwrap().to_string(), "10.0.0.2");
        let b = f.create(&s, "b").unwrap();
        assert_eq!(b.ipv4().unwrap().to_string(), "10.0.0.3");
        assert_eq!(f.create(&s, "a").unwrap_err().kind(), ErrorKind::Conflict, "one row per id");
        s.finish_teardown("a", "ha", false).unwrap();
        let c = f.create(&s, "c").unwrap();
        assert_eq!(c.ipv4().unwrap().to_string(), "10.0.0.4", "round-robin, and draining stays reserved");
        for id in ["d", "e"] {
            f.create(&s, id).unwrap();
        }
        let e = f.create(&s, "f").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Exhausted, "{e}");
        assert_eq!(
            s.draining().unwrap(),
            vec![Draining { link: "ha".into(), since_ms: s.draining().unwrap()[0].since_ms }]
        );
        assert_eq!(s.release_draining("ha").unwrap(), vec!["10.0.0.2".parse::<IpAddr>().unwrap()]);
        assert_eq!(f.create(&s, "f").unwrap().ipv4().unwrap().to_string(), "10.0.0.2");
        let n = s.counts().unwrap();
        assert_eq!((n.sandboxes, n.addresses, n.draining), (5, 5, 0));
    }

    #[test]
    fn requested_addresses_and_ports_conflict() {
        let f = Fixture::new("req", "10.0.0.0/24");
        let s = f.open();
        let ip: IpAddr = "10.0.0.12".parse().unwrap();
        s.begin_create("a", "eth0", &f.pools, &[ip], &[], |ips| rec("a", ips)).unwrap();
        let e = s.begin_create("b", "eth0", &f.pools, &[ip], &[], |ips| rec("b", ips)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Conflict);
        assert!(e.to_string().contains("a/eth0"), "{e}");
        let e = s.begin_create("b", "eth0", &f.pools, &["10.0.0.1".parse().unwrap()], &[], |ips| rec("b", ips));
        assert_eq!(e.unwrap_err().kind(), ErrorKind::InvalidArgument);
        let m = PortMapping { protocol: crate::Protocol::Tcp, host_port: 8080, container_port: 80, host_ip: None };
        s.add_ports("a", &[m]).unwrap();
        let specific = PortMapping { host_ip: Some("192.0.2.1".parse().unwrap()), ..m };
        let e = s.begin_create("b", "eth0", &f.pools, &[], &[specific], |ips| rec("b", ips)).unwrap_err();
        assert!(e.to_string().contains("sandbox a"), "{e}");
        assert_eq!(
            s.counts().unwrap(),
            Counts { sandboxes: 1, addresses: 1, draining: 0, ports: 1 },
            "refused creates write nothing"
        );
    }

    #[test]
    fn owners_live_while_their_node_is_open_and_pools_are_kept() {
        let f = Fixture::new("own", "10.0.0.0/24");
        let a = f.open();
        let b = f.open();
        let token = a.me().to_string();
        assert!(b.owner_alive(&token));
        drop(a);
        assert!(!b.owner_alive(&token));
        f.create(&b, "x").unwrap();
        let e = Store::open(&f.dir.0, &[pool("10.9.0.0/24")]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    }

    /// A database whose schema is current is opened without DDL; one written by an older
    /// podnet (a table missing, another digest) gets its missing tables on open.
    #[test]
    fn an_older_schema_is_completed_on_open() {
        let f = Fixture::new("schema", "10.0.0.0/24");
        {
            let s = f.open();
            let c = s.conn();
            c.execute("DROP TABLE gates", []).unwrap();
            c.execute("UPDATE meta SET value = 'older' WHERE key = 'schema_digest'", []).unwrap();
        }
        let s = f.open();
        s.set_gate(Some("x")).unwrap();
        assert_eq!(s.gate().unwrap().as_deref(), Some("x"));
        drop(s);
        let s = f.open();
        f.create(&s, "a").unwrap();
    }

    /// A claim is a compare-and-swap on the row as read: a create that finished, a delete that
    /// took the row, or a later sandbox of the same id each make a stale read's claim fail.
    #[test]
    fn claims_fail_on_a_row_that_moved_on() {
        let f = Fixture::new("claim", "10.0.0.0/24");
        let a = f.open();
        let b = f.open();
        let sb = f.create(&a, "x").unwrap();
        let creating = b.entry("x").unwrap().unwrap();
        assert_eq!((creating.phase, creating.owner.as_deref()), (Phase::Creating, Some(a.me())));
        a.mark_ready(&sb).unwrap();
        let read_as_ready_unowned = Entry { owner: None, ..creating.clone() };
        assert!(!b.claim(&creating, Phase::Deleting).unwrap(), "the create finished");
        assert!(!b.claim(&read_as_ready_unowned, Phase::Deleting).unwrap(), "phase differs");
        let ready = b.entry("x").unwrap().unwrap();
        assert!(b.claim(&ready, Phase::Deleting).unwrap());
        assert!(!a.claim(&ready, Phase::Deleting).unwrap(), "b took it first");
        b.finish_teardown("x", &sb.host_ifname, true).unwrap();
        let again = f.create(&a, "x").unwrap();
        a.mark_ready(&again).unwrap();
        assert!(!b.claim(&ready, Phase::Deleting).unwrap(), "a later sandbox of the same id");
        assert!(b.in_flight().unwrap().is_empty());
    }

    /// State read back that podnet did not write in this call: random and mutated records,
    /// peers and port rows are an `inconsistent` error or a value, never a panic.
    #[test]
    fn random_rows_read_back_never_panic() {
        use crate::kernel::nft::fuzz::Rng;
        let f = Fixture::new("fuzz", "10.0.0.0/24");
        let s = f.open();
        let good = serde_json::to_string(&rec("a", vec!["10.0.0.2".parse().unwrap()]).unwrap()).unwrap();
        let mut r = Rng(0x706f_646e_6574_0002);
        for i in 0..podnet_world::fuzz_iterations() / 20 {
            let mut bytes = good.clone().into_bytes();
            match r.below(3) {
                0 => bytes = r.input(),
                1 => bytes.truncate(r.below(bytes.len())),
                _ => {
                    for _ in 0..=r.below(3) {
                        let j = r.below(bytes.len());
                        bytes[j] = r.next() as u8;
                    }
                }
            }
            let text = String::from_utf8_lossy(&bytes).into_owned();
            {
                let c = s.conn();
                c.execute("DELETE FROM sandboxes", []).unwrap();
                c.execute("DELETE FROM ports", []).unwrap();
                c.execute("DELETE FROM peers", []).unwrap();
                c.execute(
                    "INSERT INTO sandboxes (id, phase, seq, record) VALUES ('a', 'ready', ?1, ?2)",
                    params![i as i64, text],
                )
                .unwrap();
                c.execute(
                    "INSERT INTO ports (sandbox, protocol, host_port, host_ip, mapping) VALUES ('a', 'tcp', 1, 'any', ?1)",
                    [&text],
                )
                .unwrap();
                c.execute("INSERT INTO peers (name, peer) VALUES ('p', ?1)", [&text]).unwrap();
            }
            for res in [s.entries().map(drop), s.entry("a").map(drop), s.peers().map(drop)] {
                if let Err(e) = res {
                    assert_eq!(e.kind(), ErrorKind::Inconsistent, "{e}");
                }
            }
            let _ = serde_json::from_slice::<NodeConfig>(&bytes).map(|c| c.validate());
        }
    }

    #[test]
    fn damaged_database_is_an_error_naming_it_and_is_kept() {
        let d = dir("bad");
        fs::write(d.0.join("state.db"), b"this is not a database, not even close; it is long enough").unwrap();
        let e = Store::open(&d.0, &[]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Inconsistent, "{e}");
        assert!(e.to_string().contains("state.db"), "{e}");
        assert!(fs::read(d.0.join("state.db")).unwrap().starts_with(b"this is not"));
        let d2 = dir("old");
        fs::create_dir_all(d2.0.join("sandboxes")).unwrap();
        assert_eq!(Store::open(&d2.0, &[]).unwrap_err().kind(), ErrorKind::Conflict);
    }
}
