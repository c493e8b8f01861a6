//! `podnet agent run` as a real process against real etcd, in a throwaway world: killed with
//! SIGKILL and restarted it keeps its subnet and store lease, writes nothing to etcd and leaves
//! the kernel's peer entries as they were; SIGTERM exits 0 and leaves the data plane up.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use podnet_cluster::agent::{read_status, AgentStatus, EtcdStore, Phase, Store};
use podnet_world::*;

/// A child process killed (and reaped) on drop.
struct Proc(Option<Child>);

impl Proc {
    fn kill9(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn wait_status(path: &Path, what: &str, f: impl Fn(&AgentStatus) -> bool) -> AgentStatus {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(s) = read_status(path) {
            if f(&s) {
                return s;
            }
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}: {:?}", read_status(path));
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn kernel(ns: &Path) -> String {
    [
        in_ns(ns, &["ip", "route", "show", "proto", "81"]),
        in_ns(ns, &["ip", "neigh", "show", "dev", "podnet.1"]),
        in_ns(ns, &["bridge", "fdb", "show", "dev", "podnet.1"]),
    ]
    .join("\n")
}

#[test]
fn agent_process_survives_kill_9_and_sigterm() {
    let mut w = World::new("agentcli");
    let ul = w.netns("underlay");
    in_ns(&ul, &["ip", "link", "add", "br0", "type", "bridge"]);
    in_ns(&ul, &["ip", "link", "set", "br0", "up"]);
    in_ns(&ul, &["ip", "link", "set", "lo", "up"]);
    in_ns(&ul, &["ip", "addr", "add", "10.200.1.2/24", "dev", "br0"]);
    let mut nodes: Vec<PathBuf> = vec![];
    for i in 1..=2 {
        let ns = w.netns(&format!("node{i}"));
        veth(&ns, "ul0", &ul, &format!("ul-n{i}")).unwrap();
        in_ns(&ul, &["ip", "link", "set", &format!("ul-n{i}"), "master", "br0"]);
        in_ns(&ns, &["ip", "addr", "add", &format!("10.200.1.1{i}/24"), "dev", "ul0"]);
        nodes.push(ns);
    }
    let _etcd = Proc(Some(
        Command::new("nsenter")
            .arg(format!("--net={}", ul.display()))
            .args([
                "etcd",
                &format!("--data-dir={}", w.dir.join("etcd").display()),
                "--listen-client-urls=http://10.200.1.2:2379",
                "--advertise-client-urls=http://10.200.1.2:2379",
                "--listen-peer-urls=http://10.200.1.2:2380",
                "--initial-advertise-peer-urls=http://10.200.1.2:2380",
                "--initial-cluster=default=http://10.200.1.2:2380",
                "--log-level=error",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcd (Debian package etcd-server)"),
    ));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let st = rt.block_on(EtcdStore::connect(&["http://10.200.1.2:2379".into()], Some(&ul))).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while rt
        .block_on(st.put(
            "/coreos.com/network/config",
            br#"{"Network": "10.244.0.0/16", "Backend": {"Type": "vxlan"}}"#,
            0,
        ))
        .is_err()
    {
        assert!(Instant::now() < deadline, "etcd did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = |i: usize| w.dir.join(format!("node{i}.status.json"));
    let run = |i: usize| -> Proc {
        Proc(Some(
            Command::new(env!("CARGO_BIN_EXE_podnet"))
                .args(["agent", "run", "--node", &format!("node{i}"), "--underlay", &format!("10.200.1.1{i}")])
                .args(["--etcd-endpoints", "http://10.200.1.2:2379", "--lease-ttl", "60"])
                .arg(format!("--netns={}", nodes[i - 1].display()))
                .arg(format!("--netns-dir={}", w.netns_dir().display()))
                .arg(format!("--state-dir={}", w.state_dir(&format!("node{i}")).display()))
                .arg(format!("--state-file={}", w.dir.join(format!("node{i}.json")).display()))
                .arg(format!("--status-file={}", status(i).display()))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        ))
    };
    let mut a1 = run(1);
    let mut a2 = run(2);
    let s1 = wait_status(&status(1), "node1 ready with its peer", |s| s.ready && s.peers == 1);
    wait_status(&status(2), "node2 ready with its peer", |s| s.ready && s.peers == 1);
    // `podnet agent status` agrees and exits 0 when ready.
    let out = Command::new(env!("CARGO_BIN_EXE_podnet"))
        .args(["agent", "status", "--json", "--status-file"])
        .arg(status(1))
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ready"], true);
    assert_eq!(v["key"].as_str(), s1.key.as_deref());

    let before = kernel(&nodes[0]);
    assert!(before.contains("via") && before.contains("PERMANENT") && before.contains("dst 10.200.1.12"), "{before}");
    let revision = rt.block_on(st.list("/")).unwrap().revision;
    a1.kill9();
    // A dead agent's status file reads as not ready.
    assert!(!read_status(&status(1)).unwrap().ready);
    let _a1 = run(1);
    let s1b = wait_status(&status(1), "node1 ready again", |s| s.ready && s.pid != s1.pid);
    assert_eq!((s1b.key, s1b.lease_id), (s1.key, s1.lease_id), "same subnet, same lease");
    assert_eq!(rt.block_on(st.list("/")).unwrap().revision, revision, "the restart wrote nothing to etcd");
    assert_eq!(kernel(&nodes[0]), before, "the kernel's peer entries are as they were");

    // SIGTERM: exit 0, status stopped, the data plane stays.
    let c = a2.0.as_mut().unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    assert!(c.wait().unwrap().success());
    a2.0 = None;
    assert_eq!(read_status(&status(2)).unwrap().phase, Phase::Stopped);
    assert!(in_ns(&nodes[1], &["ip", "route", "show", "proto", "81"]).contains("podnet.1"));
}
