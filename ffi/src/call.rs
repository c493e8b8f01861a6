//! The panic boundary every export runs in, and the argument checks that turn C input into Rust
//! values or into a `podnet_error` naming the argument (all before the first side effect).

use std::any::Any;
use std::ffi::c_char;
use std::net::IpAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};

use ipnetwork::IpNetwork;
use podnet_core::{validate_ifname, validate_name, MAX_ID_LEN, MAX_IFNAME_LEN};

use crate::cenum::CEnum;
use crate::error::{podnet_error, ErrorObj};
use podnet_cluster::Cidr;

use crate::handle::{
    free_owned, list_at, list_len, to_owned_ptr, try_mut, try_out, try_out_buf, try_ref, try_slice, try_str, view_of,
    Castable, MayLend, MayOwn, Out, OutBuf, SliceError, StrError, View,
};
use crate::record::FromCore;
use crate::status::podnet_status;

/// Longest string accepted where no tighter limit applies (paths: PATH_MAX - 1).
pub(crate) const MAX_STR_LEN: usize = 4095;
/// Longest textual IP address or CIDR accepted (an IPv6 CIDR is at most 43 bytes).
const MAX_ADDR_LEN: usize = 64;

/// Result of an export's body.
pub(crate) type CallResult<T = ()> = Result<T, ErrorObj>;

/// Run the body of an infallible export (accessors, `_free`): a panic gives `default`.
pub(crate) fn infallible<T>(default: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(default)
}

/// The body of a `_free` export: take the object back from C and drop it. NULL is a no-op.
pub(crate) fn free<C: Castable>(ptr: *mut C)
where
    C::Ownership: MayOwn,
{
    infallible((), || free_owned(ptr))
}

/// The body of an accessor: what `get` reads from the object behind `ptr`; `default` for NULL.
pub(crate) fn read<C: Castable, T: Copy>(ptr: *const C, default: T, get: impl FnOnce(&C::RustType) -> T) -> T {
    infallible(default, || try_ref(ptr).map_or(default, get))
}

/// The body of a `_get_info` export: the object's view, lent to C; NULL for NULL.
pub(crate) fn info<C: Castable>(ptr: *const C) -> *const <C::RustType as View>::Info
where
    C::RustType: View,
{
    infallible(std::ptr::null(), || view_of(ptr))
}

/// The body of a list's `_count` export; 0 for NULL.
pub(crate) fn count<L: Castable<RustType = Vec<T>>, T>(list: *const L) -> usize {
    infallible(0, || list_len(list))
}

/// The body of a list's `_at` export: element `index`, lent to C until the list is freed; NULL
/// for a NULL list or an index out of range.
pub(crate) fn at<L, E>(list: *const L, index: usize) -> *const E
where
    L: Castable<RustType = Vec<E::RustType>>,
    E: Castable,
    E::Ownership: MayLend,
{
    infallible(std::ptr::null(), || list_at(list, index))
}

/// Run the body of a fallible export named `op`: map its error (or a caught panic) to a status,
/// and hand the error to the caller through `err_out` when it is not NULL.
pub(crate) fn fallible(
    op: &'static str,
    err_out: *mut *mut podnet_error,
    body: impl FnOnce(&Call) -> CallResult,
) -> podnet_status {
    let call = Call { op };
    let err = match catch_unwind(AssertUnwindSafe(|| body(&call))) {
        Ok(Ok(())) => return podnet_status::Ok,
        Ok(Err(e)) => e,
        Err(payload) => ErrorObj::new(podnet_status::Panic, op, format!("panic: {}", panic_message(&*payload))),
    };
    let status = err.status;
    if let Some(out) = try_out(err_out) {
        out.write(to_owned_ptr::<podnet_error>(err));
    }
    status
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    }
}

/// Run the body of a fallible export named `op` that changes the object `ptr` (a builder or an
/// allocator the caller owns; `name` is its parameter's name for a NULL error).
pub(crate) fn with_mut<C: Castable>(
    op: &'static str,
    name: &'static str,
    ptr: *mut C,
    err_out: *mut *mut podnet_error,
    body: impl FnOnce(&Call, &mut C::RustType) -> CallResult,
) -> podnet_status
where
    C::Ownership: MayOwn,
{
    fallible(op, err_out, |c| {
        let obj = c.obj_mut(name, ptr)?;
        body(c, obj)
    })
}

