//! Real runtimes end to end with the built plugin: containerd 1.6 (`ctr run --cni` with podnet's
//! conflist, image imported with `ctr images import`) and podman 4.3 with its CNI backend
//! (`podman run --network podnet -p`, image from `podman load`). Each proves pod IPs,
//! pod-to-pod by IP, a hostPort from the node and from an external netns, `podnet sandbox list`,
//! and nothing left once the container stops. The worlds are private pid/mount/net namespaces
//! built by `containerd.sh` / `podman.sh` (see there); when a script ends, the kernel kills what
//! is left in its PID namespace. Needs root and the runtimes (scripts/setup.sh); a runtime that
//! is not installed is skipped with a note.

use std::path::{Path, PathBuf};
use std::process::Command;

fn have(bin: &str) -> bool {
    ["/usr/bin", "/usr/sbin", "/bin", "/sbin"].iter().any(|d| Path::new(d).join(bin).exists())
}

/// Run `tests/<script>` in its own namespaces (skipped when something it needs is missing).
fn run(script: &str, needs: &[&str], marker: &str) {
    let missing: Vec<&str> = needs.iter().copied().filter(|b| !have(b)).collect();
    if !missing.is_empty() {
        eprintln!("skipped {script}: {} not installed (scripts/setup.sh installs them)", missing.join(", "));
        return;
    }
    // The podnet CLI (the scripts check `podnet sandbox list`) from the same target dir.
    let cli = PathBuf::from(env!("CARGO_BIN_EXE_podnet-cni")).with_file_name("podnet");
    assert!(cli.exists(), "build the podnet CLI into the same target dir first: cargo build -p podnet-cli");
    let work = PathBuf::from(format!("/tmp/podnet-test-{script}-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let out = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "--mount", "--net", "--propagation", "private", "--", "bash"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join(script))
        .env("PLUGIN", env!("CARGO_BIN_EXE_podnet-cni"))
        .env("PODNET", &cli)
        .env("WORK", &work)
        .output()
        .expect("run unshare");
    // WORK held only a tmpfs mounted inside the private mount namespace: empty here.
    let _ = std::fs::remove_dir(&work);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains(marker), "{text}");
}

#[test]
fn containerd_ctr_run_cni() {
    run("containerd.sh", &["containerd", "ctr", "runc", "busybox", "unshare"], "CONTAINERD-E2E-OK");
}

#[test]
fn podman_cni_backend() {
    run("podman.sh", &["podman", "runc", "busybox", "unshare"], "PODMAN-E2E-OK");
}
