//! Wire types exchanged between the Outpost control plane (CP) and agent nodes.
//!
//! Everything here crosses the node gateway (mTLS) or sits in a file handed to a node at
//! boot. No type in this crate may carry conversation content, a contact identifier or a
//! secret value in plaintext: reports carry health and counts only (DESIGN §1, §3).
//!
//! The protocol is versioned by [`PROTOCOL_VERSION`]; fields are only ever added, with
//! `#[serde(default)]`, so an older node keeps talking to a newer CP.

use serde::{Deserialize, Serialize};
use std::fmt;

pub mod config;
pub mod node_state;
pub mod role;
pub mod scope;
pub mod secret;
pub use config::{AgentConfig, BusinessHours, ModelChoice, ProviderKind, WorkspaceConfig};
pub use node_state::NodeState;
pub use role::Role;
pub use scope::Scope;
pub use secret::SecretKind;

/// Version of the CP<->node protocol spoken by this build.
pub const PROTOCOL_VERSION: u32 = 1;

/// Prefix of the URI subject alternative name that carries a node's identity in its
/// client certificate: `outpost://node/<node id>`.
pub const NODE_SAN_PREFIX: &str = "outpost://node/";

/// Longest long-poll the CP honours for `GET /v1/node/commands?wait=N`, in seconds.
pub const MAX_COMMAND_WAIT_SECS: u64 = 25;

/// Identifier of an agent node (a UUID v4, rendered in its hyphenated form).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(pub String);

impl NodeId {
    /// A fresh random node id.
    pub fn new_random() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    /// Parses and normalises a node id; `None` if it is not a UUID.
    pub fn parse(s: &str) -> Option<Self> {
        uuid::Uuid::parse_str(s).ok().map(|u| Self(u.to_string()))
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The URI SAN that a certificate for this node carries.
    pub fn san_uri(&self) -> String {
        format!("{NODE_SAN_PREFIX}{}", self.0)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The file the provisioner hands to a new node (local: `bootstrap.json`, mode 0600;
/// cloud: cloud-init user-data). The token inside is single use and expires after 30
/// minutes, so the file is useless once the node has enrolled.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BootstrapBundle {
    /// The node's id, assigned by the CP.
    pub node_id: NodeId,
    /// `https://host:port` of the CP's node gateway.
    pub gateway_url: String,
    /// PEM of the CP's internal CA: the node pins it and trusts nothing else.
    pub ca_pem: String,
    /// `<node_id>.<32 random bytes, base64url>`; the CP stores only its SHA-256.
    pub token: String,
    /// Address the node's own HTTP server (console, widget, webhooks) binds to.
    pub listen_addr: String,
    /// Public base URL of the node's HTTP server, as browsers reach it.
    pub public_url: String,
    /// Workspace the node serves.
    pub workspace: WorkspaceInfo,
    /// Interval between health reports, in seconds (30 in production; tests shorten it).
    #[serde(default = "default_report_interval")]
    pub report_interval_secs: f64,
    /// The node's public DNS name (`<slug>.<nodes_domain>`) on a real server. With it the
    /// node obtains its own certificate over ACME and serves HTTPS at `https://<host>`
    /// (port 80 answers ACME challenges and redirects); without it (local nodes) it serves
    /// plain HTTP on `listen_addr`. Absent in bundles written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_host: Option<String>,
    /// The release public key (Ed25519, raw 32 bytes, base64url) whose signature a binary
    /// needs before the node installs it as an upgrade (`OUTPOST_RELEASE_PUBLIC_KEY` on the
    /// CP). Without one the node refuses every upgrade. Absent in older bundles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_public_key: Option<String>,
}

fn default_report_interval() -> f64 {
    30.0
}

/// Workspace metadata a node needs to present itself (names only, no content).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceInfo {
    /// Workspace id in the CP (UUID).
    pub id: String,
    /// URL slug, e.g. `acme-dental`.
    pub slug: String,
    /// Display name, e.g. `Acme Dental`.
    pub name: String,
}

/// `POST /v1/enroll` body. Sent over server-authenticated TLS (no client cert yet).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EnrollRequest {
    /// The bootstrap token from [`BootstrapBundle::token`].
    pub token: String,
    /// PEM CSR for the node's TLS key, generated on the node (P-256).
    pub csr_pem: String,
    /// The node's age X25519 recipient (`age1…`); secrets are sealed to it.
    pub age_recipient: String,
    /// The node software version.
    pub version: String,
    /// The node's clock (unix seconds) when it sent this: the CP refuses with 409
    /// `clock_skew` when it is more than 5 minutes off its own. Absent from older nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_time: Option<i64>,
}

/// `POST /v1/enroll` response.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EnrollResponse {
    /// The node id the certificate was issued for.
    pub node_id: NodeId,
    /// PEM client certificate (SAN `outpost://node/<id>`, EKU clientAuth).
    pub cert_pem: String,
    /// Ed25519 public key (base64url, raw 32 bytes) that signs capability tokens.
    pub capability_public_key: String,
    /// Workspace the node serves (repeated so a node can recover it from enrollment).
    pub workspace: WorkspaceInfo,
}

