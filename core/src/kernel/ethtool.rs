//! The one ethtool setting podnet changes: TX checksum offload of its VXLAN device. There is no
//! netlink-only path that every supported kernel has, so this is the legacy SIOCETHTOOL ioctl on
//! a socket opened in the node's netns (the ioctl resolves the device in the socket's netns).

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GTXCSUM: u32 = 0x16;
const ETHTOOL_STXCSUM: u32 = 0x17;

#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

/// `struct ifreq` with the `ifr_data` member of its union (40 bytes on 64-bit Linux).
#[repr(C)]
struct IfReqData {
    name: [u8; libc::IFNAMSIZ],
    data: *mut libc::c_void,
    _pad: [u8; 16],
}

fn socket_in(ns: &impl AsFd) -> io::Result<OwnedFd> {
    crate::kernel::netns::run_in(ns, || {
        // SAFETY: plain socket(2) call; the returned fd is checked and then owned.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh, valid descriptor that nothing else owns.
        Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
    })
    .map_err(|e| io::Error::other(e.to_string()))?
}

fn ethtool(sock: &OwnedFd, ifname: &str, cmd: u32, data: u32) -> io::Result<u32> {
    if ifname.len() >= libc::IFNAMSIZ {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    let mut val = EthtoolValue { cmd, data };
    let mut req = IfReqData { name: [0; libc::IFNAMSIZ], data: std::ptr::null_mut(), _pad: [0; 16] };
    req.name[..ifname.len()].copy_from_slice(ifname.as_bytes());
    req.data = (&mut val as *mut EthtoolValue).cast();
    // SAFETY: SIOCETHTOOL reads `req` (a properly sized, NUL-terminated ifreq) and reads/writes
    // the EthtoolValue it points to; both live on this stack frame for the whole call.
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCETHTOOL as _, &mut req as *mut IfReqData) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(val.data)
}

/// Turn TX checksum offload off on `ifname` in netns `ns` (idempotent).
pub fn disable_tx_checksum(ns: &impl AsFd, ifname: &str) -> io::Result<()> {
    set_tx_checksum(ns, ifname, false)
}

/// Turn TX checksum offload on or off on `ifname` in netns `ns` (idempotent). Turning it on
/// again also brings back the segmentation offloads the kernel dropped with it (they stay
/// wanted), as `ethtool -K tx on` does.
pub fn set_tx_checksum(ns: &impl AsFd, ifname: &str, on: bool) -> io::Result<()> {
    let sock = socket_in(ns)?;
    if (ethtool(&sock, ifname, ETHTOOL_GTXCSUM, 0)? != 0) == on {
        return Ok(());
    }
    ethtool(&sock, ifname, ETHTOOL_STXCSUM, u32::from(on)).map(|_| ())
}

/// Whether TX checksum offload is on for `ifname` in netns `ns`.
pub fn tx_checksum(ns: &impl AsFd, ifname: &str) -> io::Result<bool> {
    let sock = socket_in(ns)?;
    Ok(ethtool(&sock, ifname, ETHTOOL_GTXCSUM, 0)? != 0)
}
