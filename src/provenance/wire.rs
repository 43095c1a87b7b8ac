//! PEP 740's JSON objects as PyPI serves them
//! (`application/vnd.pypi.integrity.v1+json`): a provenance object of
//! attestation bundles, each a claimed publisher and its attestations.
//! Nothing here is trusted; `verify` converts and checks.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `GET <file>.provenance`: PEP 740's provenance object.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Provenance {
    pub version: u32,
    pub attestation_bundles: Vec<AttestationBundle>,
}

/// Attestations made by one Trusted Publisher.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct AttestationBundle {
    pub publisher: Publisher,
    pub attestations: Vec<Attestation>,
}

/// The publisher a bundle claims (unsigned: checked against the
/// certificate). `kind` is `GitHub`, `GitLab`, `Google` or another the
/// upstream knows; the other keys depend on it.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Publisher {
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    /// GitLab's name for the workflow file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_filepath: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Keys of other kinds (CircleCI's `project_id`, ...).
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// One PEP 740 attestation.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Attestation {
    pub version: u32,
    pub verification_material: VerificationMaterial,
    pub envelope: Envelope,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct VerificationMaterial {
    /// The signing certificate, base64 DER.
    pub certificate: String,
    /// Rekor entries in Sigstore's protobuf JSON form.
    pub transparency_entries: Vec<serde_json::Value>,
    /// RFC 3161 timestamps, base64 DER (a later addition).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timestamps: Vec<String>,
}

/// The DSSE envelope, flattened: the in-toto statement and its signature.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Envelope {
    /// The in-toto statement, base64.
    pub statement: String,
    /// The signature over the DSSE PAE of the statement, base64.
    pub signature: String,
}

impl Attestation {
    /// The attestation as the Sigstore bundle (v0.3) it stands for.
    pub fn to_bundle_json(&self) -> serde_json::Value {
        let vm = &self.verification_material;
        let mut material = serde_json::json!({
            "certificate": {"rawBytes": vm.certificate},
            "tlogEntries": vm.transparency_entries,
        });
        if !vm.timestamps.is_empty() {
            let ts: Vec<serde_json::Value> =
                vm.timestamps.iter().map(|t| serde_json::json!({"signedTimestamp": t})).collect();
            material["timestampVerificationData"] = serde_json::json!({"rfc3161Timestamps": ts});
        }
        serde_json::json!({
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": material,
            "dsseEnvelope": {
                "payload": self.envelope.statement,
                "payloadType": "application/vnd.in-toto+json",
                "signatures": [{"sig": self.envelope.signature, "keyid": ""}],
            },
        })
    }
}
