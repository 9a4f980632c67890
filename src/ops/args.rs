//! How an op's arguments are defined: what a row of the op table says of
//! one ([`Arg`]: name, [`Ty`], range, literal default), and [`op_args!`],
//! which declares, once, the struct an op reads its arguments into and its
//! rows, so the two cannot drift apart. The struct reads as serde's derive
//! with `deny_unknown_fields` would, with the same messages, each argument
//! through the [`Kind`] its row names.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::Unexpected;
use serde_json::Value;

use super::values;
use crate::registry::filter::Filter;

/// What an argument's value must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    /// A string.
    Text,
    /// A signed whole number, or a string of one.
    Int,
    /// A whole number (not negative), or a string of one.
    Whole,
    /// true or false, or a string of one.
    Flag,
    /// An image reference.
    Image,
    /// `CONTAINER/IMAGE` entries: a string (comma-separated) or a list.
    Entries,
    /// An opsState OpenKruiseGame knows (the op table's `OPS_STATES`).
    OpsState,
    /// `WaitToBeDeleted` or `Kill`.
    Then,
    /// `setOpsState`'s `select`.
    Select,
    /// `resolveTag`'s tag filter.
    Filter,
    /// Ordinals (`select.ids`).
    Ordinals,
    /// Labels and their values (`select.labels`).
    Labels,
}

/// The numbers a whole-number argument may take, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// The least.
    pub min: i128,
    /// The most.
    pub max: i128,
    /// Why, for a value outside.
    pub why: &'static str,
}

/// One argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arg {
    /// Its key under `plugin.gameops.<op>`.
    pub name: &'static str,
    /// What its value must be.
    pub ty: Ty,
    /// For numbers: the values it may take.
    pub range: Option<Range>,
    /// The value an argument left out takes, when that is a literal (other
    /// defaults, such as "the first container", are the op's to find).
    pub default: Option<Literal>,
}

/// A literal default value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Literal {
    /// A whole number.
    Whole(u64),
    /// true or false.
    Flag(bool),
}

impl Arg {
    /// An argument without a range or a literal default.
    pub const fn new(name: &'static str, ty: Ty) -> Self {
        Self {
            name,
            ty,
            range: None,
            default: None,
        }
    }

    /// With the numbers it may take, and why.
    #[must_use]
    pub const fn range(self, min: i128, max: i128, why: &'static str) -> Self {
        Self {
            range: Some(Range { min, max, why }),
            ..self
        }
    }

    /// With the value it takes when left out.
    #[must_use]
    pub const fn default(self, value: Literal) -> Self {
        Self {
            default: Some(value),
            ..self
        }
    }
}

/// An argument type: its row type and how it reads a JSON value.
pub trait Kind {
    /// What the op gets.
    type Value;
    /// Its type in the op table.
    const TY: Ty;
    /// Reads `value`; `null` is an argument not given.
    ///
    /// # Errors
    /// A value of another type, worded as serde words it.
    fn read(value: Value) -> Result<Option<Self::Value>, serde_json::Error>;
}

/// Declares argument kinds, each read by a function of [`values`] or
/// plainly by serde ([`plain`]).
macro_rules! kinds {
    ($($(#[doc = $doc:literal])* $kind:ident => $value:ty, $ty:ident, $read:path;)*) => {$(
        $(#[doc = $doc])*
        #[derive(Debug)]
        pub struct $kind;
        impl Kind for $kind {
            type Value = $value;
            const TY: Ty = Ty::$ty;
            fn read(value: Value) -> Result<Option<$value>, serde_json::Error> {
                $read(value)
            }
        }
    )*};
}

/// Reads `value` as serde reads a `T`.
///
/// # Errors
/// A value that is not a `T`.
pub fn plain<T: for<'de> Deserialize<'de>>(value: Value) -> Result<Option<T>, serde_json::Error> {
    Option::<T>::deserialize(value)
}

kinds! {
    /// A string.
    Text => String, Text, plain;
    /// An image reference.
    Image => String, Image, plain;
    /// An opsState.
    OpsState => String, OpsState, plain;
    /// `WaitToBeDeleted` or `Kill`.
    Then => String, Then, plain;
    /// `resolveTag`'s filter.
    TagFilter => Filter, Filter, plain;
    /// Labels and their values.
    Labels => BTreeMap<String, String>, Labels, plain;
    /// A signed whole number, or a string of one.
    Int => i64, Int, values::integer;
    /// A whole number, or a string of one.
    Whole => u64, Whole, values::whole;
    /// true or false, or a string of one.
    Flag => bool, Flag, values::flag;
    /// `CONTAINER/IMAGE` entries: a comma-separated string or a list.
    Entries => Vec<String>, Entries, values::list;
    /// Ordinals: numbers and ranges, in a list or a comma-separated string.
    Ordinals => Vec<u64>, Ordinals, values::ordinals;
}

/// What serde calls `value` in a message.
pub fn unexpected(value: &Value) -> Unexpected<'_> {
    match value {
        Value::Null => Unexpected::Unit,
        Value::Bool(b) => Unexpected::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Unexpected::Signed(i),
            (None, Some(u)) => Unexpected::Unsigned(u),
            (None, None) => Unexpected::Float(n.as_f64().unwrap_or_default()),
        },
        Value::String(s) => Unexpected::Str(s),
        Value::Array(_) => Unexpected::Seq,
        Value::Object(_) => Unexpected::Map,
    }
}

