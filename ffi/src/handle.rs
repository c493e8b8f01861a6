//! The one module that turns raw pointers from C into Rust references and boxes, and Rust values
//! into pointers handed to C. Exported functions go through these helpers and never cast a
//! pointer by hand, so every `unsafe` dereference of C input is in this file.
//!
//! The contract the C caller accepts (stated once in the header and per function): a non-NULL
//! object pointer came from this library, was not freed, and is not used by another thread
//! while a call that mutates it runs; a non-NULL string is NUL-terminated; a non-NULL array
//! holds the number of elements passed beside it; a non-NULL output buffer has room for the
//! number of elements passed beside it; a non-NULL out-parameter points to writable storage of
//! its type.

use std::ffi::{c_char, CStr};
use std::marker::PhantomData;

/// How C holds pointers to a type, as rustls-ffi's ownership markers do: the helpers below
/// accept only the kinds that make sense, so handing C a pointer it could wrongly free, freeing
/// a borrowed one or mutating through one is a compile error here instead of a bug in C.
pub(crate) trait Ownership {}

/// Boxed and handed to C, which frees it exactly once with the type's `_free`; the only kind
/// C may change through a `*mut` (builders, allocators).
pub(crate) struct Owned;
/// Lives inside another object (a list's element, a record's view): C reads it through a
/// `*const` until the owner is freed, and never frees or changes it.
pub(crate) struct Borrowed;
/// Both: boxed by a constructor or a node call (owned), or lent by a list (borrowed), e.g.
/// `podnet_sandbox`, `podnet_peer`. The C signatures tell them apart: lists hand out `const *`.
pub(crate) struct OwnedOrLent;

impl Ownership for Owned {}
impl Ownership for Borrowed {}
impl Ownership for OwnedOrLent {}

/// Kinds a C caller may own (and so free and change).
pub(crate) trait MayOwn: Ownership {}
impl MayOwn for Owned {}
impl MayOwn for OwnedOrLent {}

/// Kinds podnet may lend from inside another object.
pub(crate) trait MayLend: Ownership {}
impl MayLend for Borrowed {}
impl MayLend for OwnedOrLent {}

/// A C-visible type, the Rust value a pointer to it really points at, and how C holds it.
pub(crate) trait Castable {
    /// `Owned`, `Borrowed` or `OwnedOrLent`.
    type Ownership: Ownership;
    /// The Rust value behind a `*const Self` / `*mut Self` (`Self` for a `#[repr(C)]` view).
    type RustType;
}

/// `castable!(podnet_x: Owned => RustType)`: a `*const podnet_x` / `*mut podnet_x` from C
/// points at a `RustType`, held as the ownership kind (`Owned`, `Borrowed`, `OwnedOrLent`) says.
macro_rules! castable {
    ($c:ty: $ownership:ident => $rust:ty) => {
        impl $crate::handle::Castable for $c {
            type Ownership = $crate::handle::$ownership;
            type RustType = $rust;
        }
    };
}
pub(crate) use castable;

/// Move `value` to the heap and hand ownership to C (freed by the type's `_free`).
pub(crate) fn to_owned_ptr<C: Castable>(value: C::RustType) -> *mut C
where
    C::Ownership: MayOwn,
{
    Box::into_raw(Box::new(value)).cast::<C>()
}

/// A pointer to a value that stays owned by Rust (an element of a list, a record's view).
pub(crate) fn to_borrowed_ptr<C: Castable>(value: &C::RustType) -> *const C
where
    C::Ownership: MayLend,
{
    std::ptr::from_ref(value).cast::<C>()
}

/// Borrow the value behind a pointer from C; `None` for NULL.
pub(crate) fn try_ref<'a, C: Castable>(ptr: *const C) -> Option<&'a C::RustType> {
    // SAFETY: by the header's contract a non-NULL pointer of type `C` was produced by
    // `to_owned_ptr::<C>` or `to_borrowed_ptr::<C>` (so it points to a live, aligned
    // `C::RustType`), has not been freed, and no call mutates it concurrently.
    unsafe { ptr.cast::<C::RustType>().as_ref() }
}

/// Borrow the value behind a pointer from C mutably; `None` for NULL. Only for kinds C owns:
/// a borrowed object is never changed.
pub(crate) fn try_mut<'a, C: Castable>(ptr: *mut C) -> Option<&'a mut C::RustType>
where
    C::Ownership: MayOwn,
{
    // SAFETY: as in `try_ref`; in addition the header documents every mutable object as
    // "not to be used from two threads at once", so this is the only reference during the call.
    unsafe { ptr.cast::<C::RustType>().as_mut() }
}

