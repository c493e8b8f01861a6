//! Routes the library's `tracing` events into the host's logger: a minimal `tracing::Subscriber`
//! (no tracing-subscriber crate) that formats each event with its span context into one line
//! and calls the host's callback.

use std::cell::RefCell;
use std::ffi::{c_char, c_void};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError, RwLock};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

use crate::call::fallible;
use crate::error::{cstring, podnet_error};
use crate::status::podnet_status;

/// Severity of a log record, and the threshold passed to `podnet_set_log_callback`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum podnet_log_level {
    /// No records (as a threshold: logging off).
    Off = 0,
    /// Something failed that podnet could not repair (e.g. a rollback step).
    Error = 1,
    /// Something failed and podnet handled it (e.g. a create rolled back).
    Warn = 2,
    /// Informational records.
    Info = 3,
    /// Details of podnet's decisions (e.g. a repeated create returning the existing sandbox).
    Debug = 4,
    /// Very verbose.
    Trace = 5,
}

/// A log level as passed into podnet: `uint32_t` in the ABI so any value is defined behaviour;
/// the header spells it `podnet_log_level` (cbindgen.toml renames it).
pub type podnet_log_level_code = u32;

/// The host's log function: called with the `user_data` given to `podnet_set_log_callback`, the
/// record's level, its target (the podnet module, e.g. "podnet::sandbox") and its message (one
/// line: "span{fields}: message key=value ..."). `target` and `message` are valid only during
/// the call (copy them to keep them).
///
/// Called from podnet's threads and from the threads that call podnet, possibly concurrently:
/// it must be thread-safe. It must not call podnet functions, block for long, unwind (C++
/// exception) or `longjmp` out.
pub type podnet_log_fn = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        level: podnet_log_level,
        target: *const c_char,
        message: *const c_char,
    ),
>;

struct Sink {
    callback: unsafe extern "C" fn(*mut c_void, podnet_log_level, *const c_char, *const c_char),
    user_data: *mut c_void,
}

// SAFETY: `user_data` is an opaque token we never dereference; the header requires the callback
// (and so what it does with `user_data`) to be callable from any thread, concurrently.
unsafe impl Send for Sink {}
// SAFETY: as above; `Sink` is only read (its fields are copied out) once stored.
unsafe impl Sync for Sink {}

/// Current threshold (a `podnet_log_level` value); events above it are disabled cheaply.
static MAX_LEVEL: AtomicU32 = AtomicU32::new(podnet_log_level::Off as u32);
/// The callback. A read lock is held while it runs, so after `podnet_set_log_callback`
/// returns, the old callback is never called again and its `user_data` may be freed.
static SINK: RwLock<Option<Sink>> = RwLock::new(None);
/// Whether our subscriber became the global default (once per process).
static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();

fn c_level(l: &Level) -> podnet_log_level {
    match *l {
        Level::ERROR => podnet_log_level::Error,
        Level::WARN => podnet_log_level::Warn,
        Level::INFO => podnet_log_level::Info,
        Level::DEBUG => podnet_log_level::Debug,
        Level::TRACE => podnet_log_level::Trace,
    }
}

/// Formats fields: the `message` field as is, the others as " key=value".
struct Fields<'a> {
    message: &'a mut String,
    rest: &'a mut String,
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.rest, " {}={}", field.name(), value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.rest, " {}={:?}", field.name(), value);
        }
    }
}

struct SpanRec {
    name: &'static str,
    fields: String,
    /// "outer{..}:inner{..}" including this span.
    context: String,
    parent_context: String,
    refs: usize,
}

impl SpanRec {
    fn rebuild(&mut self) {
        let own = format!("{}{{{}}}", self.name, self.fields.trim_start());
        self.context = if self.parent_context.is_empty() { own } else { format!("{}:{own}", self.parent_context) };
    }
}

