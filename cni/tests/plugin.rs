//! The built `podnet-cni` exec'd the way a runtime execs it: CNI_* variables, the network config
//! on stdin, the result or error on stdout; run inside a throwaway node netns (nsenter), with pod
//! netns made by the test as the runtime would. Needs root.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use podnet_world::{echo_peer_server, in_ns, sa, tcp_ask, veth, World};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_podnet-cni");
const VERSIONS: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// One node of the test world and a way to call the plugin on it.
struct Cni {
    w: World,
    node_ns: PathBuf,
    name: String,
}

/// What one call printed and how it exited.
#[derive(Debug)]
struct Out {
    ok: bool,
    json: Value,
}

impl Out {
    fn code(&self) -> u64 {
        assert!(!self.ok, "expected an error, got success: {}", self.json);
        self.json["code"].as_u64().unwrap_or_else(|| panic!("error without code: {}", self.json))
    }
}

impl Cni {
    fn new(tag: &str) -> Cni {
        let mut w = World::new(tag);
        let node_ns = w.netns("node");
        Cni { w, node_ns, name: format!("cni{tag}") }
    }

    fn pod(&mut self, name: &str) -> PathBuf {
        self.w.netns(name)
    }

    /// The base config: podnet's node settings plus `extra` keys.
    fn conf(&self, version: &str, extra: Value) -> Value {
        let mut c = json!({
            "cniVersion": version, "name": self.name, "type": "podnet",
            "podCIDRs": ["10.66.0.0/24"], "mode": "bridge", "bridge": "pnbr0", "mtu": 1400,
            "stateDir": self.w.state_dir(&self.name), "netnsDir": self.w.netns_dir(),
        });
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            c[k] = v;
        }
        c
    }

    fn call(&self, cmd: &str, cid: &str, netns: Option<&Path>, ifname: &str, args: &str, conf: &Value) -> Out {
        self.call_raw(cmd, &[("CNI_CONTAINERID", cid), ("CNI_IFNAME", ifname), ("CNI_ARGS", args)], netns, conf)
    }

    fn call_raw(&self, cmd: &str, vars: &[(&str, &str)], netns: Option<&Path>, conf: &Value) -> Out {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", self.node_ns.display()))
            .arg(BIN)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("CNI_COMMAND", cmd)
            .env("CNI_PATH", "/nonexistent")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in vars {
            c.env(k, v);
        }
        if let Some(n) = netns {
            c.env("CNI_NETNS", n);
        }
        let mut child = c.spawn().expect("exec podnet-cni");
        child.stdin.take().unwrap().write_all(conf.to_string().as_bytes()).unwrap();
        let o = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&o.stdout).to_string();
        let json = if text.trim().is_empty() { Value::Null } else { serde_json::from_str(&text).expect(&text) };
        if !o.status.success() {
            assert_eq!(o.status.code(), Some(1), "stdout {text}, stderr {}", String::from_utf8_lossy(&o.stderr));
            assert!(json["msg"].is_string(), "error without msg: {text}");
        }
        Out { ok: o.status.success(), json }
    }

    fn add(&self, cid: &str, netns: &Path, conf: &Value) -> Value {
        let o = self.call("ADD", cid, Some(netns), "eth0", "", conf);
        assert!(o.ok, "ADD {cid}: {}", o.json);
        o.json
    }

    fn node(&self) -> podnet::blocking::Node {
        let cfg = podnet::NodeConfig::load(&self.w.state_dir(&self.name)).unwrap();
        podnet::blocking::Node::open(cfg.netns(&self.node_ns)).unwrap()
    }

    /// DEL as a runtime does it: the pod is cut off when DEL returns (its interface, if the
    /// netns is still there, has lost its carrier), then the runtime removes the netns and the
    /// kernel destroys the veth with it.
    fn del_and_drop_netns(&self, cid: &str, ns: &Path, conf: &Value) {
        let o = self.call("DEL", cid, Some(ns), "eth0", "", conf);
        assert!(o.ok, "DEL {cid}: {}", o.json);
        let link = in_ns(ns, &["ip", "-br", "link", "show", "eth0"]);
        assert!(link.is_empty() || link.contains("NO-CARRIER"), "{cid} not cut off: {link}");
        podnet::internals::netns::remove(ns).unwrap();
    }

    /// The node's podnet veths once the kernel has finished destroying removed netns (batched,
    /// asynchronous: usually within ms).
    fn host_links_settled(&self) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let l = self.host_links();
            if !l.contains("pn") || std::time::Instant::now() > deadline {
                return l;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    fn host_links(&self) -> String {
        in_ns(&self.node_ns, &["ip", "-br", "link", "show", "type", "veth"])
    }
}

