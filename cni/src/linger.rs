//! Keep this process's sockets open past its exit, in a detached child, so the runtime
//! does not wait for the kernel's deferred cleanup, and no other call waits for it either.
//!
//! Closing an nf_tables netlink socket (the last close of one that sent anything) makes the
//! kernel flush the node netns's pending nf_tables destroy work first, holding that netns's
//! commit mutex meanwhile (`nft_rcv_nl_event`). A commit that deleted set elements (a DEL's host
//! ports) leaves such work pending for one RCU grace period, about 10 ms measured here. So the
//! plugin's own exit would wait that long, and, once its close is moved elsewhere, whichever
//! close runs during a later DEL's grace period holds the mutex that DEL's own commit needs:
//! back-to-back DELs (a node drain) then serialize on grace periods.
//!
//! The child holds copies of the descriptors, so the last close is its own: the runtime sees
//! the plugin exit (and its stdout end) without the wait. It then waits until nf_tables in this
//! netns has been quiet (no commit) for [`QUIET`], so no destroy work is pending when it exits
//! and its closes wait for nothing, or at most [`CAP`]. Its stdio is on /dev/null and it is
//! reparented to init (or the runtime's subreaper) when this process exits. It changes nothing:
//! every kernel and state change was made by this process before it exited. One fork, not a
//! daemon's two: the child outlives this process by design, so nothing waits for it here.

use std::time::Duration;

use nix::libc;

/// How long nf_tables must have seen no commit before the child closes: a few grace periods.
pub const QUIET: Duration = Duration::from_millis(40);
/// The longest the child waits for quiet (under continuous churn it closes anyway).
pub const CAP: Duration = Duration::from_secs(2);

/// Fork the lingering child (best effort: on any failure this process just pays the wait
/// itself). Call while the process is single-threaded or only async-signal-safe calls follow in
/// the child, which is the case here: the child only makes system calls (no allocation) and
/// exits. Call it last: this process must exit soon after (the child waits for that, 10 s at
/// the most). The process must be in the netns whose nf_tables it changed.
pub fn hold_sockets_past_exit() {
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: fork(2); the child runs only async-signal-safe calls (open, dup2, close, socket,
    // send, recv, syscall(pidfd_open), poll, clock_gettime, nanosleep, _exit) before exiting,
    // whatever other threads held.
    if unsafe { libc::fork() } == 0 {
        linger(parent);
    }
}

/// The child: detach stdio (the runtime reads the plugin's stdout to its end), wait until
/// `parent` has exited (all its descriptors closed), then until nf_tables is quiet, then exit,
/// closing the last copies.
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
    wait_for_quiet();
    // SAFETY: _exit(2); the kernel closes the remaining descriptors (and pays any wait here).
    unsafe { libc::_exit(0) }
}

/// Poll the nf_tables generation (bumped by every commit) until it has not moved for [`QUIET`]
/// or [`CAP`] has passed; returns at once if it cannot be read. One poll per [`QUIET`] (many
/// children may be waiting during a burst of deletes). Only system calls, on the stack.
fn wait_for_quiet() {
    // SAFETY: socket(2) with constant arguments; the descriptor is closed at exit.
    let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_NETFILTER) };
    if fd < 0 {
        return;
    }
    let start = now();
    let Some(mut last) = generation(fd) else { return };
    while now().saturating_sub(start) < CAP {
        sleep(QUIET);
        match generation(fd) {
            Some(g) if g != last => last = g,
            _ => return,
        }
    }
}

/// NFT_MSG_GETGEN on `fd`: the current ruleset generation of the socket's netns. (The node
/// library's nf_tables socket asks the same, but allocates: a forked child must not.)
fn generation(fd: libc::c_int) -> Option<u32> {
    // nlmsghdr (len 20, type NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_GETGEN, NLM_F_REQUEST, seq 1)
    // and nfgenmsg (AF_UNSPEC, NFNETLINK_V0, res_id 0): all zero but the header's first fields.
    let mut req = [0u8; 20];
    req[0..4].copy_from_slice(&20u32.to_ne_bytes());
    req[4..6].copy_from_slice(&(10u16 << 8 | 16).to_ne_bytes());
    req[6..8].copy_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    req[8..12].copy_from_slice(&1u32.to_ne_bytes());
    // SAFETY: send(2) of a stack buffer of that length on a socket this process owns.
    if unsafe { libc::send(fd, req.as_ptr().cast(), req.len(), 0) } != req.len() as isize {
        return None;
    }
    let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    // SAFETY: poll(2) on one valid pollfd, bounded.
    if unsafe { libc::poll(&mut p, 1, 1000) } != 1 {
        return None;
    }
    let mut buf = [0u8; 512];
    // SAFETY: recv(2) into a stack buffer of the given length.
    let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
    parse_generation(buf.get(..usize::try_from(n).ok()?)?)
}

/// NFTA_GEN_ID out of a NFT_MSG_NEWGEN answer (None for an error answer or a short one).
fn parse_generation(msg: &[u8]) -> Option<u32> {
    let len = u32::from_ne_bytes(msg.get(0..4)?.try_into().ok()?) as usize;
    if u16::from_ne_bytes(msg.get(4..6)?.try_into().ok()?) == libc::NLMSG_ERROR as u16 {
        return None;
    }
    let mut attrs = msg.get(20..len.min(msg.len()))?;
    while attrs.len() >= 4 {
        let alen = u16::from_ne_bytes(attrs[0..2].try_into().ok()?) as usize;
        let atype = u16::from_ne_bytes(attrs[2..4].try_into().ok()?) & 0x3fff;
        if alen < 4 || alen > attrs.len() {
            return None;
        }
        if atype == 1 && alen >= 8 {
            return Some(u32::from_be_bytes(attrs[4..8].try_into().ok()?));
        }
        attrs = attrs.get((alen + 3) & !3..).unwrap_or_default();
    }
    None
}

fn now() -> Duration {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime(2) into a valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

fn sleep(d: Duration) {
    let t = libc::timespec { tv_sec: d.as_secs() as libc::time_t, tv_nsec: d.subsec_nanos() as libc::c_long };
    // SAFETY: nanosleep(2) with a valid timespec.
    unsafe { libc::nanosleep(&t, std::ptr::null_mut()) };
}

#[cfg(test)]
mod tests {
    use super::{libc, parse_generation};

    #[test]
    fn generation_answers() {
        // NEWGEN: header, nfgenmsg, NFTA_GEN_ID = 0x01020304, NFTA_GEN_PROC_PID.
        let mut m = vec![0u8; 16];
        m.extend([0, 0, 0, 0]);
        m.extend([8, 0, 1, 0, 1, 2, 3, 4]);
        m.extend([8, 0, 2, 0, 0, 0, 0, 9]);
        let len = m.len() as u32;
        m[0..4].copy_from_slice(&len.to_ne_bytes());
        m[4..6].copy_from_slice(&0x0a0fu16.to_ne_bytes());
        assert_eq!(parse_generation(&m), Some(0x01020304));
        // An error answer, a truncated one, a bad attribute length: no generation.
        let mut e = m.clone();
        e[4..6].copy_from_slice(&(libc::NLMSG_ERROR as u16).to_ne_bytes());
        assert_eq!(parse_generation(&e), None);
        assert_eq!(parse_generation(&m[..10]), None);
        let mut bad = m.clone();
        bad[20..22].copy_from_slice(&200u16.to_ne_bytes());
        assert_eq!(parse_generation(&bad), None);
    }
}
