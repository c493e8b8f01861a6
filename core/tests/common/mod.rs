//! Test worlds: throwaway network namespaces under a temp dir, removed on drop (also when the
//! test fails). Nothing here touches the machine's own netns, routes or firewall.
#![allow(dead_code, reason = "each test binary uses a different part of the helpers")]

use std::fs::File;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use podnet::internals::netns;

/// A temp dir holding netns pins, state dirs and the netns dir of the nodes under test.
pub struct World {
    pub dir: PathBuf,
    pins: Vec<PathBuf>,
}

static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl World {
    pub fn new(tag: &str) -> World {
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = PathBuf::from(format!("/tmp/podnet-test-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // Production state lives on tmpfs (/run); so does the test's, and one lazy unmount
        // then takes everything away.
        let none: Option<&str> = None;
        nix::mount::mount(Some("tmpfs"), &dir, Some("tmpfs"), nix::mount::MsFlags::empty(), none).unwrap();
        World { dir, pins: vec![] }
    }

    /// A fresh netns pinned at `<dir>/ns/<name>` (a "node" or a "client").
    pub fn netns(&mut self, name: &str) -> PathBuf {
        let d = self.dir.join("ns");
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join(name);
        netns::create(&p, || ()).unwrap();
        self.pins.push(p.clone());
        p
    }

    pub fn netns_dir(&self) -> PathBuf {
        self.dir.join("netns")
    }

    pub fn state_dir(&self, node: &str) -> PathBuf {
        self.dir.join("state").join(node)
    }

    /// Names of pins under the pod netns dir.
    pub fn pod_pins(&self) -> Vec<String> {
        std::fs::read_dir(self.netns_dir())
            .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().to_string()).collect())
            .unwrap_or_default()
    }

    /// What a node's state still holds: sandbox rows, reserved addresses and host ports (the
    /// reservations of deleted sandboxes waiting for their veth to vanish are not counted: the
    /// next gc releases them, see `draining_released_by_gc`), and files other than the database,
    /// the node config and the live owners' files.
    pub fn state_files(&self, node: &str) -> Vec<String> {
        let dir = self.state_dir(node);
        let mut out = vec![];
        walk(&dir, &mut out);
        out.retain(|f| {
            let name = f.rsplit('/').next().unwrap_or("");
            !(name.starts_with("state.db") || name == "node.json" || f.contains("/owners/"))
        });
        if dir.join("state.db").exists() {
            let c = podnet::internals::state_counts(&dir).expect("read state");
            if c.sandboxes + c.addresses + c.ports > 0 {
                out.push(format!("{c:?}"));
            }
        }
        out
    }
}

fn walk(p: &Path, out: &mut Vec<String>) {
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            if e.path().is_dir() {
                walk(&e.path(), out);
            } else {
                out.push(e.path().display().to_string());
            }
        }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        // pod pins first, then the dir's own shared bind mount, then nodes
        for name in self.pod_pins() {
            let _ = netns::remove(&self.netns_dir().join(name));
        }
        let _ = nix::mount::umount2(&self.netns_dir(), nix::mount::MntFlags::MNT_DETACH);
        for p in self.pins.drain(..) {
            let _ = netns::remove(&p);
        }
        let _ = nix::mount::umount2(&self.dir, nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Run a command inside a netns (test oracle only) and return stdout.
pub fn in_ns(ns: &Path, args: &[&str]) -> String {
    let out = Command::new("nsenter").arg(format!("--net={}", ns.display())).args(args).output().expect("nsenter");
    assert!(out.status.success(), "{:?} failed: {}", args, String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// A TCP listener inside `ns` that answers `n` connections with the peer address it saw,
/// then closes (an open socket would keep the netns alive). Gives up after 15 s.
pub fn echo_peer_server(ns: &Path, addr: SocketAddr, n: usize) -> std::thread::JoinHandle<()> {
    let f = File::open(ns).unwrap();
    let l = netns::run_in(&f, || TcpListener::bind(addr)).unwrap().unwrap();
    l.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        let mut served = 0;
        while served < n && std::time::Instant::now() < deadline {
            match l.accept() {
                Ok((mut s, peer)) => {
                    let _ = s.set_nonblocking(false);
                    let _ = s.write_all(peer.ip().to_string().as_bytes());
                    served += 1;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(2)),
            }
        }
    })
}

/// Connect from inside `ns` to `to`, return what the server said (the IP it saw us as).
pub fn tcp_ask(ns: &Path, to: SocketAddr) -> std::io::Result<String> {
    tcp_ask_timeout(ns, to, Duration::from_secs(3))
}

/// Like [`tcp_ask`] with a connect timeout.
pub fn tcp_ask_timeout(ns: &Path, to: SocketAddr, timeout: Duration) -> std::io::Result<String> {
    let f = File::open(ns).unwrap();
    netns::run_in(&f, move || -> std::io::Result<String> {
        let mut s = TcpStream::connect_timeout(&to, timeout)?;
        s.set_read_timeout(Some(Duration::from_secs(3)))?;
        let mut buf = String::new();
        s.read_to_string(&mut buf)?;
        Ok(buf)
    })
    .unwrap()
}

/// Run a command in a netns, ignoring failure (world building where "exists" is fine).
pub fn in_ns_try(ns: &Path, args: &[&str]) -> bool {
    Command::new("nsenter")
        .arg(format!("--net={}", ns.display()))
        .args(args)
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Connect two netns with a veth pair: `a_if` in `a`, `b_if` in `b`.
pub fn veth_between(a: &Path, a_if: &str, b: &Path, b_if: &str) {
    in_ns(a, &["ip", "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", &b.display().to_string()]);
    in_ns(a, &["ip", "link", "set", a_if, "up"]);
    in_ns(b, &["ip", "link", "set", b_if, "up"]);
}

pub fn sa(ip: IpAddr, port: u16) -> SocketAddr {
    SocketAddr::new(ip, port)
}

/// A UDP socket inside `ns` answering `n` datagrams with the sender's address, then closing.
pub fn udp_echo_server(ns: &Path, addr: SocketAddr, n: usize) -> std::thread::JoinHandle<()> {
    let f = File::open(ns).unwrap();
    let s = netns::run_in(&f, || std::net::UdpSocket::bind(addr)).unwrap().unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        let mut served = 0;
        let mut buf = [0u8; 64];
        while served < n && std::time::Instant::now() < deadline {
            if let Ok((_, peer)) = s.recv_from(&mut buf) {
                let _ = s.send_to(peer.ip().to_string().as_bytes(), peer);
                served += 1;
            }
        }
    })
}

/// Send one datagram from inside `ns` to `to` and return the answer (the IP the server saw).
pub fn udp_ask(ns: &Path, to: SocketAddr) -> std::io::Result<String> {
    let f = File::open(ns).unwrap();
    netns::run_in(&f, move || -> std::io::Result<String> {
        let bind: SocketAddr = if to.is_ipv4() { "0.0.0.0:0".parse().unwrap() } else { "[::]:0".parse().unwrap() };
        let s = std::net::UdpSocket::bind(bind)?;
        s.set_read_timeout(Some(Duration::from_millis(500)))?;
        let mut buf = [0u8; 64];
        for _ in 0..4 {
            s.send_to(b"?", to)?;
            if let Ok((n, _)) = s.recv_from(&mut buf) {
                return Ok(String::from_utf8_lossy(&buf[..n]).to_string());
            }
        }
        Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "no UDP answer"))
    })
    .unwrap()
}