fn pod_ip(result: &Value) -> IpAddr {
    let a = result["ips"][0]["address"].as_str().unwrap();
    a.split('/').next().unwrap().parse().unwrap()
}

#[test]
fn every_verb_in_every_version() {
    let mut t = Cni::new("versions");
    for (i, v) in VERSIONS.iter().enumerate() {
        let ns = t.pod(&format!("p{i}"));
        let cid = format!("c{i}");
        let conf = t.conf(v, json!({}));
        let res = t.add(&cid, &ns, &conf);
        assert_eq!(res["cniVersion"], *v);
        assert_eq!(res["interfaces"][1]["name"], "eth0");
        assert_eq!(res["interfaces"][1]["sandbox"], ns.display().to_string());
        assert_eq!(res["ips"][0]["interface"], 1);
        assert_eq!(res["ips"][0]["gateway"], "10.66.0.1");
        assert_eq!(res["routes"][0]["dst"], "0.0.0.0/0");
        assert_eq!(res["ips"][0].get("version").is_some(), *v < "1.0.0", "{v}: {res}");
        assert_eq!(res["interfaces"][1].get("mtu").is_some(), *v == "1.1.0", "{v}: {res}");
        // The pod really has it.
        let addr = res["ips"][0]["address"].as_str().unwrap();
        assert!(in_ns(&ns, &["ip", "-br", "addr", "show", "eth0"]).contains(addr));

        let check = t.call("CHECK", &cid, Some(&ns), "eth0", "", &t.conf(v, json!({"prevResult": res})));
        let status = t.call("STATUS", "", None, "", "", &conf);
        let keep = json!({"cni.dev/valid-attachments": [{"containerID": cid, "ifname": "eth0"}]});
        let gc = t.call("GC", "", None, "", "", &t.conf(v, keep));
        if *v >= "0.4.0" {
            assert!(check.ok, "CHECK {v}: {}", check.json);
        } else {
            assert_eq!(check.code(), 1, "CHECK is not in {v}");
        }
        if *v == "1.1.0" {
            assert!(status.ok, "STATUS: {}", status.json);
            assert!(gc.ok, "GC: {}", gc.json);
        } else {
            assert_eq!(status.code(), 1, "STATUS is not in {v}");
            assert_eq!(gc.code(), 1, "GC is not in {v}");
        }
        assert_eq!(gc.json.get("cniVersion").and_then(Value::as_str).unwrap_or(v), *v);
        let ver = t.call("VERSION", "", None, "", "", &json!({"cniVersion": v}));
        assert!(ver.ok);
        assert!(ver.json["supportedVersions"].as_array().unwrap().iter().any(|s| s == v));

        // GC kept the valid attachment: still there.
        assert!(t.node().get_sandbox(&cid).is_ok(), "{v}: GC removed a valid attachment");
        let del = t.call("DEL", &cid, Some(&ns), "eth0", "", &t.conf(v, json!({"prevResult": res})));
        assert!(del.ok, "DEL {v}: {}", del.json);
        assert_eq!(del.json, Value::Null, "DEL prints nothing");
        let again = t.call("DEL", &cid, Some(&ns), "eth0", "", &conf);
        assert!(again.ok, "second DEL {v}: {}", again.json);
        let link = in_ns(&ns, &["ip", "-br", "link", "show", "eth0"]);
        assert!(link.contains("NO-CARRIER"), "{v}: the pod is cut off at once: {link}");
        podnet::internals::netns::remove(&ns).unwrap();
    }
    assert!(t.node().list_sandboxes().unwrap().is_empty());
    let links = t.host_links_settled();
    assert!(!links.contains("pn"), "{links}");
}

