//! The world helper itself (run as root): its mounts are private to the thread that made it, it
//! wires links that carry traffic, and it goes away on drop, also when the test panics.

use std::path::PathBuf;

use podnet_world::*;

/// Mount points of the machine's own mount namespace (pid 1's) that mention `needle`.
fn host_mounts(needle: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/1/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(needle))
        .map(String::from)
        .collect()
}

#[test]
fn links_carry_traffic_and_nothing_leaks_out() {
    let mut w = World::new("world-self");
    let (a, b) = (w.netns("a"), w.netns("b"));
    link(&a, "eth0", &["192.0.2.1/24", "fd00:192::1/64"], &b, "eth0", &["192.0.2.2/24", "fd00:192::2/64"]).unwrap();
    underlay(&a, "198.51.100.1/24").unwrap();
    for (to, from) in [("192.0.2.2", "192.0.2.1"), ("fd00:192::2", "fd00:192::1")] {
        let srv = echo_peer_server(&b, sa(to.parse().unwrap(), 7000), 1);
        assert_eq!(tcp_ask(&a, sa(to.parse().unwrap(), 7000)).unwrap(), from);
        srv.join().unwrap();
    }
    let u = Echo::udp(&b, sa("192.0.2.2".parse().unwrap(), 7001));
    assert_eq!(udp_ask(&a, sa("192.0.2.2".parse().unwrap(), 7001)).unwrap(), "192.0.2.1");
    drop(u);
    assert!(ip(&a, "-o addr show dev ul0").contains("198.51.100.1/24"));
    // Private: the machine's mount namespace sees neither the world's tmpfs nor its pins.
    assert!(host_mounts(&w.dir.display().to_string()).is_empty());
    let dir = w.dir.clone();
    drop(w);
    assert!(!dir.exists());
}

#[test]
fn a_panicking_test_leaves_nothing() {
    let dir = std::sync::Mutex::new(PathBuf::new());
    let r = std::thread::scope(|s| {
        s.spawn(|| {
            let mut w = World::new("world-panic");
            w.netns("node");
            *dir.lock().unwrap() = w.dir.clone();
            panic!("on purpose");
        })
        .join()
    });
    assert!(r.is_err());
    let dir = dir.into_inner().unwrap();
    assert!(!dir.as_os_str().is_empty() && !dir.exists(), "{}", dir.display());
    assert!(host_mounts(&dir.display().to_string()).is_empty());
}
