//! The OpenAPI document: the paths come from the handlers' annotations;
//! here the document gets its info, the bearer scheme, and the error
//! responses every operation can give, in the one error shape.

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ComponentsBuilder, OpenApi, RefOr, Response};
use utoipa::{PartialSchema, ToSchema};

/// `{"error": {"code", "message", "details"}}`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorDetail {
    /// A stable machine code, e.g. `not_found`, `quota_exceeded`.
    code: String,
    message: String,
    /// Specifics, e.g. the quota and its limit.
    details: std::collections::BTreeMap<String, serde_json::Value>,
}

/// The conventions every body follows (also in the README's API section).
const DESCRIPTION: &str = "Workflow scheduler with WebAssembly tasks. Every request carries \
`Authorization: Bearer TOKEN` (a tenant's token, or the admin token for the admin operations).

Conventions:
- Instants are integers of milliseconds since the Unix epoch (UTC), in fields whose names end \
in `_ms` (`created_ms`, `window_start_ms`); the few durations in milliseconds say so \
(`timeout_per_attempt_ms`). Query parameters and request fields that take an instant accept \
RFC 3339 or epoch milliseconds.
- Enums are lower-case `snake_case` strings.
- References to other objects end in `_id` (`run_id`, `backfill_id`).
- Lists answer `{\"<items>\": [...], \"next\": cursor}`; pass `next` back as `after` for the \
next page (`null` on the last).
- Every error answers `{\"error\": {\"code\", \"message\", \"details\"}}` (`ErrorBody`) with a \
stable `code`.";

/// The errors any operation may answer with.
const ERRORS: &[(&str, &str)] = &[
    ("400", "Invalid input; the message names the problem"),
    ("401", "Missing, malformed, invalid or revoked token"),
    ("403", "The token may not do this, or a quota refuses it"),
    ("404", "No such object (or another tenant's)"),
    ("409", "The object's state does not allow this"),
    ("413", "The body (or plugin) is too large"),
    ("415", "Unsupported content type"),
    ("422", "The body could not be understood"),
    ("429", "Rate limited; see Retry-After"),
    ("500", "Internal error; see the daemon's log"),
    ("501", "Not implemented"),
    ("503", "The store is unavailable"),
];

pub fn finish(mut doc: OpenApi) -> OpenApi {
    doc.info.title = "Tidemark".into();
    doc.info.version = env!("CARGO_PKG_VERSION").into();
    doc.info.description = Some(DESCRIPTION.into());
    let mut components = doc
        .components
        .take()
        .unwrap_or_else(|| ComponentsBuilder::new().build());
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
    components
        .schemas
        .insert("ErrorBody".into(), ErrorBody::schema());
    components
        .schemas
        .insert("ErrorDetail".into(), ErrorDetail::schema());
    doc.components = Some(components);
    doc.security = Some(vec![SecurityRequirement::new(
        "bearer",
        Vec::<String>::new(),
    )]);
    for item in doc.paths.paths.values_mut() {
        for op in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
        ]
        .into_iter()
        .flatten()
        {
            add_errors(op);
        }
    }
    doc
}

fn add_errors(op: &mut Operation) {
    for (status, description) in ERRORS {
        let response = utoipa::openapi::ResponseBuilder::new()
            .description(*description)
            .content(
                "application/json",
                utoipa::openapi::ContentBuilder::new()
                    .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                        "ErrorBody",
                    ))))
                    .build(),
            )
            .build();
        op.responses
            .responses
            .entry((*status).to_owned())
            .or_insert(RefOr::T::<Response>(response));
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    /// `docs/openapi.json` is the document the console's types and the
    /// Python client are generated from: it must be the code's. Rewrite it
    /// with `UPDATE_OPENAPI=1 cargo test -p tidemark --lib openapi`.
    #[test]
    fn committed_openapi_document_is_current() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json");
        let fresh =
            serde_json::to_string_pretty(&crate::api::document()).expect("serializes") + "\n";
        if std::env::var_os("UPDATE_OPENAPI").is_some_and(|v| v == "1") {
            std::fs::write(&path, &fresh).expect("writing docs/openapi.json");
            return;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == fresh,
            "docs/openapi.json is stale: run `UPDATE_OPENAPI=1 cargo test -p tidemark --lib openapi` and commit it"
        );
    }
}