#[test]
fn labels_idempotency_and_missing_things() {
    let mut t = Cni::new("idem");
    let ns = t.pod("p");
    let conf = t.conf("1.0.0", json!({}));
    let args =
        "IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-0;K8S_POD_UID=1234-ab;K8S_POD_INFRA_CONTAINER_ID=c1";
    let first = t.call("ADD", "c1", Some(&ns), "eth0", args, &conf);
    assert!(first.ok, "{}", first.json);
    // The same ADD again returns the same attachment.
    let second = t.call("ADD", "c1", Some(&ns), "eth0", args, &conf);
    assert!(second.ok, "{}", second.json);
    assert_eq!(first.json, second.json);
    let sb = t.node().get_sandbox("c1").unwrap();
    assert_eq!(sb.labels["k8s.pod.namespace"], "shop");
    assert_eq!(sb.labels["k8s.pod.name"], "web-0");
    assert_eq!(sb.labels["k8s.pod.uid"], "1234-ab");
    assert_eq!(sb.labels["k8s.pod.infra_container_id"], "c1");
    assert_eq!(sb.labels["cni.network"], t.name);
    assert!(!sb.owns_netns);

    // A runtime that keeps the netns and attaches a new container to it with the same
    // interface name, right after DEL: the deleted pod's interface (cut off, draining) gives way.
    let keep = t.pod("kept");
    t.add("k1", &keep, &conf);
    assert!(t.call("DEL", "k1", Some(&keep), "eth0", "", &conf).ok);
    t.add("k2", &keep, &conf);
    assert!(in_ns(&keep, &["ip", "-br", "link", "show", "eth0"]).contains("UP"));
    assert!(t.call("DEL", "k2", Some(&keep), "eth0", "", &conf).ok);
    podnet::internals::netns::remove(&keep).unwrap();

    // A second interface of the same container: its own sandbox (hashed id), its own address.
    // It asks for its MAC (capability `mac`): the pod's interface has it, and so does the result.
    let with_mac = t.conf("1.0.0", json!({"runtimeConfig": {"mac": "02:aa:bb:cc:dd:01"}}));
    let net1 = t.call("ADD", "c1", Some(&ns), "net1", args, &with_mac);
    assert!(net1.ok, "{}", net1.json);
    assert_eq!(net1.json["interfaces"][1]["mac"], "02:aa:bb:cc:dd:01", "{}", net1.json);
    assert!(in_ns(&ns, &["ip", "-br", "link", "show", "net1"]).contains("02:aa:bb:cc:dd:01"));
    assert_ne!(pod_ip(&net1.json), pod_ip(&first.json));
    let ids: Vec<String> = t.node().list_sandboxes().unwrap().into_iter().map(|s| s.id).collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(t.call("DEL", "c1", Some(&ns), "net1", "", &conf).ok);

    // DEL after the runtime already removed the netns: succeeds and frees everything.
    podnet::internals::netns::remove(&ns).unwrap();
    let del = t.call("DEL", "c1", Some(&ns), "eth0", "", &conf);
    assert!(del.ok, "DEL without netns: {}", del.json);
    assert!(t.call("DEL", "c1", None, "eth0", "", &conf).ok, "DEL without CNI_NETNS");
    assert!(t.node().list_sandboxes().unwrap().is_empty());
    let links = t.host_links_settled();
    assert!(!links.contains("pn"), "{links}");

    // DEL for a network never set up (no state at all) and for an unknown container.
    let fresh = t.conf("1.0.0", json!({"name": "never", "stateDir": t.w.dir.join("never")}));
    assert!(t.call("DEL", "zz", None, "eth0", "", &fresh).ok);
    assert!(!t.w.dir.join("never").exists(), "DEL set the node up");
    assert!(t.call("DEL", "unknown", None, "eth0", "", &conf).ok);

    // The addresses came back: a pod may ask for the first one again (capability `ips`).
    let ns2 = t.pod("p2");
    let want = first.json["ips"][0]["address"].clone();
    let r = t.add("c2", &ns2, &t.conf("1.0.0", json!({"runtimeConfig": {"ips": [want]}})));
    assert_eq!(pod_ip(&r), pod_ip(&first.json));
    assert!(t.call("DEL", "c2", Some(&ns2), "eth0", "", &conf).ok);
}