thread_local! {
    /// Spans entered on this thread, innermost last.
    static STACK: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

/// Open spans; a span's id is its index + 1 (ids of closed spans are reused, as tracing allows).
/// A plain vector rather than a hash map: the subscriber lives for the whole process, and a
/// heap block referenced from its start reads as "still reachable" to leak checkers.
#[derive(Default)]
struct Spans {
    slots: Vec<Option<SpanRec>>,
    free: Vec<usize>,
}

impl Spans {
    fn get_mut(&mut self, id: u64) -> Option<&mut SpanRec> {
        let i = usize::try_from(id).ok()?.checked_sub(1)?;
        self.slots.get_mut(i).and_then(Option::as_mut)
    }

    fn insert(&mut self, rec: SpanRec) -> u64 {
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i] = Some(rec);
                i
            }
            None => {
                self.slots.push(Some(rec));
                self.slots.len() - 1
            }
        };
        i as u64 + 1
    }

    fn remove(&mut self, id: u64) {
        if let Some(i) = usize::try_from(id).ok().and_then(|i| i.checked_sub(1)) {
            if let Some(slot) = self.slots.get_mut(i) {
                if slot.take().is_some() {
                    self.free.push(i);
                }
            }
        }
    }
}

struct CallbackSubscriber {
    spans: Mutex<Spans>,
}

impl CallbackSubscriber {
    fn context_of(&self, id: Option<u64>) -> String {
        let Some(id) = id else { return String::new() };
        let mut spans = self.spans.lock().unwrap_or_else(PoisonError::into_inner);
        spans.get_mut(id).map(|s| s.context.clone()).unwrap_or_default()
    }

    fn current(&self) -> Option<u64> {
        STACK.try_with(|s| s.borrow().last().copied()).ok().flatten()
    }
}

impl Subscriber for CallbackSubscriber {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        c_level(metadata.level()) as u32 <= MAX_LEVEL.load(Ordering::Relaxed)
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        use tracing::level_filters::LevelFilter;
        Some(match MAX_LEVEL.load(Ordering::Relaxed) {
            0 => LevelFilter::OFF,
            1 => LevelFilter::ERROR,
            2 => LevelFilter::WARN,
            3 => LevelFilter::INFO,
            4 => LevelFilter::DEBUG,
            _ => LevelFilter::TRACE,
        })
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let (mut message, mut fields) = (String::new(), String::new());
        span.record(&mut Fields { message: &mut message, rest: &mut fields });
        if !message.is_empty() {
            fields = format!(" message={message:?}{fields}");
        }
        let parent = if span.is_contextual() { self.current() } else { span.parent().map(Id::into_u64) };
        let mut rec = SpanRec {
            name: span.metadata().name(),
            fields,
            context: String::new(),
            parent_context: self.context_of(parent),
            refs: 1,
        };
        rec.rebuild();
        Id::from_u64(self.spans.lock().unwrap_or_else(PoisonError::into_inner).insert(rec))
    }

    fn record(&self, span: &Id, values: &Record<'_>) {
        let mut spans = self.spans.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(rec) = spans.get_mut(span.into_u64()) {
            let mut message = String::new();
            values.record(&mut Fields { message: &mut message, rest: &mut rec.fields });
            rec.rebuild();
        }
    }

    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let (mut message, mut rest) = (String::new(), String::new());
        event.record(&mut Fields { message: &mut message, rest: &mut rest });
        let parent = if event.is_contextual() { self.current() } else { event.parent().map(Id::into_u64) };
        let ctx = self.context_of(parent);
        let line = if ctx.is_empty() { format!("{message}{rest}") } else { format!("{ctx}: {message}{rest}") };
        let meta = event.metadata();
        let target = cstring(meta.target());
        let line = cstring(line);
        let sink = SINK.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(s) = sink.as_ref() {
            // SAFETY: the host registered `callback` with this `user_data` and promised (header)
            // it is callable from any thread; both strings outlive the call.
            unsafe { (s.callback)(s.user_data, c_level(meta.level()), target.as_ptr(), line.as_ptr()) }
        }
    }

    fn enter(&self, span: &Id) {
        let _ = STACK.try_with(|s| s.borrow_mut().push(span.into_u64()));
    }

    fn exit(&self, span: &Id) {
        let id = span.into_u64();
        let _ = STACK.try_with(|s| {
            let mut s = s.borrow_mut();
            if let Some(pos) = s.iter().rposition(|x| *x == id) {
                s.remove(pos);
            }
        });
    }

    fn clone_span(&self, id: &Id) -> Id {
        if let Some(rec) = self.spans.lock().unwrap_or_else(PoisonError::into_inner).get_mut(id.into_u64()) {
            rec.refs += 1;
        }
        id.clone()
    }

    fn try_close(&self, id: Id) -> bool {
        let mut spans = self.spans.lock().unwrap_or_else(PoisonError::into_inner);
        let key = id.into_u64();
        match spans.get_mut(key) {
            Some(rec) if rec.refs > 1 => {
                rec.refs -= 1;
                false
            }
            Some(_) => {
                spans.remove(key);
                true
            }
            None => false,
        }
    }
}

