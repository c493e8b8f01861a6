//! The machine before and after a demo: what `/run/netns` and `/run/podnet` looked like, what a
//! demo left (pins, mounts, state), and the drop guard that removes it all, also on failure.

use std::path::{Path, PathBuf};

use podnet::internals::netns;
use podnet::{Error, ErrorKind, Result};

use super::{io_err, pin, state_dir, CLIENT_NS, MARKER, NETNS_DIR, NODES, PIN_PREFIX, STATE_ROOT};

/// How `/run/netns` and `/run/podnet` looked before the demo touched them.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
pub(super) struct Before {
    pub(super) netns_dir_existed: bool,
    pub(super) netns_dir_was_mount: bool,
    pub(super) state_root_existed: bool,
}

pub(super) fn is_mount_point(p: &str) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|m| m.lines().any(|l| l.split(' ').nth(4) == Some(p)))
        .unwrap_or(false)
}

pub(super) fn is_demo_pod_pin(name: &str) -> bool {
    NODES.iter().any(|n| name.starts_with(&format!("pn-{}-", n.name)))
}

/// Everything of a demo still on the machine: pins, their mounts, state dirs, the marker, and
/// (when `before` says it was not there) the `/run/netns` mount, unless others use it now.
pub(super) fn leftovers(before: Option<Before>) -> Vec<String> {
    let mut out = vec![];
    if let Some(b) = before {
        let empty = std::fs::read_dir(NETNS_DIR).map(|mut rd| rd.next().is_none()).unwrap_or(true);
        if !b.netns_dir_was_mount && empty && is_mount_point(NETNS_DIR) {
            out.push(format!("mount {NETNS_DIR} (made by the demo)"));
        }
    }
    if let Ok(rd) = std::fs::read_dir(NETNS_DIR) {
        let mut names: Vec<String> = rd.flatten().map(|e| e.file_name().to_string_lossy().to_string()).collect();
        names.sort();
        for n in names {
            if n.starts_with(PIN_PREFIX) || is_demo_pod_pin(&n) {
                out.push(format!("netns pin {NETNS_DIR}/{n}"));
            }
        }
    }
    if let Ok(m) = std::fs::read_to_string("/proc/self/mountinfo") {
        for l in m.lines() {
            if let Some(mp) = l.split(' ').nth(4) {
                if let Some(n) = mp.strip_prefix(&format!("{NETNS_DIR}/")) {
                    if n.starts_with(PIN_PREFIX) || is_demo_pod_pin(n) {
                        out.push(format!("mount {mp}"));
                    }
                }
            }
        }
    }
    for n in &NODES {
        let d = state_dir(n.name);
        if d.exists() {
            out.push(format!("state dir {}", d.display()));
        }
    }
    if Path::new(MARKER).exists() {
        out.push(format!("marker {MARKER}"));
    }
    out
}

/// Remove whatever a demo left (best effort, keeps going), then put `/run/netns` and
/// `/run/podnet` back as `before` says they were. Returns what it removed and what failed.
pub(super) fn remove_all(before: Option<Before>) -> (Vec<String>, Vec<String>) {
    let (mut removed, mut errors) = (vec![], vec![]);
    // Pods first, then the nodes and the client they hang off.
    let mut pins: Vec<PathBuf> = vec![];
    if let Ok(rd) = std::fs::read_dir(NETNS_DIR) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().to_string();
            if is_demo_pod_pin(&n) {
                pins.push(e.path());
            }
        }
        pins.sort();
    }
    let mut nodes: Vec<PathBuf> = NODES.iter().map(|n| pin(n.ns)).collect();
    nodes.push(pin(CLIENT_NS));
    for p in pins.into_iter().chain(nodes) {
        let mounted = is_mount_point(&p.display().to_string());
        if !p.exists() && !mounted {
            continue;
        }
        match netns::remove(&p) {
            Ok(()) => removed.push(format!("netns {}", p.display())),
            Err(e) => errors.push(format!("remove netns {}: {e}", p.display())),
        }
    }
    for n in &NODES {
        let d = state_dir(n.name);
        if d.exists() {
            match std::fs::remove_dir_all(&d) {
                Ok(()) => removed.push(format!("state dir {}", d.display())),
                Err(e) => errors.push(format!("remove {}: {e}", d.display())),
            }
        }
    }
    if let Some(b) = before {
        restore_dirs(b, &mut errors);
    }
    match std::fs::remove_file(MARKER) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => errors.push(format!("remove {MARKER}: {e}")),
    }
    if let Some(b) = before {
        if !b.state_root_existed {
            // Only when empty: a real node's state may have appeared meanwhile.
            let _ = std::fs::remove_dir(STATE_ROOT);
        }
    }
    (removed, errors)
}