/// Declares an op's arguments once: a struct with one `Option` field per
/// argument (`field "wireName": Kind`, then `.range(min, max, why)` or
/// `.default(literal)` for the row), its `ARGS` (the op-table rows, in
/// order) and a `Deserialize` that refuses any other key.
macro_rules! op_args {
    ($(
        $(#[doc = $sdoc:literal])*
        $name:ident {
            $(
                $(#[doc = $doc:literal])*
                $field:ident $wire:literal : $kind:ident $(.$setting:ident($($value:expr),*))*
            ),* $(,)?
        }
    )*) => {$(
        $(#[doc = $sdoc])*
        #[derive(Debug, Default)]
        pub struct $name {
            $(
                $(#[doc = $doc])*
                pub $field: Option<<$kind as $crate::ops::args::Kind>::Value>,
            )*
        }

        impl $name {
            /// Its rows of the op table, in order.
            pub const ARGS: &'static [$crate::ops::args::Arg] = &[$(
                $crate::ops::args::Arg::new(
                    $wire,
                    <$kind as $crate::ops::args::Kind>::TY,
                )$(.$setting($($value),*))*,
            )*];
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                use ::serde::de::Error as _;
                const FIELDS: &[&str] = &[$($wire),*];
                let map = match ::serde_json::Value::deserialize(d)? {
                    ::serde_json::Value::Object(map) => map,
                    other => {
                        let found = $crate::ops::args::unexpected(&other);
                        return Err(D::Error::invalid_type(found, &"an object"));
                    }
                };
                #[allow(unused_mut, reason = "an op without arguments sets nothing")]
                let mut out = Self::default();
                #[allow(unused_variables, reason = "an op without arguments reads no value")]
                for (key, value) in map {
                    match key.as_str() {
                        $($wire => {
                            out.$field = <$kind as $crate::ops::args::Kind>::read(value)
                                .map_err(D::Error::custom)?;
                        })*
                        _ => return Err(D::Error::unknown_field(&key, FIELDS)),
                    }
                }
                Ok(out)
            }
        }
    )*};
}

pub(crate) use op_args;

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::ops::args::{Arg, Flag, Literal, Ty, Whole};

    super::op_args! {
        /// Two arguments.
        Sample {
            /// A number.
            count "count": Whole.range(1, 9, "one to nine"),
            /// A flag.
            dry_run "dryRun": Flag.default(Literal::Flag(false)),
        }
        /// None.
        Nothing {}
    }

    /// The rows and the reader come from one declaration, and the reader
    /// answers as serde's derive with `deny_unknown_fields` does.
    #[test]
    fn one_declaration_gives_the_rows_and_the_reader() {
        assert_eq!(
            Sample::ARGS,
            [
                Arg::new("count", Ty::Whole).range(1, 9, "one to nine"),
                Arg::new("dryRun", Ty::Flag).default(Literal::Flag(false)),
            ]
        );
        let s: Sample = serde_json::from_value(json!({"count": "3", "dryRun": null})).unwrap();
        assert_eq!((s.count, s.dry_run), (Some(3), None));
        let e = serde_json::from_value::<Sample>(json!({"count": 1, "tag": "x"})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown field `tag`, expected `count` or `dryRun`"
        );
        let e = serde_json::from_value::<Sample>(json!({"count": "three"})).unwrap_err();
        assert!(e.to_string().contains("whole number"), "{e}");
        let e = serde_json::from_value::<Sample>(json!("count=3")).unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"invalid type: string "count=3", expected an object"#
        );
        assert!(Nothing::ARGS.is_empty());
        let e = serde_json::from_value::<Nothing>(json!({"x": 1})).unwrap_err();
        assert_eq!(e.to_string(), "unknown field `x`, there are no fields");
    }
}
