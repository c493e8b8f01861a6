//! C enums that stand for a core enum, value for value. One table per pair gives both
//! directions (both checked exhaustively by the compiler), and `Call::code` refuses a C code the
//! library does not know.

/// A `#[repr(u32)]` C enum whose values (but 0, `Unknown`) stand for the values of a core enum.
/// Declare one with `c_enum!`.
pub(crate) trait CEnum: Copy {
    /// The core enum.
    type Core;
    /// The argument's name in errors ("unknown mode 7").
    const WHAT: &'static str;
    /// The C value of a core value.
    fn from_core(core: Self::Core) -> Self;
    /// The core value of a C code; `None` for 0 and for codes this library does not know.
    fn to_core(code: u32) -> Option<Self::Core>;
}

/// `c_enum!(podnet_x <=> CoreX, "what" { CVariant => CoreX::Variant, ... })`.
macro_rules! c_enum {
    ($c:ident <=> $core:ty, $what:literal { $($cv:ident => $corev:path),+ $(,)? }) => {
        impl $crate::cenum::CEnum for $c {
            type Core = $core;
            const WHAT: &'static str = $what;
            fn from_core(core: $core) -> $c {
                match core {
                    $($corev => $c::$cv,)+
                }
            }
            fn to_core(code: u32) -> Option<$core> {
                $(if code == $c::$cv as u32 {
                    return Some($corev);
                })+
                None
            }
        }
    };
}
pub(crate) use c_enum;
