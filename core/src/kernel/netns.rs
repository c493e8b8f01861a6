//! Network namespaces: the only place in podnet that calls `setns` or `unshare`.
//!
//! Every primitive runs its work on a fresh, short-lived `std::thread` that enters (or creates)
//! the namespace, does one thing (open a socket, bind-mount the pin, write a sysctl) and dies.
//! The calling thread, tokio workers and `spawn_blocking` threads never change namespace.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::CloneFlags;

/// Errors of the netns module.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// A syscall failed.
    #[error("{what}: {source}")]
    Sys {
        /// What was being done.
        what: &'static str,
        /// The errno.
        #[source]
        source: nix::Error,
    },
    /// A file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The path exists but is not a network namespace.
    #[error("{0} is not a network namespace")]
    NotNetns(PathBuf),
    /// The pin name is taken.
    #[error("netns {0} already exists")]
    Exists(PathBuf),
    /// The helper thread panicked.
    #[error("netns helper thread panicked")]
    ThreadPanicked,
}

impl NetnsError {
    /// The errno behind the error, when there is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetnsError::Sys { source, .. } => Some(*source as i32),
            NetnsError::Io { source, .. } => source.raw_os_error(),
            NetnsError::Exists(_) => Some(libc::EEXIST),
            _ => None,
        }
    }

    /// The stable kind of this error.
    pub fn kind(&self) -> crate::ErrorKind {
        match self {
            NetnsError::NotNetns(_) => crate::ErrorKind::InvalidArgument,
            NetnsError::Exists(_) => crate::ErrorKind::AlreadyExists,
            NetnsError::ThreadPanicked => crate::ErrorKind::Internal,
            _ => self.errno().map(crate::ErrorKind::from_errno).unwrap_or(crate::ErrorKind::Io),
        }
    }

    /// Wrap into the top-level error with an operation description.
    pub fn into_error(self, op: impl Into<String>) -> crate::Error {
        let kind = self.kind();
        match self.errno() {
            Some(e) => crate::Error::with_errno(kind, op, e, self),
            None => crate::Error::new(kind, op, self),
        }
    }
}

fn sys(what: &'static str) -> impl FnOnce(nix::Error) -> NetnsError {
    move |source| NetnsError::Sys { what, source }
}

fn io_err(what: &'static str) -> impl FnOnce(io::Error) -> NetnsError {
    move |source| NetnsError::Io { what, source }
}

/// NSFS_MAGIC from linux/magic.h: the filesystem type of `/proc/*/ns/*` and their bind mounts.
const NSFS_MAGIC: i64 = 0x6e73_6673;

/// Open a netns file and verify it really is a network namespace.
pub fn open(path: &Path) -> Result<File, NetnsError> {
    let f = OpenOptions::new().read(true).custom_flags(libc::O_CLOEXEC).open(path).map_err(io_err("open netns"))?;
    let st = nix::sys::statfs::fstatfs(&f).map_err(sys("statfs netns"))?;
    if st.filesystem_type().0 as i64 != NSFS_MAGIC {
        return Err(NetnsError::NotNetns(path.to_path_buf()));
    }
    // A bind-mounted mount namespace or user namespace is nsfs too: ask the kernel which type.
    // NS_GET_NSTYPE = _IO(0xb7, 0x3)
    // SAFETY: ioctl on a valid, owned fd with a request that takes no argument.
    let ty = unsafe { libc::ioctl(f.as_raw_fd(), 0xb703 as _) };
    if ty != libc::CLONE_NEWNET {
        return Err(NetnsError::NotNetns(path.to_path_buf()));
    }
    Ok(f)
}

/// Inode of a netns file: equal inodes mean the same namespace.
pub fn inode(f: &File) -> io::Result<u64> {
    Ok(f.metadata()?.ino())
}

/// Run `f` in the netns `ns` and return its result: on the calling thread when that thread is
/// in `ns` already (a CNI plugin or a runtime whose node is the host: no thread to spawn and
/// join, which under load costs milliseconds), else on a fresh thread that enters `ns` and
/// exits afterwards, so nothing else ever runs in the wrong namespace. Sockets created by `f`
/// stay in `ns` for their whole life.
pub fn run_in<T, F>(ns: &impl AsFd, f: F) -> Result<T, NetnsError>
where
    T: Send,
    F: FnOnce() -> T + Send,
{
    let fd = ns.as_fd();
    if is_current(fd) {
        return Ok(f());
    }
    std::thread::scope(|s| {
        s.spawn(|| -> Result<T, NetnsError> {
            #[expect(clippy::disallowed_methods, reason = "netns.rs is the one place allowed to switch namespaces")]
            nix::sched::setns(fd, CloneFlags::CLONE_NEWNET).map_err(sys("setns"))?;
            Ok(f())
        })
        .join()
        .map_err(|_| NetnsError::ThreadPanicked)?
    })
}

