//! Record objects: what C reads through one `#[repr(C)]` view (`podnet_<object>_info`, or a list
//! element that is such a struct itself), and the one conversion from each core value to it.
//! Every result object and list is a `Record`, a `Vec` of them, or a `Built` builder.

use std::any::Any;
use std::ffi::{c_char, CString};
use std::fmt::Display;
use std::sync::OnceLock;

use crate::buffer::podnet_string_list;
use crate::error::cstring;
use crate::handle::{Borrowed, Castable, View};

/// A core value converted for C, once, when the object is made.
pub(crate) trait FromCore<T> {
    /// The C-side object showing `value`.
    fn from_core(value: &T) -> Self;
}

/// A list converts element by element (`podnet_sandbox_list` from the node's sandboxes, ...).
impl<T, R: FromCore<T>> FromCore<Vec<T>> for Vec<R> {
    fn from_core(values: &Vec<T>) -> Vec<R> {
        values.iter().map(R::from_core).collect()
    }
}

/// The view `I` first (`#[repr(C)]`, so a pointer to the record is a pointer to the view), then
/// the memory its pointers point into.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct Record<I> {
    info: I,
    _backing: Backing,
}

impl<I> Record<I> {
    /// The record of the view `fill` returns, converting what the view points to into C memory
    /// the record keeps (`Backing`).
    pub(crate) fn build(fill: impl FnOnce(&mut Backing) -> I) -> Record<I> {
        let mut backing = Backing::default();
        let info = fill(&mut backing);
        Record { info, _backing: backing }
    }
}

/// The C memory a record's view points into: text and arrays converted once and never touched
/// again. All of it is on the heap, so the view stays valid when the record moves, until the
/// record is dropped.
#[derive(Debug, Default)]
pub(crate) struct Backing {
    text: Vec<CString>,
    arrays: Vec<Box<dyn Any>>,
}

impl Backing {
    /// `value` as C text (a NUL inside is dropped, never a panic).
    pub(crate) fn text(&mut self, value: impl Display) -> *const c_char {
        let text = cstring(value.to_string());
        let ptr = text.as_ptr();
        self.text.push(text);
        ptr
    }

    /// `items` as a C string list.
    pub(crate) fn list<T: Display>(&mut self, items: impl IntoIterator<Item = T>) -> podnet_string_list {
        let ptrs: Vec<*const c_char> = items.into_iter().map(|item| self.text(item)).collect();
        let (items, count) = self.keep(ptrs);
        podnet_string_list { items, count }
    }

    /// `items`, each converted by `convert` (which may keep memory here too), as a C array: its
    /// first element and its length.
    pub(crate) fn array<S, T: 'static>(
        &mut self,
        items: &[S],
        mut convert: impl FnMut(&mut Backing, &S) -> T,
    ) -> (*const T, usize) {
        let converted: Vec<T> = items.iter().map(|item| convert(self, item)).collect();
        self.keep(converted)
    }

    fn keep<T: 'static>(&mut self, items: Vec<T>) -> (*const T, usize) {
        let view = (items.as_ptr(), items.len());
        self.arrays.push(Box::new(items));
        view
    }
}

impl<I: Castable<Ownership = Borrowed, RustType = I>> View for Record<I> {
    type Info = I;
    fn info(&self) -> &I {
        &self.info
    }
}

/// `record!(podnet_x: Owned => podnet_x_info)`: a `podnet_x` (held as `Owned` or
/// `OwnedOrLent`) is a `Record<podnet_x_info>`, and C reads its view through a borrowed
/// `const podnet_x_info *`.
macro_rules! record {
    ($c:ty: $ownership:ident => $info:ident) => {
        $crate::handle::castable!($c: $ownership => $crate::record::Record<$info>);
        $crate::handle::castable!($info: Borrowed => $info);
    };
}
pub(crate) use record;

/// A builder object (`podnet_peer`, `podnet_service`): the core value the setters change, and
/// its view, built on first read (so a setter is O(1)) and dropped by `edit`, so that what
/// `_get_info` returned is valid until the next setter call.
#[derive(Debug)]
pub(crate) struct Built<T, I> {
    value: T,
    view: OnceLock<Record<I>>,
}

impl<T, I> Built<T, I> {
    /// A builder holding `value`, its view not built yet.
    pub(crate) fn new(value: T) -> Built<T, I> {
        Built { value, view: OnceLock::new() }
    }

    /// The value as the setters left it.
    pub(crate) fn value(&self) -> &T {
        &self.value
    }

    /// The value to change; the view is rebuilt on the next read.
    pub(crate) fn edit(&mut self) -> &mut T {
        self.view = OnceLock::new();
        &mut self.value
    }
}

/// A builder listed by a node (`podnet_node_peer_list`, `podnet_node_service_list`).
impl<T: Clone, I> FromCore<T> for Built<T, I> {
    fn from_core(value: &T) -> Built<T, I> {
        Built::new(value.clone())
    }
}

impl<T, I: Castable<Ownership = Borrowed, RustType = I>> View for Built<T, I>
where
    Record<I>: FromCore<T>,
{
    type Info = I;
    fn info(&self) -> &I {
        self.view.get_or_init(|| Record::from_core(&self.value)).info()
    }
}