/// `POST /v1/node/renew` body: a CSR for a fresh key.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RenewRequest {
    /// PEM CSR for the node's new TLS key.
    pub csr_pem: String,
}

/// `POST /v1/node/renew` response.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RenewResponse {
    /// The new PEM client certificate.
    pub cert_pem: String,
}

/// One health check result. `detail_code` is a stable snake_case code, never free text
/// (free text could carry content).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// Check name, e.g. `storage`, `llm`, `telegram`.
    pub name: String,
    /// Whether the check passes.
    pub ok: bool,
    /// Stable code explaining a failure (`disk_full`, `token_revoked`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail_code: Option<String>,
}

/// Message counts for one channel in one hour (UTC, unix seconds at the start of the hour).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountBucket {
    /// Channel name: `web`, `telegram`, `whatsapp`.
    pub channel: String,
    /// Start of the hour, unix seconds.
    pub hour: i64,
    /// Inbound messages in that hour.
    pub inbound: i64,
    /// Outbound messages in that hour.
    pub outbound: i64,
    /// Conversations started in that hour.
    pub conversations: i64,
}

/// AI use of one model on one day (UTC): counts only, never what was asked or answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AiCount {
    /// Start of the day, unix seconds (a multiple of 86 400).
    pub day: i64,
    /// The model's name as configured (`gpt-4o-mini`); at most [`MAX_MODEL_NAME_LEN`]
    /// characters of `A-Z a-z 0-9 . _ : / @ -`.
    pub model: String,
    /// Requests sent to the model that day.
    pub requests: i64,
    /// Prompt tokens the provider counted.
    pub input_tokens: i64,
    /// Answer tokens the provider counted.
    pub output_tokens: i64,
}

/// Appointments booked, moved and cancelled on the node in one hour (UTC): counts only,
/// never who booked, for what or when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookingCount {
    /// Start of the hour, unix seconds (a multiple of 3 600).
    pub hour: i64,
    /// Bookings made in that hour.
    pub booked: i64,
    /// Bookings moved to another time in that hour.
    pub rescheduled: i64,
    /// Bookings cancelled in that hour.
    pub cancelled: i64,
}

/// Most booking count rows one report may carry (a node sends the last three hours).
pub const MAX_BOOKING_COUNTS: usize = 48;

/// Phone calls on the node in one hour (UTC): counts only, never who called, from which
/// number, or how long any one call lasted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallCount {
    /// Start of the hour, unix seconds (a multiple of 3 600).
    pub hour: i64,
    /// Calls that came in during that hour.
    pub calls: i64,
    /// Minutes of the calls that ended during that hour, each call rounded up to a whole
    /// minute and added together.
    pub minutes: i64,
}

/// Most call count rows one report may carry (a node sends the last three hours).
pub const MAX_CALL_COUNTS: usize = 48;

/// Longest model name in an [`AiCount`]; the CP refuses longer ones (400 `invalid_counts`).
pub const MAX_MODEL_NAME_LEN: usize = 100;

/// Most AI count rows one report may carry (a node sends today and yesterday per model).
pub const MAX_AI_COUNTS: usize = 64;

/// Whether `name` may be an [`AiCount`] model name: 1 to [`MAX_MODEL_NAME_LEN`] of
/// `A-Z a-z 0-9 . _ : / @ -`. Model names are no customer content, but they are the
/// node's free text: bounded, so nothing else travels in them.
pub fn valid_model_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_MODEL_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:/@".contains(&b))
}

/// The most a report's `seq` may run ahead of the newest one the CP applied for the node
/// (or of 0 before the first): ten million reports, more than ten years of reports every
/// 30 s. Beyond it the CP refuses the report (400 `invalid_seq`): no node produced it, and
/// accepting it would make every later report look older.
pub const MAX_SEQ_AHEAD: i64 = 10_000_000;

/// Most count buckets one report may carry; the CP refuses more (400 `invalid_counts`).
/// A node sends three hours per channel.
pub const MAX_COUNT_BUCKETS: usize = 256;

/// Longest `epoch` the CP accepts (a node sends 32 hex digits).
pub const MAX_EPOCH_LEN: usize = 64;

