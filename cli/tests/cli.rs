//! The `podnet` binary end to end (run as root): every operator command's happy path and one bad
//! input each (one error line naming the kind, the documented exit code, nothing changed), each
//! against a node in its own throwaway netns; and the demo, whose exit status CI relies on.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// A node's throwaway world (the shared `podnet-world`: a tmpfs in a private mount namespace
/// holding the node's netns pin, its pod pins and its state; removed on drop, also when the test
/// fails). Nothing here touches the machine's own netns.
struct World {
    w: podnet_world::World,
    node_ns: PathBuf,
}

impl World {
    fn new(tag: &str) -> World {
        let mut w = podnet_world::World::new(&format!("cli-{tag}"));
        let node_ns = w.netns("node");
        World { w, node_ns }
    }

    fn netns_dir(&self) -> PathBuf {
        self.w.netns_dir()
    }

    fn state_dir(&self) -> PathBuf {
        self.w.state_dir("n1")
    }

    fn pod_pins(&self) -> Vec<String> {
        self.w.pod_pins()
    }

    /// Run `podnet ARGS... --node n1 --state-dir <dir>/state`.
    fn podnet(&self, args: &[&str]) -> Out {
        self.podnet_stdin(args, None)
    }

    fn podnet_stdin(&self, args: &[&str], stdin: Option<&str>) -> Out {
        let sd = self.state_dir().display().to_string();
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--node", "n1", "--state-dir", &sd]);
        run(&all, stdin)
    }

    /// `node init` with an underlay on a veth inside the node netns (so peers can be added).
    fn init(&self) -> Out {
        podnet_world::underlay(&self.node_ns, "10.200.0.1/24").unwrap();
        let ns = self.node_ns.display().to_string();
        let nd = self.netns_dir().display().to_string();
        self.podnet(&[
            "node",
            "init",
            "--netns",
            &ns,
            "--netns-dir",
            &nd,
            "--pod-cidr",
            "10.10.1.0/24,fd00:10:0:1::/64",
            "--underlay",
            "10.200.0.1",
            "--cluster-cidr",
            "10.10.0.0/16",
            "--cluster-cidr",
            "fd00:10::/48",
            "--service-cidr",
            "10.96.0.0/16",
        ])
    }

    /// `init`, then `sandbox add` each id.
    fn init_with_sandboxes(&self, ids: &[&str]) {
        ok(self.init());
        for id in ids {
            ok(self.podnet(&["sandbox", "add", id]));
        }
    }

    /// Delete a link in the node netns behind podnet's back.
    fn delete_link(&self, name: &str) {
        podnet_world::delete_link(&self.node_ns, name).unwrap();
    }
}

#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

fn run(args: &[&str], stdin: Option<&str>) -> Out {
    let mut c = Command::new(env!("CARGO_BIN_EXE_podnet"));
    c.args(args).env_remove("PODNET_NODE").stdout(Stdio::piped()).stderr(Stdio::piped());
    c.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    let mut child = c.spawn().expect("run podnet");
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    }
    let o: Output = child.wait_with_output().unwrap();
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).to_string(),
        stderr: String::from_utf8_lossy(&o.stderr).to_string(),
    }
}

/// Success: exit 0 and nothing on stderr (the command prints nothing it was not asked for).
#[track_caller]
fn ok(o: Out) -> Out {
    assert_eq!(o.code, 0, "expected success: {o:?}");
    assert!(o.stderr.is_empty(), "unexpected stderr: {o:?}");
    o
}

/// Failure: the exit code, one line `error (<kind>): ...` on stderr, nothing on stdout.
#[track_caller]
fn bad(o: &Out, code: i32, kind: &str) {
    assert_eq!(o.code, code, "exit code: {o:?}");
    assert_eq!(o.stderr.lines().count(), 1, "one error line: {o:?}");
    assert!(o.stderr.starts_with(&format!("error ({kind}): ")), "error kind {kind}: {o:?}");
    assert!(o.stdout.is_empty(), "nothing on stdout: {o:?}");
}

fn sandbox_ids(w: &World) -> Vec<String> {
    let v = ok(w.podnet(&["sandbox", "list", "--json"])).json();
    v.as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect()
}

fn peer_names(w: &World) -> Vec<String> {
    let v = ok(w.podnet(&["peer", "list", "--json"])).json();
    v.as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap().to_string()).collect()
}