#[test]
fn bad_input_gets_the_spec_codes() {
    let mut t = Cni::new("bad");
    let ns = t.pod("p");
    let ns2 = t.pod("p2");
    let conf = t.conf("1.1.0", json!({}));
    let c = |o: Out| o.code();
    // Environment.
    assert_eq!(c(t.call_raw("ADD", &[("CNI_IFNAME", "eth0")], Some(&ns), &conf)), 4);
    assert_eq!(c(t.call("ADD", "c/1", Some(&ns), "eth0", "", &conf)), 4);
    assert_eq!(c(t.call("ADD", "c1", Some(&ns), "way-too-long-ifname", "", &conf)), 4);
    assert_eq!(c(t.call("ADD", "c1", None, "eth0", "", &conf)), 4);
    assert_eq!(c(t.call("ADD", "c1", Some(&ns), "eth0", "NOEQUALS", &conf)), 4);
    assert_eq!(c(t.call("FROB", "c1", Some(&ns), "eth0", "", &conf)), 4);
    // Config.
    let o = t.call("ADD", "c1", Some(&ns), "eth0", "", &t.conf("0.2.0", json!({})));
    assert_eq!((o.code(), o.json["cniVersion"].as_str()), (1, Some("1.1.0")));
    assert_eq!(c(t.call("ADD", "c1", Some(&ns), "eth0", "", &json!("not an object"))), 7);
    assert_eq!(
        c(t.call("ADD", "c1", Some(&ns), "eth0", "", &t.conf("1.1.0", json!({"podCIDRs": ["10.1.0.1/24"]})))),
        7
    );
    let dhcp = t.conf("0.4.0", json!({"ipam": {"type": "dhcp"}}));
    let o = t.call("ADD", "c1", Some(&ns), "eth0", "", &dhcp);
    assert_eq!((o.code(), o.json["cniVersion"].as_str()), (7, Some("0.4.0")), "both podCIDRs and ipam");
    let mac = t.conf("1.1.0", json!({"runtimeConfig": {"mac": "03:00:00:00:00:01"}}));
    assert_eq!(c(t.call("ADD", "c1", Some(&ns), "eth0", "", &mac)), 7, "a multicast MAC");
    // Runtime state.
    assert_eq!(c(t.call("ADD", "c1", Some(&t.w.dir.join("no-such-netns")), "eth0", "", &conf)), 3);
    assert_eq!(c(t.call("CHECK", "c1", Some(&ns), "eth0", "", &t.conf("1.1.0", json!({"prevResult": {}})))), 3);
    let port =
        |p: u16| t.conf("1.1.0", json!({"runtimeConfig": {"portMappings": [{"hostPort": p, "containerPort": 80}]}}));
    let res = t.add("c1", &ns, &port(30001));
    assert_eq!(c(t.call("ADD", "c2", Some(&ns2), "eth0", "", &port(30001))), 102, "host port taken");
    assert_eq!(c(t.call("CHECK", "c1", Some(&ns), "eth0", "", &conf)), 7, "CHECK without prevResult");
    let mut wrong = res.clone();
    wrong["ips"][0]["address"] = json!("10.66.0.99/24");
    assert_eq!(c(t.call("CHECK", "c1", Some(&ns), "eth0", "", &t.conf("1.1.0", json!({"prevResult": wrong})))), 105);
    // The kernel drifts from the record: CHECK says what.
    in_ns(&ns, &["ip", "link", "set", "eth0", "down"]);
    let o = t.call("CHECK", "c1", Some(&ns), "eth0", "", &t.conf("1.1.0", json!({"prevResult": res})));
    assert_eq!(o.code(), 105);
    assert!(o.json["msg"].as_str().unwrap().contains("down"), "{}", o.json);
    assert!(t.call("DEL", "c1", Some(&ns), "eth0", "", &conf).ok);
    // GC needs its key.
    assert_eq!(c(t.call("GC", "", None, "", "", &conf)), 7);
    // An eth0 podnet did not make is already in the container: ADD must fail and leave it.
    in_ns(&ns2, &["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "other0"]);
    let o = t.call("ADD", "c3", Some(&ns2), "eth0", "", &conf);
    assert_eq!(o.code(), 100, "{}", o.json);
    assert!(in_ns(&ns2, &["ip", "-br", "link"]).contains("other0"));
    assert!(t.node().list_sandboxes().unwrap().is_empty());
}

#[test]
fn two_pods_talk_and_a_host_port_answers_from_another_netns() {
    let mut t = Cni::new("traffic");
    let (a, b) = (t.pod("a"), t.pod("b"));
    let client = t.pod("client");
    veth(&t.node_ns, "tocl", &client, "eth0").unwrap();
    in_ns(&t.node_ns, &["ip", "addr", "add", "192.168.77.1/24", "dev", "tocl"]);
    in_ns(&client, &["ip", "addr", "add", "192.168.77.2/24", "dev", "eth0"]);
    in_ns(&client, &["ip", "link", "set", "lo", "up"]);
    let conf = t.conf("1.0.0", json!({}));
    let ra = t.add("ca", &a, &conf);
    let hp = json!({"capabilities": {"portMappings": true}, "runtimeConfig": {"portMappings": [
        {"hostPort": 30080, "containerPort": 8080, "protocol": "tcp", "hostIP": "192.168.77.1"}]}});
    let rb = t.add("cb", &b, &t.conf("1.0.0", hp.clone()));
    let (ipa, ipb) = (pod_ip(&ra), pod_ip(&rb));
    let srv = echo_peer_server(&b, sa(ipb, 8080), 2);
    assert_eq!(tcp_ask(&a, sa(ipb, 8080)).unwrap(), ipa.to_string(), "pod to pod");
    let seen = tcp_ask(&client, sa("192.168.77.1".parse().unwrap(), 30080)).unwrap();
    assert_eq!(seen, "192.168.77.2", "hostPort from another netns keeps the client's address");
    srv.join().unwrap();
    let listed = t.node().list_ports().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].mapping.host_ip, Some("192.168.77.1".parse().unwrap()));
    t.del_and_drop_netns("cb", &b, &t.conf("1.0.0", hp));
    t.del_and_drop_netns("ca", &a, &conf);
    assert!(t.node().list_ports().unwrap().is_empty());
    assert!(tcp_ask(&client, sa("192.168.77.1".parse().unwrap(), 30080)).is_err());
    let links = t.host_links_settled();
    assert!(!links.contains("pn"), "{links}");
}

