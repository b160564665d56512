//! Plugin versions and dataset partitions.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::store::PluginMeta;

/// A plugin upload: the bytes of a `.wasm` component.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct WasmComponent(#[allow(dead_code)] Vec<u8>);

/// A stored plugin version.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PluginVersion {
    pub name: String,
    pub version: u32,
    /// `sha256:` and the hex SHA-256 of the component.
    pub digest: String,
    /// Bytes.
    pub size: u64,
    pub created_ms: i64,
    /// What the component exports (validated at upload).
    pub exports: Vec<String>,
}

impl From<PluginMeta> for PluginVersion {
    fn from(p: PluginMeta) -> Self {
        let PluginMeta {
            name,
            version,
            digest,
            size,
            created_ms,
            exports,
        } = p;
        PluginVersion {
            name,
            version,
            digest,
            size,
            created_ms,
            exports,
        }
    }
}

/// A page of the tenant's plugin versions, by name and version.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PluginList {
    pub plugins: Vec<PluginVersion>,
    /// The `after` of the next page (`NAME:VERSION`), `null` on the last.
    #[schema(required = true)]
    pub next: Option<String>,
}

/// A page of one plugin's versions.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PluginVersions {
    pub name: String,
    pub versions: Vec<PluginVersion>,
    /// The `after` of the next page (a version), `null` on the last.
    #[schema(required = true)]
    pub next: Option<u32>,
}

/// One key of a partition. A UTF-8 value comes as `value`, any other as
/// `value_base64`; exactly one of them is present.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PartitionEntry {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_base64: Option<String>,
}

/// A page of one window's partition of a dataset, in key order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Partition {
    pub dataset: String,
    pub window_start_ms: i64,
    pub entries: Vec<PartitionEntry>,
    /// The `after` of the next page (a key), `null` on the last.
    #[schema(required = true)]
    pub next: Option<String>,
}
