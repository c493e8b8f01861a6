//! Two processes reserving addresses in one state dir never hand out the same address (one SQLite
//! transaction per reservation, the address the primary key). Unprivileged.

use std::collections::HashSet;
use std::process::Command;

use podnet::internals::ipam::{Pool, PoolConfig};
use podnet::internals::Store;
use podnet::{PodMode, Sandbox};

const PER_PROCESS: usize = 500;

/// The child: allocates PER_PROCESS addresses and prints them. Run only by the parent test.
#[test]
#[ignore = "child process of two_processes_allocate_distinct_addresses"]
fn ipam_child() {
    let Ok(dir) = std::env::var("PODNET_IPAM_CHILD_DIR") else { return };
    let tag = std::env::var("PODNET_IPAM_CHILD_TAG").unwrap();
    let pools = [Pool::new(&PoolConfig::new("10.40.0.0/20".parse().unwrap())).unwrap()];
    let store = Store::open(dir.as_ref(), &pools).unwrap();
    let mut out = String::new();
    for i in 0..PER_PROCESS {
        let id = format!("{tag}-{i}");
        let sb = store
            .begin_create(&id, "eth0", &pools, &[], &[], |ips| {
                Ok(Sandbox {
                    id: id.clone(),
                    ifname: "eth0".into(),
                    netns_path: "/nonexistent".into(),
                    owns_netns: true,
                    host_ifname: String::new(),
                    mac: String::new(),
                    ips: ips.into_iter().map(|ip| ip.into()).collect(),
                    gateways: vec![],
                    mode: PodMode::Bridge,
                    ports: vec![],
                    labels: Default::default(),
                })
            })
            .unwrap();
        out.push_str(&format!("IP {}\n", sb.ips[0].ip()));
    }
    print!("{out}");
}

#[test]
fn two_processes_allocate_distinct_addresses() {
    let dir = std::env::temp_dir().join(format!("podnet-ipam-procs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // Removes the state dir also when an assertion fails.
    struct Cleanup(std::path::PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _cleanup = Cleanup(dir.clone());
    let exe = std::env::current_exe().unwrap();
    // Start both children before waiting on either, so they really overlap.
    let spawn = |tag: &str| {
        Command::new(&exe)
            .args(["--exact", "ipam_child", "--ignored", "--nocapture", "--test-threads", "1"])
            .env("PODNET_IPAM_CHILD_DIR", &dir)
            .env("PODNET_IPAM_CHILD_TAG", tag)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn("a"), spawn("b"));
    let mut all = HashSet::new();
    let mut n = 0;
    for c in [a, b] {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success());
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            // libtest may print "test ipam_child ... " on the same line as our first output
            if let Some(ip) = line.find("IP ").map(|i| &line[i + 3..]) {
                n += 1;
                assert!(all.insert(ip.to_string()), "{ip} handed out twice");
            }
        }
    }
    assert_eq!(n, 2 * PER_PROCESS);
    assert_eq!(all.len(), 2 * PER_PROCESS);
}
