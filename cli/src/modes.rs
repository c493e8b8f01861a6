//! The names of podnet's modes (`bridge`, `routed`, `overlay`, `auto`) as the command line reads
//! and prints them, through [`Named::name`], which the flags' parsers, the tables and the JSON the
//! CLI builds by hand all use. Core names its config enums (`PodMode::name`, ...); only the peer
//! path's names are spelled here (a test keeps them equal to core's serde names).

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
    PeerPath { Overlay => "overlay", Routed => "routed" }
}

/// Core's config enums name themselves (`name`, `Display`, `FromStr`): only their values here.
macro_rules! named_by_core {
    ($($ty:ident [$($variant:ident),+])*) => {$(
        impl Named for $ty {
            const ALL: &'static [Self] = &[$($ty::$variant),+];
            fn name(self) -> &'static str {
                $ty::name(self)
            }
        }
    )*};
}

named_by_core! {
    PodMode [Bridge, Routed]
    CrossNodeMode [Overlay, Routed, Auto]
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
