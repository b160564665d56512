//! The JSON bodies of the API, each with its OpenAPI schema. They are their
//! own types, converted from the engine's and the store's: a stored record
//! can change its encoding (or gain internal fields) without changing the
//! API, and the API's conventions hold everywhere:
//!
//! - every instant is an integer of milliseconds since the Unix epoch (UTC)
//!   in a field whose name ends in `_ms` (a duration ending in `_ms` says so
//!   in its description);
//! - every enum is a lower-case `snake_case` string;
//! - references to other objects end in `_id`;
//! - a list answers `{"<items>": [...], "next": cursor or null}`.
//!
//! The enums are mirrors of the domain's: the conversions are exhaustive
//! matches, so a new domain variant does not compile until the API has it.

pub mod backfills;
pub mod connections;
pub mod estimates;
pub mod gaps;
pub mod nodes;
pub mod notifications;
pub mod outputs;
pub mod plan;
pub mod plugins;
pub mod provenance;
pub mod runs;
pub mod tenancy;
pub mod workflows;

/// A `snake_case` string enum of the API mirroring a domain enum, with
/// conversions both ways (exhaustive, so they cannot drift).
macro_rules! api_enum {
    ($(#[$meta:meta])* $name:ident = $domain:ty { $($variant:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq,
            serde::Serialize, serde::Deserialize, utoipa::ToSchema,
        )]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($variant),+
        }

        impl From<$domain> for $name {
            fn from(d: $domain) -> Self {
                type D = $domain;
                match d {
                    $(D::$variant => $name::$variant),+
                }
            }
        }

        impl From<$name> for $domain {
            fn from(a: $name) -> Self {
                type D = $domain;
                match a {
                    $($name::$variant => D::$variant),+
                }
            }
        }
    };
}

pub(crate) use api_enum;

#[cfg(test)]
mod tests {
    use super::backfills::*;
    use super::runs::*;

    /// The mirrors spell every value as the domain's serde does (the store
    /// and the configuration use those spellings too).
    #[test]
    fn enum_spellings_match_the_domain() {
        use crate::run::RunState as D;
        for d in [
            D::Queued,
            D::WaitingUpstream,
            D::Running,
            D::Succeeded,
            D::Failed,
            D::Cancelled,
        ] {
            assert_eq!(
                serde_json::to_value(RunState::from(d)).unwrap(),
                serde_json::to_value(d).unwrap()
            );
        }
        use crate::backfill::Overlap as O;
        for d in [O::Wait, O::Skip, O::CancelOther] {
            assert_eq!(
                serde_json::to_value(Overlap::from(d)).unwrap(),
                serde_json::to_value(d).unwrap()
            );
        }
        use crate::executor::ErrorKind as K;
        for d in [K::FuelExhausted, K::DeadlineExceeded, K::Task, K::Quota] {
            assert_eq!(
                serde_json::to_value(ErrorKind::from(d)).unwrap(),
                serde_json::to_value(d).unwrap()
            );
        }
    }
}