/// Take ownership back from C and drop the value. NULL is a no-op.
pub(crate) fn free_owned<C: Castable>(ptr: *mut C)
where
    C::Ownership: MayOwn,
{
    if ptr.is_null() {
        return;
    }
    // SAFETY: a non-NULL pointer passed to a `_free` function came from `to_owned_ptr::<C>`
    // (the header says which pointers may be freed) and is given back exactly once.
    drop(unsafe { Box::from_raw(ptr.cast::<C::RustType>()) });
}

/// Compiles only for a `Send + Sync` type: the objects the header documents as usable from many
/// threads at once assert it (`const _: () = thread_safe::<Node>();`).
pub(crate) const fn thread_safe<T: Send + Sync>() {}

/// Number of elements of the list behind `list`; 0 for NULL.
pub(crate) fn list_len<L: Castable<RustType = Vec<T>>, T>(list: *const L) -> usize {
    try_ref(list).map_or(0, Vec::len)
}

/// Element `index` of the list behind `list`, lent to C until the list is freed; NULL for a
/// NULL list or an index out of range.
pub(crate) fn list_at<L, E>(list: *const L, index: usize) -> *const E
where
    L: Castable<RustType = Vec<E::RustType>>,
    E: Castable,
    E::Ownership: MayLend,
{
    try_ref(list).and_then(|l| l.get(index)).map_or(std::ptr::null(), to_borrowed_ptr::<E>)
}

/// An object that shows its fields through one `#[repr(C)]` view (`podnet_*_info`) pointing into
/// memory the object owns (`record::Record`, `record::Built`).
pub(crate) trait View {
    /// The `#[repr(C)]` view: a borrowed C type that is its own Rust value.
    type Info: Castable<Ownership = Borrowed, RustType = Self::Info>;
    /// The view, valid as long as the object.
    fn info(&self) -> &Self::Info;
}

/// The view of the object behind `ptr`, lent to C for the object's lifetime; NULL for NULL.
pub(crate) fn view_of<C: Castable>(ptr: *const C) -> *const <C::RustType as View>::Info
where
    C::RustType: View,
{
    try_ref(ptr).map_or(std::ptr::null(), |o| to_borrowed_ptr(o.info()))
}

/// Why a C string argument was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StrError {
    /// The pointer was NULL.
    Null,
    /// No NUL byte within `max_len` bytes.
    TooLong,
    /// The bytes are not UTF-8.
    NotUtf8,
}

/// Read a NUL-terminated C string of at most `max_len` bytes (not counting the NUL). Never reads
/// more than `max_len + 1` bytes, so a runaway string is refused instead of scanned.
pub(crate) fn try_str<'a>(ptr: *const c_char, max_len: usize) -> Result<&'a str, StrError> {
    if ptr.is_null() {
        return Err(StrError::Null);
    }
    // SAFETY: `ptr` is non-NULL and by contract points to a NUL-terminated string; `strnlen`
    // stops at the NUL or after `max_len + 1` bytes, whichever comes first.
    let len = unsafe { libc::strnlen(ptr, max_len.saturating_add(1)) };
    if len > max_len {
        return Err(StrError::TooLong);
    }
    // SAFETY: `strnlen` found a NUL at `ptr[len]`, so `len + 1` bytes are readable and end in
    // the string's terminator; C does not modify the string during the call.
    let c = unsafe { CStr::from_bytes_with_nul_unchecked(std::slice::from_raw_parts(ptr.cast::<u8>(), len + 1)) };
    c.to_str().map_err(|_| StrError::NotUtf8)
}

/// Why a C array argument was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SliceError {
    /// NULL with a non-zero length.
    Null,
    /// A length no array can have (more than `isize::MAX` bytes).
    TooLong,
}

/// Borrow a C array of `len` elements; NULL is accepted only with `len == 0`.
pub(crate) fn try_slice<'a, T>(ptr: *const T, len: usize) -> Result<&'a [T], SliceError> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(SliceError::Null);
    }
    if len > isize::MAX as usize / std::mem::size_of::<T>().max(1) {
        return Err(SliceError::TooLong);
    }
    // SAFETY: by contract a non-NULL array pointer points to `len` initialized elements that C
    // does not modify during the call; `len` is within `from_raw_parts`' size limit.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// A checked caller buffer of `len` elements for output (e.g. `char *buf, size_t buf_len`).
/// Its old content is never read (it may be uninitialized); it is written only on success.
pub(crate) struct OutBuf<'a, T> {
    ptr: *mut T,
    len: usize,
    _lifetime: PhantomData<&'a mut [T]>,
}