#[test]
fn gc_keeps_valid_attachments_and_other_clients_sandboxes() {
    let mut t = Cni::new("gc");
    let conf = t.conf("1.1.0", json!({}));
    let pods: Vec<PathBuf> = (0..3).map(|i| t.pod(&format!("p{i}"))).collect();
    for (i, ns) in pods.iter().enumerate() {
        t.add(&format!("c{i}"), ns, &conf);
    }
    // A sandbox another client (the operator CLI, an in-process runtime) made on the same node.
    let node = t.node();
    node.create_sandbox(&podnet::SandboxSpec::new("other")).unwrap();
    drop(node);
    let keep = json!({"cni.dev/valid-attachments": [{"containerID": "c1", "ifname": "eth0"}]});
    let o = t.call("GC", "", None, "", "", &t.conf("1.1.0", keep));
    assert!(o.ok, "{}", o.json);
    let mut ids: Vec<String> = t.node().list_sandboxes().unwrap().into_iter().map(|s| s.id).collect();
    ids.sort();
    assert_eq!(ids, ["c1", "other"]);
    for ns in [&pods[0], &pods[2]] {
        assert!(in_ns(ns, &["ip", "-br", "link"]).lines().all(|l| !l.starts_with("eth0")));
    }
    // The older key name libcni also sends.
    let none = json!({"cni.dev/attachments": []});
    assert!(t.call("GC", "", None, "", "", &t.conf("1.1.0", none)).ok);
    let ids: Vec<String> = t.node().list_sandboxes().unwrap().into_iter().map(|s| s.id).collect();
    assert_eq!(ids, ["other"]);
    t.node().delete_sandbox("other").unwrap();
}

