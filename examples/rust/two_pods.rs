//! Two pods on one node, talking over TCP, then torn down: the Rust API end to end.
//!
//! Run as root: `cargo run -p podnet --example two_pods`. Everything happens inside a
//! throwaway node netns pinned under /tmp (nothing on the machine's own network changes).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use podnet::blocking::Node;
use podnet::internals::netns;
use podnet::{NodeConfig, PodMode, SandboxSpec};

/// A throwaway "node": its own netns, pod pins and state in a temp dir; removed on drop, also when
/// something below fails or panics.
struct Scratch {
    dir: PathBuf,
    node_ns: PathBuf,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Pods first (their pins live in the netns dir podnet made a mount point), then the node.
        if let Ok(pins) = std::fs::read_dir(self.dir.join("netns")) {
            for p in pins.flatten() {
                let _ = netns::remove(&p.path());
            }
        }
        let _ = nix::mount::umount2(&self.dir.join("netns"), nix::mount::MntFlags::MNT_DETACH);
        let _ = netns::remove(&self.node_ns);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("podnet-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let scratch = Scratch { node_ns: dir.join("node"), dir };
    netns::create(&scratch.node_ns, || ())?;
    run(&scratch.dir, &scratch.node_ns)
}

fn run(dir: &std::path::Path, node_ns: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let node = Node::open(
        NodeConfig::new("example")
            .netns(node_ns)
            .netns_dir(dir.join("netns"))
            .state_dir(dir.join("state"))
            .mode(PodMode::Bridge)
            .pod_cidr("10.123.0.0/24".parse()?),
    )?;
    let web = node.create_sandbox(&SandboxSpec::new("web"))?;
    let client = node.create_sandbox(&SandboxSpec::new("client"))?;
    println!("web    {} in {} (host side {})", web.ips[0], web.netns_path.display(), web.host_ifname);
    println!("client {} in {}", client.ips[0], client.netns_path.display());

    // A listener inside the web pod: sockets keep the netns they were created in, so create it
    // on a short-lived thread that entered the pod's netns (podnet::internals::netns::run_in does that).
    let addr = SocketAddr::new(web.ips[0].ip(), 8080);
    let listener = netns::run_in(&std::fs::File::open(&web.netns_path)?, || TcpListener::bind(addr))??;
    let server = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut s, peer) = listener.accept()?;
        s.write_all(format!("hello {}", peer.ip()).as_bytes())
    });
    let reply = netns::run_in(&std::fs::File::open(&client.netns_path)?, move || -> std::io::Result<String> {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
        let mut buf = String::new();
        s.read_to_string(&mut buf)?;
        Ok(buf)
    })??;
    server.join().expect("server thread")?;
    println!("web answered the client: {reply:?}");

    node.delete_sandbox("web")?;
    node.delete_sandbox("client")?;
    println!("deleted; sandboxes left: {}", node.list_sandboxes()?.len());
    Ok(())
}