fn port_rows(w: &World) -> Vec<(String, u16)> {
    let v = ok(w.podnet(&["port", "list", "--json"])).json();
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| (e["sandbox"].as_str().unwrap().to_string(), e["mapping"]["host_port"].as_u64().unwrap() as u16))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

#[test]
fn node_init_status_repair() {
    let w = World::new("node");
    let node_json = w.state_dir().join("node.json");
    // Before init: status says how to initialize.
    let o = w.podnet(&["node", "status"]);
    bad(&o, 1, "not_found");
    assert!(o.stderr.contains("podnet node init"), "{o:?}");
    // Bad input: host bits set. Nothing is written.
    let ns = w.node_ns.display().to_string();
    let o = w.podnet(&["node", "init", "--netns", &ns, "--pod-cidr", "10.10.1.5/24"]);
    bad(&o, 2, "invalid_argument");
    assert!(o.stderr.contains("host bits"), "{o:?}");
    assert!(!node_json.exists());

    let o = ok(w.init()).stdout.clone();
    assert!(o.contains("10.10.1.0/24 (gateway 10.10.1.1)"), "{o}");
    assert!(o.contains("podnet.1 (VNI 1, UDP 8472)"), "{o}");
    let mac = podnet::vtep_mac("n1").iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":");
    assert!(o.contains(&format!("VTEP MAC {mac}")) || o.contains(&mac), "{o}");
    assert!(node_json.exists());
    let s = ok(w.podnet(&["node", "status", "--json"])).json();
    assert_eq!(s["name"], "n1");
    assert_eq!(s["vtep_mac"], mac.as_str(), "the node's own VTEP MAC");
    assert_eq!(s["mode"], "bridge");
    assert_eq!(s["pod_mtu"], 1450, "VXLAN overhead below the 1500 underlay");
    assert_eq!(s["pod_cidrs"][1]["gateway"], "fd00:10:0:1::1");
    assert_eq!(s["sandboxes"], 0);
    assert_eq!(s["service_cidrs"][0], "10.96.0.0/16");
    // Init again with the same config: idempotent. With another config: refused, unchanged.
    ok(w.podnet(&[
        "node",
        "init",
        "--netns",
        &ns,
        "--netns-dir",
        &w.netns_dir().display().to_string(),
        "--pod-cidr",
        "10.10.1.0/24",
        "--pod-cidr",
        "fd00:10:0:1::/64",
        "--underlay",
        "10.200.0.1",
        "--cluster-cidr",
        "10.10.0.0/16,fd00:10::/48",
        "--service-cidr",
        "10.96.0.0/16",
    ]));
    let before = std::fs::read(&node_json).unwrap();
    let o = w.podnet(&["node", "init", "--netns", &ns, "--pod-cidr", "10.10.9.0/24"]);
    bad(&o, 1, "already_exists");
    assert!(o.stderr.contains("pools"), "names what differs: {o:?}");
    assert_eq!(std::fs::read(&node_json).unwrap(), before);
    // --node must match the node the state dir holds.
    let sd = w.state_dir().display().to_string();
    bad(&run(&["node", "status", "--node", "other", "--state-dir", &sd], None), 2, "invalid_argument");

    let r = ok(w.podnet(&["node", "repair", "--json"])).json();
    assert_eq!(r["table_recreated"], false);
}

#[test]
fn sandbox_add_list_check_del() {
    let w = World::new("sandbox");
    ok(w.init());
    let o = ok(w.podnet(&["sandbox", "add", "web-1", "--port", "8080:80"])).stdout.clone();
    assert!(o.starts_with("ID "), "{o}");
    assert!(o.contains("web-1") && o.contains("10.10.1.2,fd00:10:0:1::2") && o.contains("tcp 8080->80"), "{o}");
    assert_eq!(w.pod_pins(), ["pn-n1-web-1"]);
    // Same spec again: idempotent.
    ok(w.podnet(&["sandbox", "add", "web-1", "--port", "8080:80"]));
    let l = ok(w.podnet(&["sandbox", "list"])).stdout.clone();
    assert_eq!(l.lines().count(), 2, "{l}");
    assert_eq!(ok(w.podnet(&["sandbox", "check", "web-1"])).stdout, "web-1: ok\n");

    // Bad input: an id that cannot be a file name. Nothing changes.
    let o = w.podnet(&["sandbox", "add", "../etc"]);
    bad(&o, 2, "invalid_argument");
    assert!(o.stderr.contains("sandbox id"), "{o:?}");
    assert_eq!(sandbox_ids(&w), ["web-1"]);
    assert_eq!(w.pod_pins(), ["pn-n1-web-1"]);

    // A broken sandbox: check reports it and exits 3.
    let sb = ok(w.podnet(&["sandbox", "list", "--json"])).json();
    let host_if = sb[0]["host_ifname"].as_str().unwrap().to_string();
    w.delete_link(&host_if);
    let o = w.podnet(&["sandbox", "check", "web-1"]);
    assert_eq!(o.code, 3, "{o:?}");
    assert!(o.stdout.contains(&format!("host veth {host_if} is missing")), "{o:?}");
    let j = w.podnet(&["sandbox", "check", "web-1", "--json"]).json();
    assert_eq!(j["ok"], false);
    // Unknown sandbox: not found.
    bad(&w.podnet(&["sandbox", "check", "nope"]), 1, "not_found");

    let o = ok(w.podnet(&["sandbox", "del", "web-1"]));
    assert!(o.stdout.is_empty(), "delete prints nothing: {o:?}");
    assert!(sandbox_ids(&w).is_empty());
    assert!(w.pod_pins().is_empty());
    // Idempotent.
    ok(w.podnet(&["sandbox", "del", "web-1"]));
}