/// `POST /v1/node/report` body. Idempotent on `(node id, epoch, seq)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Monotonic sequence number, starting at 1, persisted on the node.
    pub seq: i64,
    /// Random id of the node process that produced the report (new at every start). The
    /// CP orders reports by `seq` within an epoch; a new epoch restarts the ordering, so
    /// a node restored from a backup (its `seq` gone back) is followed again. Absent from
    /// nodes older than issue 18: they form one epoch, `""`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<String>,
    /// When the node produced the report (unix seconds).
    pub produced_at: i64,
    /// Node software version.
    pub version: String,
    /// Seconds since the node process started.
    pub uptime_s: i64,
    /// Health checks.
    #[serde(default)]
    pub checks: Vec<Check>,
    /// Usage counts per channel per hour.
    #[serde(default)]
    pub counts: Vec<CountBucket>,
    /// Bytes used by the node's data directory.
    #[serde(default)]
    pub disk_used_bytes: i64,
    /// Work waiting on the node (outbound messages, unsent reports).
    #[serde(default)]
    pub queue_depth: i64,
    /// Exports the node currently knows (created in the last 30 days): metadata only.
    #[serde(default)]
    pub exports: Vec<ExportMeta>,
    /// Retention sweeps of the last 7 days: what each deleted, as counts.
    #[serde(default)]
    pub retention_sweeps: Vec<RetentionSweep>,
    /// Conversations waiting for the team (a customer asked for a person and nobody has
    /// taken over): a count, so the CP can tell the members someone waits.
    #[serde(default)]
    pub waiting_conversations: i64,
    /// AI requests and tokens per day and model (today and yesterday): counts only.
    #[serde(default)]
    pub ai_counts: Vec<AiCount>,
    /// Appointments booked, moved and cancelled per hour (the last three hours): counts
    /// only. Absent from nodes older than issue 16's booking counts.
    #[serde(default)]
    pub booking_counts: Vec<BookingCount>,
    /// Calls and call minutes per hour (the last three hours): counts only. Absent from
    /// nodes older than issue 16's call counts.
    #[serde(default)]
    pub call_counts: Vec<CallCount>,
}

/// An export as the CP may know it (DESIGN §1: id, size, times). The file and its
/// download link never leave the node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportMeta {
    /// Export id (UUID).
    pub id: String,
    /// `workspace` (everything) or `contact` (a data-subject access request).
    pub scope: String,
    /// `running`, `ready`, `failed` or `expired`.
    pub state: String,
    /// Size of the zip a user downloads, bytes (0 until ready).
    pub size_bytes: i64,
    /// When it was requested (unix seconds).
    pub created_at: i64,
    /// When its link stops working and the file is deleted (unix seconds).
    pub expires_at: i64,
}

/// What one retention sweep on the node deleted. Counts only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionSweep {
    /// When the sweep ran (unix seconds); with the node id, its identity.
    pub at: i64,
    /// Messages deleted because they were older than the messages period.
    pub messages_deleted: i64,
    /// Contacts erased because they had no activity within the contacts period.
    pub contacts_erased: i64,
    /// Export files deleted because their link had expired.
    pub exports_deleted: i64,
}

/// `POST /v1/node/report` response.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReportAck {
    /// The sequence number acknowledged.
    pub seq: i64,
    /// `false` when the CP had already stored this sequence number (a replay).
    pub accepted: bool,
}

/// A command the CP queues for a node. At-least-once: the node deduplicates by `id`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Command {
    /// Command id (UUID); the node remembers executed ids.
    pub id: String,
    /// What to do.
    pub kind: CommandKind,
}

/// What a [`Command`] asks the node to do.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CommandKind {
    /// Replace the node's configuration (agents, channels). Metadata only.
    ApplyConfig {
        /// The configuration document.
        config: serde_json::Value,
    },
    /// A secret sealed to the node's age recipient.
    DeliverSecret {
        /// Secret kind, e.g. `openai_api_key`.
        secret_kind: String,
        /// The age file sealed to the node's recipient, base64url.
        sealed: String,
    },
    /// Forget a secret the CP delivered earlier (or one entered on the node).
    RemoveSecret {
        /// Secret kind, e.g. `openai_api_key`.
        secret_kind: String,
    },
    /// Stop answering on every channel; keep all data.
    Suspend {
        /// Stable reason code, e.g. `payment_failed`.
        reason_code: String,
    },
    /// Undo [`CommandKind::Suspend`].
    Resume,
    /// Destroy all data and keys, then send a [`DestructionReceipt`].
    Deprovision,
    /// End a user's open console sessions (removed from the workspace, or a lower role):
    /// their next request needs a new capability token with their current scopes.
    EndConsoleSessions {
        /// The CP user id (the token's `sub`).
        user_id: String,
    },
    /// Install another release of the node: fetch `url`, check its SHA-256 and the
    /// release key's Ed25519 signature over it, swap the binary (keeping the previous
    /// one) and exit so the supervisor starts the new one on probation.
    Upgrade {
        /// Where the binary is downloaded from.
        url: String,
        /// Its SHA-256, hex.
        sha256: String,
        /// Ed25519 signature by the release key over
        /// `outpost-node-release/v1:<sha256>` (base64url).
        signature: String,
        /// The version the new binary reports once running.
        version: String,
    },
}

