//! containerd 1.6 end to end: `ctr run --cni` with podnet's conflist, a locally built
//! busybox-static image imported with `ctr images import`, pod IP, pod-to-pod by IP, a hostPort
//! from the node and from an external netns, `podnet sandbox list`, and nothing left after the
//! container stops. The world is private namespaces built by `containerd.sh` (see there). Needs
//! root, containerd, runc and busybox-static (scripts/setup.sh); skipped with a note otherwise.

use std::path::{Path, PathBuf};
use std::process::Command;

fn have(bin: &str) -> bool {
    ["/usr/bin", "/usr/sbin", "/bin", "/sbin"].iter().any(|d| Path::new(d).join(bin).exists())
}

/// The podnet CLI built in the same target dir (cargo builds it for the workspace).
fn podnet_cli() -> Option<PathBuf> {
    let me = PathBuf::from(env!("CARGO_BIN_EXE_podnet-cni"));
    let p = me.with_file_name("podnet");
    p.exists().then_some(p)
}

#[test]
fn containerd_ctr_run_cni() {
    let missing: Vec<&str> =
        ["containerd", "ctr", "runc", "busybox", "unshare"].into_iter().filter(|b| !have(b)).collect();
    if !missing.is_empty() {
        eprintln!("skipped: {} not installed (scripts/setup.sh installs them)", missing.join(", "));
        return;
    }
    let Some(cli) = podnet_cli() else {
        eprintln!("skipped: build the podnet CLI into the same target dir first (cargo build -p podnet-cli)");
        return;
    };
    let work = PathBuf::from(format!("/tmp/podnet-test-ctrd-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/containerd.sh");
    let out = Command::new("unshare")
        // A PID namespace too: when the script ends, the kernel kills whatever is left in it
        // (containerd, shims, containers), and the script, as its init, reaps the shims.
        .args(["--pid", "--fork", "--mount-proc", "--mount", "--net", "--propagation", "private", "--", "bash"])
        .arg(&script)
        .env("PLUGIN", env!("CARGO_BIN_EXE_podnet-cni"))
        .env("PODNET", &cli)
        .env("WORK", &work)
        .output()
        .expect("run unshare");
    let _ = std::fs::remove_dir_all(&work);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("CONTAINERD-E2E-OK"), "{text}");
}