impl<T: Copy> OutBuf<'_, T> {
    /// Capacity in elements.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Copy `data` to the start of the buffer. Returns false (writing nothing) when it does not
    /// fit.
    pub(crate) fn write(self, data: &[T]) -> bool {
        if data.len() > self.len {
            return false;
        }
        // SAFETY: `ptr` is non-NULL and points to `len >= data.len()` writable elements (checked
        // in `try_out_buf` and above; by contract the caller's buffer is that long and nothing
        // else uses it during the call); a Rust slice cannot overlap the caller's buffer.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr, data.len()) };
        true
    }
}

/// Check an output buffer: NULL is refused (`SliceError::Null`), as is a length no array can
/// have.
pub(crate) fn try_out_buf<'a, T>(ptr: *mut T, len: usize) -> Result<OutBuf<'a, T>, SliceError> {
    if ptr.is_null() {
        return Err(SliceError::Null);
    }
    if len > isize::MAX as usize / std::mem::size_of::<T>().max(1) {
        return Err(SliceError::TooLong);
    }
    Ok(OutBuf { ptr, len, _lifetime: PhantomData })
}

/// A checked, non-NULL out-parameter. Written at most once, and only on success.
pub(crate) struct Out<'a, T> {
    ptr: *mut T,
    _lifetime: PhantomData<&'a mut T>,
}

impl<T> Out<'_, T> {
    /// Store `value` in the caller's variable (the old content is not read or dropped: it may
    /// be uninitialized).
    pub(crate) fn write(self, value: T) {
        // SAFETY: `ptr` is non-NULL (checked in `try_out`) and by contract points to writable,
        // aligned storage for a `T`; `write` does not read or drop the previous content.
        unsafe { self.ptr.write(value) }
    }
}

impl<T> Out<'_, T> {
    /// The last step of a successful export: store `value` and succeed.
    pub(crate) fn finish<E>(self, value: T) -> Result<(), E> {
        self.write(value);
        Ok(())
    }
}

impl<C: Castable> Out<'_, *mut C>
where
    C::Ownership: MayOwn,
{
    /// The last step of an export that makes an object: hand `value` to C as a new `C` (freed
    /// by its `_free`) and succeed.
    pub(crate) fn give<E>(self, value: C::RustType) -> Result<(), E> {
        self.finish(to_owned_ptr::<C>(value))
    }
}

/// Check an out-parameter; `None` for NULL.
pub(crate) fn try_out<'a, T>(ptr: *mut T) -> Option<Out<'a, T>> {
    (!ptr.is_null()).then_some(Out { ptr, _lifetime: PhantomData })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Thing;
    castable!(Thing: Owned => String);

    #[test]
    fn roundtrip() {
        let p = to_owned_ptr::<Thing>("x".to_string());
        assert_eq!(try_ref::<Thing>(p).map(String::as_str), Some("x"));
        try_mut::<Thing>(p).unwrap().push('y');
        assert_eq!(try_ref::<Thing>(p).map(String::as_str), Some("xy"));
        free_owned::<Thing>(p);
        free_owned::<Thing>(std::ptr::null_mut());
        assert!(try_ref::<Thing>(std::ptr::null()).is_none());
    }

    #[test]
    fn strings() {
        assert_eq!(try_str(c"abc".as_ptr(), 3), Ok("abc"));
        assert_eq!(try_str(c"abcd".as_ptr(), 3), Err(StrError::TooLong));
        assert_eq!(try_str(std::ptr::null(), 3), Err(StrError::Null));
        let bad = [0xffu8, 0xfe, 0];
        assert_eq!(try_str(bad.as_ptr().cast(), 10), Err(StrError::NotUtf8));
    }

    #[test]
    fn slices_and_outs() {
        assert_eq!(try_slice::<u8>(std::ptr::null(), 0), Ok(&[][..]));
        assert_eq!(try_slice::<u8>(std::ptr::null(), 1), Err(SliceError::Null));
        let one = [1u64];
        assert_eq!(try_slice(one.as_ptr(), usize::MAX), Err(SliceError::TooLong));
        assert!(matches!(try_out_buf::<u8>(std::ptr::null_mut(), 1), Err(SliceError::Null)));
        let mut buf = [7u8; 4];
        assert!(!try_out_buf(buf.as_mut_ptr(), 4).unwrap().write(&[1, 2, 3, 4, 5]));
        assert_eq!(buf, [7; 4]);
        assert!(try_out_buf(buf.as_mut_ptr(), 4).unwrap().write(&[1, 2]));
        assert_eq!(buf, [1, 2, 7, 7]);
        let mut v = 0u32;
        try_out(&mut v as *mut u32).unwrap().write(7);
        assert_eq!(v, 7);
        assert!(try_out::<u32>(std::ptr::null_mut()).is_none());
    }
}