#[test]
fn peer_add_list_sync_del() {
    let w = World::new("peer");
    ok(w.init());
    let o =
        ok(w.podnet(&["peer", "add", "n2", "--underlay", "10.200.0.2", "--pod-cidr", "10.10.2.0/24"])).stdout.clone();
    assert!(o.contains("n2") && o.contains("10.200.0.2") && o.contains("overlay"), "{o}");
    let l = ok(w.podnet(&["peer", "list", "--json"])).json();
    assert_eq!(l[0]["paths"][0]["path"], "overlay");
    let s = ok(w.podnet(&["node", "status", "--json"])).json();
    assert_eq!(s["peers"][0]["name"], "n2");

    // Bad input: a peer whose pod CIDR overlaps this node's. Refused, nothing changes.
    let o = w.podnet(&["peer", "add", "n3", "--underlay", "10.200.0.3", "--pod-cidr", "10.10.1.0/24"]);
    bad(&o, 1, "conflict");
    assert!(o.stderr.contains("overlaps"), "{o:?}");
    bad(
        &w.podnet(&["peer", "add", "n3", "--underlay", "not-an-ip", "--pod-cidr", "10.10.3.0/24"]),
        2,
        "invalid_argument",
    );
    assert_eq!(peer_names(&w), ["n2"]);

    // Sync from stdin: n2 goes, n3 and n4 come.
    let peers = r#"[{"name":"n3","underlay_ip":"10.200.0.3","pod_cidrs":["10.10.3.0/24"],"vtep_mac":null},
                    {"name":"n4","underlay_ip":"10.200.0.4","pod_cidrs":["10.10.4.0/24"],"vtep_mac":[14,0,0,0,0,4]}]"#;
    let r = ok(w.podnet_stdin(&["peer", "sync", "--file", "-", "--json"], Some(peers))).json();
    assert_eq!(r["peers"], 2);
    assert_eq!(peer_names(&w), ["n3", "n4"]);
    // Bad input: not a peer list. Nothing changes.
    let o = w.podnet_stdin(&["peer", "sync", "--file", "-"], Some(r#"{"name":"n5"}"#));
    bad(&o, 2, "invalid_argument");
    assert_eq!(peer_names(&w), ["n3", "n4"]);

    let o = ok(w.podnet(&["peer", "del", "n3"]));
    assert!(o.stdout.is_empty());
    assert_eq!(peer_names(&w), ["n4"]);
    ok(w.podnet_stdin(&["peer", "sync", "--file", "-"], Some("[]")));
    assert!(peer_names(&w).is_empty());
}

/// The node's live ClusterIPs in the kernel, as nft lists them (the oracle).
fn cluster_ips(w: &World) -> String {
    let o = Command::new("nsenter")
        .arg(format!("--net={}", w.node_ns.display()))
        .args(["nft", "list", "set", "inet", "podnet-services", "clusterips4"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// The node's service names as `podnet service list --json` shows them (every process sees
/// the same set: it is kept in the node's state).
fn service_names(w: &World) -> Vec<String> {
    let v = ok(w.podnet(&["service", "list", "--json"])).json();
    v.as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap().to_string()).collect()
}

#[test]
fn service_add_list_sync_del() {
    let w = World::new("svc");
    ok(w.init());
    let web = ["--cluster-ip", "10.96.0.10", "--port", "80:8080:30080", "--endpoint", "10.10.1.5,local"];
    let r = ok(w.podnet(&[&["service", "add", "default/web", "--json"][..], &web[..]].concat())).json();
    assert_eq!(r["services"], 1);
    assert_eq!(service_names(&w), ["default/web"]);
    assert!(cluster_ips(&w).contains("10.96.0.10"), "{}", cluster_ips(&w));
    let o = ok(w.podnet(&[
        "service",
        "add",
        "default/dns",
        "--cluster-ip",
        "10.96.0.53",
        "--port",
        "53:53/udp",
        "--endpoint",
        "10.10.1.6",
    ]));
    assert!(o.stdout.contains("default/dns") && o.stdout.contains("53:53/udp"), "{o:?}");
    assert!(cluster_ips(&w).contains("10.96.0.53") && cluster_ips(&w).contains("10.96.0.10"), "{}", cluster_ips(&w));
    let l = ok(w.podnet(&["service", "list", "--json"])).json();
    assert_eq!(l[0]["name"], "default/dns");
    assert_eq!(l[0]["endpoints"][0]["local"], false);
    assert_eq!(l[1]["endpoints"][0]["local"], true);
    let text = ok(w.podnet(&["service", "list"])).stdout.clone();
    assert!(text.contains("default/web") && text.contains("80:8080:30080/tcp"), "{text}");

    // Bad input changes nothing: outside the service CIDR, a clash, a malformed port.
    let o = w.podnet(&["service", "add", "x/out", "--cluster-ip", "10.97.0.1", "--port", "80:80"]);
    bad(&o, 2, "invalid_argument");
    let o = w.podnet(&["service", "add", "x/clash", "--cluster-ip", "10.96.0.10", "--port", "80:81"]);
    bad(&o, 1, "conflict");
    bad(&w.podnet(&["service", "add", "x/p", "--cluster-ip", "10.96.0.9", "--port", "80"]), 2, "invalid_argument");
    assert_eq!(service_names(&w), ["default/dns", "default/web"]);

    // del changes the node's set and the kernel (twice: idempotent); sync programs exactly the
    // list given, from stdin or a file.
    ok(w.podnet(&["service", "del", "default/dns"]));
    ok(w.podnet(&["service", "del", "default/dns"]));
    assert_eq!(service_names(&w), ["default/web"]);
    assert!(!cluster_ips(&w).contains("10.96.0.53"), "{}", cluster_ips(&w));
    let saved = ok(w.podnet(&["service", "list", "--json"])).stdout.clone();
    let r = ok(w.podnet_stdin(&["service", "sync", "--file", "-", "--json"], Some("[]"))).json();
    assert_eq!(r["services"], 0);
    assert!(!cluster_ips(&w).contains("10.96.0.10"), "{}", cluster_ips(&w));
    bad(&w.podnet_stdin(&["service", "sync", "--file", "-"], Some(r#"{"name":"x"}"#)), 2, "invalid_argument");
    let file = w.state_dir().with_file_name("services.json");
    std::fs::write(&file, saved).unwrap();
    let r = ok(w.podnet(&["service", "sync", "--file", &file.display().to_string(), "--json"])).json();
    assert_eq!(r["names"][0], "default/web");
    assert!(cluster_ips(&w).contains("10.96.0.10"), "{}", cluster_ips(&w));
}

#[test]
fn port_add_list_del() {
    let w = World::new("port");
    w.init_with_sandboxes(&["a", "b"]);
    let o = ok(w.podnet(&["port", "add", "a", "8080:80", "10.200.0.1:5353:53/udp"])).stdout.clone();
    assert!(o.contains("*:8080") && o.contains("10.10.1.2:80") && o.contains("10.200.0.1:5353"), "{o}");
    assert_eq!(port_rows(&w), [("a".to_string(), 5353), ("a".to_string(), 8080)]);

    // Bad input: host port held by another sandbox (conflict), and a malformed spec. Nothing changes.
    let o = w.podnet(&["port", "add", "b", "8080:81"]);
    bad(&o, 1, "conflict");
    assert!(o.stderr.contains("already mapped by sandbox a"), "{o:?}");
    let o = w.podnet(&["port", "add", "b", "80"]);
    bad(&o, 2, "invalid_argument");
    assert!(o.stderr.contains("HOSTPORT:CONTAINERPORT"), "{o:?}");
    assert_eq!(port_rows(&w).len(), 2);

    let o = ok(w.podnet(&["port", "del", "a", "10.200.0.1:5353:53/udp"]));
    assert!(o.stdout.is_empty());
    assert_eq!(port_rows(&w), [("a".to_string(), 8080)]);
    let t = ok(w.podnet(&["port", "list"])).stdout.clone();
    assert!(t.starts_with("SANDBOX") && t.contains("tcp"), "{t}");
}

#[test]
fn gc_live_and_orphans() {
    let w = World::new("gc");
    w.init_with_sandboxes(&["a", "b"]);
    // Bad input: without saying what is live, gc would delete everything; it refuses.
    let o = w.podnet(&["gc"]);
    bad(&o, 2, "invalid_argument");
    assert!(o.stderr.contains("--live"), "{o:?}");
    assert_eq!(sandbox_ids(&w), ["a", "b"]);

    let r = ok(w.podnet(&["gc", "--orphans-only", "--json"])).json();
    assert!(r["sandboxes"].as_array().unwrap().is_empty());
    let o = ok(w.podnet(&["gc", "--live", "a"])).stdout.clone();
    assert!(o.contains("sandbox") && o.contains('b'), "{o}");
    assert_eq!(sandbox_ids(&w), ["a"]);
    assert_eq!(w.pod_pins(), ["pn-n1-a"]);
    let r = ok(w.podnet_stdin(&["gc", "--live-file", "-", "--json"], Some("# none live\n"))).json();
    assert_eq!(r["sandboxes"][0], "a");
    assert!(sandbox_ids(&w).is_empty());
}

#[test]
fn usage_errors_are_one_line_with_exit_2() {
    for args in [&["sandbox", "add"][..], &["frobnicate"], &["port", "add", "x"], &["node", "init", "--mtu", "big"]] {
        let o = run(args, None);
        bad(&o, 2, "invalid_argument");
        assert!(o.stderr.contains("usage: podnet") || o.stderr.contains("see --help"), "{o:?}");
    }
    // Help is asked for: stdout, exit 0. `plan` and `bench` stay wired.
    let h = ok(run(&["--help"], None)).stdout.clone();
    for cmd in ["demo", "node", "sandbox", "peer", "port", "gc", "plan", "bench"] {
        assert!(h.contains(cmd), "{cmd} in --help: {h}");
    }
    ok(run(&["plan", "--cluster-cidr", "10.0.0.0/16", "--json"], None));
    ok(run(&["bench", "--help"], None));
}

/// Nothing of a demo is left on the machine.
#[track_caller]
fn no_demo_left() {
    let pins: Vec<String> = std::fs::read_dir("/run/netns")
        .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().to_string()).collect())
        .unwrap_or_default();
    assert!(!pins.iter().any(|p| p.starts_with("podnet-demo-") || p.starts_with("pn-demo-")), "{pins:?}");
    assert!(!Path::new("/run/podnet/demo-node1").exists());
    assert!(!Path::new("/run/podnet/demo-cleanup.json").exists());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains("podnet-demo-") && !mounts.contains("/pn-demo-"), "{mounts}");
}

/// One test runs every demo, one after another: two demos at once would find each other's
/// namespaces and refuse to start.
#[test]
fn demo_runs_all_checks_and_leaves_nothing() {
    // A run that fails half-way (after the pods exist) removes everything too.
    let o = run(&["demo", "--fail-after", "5"], None);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.lines().last().unwrap().starts_with("error (internal): "), "{o:?}");
    assert!(o.stdout.is_empty(), "{o:?}");
    no_demo_left();

    let o = run(&["demo", "--json"], None);
    assert_eq!(o.code, 0, "demo failed: {o:?}");
    let v = o.json();
    assert_eq!(v["ok"], true, "{v}");
    let checks = v["checks"].as_array().unwrap();
    assert!(checks.len() >= 10, "{v}");
    for c in checks {
        assert_eq!(c["ok"], true, "{c}");
    }
    assert_eq!(v["teardown"]["nothing_left"], true, "{v}");
    // Progress went to stderr, the data to stdout.
    assert!(o.stderr.contains("[1/"), "{o:?}");
    no_demo_left();

    // --keep leaves it up (a second demo refuses to start), --cleanup removes it.
    let o = run(&["demo", "--keep"], None);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stdout.contains("podnet demo --cleanup"), "{o:?}");
    assert!(Path::new("/run/netns/podnet-demo-node1").exists());
    bad(&run(&["demo"], None), 1, "already_exists");
    let o = run(&["demo", "--cleanup"], None);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stdout.contains("nothing left"), "{o:?}");
    no_demo_left();
}