fn install() -> Result<(), String> {
    INSTALLED
        .get_or_init(|| {
            let sub = CallbackSubscriber { spans: Mutex::new(Spans::default()) };
            tracing::subscriber::set_global_default(sub).map_err(|e| e.to_string())
        })
        .clone()
}

/// Route podnet's log records at `max_level` and more severe to `callback`, with `user_data`
/// passed back on every call (see `podnet_log_fn`). Process-wide: it applies to every node.
///
/// `callback` NULL or `max_level` `PODNET_LOG_LEVEL_OFF` turns logging off. A new call replaces
/// the previous callback: when it returns, the previous one is no longer running and will not
/// be called again (its `user_data` may be freed). Logging is off until this is first called.
///
/// Errors: `PODNET_STATUS_INVALID_ARGUMENT` for a level above `PODNET_LOG_LEVEL_TRACE`;
/// `PODNET_STATUS_CONFLICT` when another `tracing` subscriber already is the process's global
/// default (a Rust host that installed its own; it receives podnet's records then). On failure
/// the previous setting stays. Thread-safe; must not be called from the callback itself.
#[no_mangle]
pub extern "C" fn podnet_set_log_callback(
    max_level: podnet_log_level_code,
    callback: podnet_log_fn,
    user_data: *mut c_void,
    err_out: *mut *mut podnet_error,
) -> podnet_status {
    fallible("podnet_set_log_callback", err_out, |c| {
        if max_level > podnet_log_level::Trace as u32 {
            return Err(c.err(podnet_status::InvalidArgument, format!("unknown log level {max_level}")));
        }
        let new = match callback {
            Some(callback) if max_level != podnet_log_level::Off as u32 => {
                install().map_err(|e| c.err(podnet_status::Conflict, format!("install log subscriber: {e}")))?;
                Some(Sink { callback, user_data })
            }
            _ => None,
        };
        let level = if new.is_some() { max_level } else { podnet_log_level::Off as u32 };
        // Lower the level first so no new event starts, then swap under the write lock, which
        // waits for callbacks still running.
        MAX_LEVEL.store(level.min(MAX_LEVEL.load(Ordering::Relaxed)), Ordering::Relaxed);
        *SINK.write().unwrap_or_else(PoisonError::into_inner) = new;
        MAX_LEVEL.store(level, Ordering::Relaxed);
        tracing::callsite::rebuild_interest_cache();
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    static LINES: Mutex<Vec<(u32, String, String)>> = Mutex::new(Vec::new());

    unsafe extern "C" fn collect(_: *mut c_void, level: podnet_log_level, target: *const c_char, msg: *const c_char) {
        // SAFETY: the subscriber passes valid NUL-terminated strings for the call's duration.
        let (t, m) = unsafe { (CStr::from_ptr(target), CStr::from_ptr(msg)) };
        LINES.lock().unwrap().push((level as u32, t.to_string_lossy().into(), m.to_string_lossy().into()));
    }

    #[test]
    fn events_reach_the_callback_with_span_context() {
        let st = podnet_set_log_callback(4, Some(collect), std::ptr::null_mut(), std::ptr::null_mut());
        assert_eq!(st, podnet_status::Ok);
        {
            let span = tracing::info_span!("create_sandbox", id = %"web-1");
            let _g = span.enter();
            tracing::warn!(error = %"boom", "create failed; rolling back");
            tracing::trace!("too verbose");
        }
        assert_eq!(
            podnet_set_log_callback(99, Some(collect), std::ptr::null_mut(), std::ptr::null_mut()),
            podnet_status::InvalidArgument
        );
        assert_eq!(podnet_set_log_callback(0, None, std::ptr::null_mut(), std::ptr::null_mut()), podnet_status::Ok);
        tracing::error!("after off");
        let lines = LINES.lock().unwrap().clone();
        let ours: Vec<_> = lines.iter().filter(|l| l.1.contains("log::tests")).collect();
        assert_eq!(ours.len(), 1, "{lines:?}");
        assert_eq!(ours[0].0, 2);
        assert_eq!(ours[0].2, "create_sandbox{id=web-1}: create failed; rolling back error=boom");
    }
}