/// Run the body of a constructor named `op`: `make` checks the arguments and makes the value
/// (nothing else, so it may run before the out-parameter is checked), then the value is handed to
/// C through `out` (`name`: its parameter's name).
pub(crate) fn construct<O: Castable>(
    op: &'static str,
    err_out: *mut *mut podnet_error,
    (name, out): (&'static str, *mut *mut O),
    make: impl FnOnce(&Call) -> CallResult<O::RustType>,
) -> podnet_status
where
    O::Ownership: MayOwn,
{
    fallible(op, err_out, |c| {
        let value = make(c)?;
        c.out(name, out)?.give(value)
    })
}

/// Run the body of a setter named `op` that cannot fail once the object `ptr` is there: `set`
/// changes it.
pub(crate) fn set<C: Castable>(
    op: &'static str,
    name: &'static str,
    ptr: *mut C,
    err_out: *mut *mut podnet_error,
    set: impl FnOnce(&mut C::RustType),
) -> podnet_status
where
    C::Ownership: MayOwn,
{
    with_mut(op, name, ptr, err_out, |_, obj| {
        set(obj);
        Ok(())
    })
}

/// Run the body of a fallible export named `op` that reads the object `ptr` (a node, an agent,
/// an allocator; `name` is its parameter's name for a NULL error).
pub(crate) fn with_ref<C: Castable>(
    op: &'static str,
    name: &'static str,
    ptr: *const C,
    err_out: *mut *mut podnet_error,
    body: impl FnOnce(&Call, &C::RustType) -> CallResult,
) -> podnet_status {
    fallible(op, err_out, |c| {
        let obj = c.obj(name, ptr)?;
        body(c, obj)
    })
}

/// Add `item` to `list` unless it is there already (setters that add a value take it twice).
pub(crate) fn add_once<T: PartialEq>(list: &mut Vec<T>, item: T) {
    if !list.contains(&item) {
        list.push(item);
    }
}

/// Map a core result into the export's result.
pub(crate) fn core<T>(r: podnet_core::Result<T>) -> CallResult<T> {
    r.map_err(ErrorObj::from_core)
}

/// Argument checks of one export; errors name the export and the argument.
pub(crate) struct Call {
    op: &'static str,
}

impl Call {
    /// An error of this export.
    pub(crate) fn err(&self, status: podnet_status, cause: impl std::fmt::Display) -> ErrorObj {
        ErrorObj::new(status, self.op, cause)
    }

    fn null(&self, name: &str) -> ErrorObj {
        self.err(podnet_status::NullArgument, format!("`{name}` is NULL"))
    }

    /// A required object argument.
    pub(crate) fn obj<'a, C: Castable>(&self, name: &str, ptr: *const C) -> CallResult<&'a C::RustType> {
        try_ref(ptr).ok_or_else(|| self.null(name))
    }

    /// A required object argument the call modifies.
    pub(crate) fn obj_mut<'a, C: Castable>(&self, name: &str, ptr: *mut C) -> CallResult<&'a mut C::RustType>
    where
        C::Ownership: MayOwn,
    {
        try_mut(ptr).ok_or_else(|| self.null(name))
    }

    /// A required out-parameter.
    pub(crate) fn out<'a, T>(&self, name: &str, ptr: *mut T) -> CallResult<Out<'a, T>> {
        try_out(ptr).ok_or_else(|| self.null(name))
    }

    /// The last step of an export that hands C a new object made from what `make` returns: the
    /// out-parameter is checked (after the export's other arguments), then `make` runs, and its
    /// value is converted (`FromCore`) and written.
    pub(crate) fn give<O: Castable, T>(
        &self,
        name: &str,
        out: *mut *mut O,
        make: impl FnOnce() -> podnet_core::Result<T>,
    ) -> CallResult
    where
        O::Ownership: MayOwn,
        O::RustType: FromCore<T>,
    {
        let out = self.out(name, out)?;
        out.give(O::RustType::from_core(&core(make())?))
    }

    /// A required array of `len` elements (NULL allowed when `len` is 0).
    pub(crate) fn slice<'a, T>(&self, name: &str, ptr: *const T, len: usize) -> CallResult<&'a [T]> {
        try_slice(ptr, len).map_err(|e| match e {
            SliceError::Null => self.null(name),
            SliceError::TooLong => self.err(podnet_status::InvalidArgument, format!("`{name}`: {len} elements")),
        })
    }

    /// A required output buffer of `len` elements that must hold at least `min`.
    pub(crate) fn out_buf<'a, T: Copy>(
        &self,
        name: &str,
        ptr: *mut T,
        len: usize,
        min: usize,
    ) -> CallResult<OutBuf<'a, T>> {
        let buf = try_out_buf(ptr, len).map_err(|e| match e {
            SliceError::Null => self.null(name),
            SliceError::TooLong => self.err(podnet_status::InvalidArgument, format!("`{name}`: {len} elements")),
        })?;
        if buf.len() < min {
            return Err(self.err(
                podnet_status::InvalidArgument,
                format!("`{name}` holds {len} bytes; at least {min} are required"),
            ));
        }
        Ok(buf)
    }

    /// A required UTF-8 string of at most `max` bytes.
    pub(crate) fn str<'a>(&self, name: &str, ptr: *const c_char, max: usize) -> CallResult<&'a str> {
        try_str(ptr, max).map_err(|e| match e {
            StrError::Null => self.null(name),
            StrError::TooLong => self.err(podnet_status::TooLong, format!("`{name}` is longer than {max} bytes")),
            StrError::NotUtf8 => self.err(podnet_status::InvalidUtf8, format!("`{name}` is not valid UTF-8")),
        })
    }

    /// A name that becomes a file or netns name (sandbox id, node name).
    pub(crate) fn name<'a>(&self, name: &str, ptr: *const c_char) -> CallResult<&'a str> {
        let s = self.str(name, ptr, MAX_ID_LEN)?;
        validate_name(s, name).map_err(|m| self.err(podnet_status::InvalidArgument, m))?;
        Ok(s)
    }

    /// An interface name.
    pub(crate) fn ifname<'a>(&self, name: &str, ptr: *const c_char) -> CallResult<&'a str> {
        let s = self.str(name, ptr, MAX_IFNAME_LEN)?;
        validate_ifname(s).map_err(|m| self.err(podnet_status::InvalidArgument, format!("`{name}`: {m}")))?;
        Ok(s)
    }

    /// A path; `absolute` refuses relative ones.
    pub(crate) fn path<'a>(&self, name: &str, ptr: *const c_char, absolute: bool) -> CallResult<&'a str> {
        let s = self.str(name, ptr, MAX_STR_LEN)?;
        if s.is_empty() || (absolute && !s.starts_with('/')) {
            let want = if absolute { "an absolute path" } else { "a non-empty path" };
            return Err(self.err(podnet_status::InvalidArgument, format!("`{name}` {s:?} is not {want}")));
        }
        Ok(s)
    }

    /// An IP address ("10.1.0.7", "fd00::7").
    pub(crate) fn ip(&self, name: &str, ptr: *const c_char) -> CallResult<IpAddr> {
        let s = self.str(name, ptr, MAX_ADDR_LEN)?;
        s.parse::<IpAddr>()
            .map_err(|_| self.err(podnet_status::InvalidAddress, format!("`{name}` {s:?} is not an IP address")))
    }

    /// A CIDR ("10.1.0.0/24"); the prefix length is required.
    pub(crate) fn cidr(&self, name: &str, ptr: *const c_char) -> CallResult<IpNetwork> {
        let s = self.str(name, ptr, MAX_ADDR_LEN)?;
        let bad = || self.err(podnet_status::InvalidAddress, format!("`{name}` {s:?} is not a CIDR (address/prefix)"));
        let (addr, plen) = s.split_once('/').ok_or_else(bad)?;
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        if plen.is_empty() || plen.len() > 3 || !plen.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let plen: u8 = plen.parse().map_err(|_| bad())?;
        IpNetwork::new(addr, plen).map_err(|_| bad())
    }

    /// A C enum argument: the core value of a code the library knows (not 0).
    pub(crate) fn code<E: CEnum>(&self, code: u32) -> CallResult<E::Core> {
        E::to_core(code).ok_or_else(|| self.err(podnet_status::InvalidArgument, format!("unknown {} {code}", E::WHAT)))
    }

    /// A CIDR that names a network ("10.244.2.0/24"): as `cidr`, and host bits set is
    /// `PODNET_STATUS_INVALID_ARGUMENT`, with the network in the message.
    pub(crate) fn network(&self, name: &str, ptr: *const c_char) -> CallResult<IpNetwork> {
        let net = self.cidr(name, ptr)?;
        if net.ip() != net.network() {
            let hint = format!("{}/{}", net.network(), net.prefix());
            return Err(
                self.err(podnet_status::InvalidArgument, format!("{net} has host bits set (did you mean {hint}?)"))
            );
        }
        Ok(net)
    }

    /// A unicast IP address of a host: not unspecified, loopback, multicast or broadcast.
    pub(crate) fn unicast_ip(&self, name: &str, ptr: *const c_char) -> CallResult<IpAddr> {
        let ip = self.ip(name, ptr)?;
        if ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() || ip == IpAddr::from([255, 255, 255, 255]) {
            return Err(self.err(podnet_status::InvalidArgument, format!("`{name}` {ip} is not a unicast address")));
        }
        Ok(ip)
    }

    /// A CIDR that names a range: as `cidr`, and host bits set (or an IPv4-mapped IPv6 range)
    /// is `PODNET_STATUS_INVALID_ARGUMENT`, with the corrected range in the message.
    pub(crate) fn range(&self, name: &str, ptr: *const c_char) -> CallResult<Cidr> {
        let net = self.cidr(name, ptr)?;
        Cidr::try_from(net)
            .map_err(|e| self.err(podnet_status::InvalidArgument, format!("`{name}`: {}", e.cause_message())))
    }

    /// Every element of the array argument `name` (checked with `slice`), each checked by
    /// `check` under the name "name[i]", in order.
    pub(crate) fn each<T: Copy, R>(
        &self,
        name: &str,
        items: &[T],
        check: impl Fn(&str, T) -> CallResult<R>,
    ) -> CallResult<Vec<R>> {
        items.iter().enumerate().map(|(i, item)| check(&format!("{name}[{i}]"), *item)).collect()
    }

    /// An array of `len` ranges (NULL allowed when `len` is 0); every element is checked.
    pub(crate) fn ranges(&self, name: &str, ptr: *const *const c_char, len: usize) -> CallResult<Vec<Cidr>> {
        self.each(name, self.slice(name, ptr, len)?, |n, p| self.range(n, p))
    }

    /// Add `item` to `list`, which holds at most one value per address family (`family`): the
    /// same value again is fine; another of a family the list holds already is
    /// `PODNET_STATUS_INVALID_ARGUMENT`, `clash(other)` saying why.
    pub(crate) fn add_per_family<T: PartialEq, F: PartialEq>(
        &self,
        list: &mut Vec<T>,
        item: T,
        family: impl Fn(&T) -> F,
        clash: impl FnOnce(&T) -> String,
    ) -> CallResult {
        if list.contains(&item) {
            return Ok(());
        }
        if let Some(other) = list.iter().find(|o| family(o) == family(&item)) {
            return Err(self.err(podnet_status::InvalidArgument, clash(other)));
        }
        list.push(item);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handle::try_ref;

    fn run(body: impl FnOnce(&Call) -> CallResult) -> (podnet_status, Option<String>) {
        let mut err: *mut podnet_error = std::ptr::null_mut();
        let st = fallible("podnet_test", &mut err, body);
        let msg = try_ref::<podnet_error>(err).map(|e| format!("{e:?}"));
        crate::error::podnet_error_free(err);
        (st, msg)
    }

    #[test]
    fn panics_become_status() {
        let (st, msg) = run(|_| panic!("boom"));
        assert_eq!(st, podnet_status::Panic);
        assert!(msg.unwrap().contains("panic: boom"));
        assert_eq!(infallible(7, || panic!("x")), 7);
        // no err_out: still a status, nothing written
        assert_eq!(fallible("t", std::ptr::null_mut(), |_| panic!("y")), podnet_status::Panic);
    }

    #[test]
    fn argument_checks() {
        use podnet_status::{InvalidAddress, InvalidArgument, TooLong};
        let long = std::ffi::CString::new("x".repeat(129)).unwrap();
        type Check<'a> = &'a dyn Fn(&Call) -> CallResult;
        let cases: [(&str, Check, podnet_status); 9] = [
            ("no prefix", &|c| c.cidr("cidr", c"10.1.0.0".as_ptr()).map(drop), InvalidAddress),
            ("signed prefix", &|c| c.cidr("cidr", c"10.1.0.0/+4".as_ptr()).map(drop), InvalidAddress),
            ("prefix too long", &|c| c.cidr("cidr", c"10.1.0.0/33".as_ptr()).map(drop), InvalidAddress),
            ("IPv6 CIDR", &|c| c.cidr("cidr", c"fd00::/64".as_ptr()).map(drop), podnet_status::Ok),
            ("octet over 255", &|c| c.ip("ip", c"10.1.0.256".as_ptr()).map(drop), InvalidAddress),
            ("slash in a name", &|c| c.name("id", c"a/b".as_ptr()).map(drop), InvalidArgument),
            ("name over 128 bytes", &|c| c.name("id", long.as_ptr()).map(drop), TooLong),
            ("ifname over 15 bytes", &|c| c.ifname("ifname", c"abcdefghijklmnop".as_ptr()).map(drop), TooLong),
            ("relative path", &|c| c.path("path", c"rel/x".as_ptr(), true).map(drop), InvalidArgument),
        ];
        for (what, check, want) in cases {
            assert_eq!(run(check).0, want, "{what}");
        }
    }
}
