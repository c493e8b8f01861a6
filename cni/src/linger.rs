//! Keep this process's sockets open past its exit, in a detached child, so the runtime
//! does not wait for the kernel's deferred cleanup.
//!
//! Closing an nf_tables netlink socket right after a commit that deleted set elements (a DEL's
//! host ports) waits in the kernel for that commit's deferred free: one RCU grace period, 4-17 ms
//! measured, more than the rest of a DEL. The last close of a socket pays it, so a child
//! that holds copies of the descriptors until this process has exited makes the last close its
//! own: the runtime sees the plugin exit (and its stdout end) without the wait, and the
//! child, with stdio on /dev/null and reparented to init (or the runtime's subreaper) when this
//! process exits, closes them a moment later and exits. It changes nothing else: every kernel
//! and state change was made by this process before it exited. One fork, not the daemon's two:
//! the child outlives this process by design, so nothing waits for it here, and a second fork
//! would only add its cost (about a quarter of a millisecond) to the runtime's wait.

use nix::libc;

/// Fork the lingering child (best effort: on any failure this process just pays the wait
/// itself). Call while the process is single-threaded or only async-signal-safe calls follow in
/// the child, which is the case here: the child only closes, dups, polls and exits. Call it
/// last: this process must exit soon after (the child waits for that, 10 s at the most).
pub fn hold_sockets_past_exit() {
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: fork(2); the child runs only async-signal-safe calls (open, dup2, close,
    // syscall(pidfd_open), poll, nanosleep, _exit) before exiting, whatever other threads held.
    if unsafe { libc::fork() } == 0 {
        linger(parent);
    }
}

/// The child: detach stdio (the runtime reads the plugin's stdout to its end), wait until
/// `parent` has exited (all its descriptors closed), then exit, closing the last copies.
fn linger(parent: libc::pid_t) -> ! {
    // SAFETY: open/dup2/close on descriptors this process owns; a failure leaves the original
    // descriptor, which only costs the runtime a short wait for EOF.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            for fd in 0..3 {
                libc::dup2(null, fd);
            }
            if null > 2 {
                libc::close(null);
            }
        }
    }
    // SAFETY: pidfd_open(2) takes a pid and flags and returns a new descriptor or -1.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, parent, 0) } as libc::c_int;
    if pidfd >= 0 {
        let mut p = libc::pollfd { fd: pidfd, events: libc::POLLIN, revents: 0 };
        // SAFETY: poll(2) on one valid pollfd; readable once the parent has exited. Bounded, so
        // a stuck parent cannot keep this process forever.
        unsafe { libc::poll(&mut p, 1, 10_000) };
    } else {
        let t = libc::timespec { tv_sec: 0, tv_nsec: 200_000_000 };
        // SAFETY: nanosleep(2) with a valid timespec.
        unsafe { libc::nanosleep(&t, std::ptr::null_mut()) };
    }
    // SAFETY: _exit(2); the kernel closes the remaining descriptors (and pays the wait here).
    unsafe { libc::_exit(0) }
}
