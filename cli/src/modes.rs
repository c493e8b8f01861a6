//! The names of podnet's modes (`bridge`, `routed`, `overlay`, `auto`) as the command line reads
//! and prints them, spelled once: in [`Named::name`], which the flags' parsers, the tables and the
//! JSON the CLI builds by hand all use. They are the names core's serde and `FromStr` use (a test
//! keeps them equal); core could own them as `as_str`/`Display`, as `ErrorKind` does.

use clap::builder::{PossibleValuesParser, TypedValueParser};
use podnet::{CrossNodeMode, PeerPath, PodMode};

/// A mode with a fixed set of names.
pub trait Named: Copy + Send + Sync + 'static {
    /// Every value, in the order `--help` lists them.
    const ALL: &'static [Self];
    /// The value's name.
    fn name(self) -> &'static str;
}

/// Implement [`Named`] from one list of `Variant => "name"`: the match and `ALL` cannot drift.
macro_rules! named {
    ($($ty:ty { $($variant:ident => $name:literal),+ $(,)? })*) => {$(
        impl Named for $ty {
            const ALL: &'static [Self] = &[$(<$ty>::$variant),+];
            fn name(self) -> &'static str {
                match self {
                    $(<$ty>::$variant => $name,)+
                }
            }
        }
    )*};
}

named! {
    PodMode { Bridge => "bridge", Routed => "routed" }
    CrossNodeMode { Overlay => "overlay", Routed => "routed", Auto => "auto" }
    PeerPath { Overlay => "overlay", Routed => "routed" }
}

/// The flag parser for a mode: accepts exactly its names, lists them in `--help` and in the
/// usage error.
pub fn parser<T: Named>() -> impl TypedValueParser<Value = T> {
    PossibleValuesParser::new(T::ALL.iter().map(|v| v.name()))
        .map(|s| T::ALL.iter().copied().find(|v| v.name() == s).expect("the parser accepts only these names"))
}

/// A pod mode as people read it: `bridge (podnet0)` names the bridge, `routed` needs nothing more.
pub fn pod_mode_label(mode: PodMode, bridge: &str) -> String {
    match mode {
        PodMode::Bridge => format!("{} ({bridge})", mode.name()),
        PodMode::Routed => mode.name().into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same_as_core<T: Named + serde::Serialize + std::fmt::Debug>() {
        for v in T::ALL {
            assert_eq!(serde_json::to_value(v).unwrap(), v.name(), "{v:?}");
        }
    }

    #[test]
    fn names_are_cores() {
        same_as_core::<PodMode>();
        same_as_core::<CrossNodeMode>();
        same_as_core::<PeerPath>();
        for m in PodMode::ALL {
            assert_eq!(m.name().parse::<PodMode>().unwrap(), *m);
        }
        for m in CrossNodeMode::ALL {
            assert_eq!(m.name().parse::<CrossNodeMode>().unwrap(), *m);
        }
    }
}
