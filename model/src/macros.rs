//! `string_enum!`: a unit-only enum with a stable CBOR index per variant and
//! a stable lowercase name for HCL, JSON and the CLI.

/// Why a name did not match any variant of a [`string_enum!`] type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?} (expected one of: {expected})")]
pub struct UnknownVariant {
    /// What kind of thing was named ("job type", "operator", ...).
    pub kind: &'static str,
    /// The name as written.
    pub value: String,
    /// The accepted names, comma separated.
    pub expected: String,
}

/// Declares a unit enum; the first variant is the default. Each variant has
/// a CBOR index that is never reused, and one or more names: the first is
/// canonical, the rest are accepted aliases.
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident ($kind:literal) {
            $(
                $(#[$vmeta:meta])*
                $variant:ident = $idx:literal, $text:literal $(| $alias:literal)*
            );+ $(;)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash,
                 minicbor::Encode, minicbor::Decode)]
        #[cfg_attr(test, derive(arbitrary::Arbitrary))]
        #[cbor(index_only)]
        $vis enum $name {
            $(
                $(#[$vmeta])*
                #[n($idx)]
                $variant,
            )+
        }

        #[allow(dead_code)]
        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The canonical name.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::ALL[0]
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::macros::UnknownVariant;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text $(| $alias)* => Ok($name::$variant),)+
                    _ => Err($crate::macros::UnknownVariant {
                        kind: $kind,
                        value: s.to_owned(),
                        expected: [$($text),+].join(", "),
                    }),
                }
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