#[test]
fn status_is_not_ready_until_the_node_can_take_a_pod() {
    let mut t = Cni::new("status");
    // A /30 has one pod address besides the gateway.
    let small = t.conf("1.1.0", json!({"podCIDRs": ["10.66.1.0/30"]}));
    assert!(t.call("STATUS", "", None, "", "", &small).ok);
    let ns = t.pod("p");
    t.add("c1", &ns, &small);
    let o = t.call("STATUS", "", None, "", "", &small);
    assert_eq!(o.code(), 50);
    assert!(o.json["msg"].as_str().unwrap().contains("exhausted"), "{}", o.json);
    assert!(t.call("DEL", "c1", Some(&ns), "eth0", "", &small).ok);
    assert!(t.call("STATUS", "", None, "", "", &small).ok, "ready again");
    // A cluster agent (any client of the node) holds the node not ready: STATUS says so and ADD
    // is "try again later" (11), until it opens the gate.
    let agent = t.node();
    agent.inner().set_ready(false).unwrap();
    let o = t.call("STATUS", "", None, "", "", &small);
    assert_eq!(o.code(), 50, "{}", o.json);
    assert!(o.json["msg"].as_str().unwrap().contains("not ready"), "{}", o.json);
    let o = t.call("ADD", "c2", Some(&ns), "eth0", "", &small);
    assert_eq!(o.code(), 11, "{}", o.json);
    assert!(t.node().list_sandboxes().unwrap().is_empty());
    agent.inner().set_ready(true).unwrap();
    t.add("c2", &ns, &small);
    assert!(t.call("DEL", "c2", Some(&ns), "eth0", "", &small).ok);
    drop(agent);
    // A state dir that cannot be one (a file is in the way).
    let blocked = t.w.dir.join("blocked");
    std::fs::write(&blocked, b"").unwrap();
    let bad = t.conf("1.1.0", json!({"name": "blk", "stateDir": blocked.join("x")}));
    assert_eq!(t.call("STATUS", "", None, "", "", &bad).code(), 50);
}

#[test]
fn concurrent_adds_and_dels_from_many_processes() {
    let mut t = Cni::new("conc");
    let pods: Vec<PathBuf> = (0..8).map(|i| t.pod(&format!("p{i}"))).collect();
    let conf = |i: usize| {
        t.conf("1.1.0", json!({"runtimeConfig": {"portMappings": [{"hostPort": 31000 + i, "containerPort": 80}]}}))
    };
    std::thread::scope(|s| {
        for (i, ns) in pods.iter().enumerate() {
            let (t, c) = (&t, conf(i));
            s.spawn(move || t.add(&format!("c{i}"), ns, &c));
        }
    });
    let node = t.node();
    assert_eq!(node.list_ports().unwrap().len(), 8);
    for i in 0..8 {
        let rep = node.check_sandbox(&format!("c{i}")).unwrap();
        assert!(rep.is_ok(), "{rep:?}");
    }
    drop(node);
    std::thread::scope(|s| {
        for (i, ns) in pods.iter().enumerate() {
            let (t, c) = (&t, conf(i));
            s.spawn(move || assert!(t.call("DEL", &format!("c{i}"), Some(ns), "eth0", "", &c).ok));
        }
    });
    assert!(t.node().list_sandboxes().unwrap().is_empty());
    assert!(t.node().list_ports().unwrap().is_empty());
}

