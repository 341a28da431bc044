//! Plain types shared by every layer: ids, the lifecycle enums, one record per table row.
//!
//! Boundary: this module depends on nothing in the crate but `error`. It does no I/O; the
//! store reads and writes these types, the use cases and the edges pass them around. Every
//! lifecycle value (a task's status, a priority, a decision, …) is an enum here, stored as
//! its text name, so no other module spells one as a string literal.

pub mod analytics;
pub mod approval;
pub mod audit;
pub mod credential;
pub mod dashboard;
pub mod delivery;
pub mod event;
pub mod job;
pub mod notification;
pub mod pipeline;
pub mod principal;
pub mod project;
pub mod routing;
pub mod run;
pub mod schedule;
pub mod session;
pub mod target;
pub mod task;
pub mod team_preset;
pub mod views;

pub use analytics::*;
pub use approval::*;
pub use audit::*;
pub use credential::*;
pub use dashboard::*;
pub use delivery::*;
pub use event::*;
pub use job::*;
pub use notification::*;
pub use pipeline::*;
pub use principal::*;
pub use project::*;
pub use routing::*;
pub use run::*;
pub use schedule::*;
pub use session::*;
pub use task::*;
pub use team_preset::*;
pub use views::*;

/// An enum stored as its text name: serde, OpenAPI, `as_str`, `ALL`, `FromStr` (an
/// invalid value names the field and the choices), `Display`, and sqlx encoding as text
/// on both databases.
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        $name:ident ($field:literal) {
            $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash,
            serde::Serialize, serde::Deserialize,
        )]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)+
        }

        // By hand: the derive does not see the names through the macro's literals and
        // would document the variant names ("Critical") instead of the API's ("critical").
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$($text,)+]))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The stored name.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }

            /// The stored names, comma-separated.
            pub fn choices() -> String {
                Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::error::Error;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                match text {
                    $($text => Ok(Self::$variant),)+
                    other => Err($crate::error::Error::invalid(
                        $field,
                        format!("{other:?} is not a {}; use {}", $field, Self::choices()),
                    )),
                }
            }
        }

        /// Compares with a stored name, so a test can assert on the text a client sees.
        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl<DB: sqlx::Database> sqlx::Type<DB> for $name
        where
            for<'a> &'a str: sqlx::Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <&str as sqlx::Type<DB>>::type_info()
            }

            fn compatible(ty: &DB::TypeInfo) -> bool {
                <&str as sqlx::Type<DB>>::compatible(ty)
            }
        }

        impl<'q, DB: sqlx::Database> sqlx::Encode<'q, DB> for $name
        where
            &'static str: sqlx::Encode<'q, DB>,
        {
            fn encode_by_ref(
                &self,
                buf: &mut <DB as sqlx::Database>::ArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&'static str as sqlx::Encode<'q, DB>>::encode(self.as_str(), buf)
            }
        }

        impl<'r, DB: sqlx::Database> sqlx::Decode<'r, DB> for $name
        where
            &'r str: sqlx::Decode<'r, DB>,
        {
            fn decode(
                value: <DB as sqlx::Database>::ValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                let text = <&'r str as sqlx::Decode<'r, DB>>::decode(value)?;
                Ok(text.parse::<$name>()?)
            }
        }
    };
}
pub(crate) use text_enum;

/// `'a', 'b'`: the stored names of `values` as an SQL list, for `IN (…)` clauses, so the
/// names are spelled only by their enum.
pub fn sql_list<T: Copy>(values: &[T], name: impl Fn(T) -> &'static str) -> String {
    values
        .iter()
        .map(|v| format!("'{}'", name(*v)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// True for 1-63 characters of `[a-z0-9-]` that start with a letter or digit.
pub fn is_slug(value: &str) -> bool {
    let mut chars = value.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && value.len() <= 63
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}