/// Is `fd` the calling thread's own netns? (Same nsfs device and inode; false when unsure.)
fn is_current(fd: std::os::fd::BorrowedFd<'_>) -> bool {
    let (Ok(a), Ok(b)) = (nix::sys::stat::fstat(fd), nix::sys::stat::stat("/proc/thread-self/ns/net")) else {
        return false;
    };
    a.st_dev == b.st_dev && a.st_ino == b.st_ino
}

/// The caller's current netns, as an fd (works from any thread).
pub fn current() -> Result<File, NetnsError> {
    File::open("/proc/thread-self/ns/net").map_err(io_err("open /proc/thread-self/ns/net"))
}

/// Make `dir` exist and be a shared mount point, as iproute2 does for `/run/netns`, so pins
/// propagate to (and their removal from) mount namespaces cloned later.
pub fn ensure_dir(dir: &Path) -> Result<(), NetnsError> {
    std::fs::create_dir_all(dir).map_err(io_err("create netns dir"))?;
    let none: Option<&str> = None;
    if mount(none, dir, none, MsFlags::MS_SHARED | MsFlags::MS_REC, none).is_err() {
        mount(Some(dir), dir, Some("none"), MsFlags::MS_BIND | MsFlags::MS_REC, none)
            .map_err(sys("bind netns dir onto itself"))?;
        mount(none, dir, none, MsFlags::MS_SHARED | MsFlags::MS_REC, none).map_err(sys("make netns dir shared"))?;
    }
    Ok(())
}

/// A freshly created, pinned netns.
#[derive(Debug)]
pub struct Created<T> {
    /// Where it is pinned.
    pub path: PathBuf,
    /// An open fd on it (for IFLA_NET_NS_FD).
    pub file: File,
    /// What the setup closure produced inside the new netns (e.g. a netlink socket).
    pub value: T,
}

/// Create a new netns pinned at `path` (a bind mount) and run `inside` in it before returning.
///
/// `inside` runs on the thread that created the netns, so a socket it opens is born there with
/// no second hop. On failure nothing is left behind.
pub fn create<T, F>(path: &Path, inside: F) -> Result<Created<T>, NetnsError>
where
    T: Send,
    F: FnOnce() -> T + Send,
{
    // O_EXCL: an existing name is "taken", never silently reused.
    match OpenOptions::new().write(true).create_new(true).mode(0o000).open(path) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(NetnsError::Exists(path.to_path_buf())),
        Err(e) => return Err(NetnsError::Io { what: "create netns pin file", source: e }),
    }
    let res = std::thread::scope(|s| {
        s.spawn(|| -> Result<(T, File), NetnsError> {
            #[expect(clippy::disallowed_methods, reason = "netns.rs is the one place allowed to switch namespaces")]
            nix::sched::unshare(CloneFlags::CLONE_NEWNET).map_err(sys("unshare netns"))?;
            let value = inside();
            // /proc/self/ns/net would be the thread-group leader's netns, not this thread's.
            let none: Option<&str> = None;
            mount(Some("/proc/thread-self/ns/net"), path, Some("none"), MsFlags::MS_BIND, none)
                .map_err(sys("bind-mount netns pin"))?;
            let file = File::open(path).map_err(io_err("open new netns"))?;
            Ok((value, file))
        })
        .join()
        .map_err(|_| NetnsError::ThreadPanicked)?
    });
    match res {
        Ok((value, file)) => Ok(Created { path: path.to_path_buf(), file, value }),
        Err(e) => {
            let _ = umount2(path, MntFlags::MNT_DETACH);
            let _ = std::fs::remove_file(path);
            Err(e)
        }
    }
}

/// Remove a pinned netns: detach the bind mount and delete the file. Already gone is success.
/// The kernel destroys the netns (and the links in it) once nothing else references it.
pub fn remove(path: &Path) -> Result<(), NetnsError> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => {}
        Err(e) => return Err(NetnsError::Sys { what: "unmount netns pin", source: e }),
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(NetnsError::Io { what: "remove netns pin", source: e }),
    }
}

/// Open a netlink socket of `protocol` inside `ns` (thread + setns + socket, about 80 us).
pub fn netlink_socket_in(ns: &impl AsFd, protocol: isize) -> Result<netlink_sys_socket::Socket, NetnsError> {
    run_in(ns, || netlink_sys_socket::Socket::new(protocol))?.map_err(io_err("open netlink socket"))
}

/// Re-export of the netlink socket type used by podnet.
pub mod netlink_sys_socket {
    pub use rtnetlink::sys::Socket;
}

/// Write a sysctl under `/proc/sys/` (e.g. `net/ipv4/ip_forward`) inside `ns`.
pub fn write_sysctl(ns: &impl AsFd, key: &str, value: &str) -> Result<(), NetnsError> {
    let path = format!("/proc/sys/{key}");
    run_in(ns, || std::fs::write(&path, value))?.map_err(io_err("write sysctl"))
}

/// Read a sysctl inside `ns`.
pub fn read_sysctl(ns: &impl AsFd, key: &str) -> Result<String, NetnsError> {
    let path = format!("/proc/sys/{key}");
    run_in(ns, || std::fs::read_to_string(&path))?.map(|s| s.trim().to_string()).map_err(io_err("read sysctl"))
}