/// Undo what `netns::ensure_dir` did to `/run/netns` (a shared self-bind mount, as iproute2
/// makes), but only when it is empty: someone else may have pinned a netns meanwhile.
pub(super) fn restore_dirs(b: Before, errors: &mut Vec<String>) {
    let empty = std::fs::read_dir(NETNS_DIR).map(|mut rd| rd.next().is_none()).unwrap_or(false);
    if !empty {
        return;
    }
    if !b.netns_dir_was_mount && is_mount_point(NETNS_DIR) {
        if let Err(e) = nix::mount::umount2(NETNS_DIR, nix::mount::MntFlags::MNT_DETACH) {
            errors.push(format!("unmount {NETNS_DIR}: {e}"));
        }
    }
    if !b.netns_dir_existed {
        let _ = std::fs::remove_dir(NETNS_DIR);
    }
}

pub(super) fn read_marker() -> Option<Before> {
    std::fs::read(MARKER).ok().and_then(|b| serde_json::from_slice(&b).ok())
}

/// The drop guard of the whole demo: unless disarmed (`--keep`), removes everything.
pub(super) struct World {
    pub(super) before: Before,
    pub(super) armed: bool,
}

impl World {
    /// Record the machine's state before touching it. Disarmed until the demo owns something.
    pub(super) fn new() -> World {
        let before = Before {
            netns_dir_existed: Path::new(NETNS_DIR).exists(),
            netns_dir_was_mount: is_mount_point(NETNS_DIR),
            state_root_existed: Path::new(STATE_ROOT).exists(),
        };
        World { before, armed: false }
    }

    /// Create the pinned namespaces. The first pin is created with O_EXCL, so it doubles as the
    /// lock: a demo racing this one fails there and removes nothing of ours. From then on the
    /// guard is armed, and the marker records `before` for a later `--cleanup`.
    pub(super) fn create_namespaces(&mut self) -> Result<()> {
        netns::ensure_dir(Path::new(NETNS_DIR)).map_err(|e| e.into_error(format!("prepare {NETNS_DIR}")))?;
        for (i, name) in NODES.iter().map(|n| n.ns).chain([CLIENT_NS]).enumerate() {
            netns::create(&pin(name), || ()).map_err(|e| e.into_error(format!("create netns {name}")))?;
            if i == 0 {
                self.armed = true;
                std::fs::create_dir_all(STATE_ROOT).map_err(io_err(format!("create {STATE_ROOT}")))?;
                let data = serde_json::to_vec(&self.before)
                    .map_err(|e| Error::new(ErrorKind::Internal, "encode marker", e))?;
                std::fs::write(MARKER, data).map_err(io_err(format!("write {MARKER}")))?;
            }
        }
        Ok(())
    }

    /// Remove everything now; returns the errors.
    pub(super) fn remove(&mut self) -> Vec<String> {
        self.armed = false;
        remove_all(Some(self.before)).1
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if self.armed {
            let (_, errors) = remove_all(Some(self.before));
            for e in errors {
                crate::output::error_line("io", &format!("demo cleanup: {e}"));
            }
        }
    }
}
