//! The demo's traffic: a TCP server in every pod that names itself and the client address it saw,
//! and the checks, each a connection from one namespace to an address with the answer expected.

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use podnet::internals::netns;
use podnet::{Result, Sandbox};

use super::{io_err, pin, CLIENT_IP, CLIENT_NODE_IP, CLIENT_NS, HOSTPORT_POD, HOST_PORT, NODES, SERVER_PORT};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A TCP server inside a pod: answers each connection with "`<pod id> <peer IP>`" and closes.
/// Dropping it shuts the listener down (which wakes the blocked accept), so no socket keeps the
/// pod's netns alive afterwards.
pub(super) struct Server {
    listener: Arc<TcpListener>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    pub(super) fn start(sb: &Sandbox) -> Result<Server> {
        let f = File::open(&sb.netns_path).map_err(io_err(format!("open netns of {}", sb.id)))?;
        // [::] also accepts IPv4 (bindv6only is 0 in a fresh netns); peers then read as
        // v4-mapped and are shown canonical.
        let l = netns::run_in(&f, || TcpListener::bind((std::net::Ipv6Addr::UNSPECIFIED, SERVER_PORT)))
            .map_err(|e| e.into_error(format!("enter netns of {}", sb.id)))?
            .map_err(io_err(format!("listen on port {SERVER_PORT} in {}", sb.id)))?;
        let listener = Arc::new(l);
        let (l2, id) = (listener.clone(), sb.id.clone());
        let thread = std::thread::spawn(move || loop {
            match l2.accept() {
                Ok((mut s, peer)) => {
                    let _ = s.set_write_timeout(Some(Duration::from_secs(1)));
                    let _ = writeln!(s, "{id} {}", peer.ip().to_canonical());
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        });
        Ok(Server { listener, thread: Some(thread) })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = nix::sys::socket::shutdown(self.listener.as_raw_fd(), nix::sys::socket::Shutdown::Both);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Connect from inside `ns` to `to` and read the server's answer; the latency covers connect
/// and the answer, not the thread that enters the netns.
pub(super) fn ask(ns: &Path, to: SocketAddr) -> std::result::Result<(String, Duration), String> {
    let f = File::open(ns).map_err(|e| format!("open {}: {e}", ns.display()))?;
    netns::run_in(&f, move || -> std::io::Result<(String, Duration)> {
        let t = Instant::now();
        let mut s = TcpStream::connect_timeout(&to, CONNECT_TIMEOUT)?;
        s.set_read_timeout(Some(CONNECT_TIMEOUT))?;
        let mut buf = String::new();
        s.read_to_string(&mut buf)?;
        Ok((buf, t.elapsed()))
    })
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())
}

/// What the server must have seen as the client's address.
#[derive(Clone, Copy)]
pub(super) enum Seen {
    /// Exactly this address (no NAT on the way).
    Exactly(IpAddr),
    /// Anything (masqueraded on purpose, or the node's own choice of source).
    Any,
}

/// What a check is called: the path it exercises and its two ends, as the table shows them.
#[derive(Clone, serde::Serialize)]
pub(super) struct Route {
    pub(super) path: String,
    pub(super) from: String,
    pub(super) to: String,
}

impl Route {
    fn new(path: impl Into<String>, from: impl Into<String>, to: impl Into<String>) -> Route {
        Route { path: path.into(), from: from.into(), to: to.into() }
    }
}

pub(super) struct Check {
    pub(super) route: Route,
    pub(super) from_ns: PathBuf,
    pub(super) addr: SocketAddr,
    pub(super) server: String,
    pub(super) seen: Seen,
}

#[derive(serde::Serialize)]
pub(super) struct CheckResult {
    #[serde(flatten)]
    pub(super) route: Route,
    pub(super) ok: bool,
    pub(super) latency_ms: Option<f64>,
    pub(super) server_saw: Option<String>,
    pub(super) note: String,
}

pub(super) fn run_check(c: &Check) -> CheckResult {
    let mut r =
        CheckResult { route: c.route.clone(), ok: false, latency_ms: None, server_saw: None, note: String::new() };
    match ask(&c.from_ns, c.addr) {
        Err(e) => r.note = e,
        Ok((answer, d)) => {
            r.latency_ms = Some((d.as_secs_f64() * 1e6).round() / 1e3);
            let mut parts = answer.split_whitespace();
            let (who, saw) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            r.server_saw = Some(saw.to_string());
            if who != c.server {
                r.note = format!("answered by {who:?}, expected {}", c.server);
            } else {
                match c.seen {
                    Seen::Exactly(ip) if saw != ip.to_string() => {
                        r.note = format!("server saw {saw}, expected {ip} (unwanted NAT)");
                    }
                    Seen::Exactly(_) => {
                        r.ok = true;
                        r.note = format!("source kept ({saw})");
                    }
                    Seen::Any => {
                        r.ok = true;
                        r.note = format!("server saw {saw}");
                    }
                }
                if r.ok && d >= Duration::from_millis(900) {
                    // The kernel's first try was lost and its 1 s retransmission timer fired.
                    r.note.push_str("; a first packet was retransmitted");
                }
            }
        }
    }
    r
}

pub(super) fn pod<'a>(pods: &'a [Sandbox], id: &str) -> &'a Sandbox {
    pods.iter().find(|p| p.id == id).expect("demo pod exists")
}

pub(super) fn v4(sb: &Sandbox) -> IpAddr {
    sb.ipv4().expect("demo pods are dual-stack")
}

pub(super) fn v6(sb: &Sandbox) -> IpAddr {
    sb.ipv6().expect("demo pods are dual-stack")
}

pub(super) fn checks(pods: &[Sandbox]) -> Vec<Check> {
    let p2p = |path: &str, from: &str, to: &str, v6_: bool| {
        let (f, t) = (pod(pods, from), pod(pods, to));
        let (fip, tip) = if v6_ { (v6(f), v6(t)) } else { (v4(f), v4(t)) };
        Check {
            route: Route::new(path, format!("{from} {fip}"), format!("{to} {tip}")),
            from_ns: f.netns_path.clone(),
            addr: SocketAddr::new(tip, SERVER_PORT),
            server: to.to_string(),
            seen: Seen::Exactly(fip),
        }
    };
    let web1 = pod(pods, HOSTPORT_POD);
    let node1 = &NODES[0];
    vec![
        p2p("pod -> pod, same node (bridge)", "web-2", "web-1", false),
        p2p("pod -> pod, same node (bridge), IPv6", "web-2", "web-1", true),
        p2p("pod -> pod, same node (routed)", "web-4", "web-3", false),
        p2p("pod -> pod, same node (routed), IPv6", "web-4", "web-3", true),
        p2p("pod -> pod, node1 -> node2 (VXLAN)", "web-1", "web-3", false),
        p2p("pod -> pod, node2 -> node1 (VXLAN)", "web-4", "web-2", false),
        p2p("pod -> pod, node1 -> node2 (VXLAN), IPv6", "web-2", "web-4", true),
        p2p("pod -> pod, node2 -> node1 (VXLAN), IPv6", "web-3", "web-1", true),
        {
            let t = pod(pods, "web-3");
            Check {
                route: Route::new("node -> remote pod (VXLAN)", node1.name, format!("web-3 {}", v4(t))),
                from_ns: pin(node1.ns),
                addr: SocketAddr::new(v4(t), SERVER_PORT),
                server: "web-3".into(),
                seen: Seen::Any,
            }
        },
        Check {
            route: Route::new(
                "external client -> hostPort",
                format!("client {CLIENT_IP}"),
                format!("{} {CLIENT_NODE_IP}:{HOST_PORT}", node1.name),
            ),
            from_ns: pin(CLIENT_NS),
            addr: SocketAddr::new(IpAddr::V4(CLIENT_NODE_IP), HOST_PORT),
            server: HOSTPORT_POD.into(),
            seen: Seen::Exactly(IpAddr::V4(CLIENT_IP)),
        },
        Check {
            route: Route::new("node -> localhost hostPort", node1.name, format!("127.0.0.1:{HOST_PORT}")),
            from_ns: pin(node1.ns),
            addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), HOST_PORT),
            server: HOSTPORT_POD.into(),
            seen: Seen::Any,
        },
        Check {
            route: Route::new(
                "pod -> own hostPort via node IP (hairpin)",
                format!("{HOSTPORT_POD} {}", v4(web1)),
                format!("{} {}:{HOST_PORT}", node1.name, node1.underlay),
            ),
            from_ns: web1.netns_path.clone(),
            addr: SocketAddr::new(IpAddr::V4(node1.underlay), HOST_PORT),
            server: HOSTPORT_POD.into(),
            seen: Seen::Any,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A result's JSON names its route's fields at the top level, first, as the demo prints them.
    #[test]
    fn result_json_is_flat() {
        let r = CheckResult {
            route: Route::new("p", "a", "b"),
            ok: true,
            latency_ms: Some(1.5),
            server_saw: None,
            note: "n".into(),
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"path":"p","from":"a","to":"b","ok":true,"latency_ms":1.5,"server_saw":null,"note":"n"}"#
        );
    }
}