#[test]
fn host_local_ipam_block_routed_mode_and_dual_stack() {
    let mut t = Cni::new("ipam");
    let (a, b) = (t.pod("a"), t.pod("b"));
    let mut conf = t.conf(
        "0.4.0",
        json!({"mode": "routed", "ipam": {"type": "host-local",
            "ranges": [[{"subnet": "10.67.0.0/24", "rangeStart": "10.67.0.100", "rangeEnd": "10.67.0.120"}],
                       [{"subnet": "fd00:67::/64"}]],
            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]}}),
    );
    conf.as_object_mut().unwrap().remove("podCIDRs");
    let ra = t.add("ca", &a, &conf);
    let rb = t.add("cb", &b, &conf);
    assert_eq!(ra["ips"].as_array().unwrap().len(), 2, "{ra}");
    assert_eq!(ra["ips"][1]["version"], "6");
    assert_eq!(ra["ips"][0]["gateway"], "169.254.1.1", "routed mode's link-local gateway");
    let (ipa, ipb) = (pod_ip(&ra), pod_ip(&rb));
    for ip in [ipa, ipb] {
        let last = match ip {
            IpAddr::V4(v) => v.octets()[3],
            IpAddr::V6(_) => panic!("{ip}"),
        };
        assert!((100..=120).contains(&last), "{ip} outside rangeStart..rangeEnd");
    }
    assert!(ra["ips"][0]["address"].as_str().unwrap().ends_with("/32"), "{ra}");
    let v6b: IpAddr = rb["ips"][1]["address"].as_str().unwrap().split('/').next().unwrap().parse().unwrap();
    let srv = echo_peer_server(&b, sa(ipb, 8080), 1);
    assert_eq!(tcp_ask(&a, sa(ipb, 8080)).unwrap(), ipa.to_string(), "routed pod to pod");
    srv.join().unwrap();
    let srv6 = echo_peer_server(&b, sa(v6b, 8080), 1);
    assert!(tcp_ask(&a, sa(v6b, 8080)).is_ok(), "routed pod to pod over IPv6");
    srv6.join().unwrap();
    let mut with_prev = conf.clone();
    with_prev["prevResult"] = ra.clone();
    assert!(t.call("CHECK", "ca", Some(&a), "eth0", "", &with_prev).ok);
    t.del_and_drop_netns("ca", &a, &conf);
    t.del_and_drop_netns("cb", &b, &conf);
    let links = t.host_links_settled();
    assert!(!links.contains("pn"), "{links}");
}

/// Another client opening the node (the CLI, an agent, an in-process runtime) while the plugin
/// adds pods must not touch them. It once did: open's recovery listed the rows still being
/// created, read each again, and took a row whose create had finished in between (ready, no
/// owner) for the leftover of a dead one; 1-3 of 40 pods lost their sandbox and host port.
#[test]
fn another_client_opening_the_node_during_adds_keeps_every_host_port() {
    let mut t = Cni::new("race");
    let pods: Vec<PathBuf> = (0..40).map(|i| t.pod(&format!("p{i}"))).collect();
    let first = t.pod("first");
    let conf = |i: usize| {
        t.conf("1.1.0", json!({"runtimeConfig": {"portMappings": [{"hostPort": 32000 + i, "containerPort": 80}]}}))
    };
    t.add("first", &first, &conf(99));
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                drop(t.node());
            }
        });
        for (i, ns) in pods.iter().enumerate() {
            t.add(&format!("c{i}"), ns, &conf(i));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let node = t.node();
    let ports = node.list_ports().unwrap();
    let lost: Vec<String> =
        (0..pods.len()).map(|i| format!("c{i}")).filter(|id| !ports.iter().any(|p| &p.sandbox == id)).collect();
    assert!(lost.is_empty(), "pods whose host port was dropped: {lost:?}");
}

/// Processes (other than this test's) whose netns is `ns`.
fn processes_in(ns: &Path) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let want = std::fs::metadata(ns).unwrap().ino();
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()))
        .filter(|e| e.file_name().to_string_lossy() != me)
        .filter(|e| std::fs::metadata(e.path().join("ns/net")).is_ok_and(|m| m.ino() == want))
        .map(|e| std::fs::read_to_string(e.path().join("cmdline")).unwrap_or_default().replace('\0', " "))
        .collect()
}

/// A DEL that removed host ports leaves a child holding its nf_tables sockets until nf_tables
/// is quiet (so no close waits for the kernel's deferred free); the host port is gone when DEL
/// returns, and the child is gone soon after.
#[test]
fn del_with_host_ports_leaves_no_process_for_long() {
    let mut t = Cni::new("linger");
    let ns = t.pod("p");
    let conf = t.conf("1.1.0", json!({"runtimeConfig": {"portMappings": [{"hostPort": 31500, "containerPort": 80}]}}));
    t.add("c1", &ns, &conf);
    assert!(t.call("DEL", "c1", Some(&ns), "eth0", "", &conf).ok);
    assert!(t.node().list_ports().unwrap().is_empty());
    let nft = in_ns(&t.node_ns, &["nft", "list", "table", "inet", "podnet"]);
    assert!(!nft.contains("31500"), "{nft}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !processes_in(&t.node_ns).is_empty() {
        assert!(std::time::Instant::now() < deadline, "still there: {:?}", processes_in(&t.node_ns));
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