impl CommandKind {
    /// Stable snake_case name of the kind, as stored in the CP.
    pub fn name(&self) -> &'static str {
        match self {
            CommandKind::ApplyConfig { .. } => "apply_config",
            CommandKind::DeliverSecret { .. } => "deliver_secret",
            CommandKind::RemoveSecret { .. } => "remove_secret",
            CommandKind::Suspend { .. } => "suspend",
            CommandKind::Resume => "resume",
            CommandKind::Deprovision => "deprovision",
            CommandKind::EndConsoleSessions { .. } => "end_console_sessions",
            CommandKind::Upgrade { .. } => "upgrade",
        }
    }
}

/// `GET /v1/node/commands` response.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CommandBatch {
    /// Pending commands, oldest first.
    pub commands: Vec<Command>,
}

/// `POST /v1/node/commands/{id}/ack` body.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CommandAck {
    /// Whether the command succeeded.
    pub ok: bool,
    /// Stable error code when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// For `deprovision`: the signed destruction receipt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<DestructionReceipt>,
}

/// What a node destroyed, signed with its node (TLS) key so the CP can verify it against
/// the node's certificate and show it to the customer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptBody {
    /// Always `outpost-destruction-receipt/1`.
    pub format: String,
    /// The node that destroyed itself.
    pub node_id: NodeId,
    /// Workspace id the node served.
    pub workspace_id: String,
    /// When destruction completed (RFC 3339, UTC).
    pub destroyed_at: String,
    /// What was destroyed, e.g. `master_key`, `data_dir`, `tls_key`, `age_identity`.
    pub destroyed: Vec<String>,
    /// SHA-256 (hex) of the node certificate's DER that signs this receipt.
    pub cert_sha256: String,
}

/// The format tag of [`ReceiptBody::format`].
pub const RECEIPT_FORMAT: &str = "outpost-destruction-receipt/1";

/// A signed destruction receipt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestructionReceipt {
    /// The exact bytes that were signed: the JSON of a [`ReceiptBody`].
    pub body: String,
    /// ECDSA P-256 SHA-256 signature (ASN.1 DER), base64url without padding.
    pub signature: String,
}

impl DestructionReceipt {
    /// Parses the signed body. Verify the signature before trusting it.
    pub fn parsed_body(&self) -> Result<ReceiptBody, serde_json::Error> {
        serde_json::from_str(&self.body)
    }
}

/// Error body returned by the CP (both APIs): a stable snake_case `code` clients can match
/// on and a human message that never contains content or secrets.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable code, e.g. `invalid_token`, `not_found`.
    pub code: String,
    /// Human readable message.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_kind_is_tagged_snake_case() {
        let c = Command {
            id: "c1".into(),
            kind: CommandKind::Suspend {
                reason_code: "payment_failed".into(),
            },
        };
        let v = serde_json::to_value(&c).expect("serialize");
        assert_eq!(v["kind"]["type"], "suspend");
        assert_eq!(c.kind.name(), "suspend");
        let back: Command = serde_json::from_value(v).expect("deserialize");
        assert_eq!(back, c);
    }

    #[test]
    fn node_id_parse_normalises_and_rejects_garbage() {
        let id = NodeId::new_random();
        assert_eq!(NodeId::parse(&id.0.to_uppercase()), Some(id.clone()));
        assert!(NodeId::parse("../etc/passwd").is_none());
        assert!(id.san_uri().starts_with(NODE_SAN_PREFIX));
    }

    #[test]
    fn report_accepts_missing_optional_fields() {
        let r: Report =
            serde_json::from_str(r#"{"seq":3,"produced_at":1,"version":"0.1.0","uptime_s":9}"#)
                .expect("minimal report parses");
        assert!(r.checks.is_empty() && r.counts.is_empty());
        assert_eq!(r.epoch, None);
        let json = serde_json::to_string(&r).expect("serialises");
        assert!(
            !json.contains("epoch"),
            "an old CP never sees the field: {json}"
        );
    }
}
