//! Offline verification of PEP 740 attestations. The Sigstore evidence
//! (DSSE signature over the in-toto statement, the Fulcio certificate chain
//! and its SCT, the Rekor entry's inclusion promise and proof, the signing
//! time inside the certificate's validity) is checked by `sigstore-verify`,
//! never by hand; this module binds the statement's subject to the file
//! (name and sha256) and holds the certificate's identity against the
//! publisher: repository, workflow and environment for GitHub and GitLab,
//! the e-mail for Google.

use std::fmt;

use sigstore_verify::trust_root::{SIGSTORE_PRODUCTION_TRUSTED_ROOT, TrustedRoot};
use sigstore_verify::types::{ArtifactDigest, Bundle, Sha256Hash, Statement};
use sigstore_verify::{CertificateError, Error as SigError, VerificationPolicy, Verifier};

use super::wire;
use crate::dist::filename::DistFilename;
use crate::util::hashing::Sha256;

/// What kind of identity signed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    GitHub,
    GitLab,
    Google,
    /// CircleCI and other Trusted Publishers PyPI knows.
    Other(String),
    /// A person's e-mail identity (no Trusted Publisher): `email` and `issuer`.
    Email,
}

impl Kind {
    pub fn as_str(&self) -> &str {
        match self {
            Kind::GitHub => "github",
            Kind::GitLab => "gitlab",
            Kind::Google => "google",
            Kind::Other(k) => k,
            Kind::Email => "email",
        }
    }

    fn parse(kind: &str) -> Kind {
        match kind.to_ascii_lowercase().as_str() {
            "github" => Kind::GitHub,
            "gitlab" => Kind::GitLab,
            "google" => Kind::Google,
            "email" => Kind::Email,
            _ => Kind::Other(kind.to_string()),
        }
    }
}

/// A publisher: what a provenance claims, what a manifest pins, or what a
/// verified certificate says.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Publisher {
    pub kind: Kind,
    /// `owner/name` (GitHub, GitLab).
    pub repository: Option<String>,
    /// The workflow file (`release.yml`; GitLab: its path).
    pub workflow: Option<String>,
    /// The deployment environment, when one is named (empty means none).
    pub environment: Option<String>,
    /// Google's service account, or an e-mail identity.
    pub email: Option<String>,
    /// The OIDC issuer of an e-mail identity.
    pub issuer: Option<String>,
    /// Other kinds' claims, `key=value`, sorted (CircleCI's project, ...).
    pub other: Vec<(String, String)>,
}

impl Publisher {
    fn of(kind: Kind) -> Publisher {
        Publisher {
            kind,
            repository: None,
            workflow: None,
            environment: None,
            email: None,
            issuer: None,
            other: Vec::new(),
        }
    }

    /// The publisher a provenance bundle claims.
    pub fn from_wire(p: &wire::Publisher) -> Publisher {
        let text = |v: &serde_json::Value| v.as_str().map_or_else(|| v.to_string(), str::to_string);
        Publisher {
            kind: Kind::parse(&p.kind),
            repository: p.repository.clone(),
            workflow: p.workflow.clone().or_else(|| p.workflow_filepath.clone()),
            environment: p.environment.clone().filter(|e| !e.is_empty()),
            email: p.email.clone(),
            issuer: None,
            other: p.other.iter().map(|(k, v)| (k.clone(), text(v))).collect(),
        }
    }

    /// A GitHub publisher (tests, pins).
    pub fn github(repository: &str, workflow: &str, environment: Option<&str>) -> Publisher {
        Publisher {
            repository: Some(repository.into()),
            workflow: Some(workflow.into()),
            environment: environment.map(str::to_string),
            ..Publisher::of(Kind::GitHub)
        }
    }

    /// A GitLab publisher.
    pub fn gitlab(repository: &str, workflow_filepath: &str) -> Publisher {
        Publisher {
            repository: Some(repository.into()),
            workflow: Some(workflow_filepath.into()),
            ..Publisher::of(Kind::GitLab)
        }
    }

    /// A Google service account.
    pub fn google(email: &str) -> Publisher {
        Publisher { email: Some(email.into()), ..Publisher::of(Kind::Google) }
    }

    /// An e-mail identity from an OIDC issuer.
    pub fn email(email: &str, issuer: &str) -> Publisher {
        Publisher { email: Some(email.into()), issuer: Some(issuer.into()), ..Publisher::of(Kind::Email) }
    }

    /// Another kind, with its claims.
    pub fn other(kind: &str, claims: &[(&str, &str)]) -> Publisher {
        let mut other: Vec<(String, String)> = claims.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        other.sort();
        Publisher { other, ..Publisher::of(Kind::Other(kind.into())) }
    }

    /// A manifest's `publisher` key: `kind:identity`, optionally
    /// `@workflow-file`: `github:owner/repo@release.yml`,
    /// `gitlab:group/project@.gitlab-ci.yml`, `google:account@example.com`.
    pub fn parse_pin(text: &str) -> Result<Publisher, PinError> {
        let bad = || PinError { text: text.to_string() };
        let (kind, rest) = text.trim().split_once(':').ok_or_else(bad)?;
        let (identity, workflow) = match rest.split_once('@') {
            Some((i, w)) if kind != "google" => (i, Some(w)),
            _ => (rest, None),
        };
        let nonempty = |s: &str| !s.is_empty() && !s.chars().any(char::is_whitespace);
        if !nonempty(identity) || workflow.is_some_and(|w| !nonempty(w)) {
            return Err(bad());
        }
        let repo_ok = identity.split('/').count() >= 2 && identity.split('/').all(|s| !s.is_empty());
        match kind {
            "github" | "gitlab" if repo_ok => Ok(Publisher {
                repository: Some(identity.to_string()),
                workflow: workflow.map(str::to_string),
                ..Publisher::of(Kind::parse(kind))
            }),
            "google" if identity.contains('@') => Ok(Publisher::google(identity)),
            _ => Err(bad()),
        }
    }

    /// What a project is pinned to once this publisher is verified for it:
    /// everything but the deployment environment (which a project may
    /// rename without changing who publishes).
    pub fn as_pin(&self) -> Publisher {
        Publisher { environment: None, ..self.clone() }
    }

    /// Whether `claimed` is this pin's publisher: the same kind and every
    /// claim the pin names (a pin without a workflow accepts any workflow).
    pub fn accepts(&self, claimed: &Publisher) -> bool {
        same_publisher(claimed, self)
    }

    /// The stored form (the state's columns, the reports' objects).
    pub fn record(&self) -> PublisherRecord {
        PublisherRecord {
            kind: self.kind.as_str().to_string(),
            repository: self.repository.clone(),
            workflow: self.workflow.clone(),
            environment: self.environment.clone(),
            email: self.email.clone(),
            issuer: self.issuer.clone(),
            other: self.other.iter().cloned().collect(),
        }
    }

    /// Back from the stored form.
    pub fn from_record(r: &PublisherRecord) -> Publisher {
        Publisher {
            kind: Kind::parse(&r.kind),
            repository: r.repository.clone(),
            workflow: r.workflow.clone(),
            environment: r.environment.clone(),
            email: r.email.clone(),
            issuer: r.issuer.clone(),
            other: r.other.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        }
    }

    fn claim(&self, key: &str) -> Option<&str> {
        self.other.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// A publisher as security.json and the state spell it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PublisherRecord {
    pub kind: String,
    pub repository: Option<String>,
    pub workflow: Option<String>,
    pub environment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub other: std::collections::BTreeMap<String, String>,
}

impl fmt::Display for Publisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.kind.as_str())?;
        match (&self.repository, &self.email) {
            (Some(r), _) => write!(f, "{r}")?,
            (None, Some(e)) => write!(f, "{e}")?,
            (None, None) => {
                let claims: Vec<String> = self.other.iter().map(|(k, v)| format!("{k}={v}")).collect();
                write!(f, "{}", claims.join(","))?;
            }
        }
        if let Some(w) = &self.workflow {
            write!(f, "@{w}")?;
        }
        if let Some(e) = &self.environment {
            write!(f, " (environment {e})")?;
        }
        Ok(())
    }
}

/// The verification step that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The object does not parse.
    Parse,
    /// The in-toto subject names another file or another sha256.
    Subject,
    /// The DSSE signature does not verify.
    Signature,
    /// The certificate does not chain to the trusted root (or its SCT fails).
    Certificate,
    /// The transparency log entry (promise, proof, integrated time).
    Log,
    /// An RFC 3161 timestamp.
    Timestamp,
    /// The certificate's identity is not the publisher's.
    Identity,
    /// The claimed publisher is not the pinned one.
    Publisher,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Parse => "parse",
            Step::Subject => "subject",
            Step::Signature => "signature",
            Step::Certificate => "certificate",
            Step::Log => "transparency log",
            Step::Timestamp => "timestamp",
            Step::Identity => "identity",
            Step::Publisher => "publisher",
        }
    }
}

/// Why a file's provenance is refused: the file, the step, what failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{file}: provenance fails at the {} step: {message}", step.as_str())]
pub struct VerifyError {
    pub file: String,
    pub step: Step,
    pub message: String,
}

/// Why a trusted root is unusable.
#[derive(Debug, thiserror::Error)]
pub enum RootError {
    #[error("not a Sigstore trusted root: {0}")]
    Parse(sigstore_verify::trust_root::Error),
    #[error("its keys and certificates do not load: {0}")]
    Keys(SigError),
}

/// Why a manifest's `publisher` does not parse.
#[derive(Debug, thiserror::Error)]
#[error("{text:?}: expected kind:owner/repo (optionally @workflow-file) with kind github, gitlab or google")]
pub struct PinError {
    pub text: String,
}

/// The Sigstore trusted root attestations are verified against.
pub struct TrustRoot {
    verifier: Verifier,
}

impl TrustRoot {
    /// Sigstore's production root, built in (no network).
    pub fn production() -> Result<TrustRoot, RootError> {
        TrustRoot::from_json(SIGSTORE_PRODUCTION_TRUSTED_ROOT)
    }

    /// A `trusted_root.json` (Sigstore's format).
    pub fn from_json(json: &str) -> Result<TrustRoot, RootError> {
        let root = TrustedRoot::from_json(json).map_err(RootError::Parse)?;
        let verifier = Verifier::new(&root).map_err(RootError::Keys)?;
        Ok(TrustRoot { verifier })
    }
}

/// What a verified attestation says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Who signed, from the certificate (not from the claim).
    pub publisher: Publisher,
    pub predicate_type: String,
    /// When the log saw the signature.
    pub integrated_time: Option<jiff::Timestamp>,
}

/// Verify a PEP 740 provenance object for `file` (whose verified sha256 is
/// `sha256`): every attestation of every bundle, each against the publisher
/// its bundle claims, which must equal `pin` when one is given.
pub fn verify_provenance(
    bytes: &[u8],
    file: &str,
    sha256: &Sha256,
    root: &TrustRoot,
    pin: Option<&Publisher>,
) -> Result<Vec<Verified>, VerifyError> {
    let fail = |step, message: String| VerifyError { file: file.to_string(), step, message };
    let prov: wire::Provenance = serde_json::from_slice(bytes)
        .map_err(|e| fail(Step::Parse, format!("not a PEP 740 provenance object: {e}")))?;
    if prov.attestation_bundles.iter().all(|b| b.attestations.is_empty()) {
        return Err(fail(Step::Parse, "the provenance holds no attestation".into()));
    }
    let mut out = Vec::new();
    for bundle in &prov.attestation_bundles {
        let claimed = Publisher::from_wire(&bundle.publisher);
        if let Some(pin) = pin
            && !same_publisher(&claimed, pin)
        {
            return Err(fail(Step::Publisher, format!("the provenance claims publisher {claimed}, pinned is {pin}")));
        }
        for att in &bundle.attestations {
            out.push(verify_attestation(att, file, sha256, root, &claimed)?);
        }
    }
    Ok(out)
}

/// Verify one attestation for `file` against the publisher `expected`.
pub fn verify_attestation(
    att: &wire::Attestation,
    file: &str,
    sha256: &Sha256,
    root: &TrustRoot,
    expected: &Publisher,
) -> Result<Verified, VerifyError> {
    let json = att.to_bundle_json().to_string();
    let bundle = Bundle::from_json(&json).map_err(|e| VerifyError {
        file: file.to_string(),
        step: Step::Parse,
        message: format!("the attestation is not a Sigstore bundle: {e}"),
    })?;
    verify_bundle(&bundle, file, sha256, root, expected)
}

/// Verify a Sigstore bundle (v0.3, a DSSE envelope) for `file`.
pub fn verify_bundle(
    bundle: &Bundle,
    file: &str,
    sha256: &Sha256,
    root: &TrustRoot,
    expected: &Publisher,
) -> Result<Verified, VerifyError> {
    let fail = |step, message: String| VerifyError { file: file.to_string(), step, message };
    let statement = statement_of(bundle).map_err(|m| fail(Step::Parse, m))?;
    if !statement.subject.iter().any(|s| same_dist(&s.name, file)) {
        let names: Vec<&str> = statement.subject.iter().map(|s| s.name.as_str()).collect();
        return Err(fail(Step::Subject, format!("the statement's subject is {}, not this file", names.join(", "))));
    }
    let digest = ArtifactDigest::sha256(Sha256Hash::new(sha256.0));
    // The identity is checked below against the publisher, claim by claim.
    let result = root
        .verifier
        .verify(digest, bundle, &VerificationPolicy::any_identity())
        .map_err(|e| fail(step_of(&e), e.to_string()))?;
    let Some(cert) = result.certificate() else {
        return Err(fail(Step::Certificate, "the bundle carries no signing certificate".into()));
    };
    let signed = publisher_of(cert);
    if let Err(why) = identity_matches(cert, expected) {
        return Err(fail(Step::Identity, format!("the certificate is {signed}, not {expected}: {why}")));
    }
    Ok(Verified {
        publisher: signed,
        predicate_type: statement.predicate_type,
        integrated_time: result.integrated_time(),
    })
}

fn statement_of(bundle: &Bundle) -> Result<Statement, String> {
    use sigstore_verify::types::SignatureContent;
    match &bundle.content {
        SignatureContent::DsseEnvelope(env) => serde_json::from_slice(env.payload.as_bytes())
            .map_err(|e| format!("the in-toto statement does not parse: {e}")),
        _ => Err("a message signature, not an attestation".into()),
    }
}

/// Which step a `sigstore-verify` error belongs to.
fn step_of(e: &SigError) -> Step {
    match e {
        SigError::ArtifactMismatch(_) | SigError::UnsupportedArtifact(_) => Step::Subject,
        SigError::SignatureInvalid(_) => Step::Signature,
        SigError::Certificate(CertificateError::Malformed(_)) => Step::Parse,
        SigError::Certificate(_) => Step::Certificate,
        SigError::TransparencyLog(_) => Step::Log,
        SigError::Timestamp(_) => Step::Timestamp,
        SigError::IdentityMismatch { .. } | SigError::IssuerMismatch { .. } => Step::Identity,
        _ => Step::Parse,
    }
}

/// Whether a subject names this distribution: the same name, or the same
/// project, version and kind once normalized (PEP 740 subjects carry the
/// filename as uploaded).
fn same_dist(subject: &str, file: &str) -> bool {
    if subject == file {
        return true;
    }
    let (Ok(a), Ok(b)) = (DistFilename::parse(subject, None), DistFilename::parse(file, None)) else { return false };
    let tail = |s: &str| s.rsplitn(4, '-').take(3).collect::<Vec<_>>().join("-").to_ascii_lowercase();
    a.name() == b.name()
        && a.version() == b.version()
        && a.is_wheel() == b.is_wheel()
        && (!a.is_wheel() || tail(subject) == tail(file))
}

const GITHUB_ISSUER: &str = "https://token.actions.githubusercontent.com";
const GITLAB_ISSUER: &str = "https://gitlab.com";
const GOOGLE_ISSUER: &str = "https://accounts.google.com";

/// Who a certificate says signed.
fn publisher_of(cert: &sigstore_verify::crypto::CertificateInfo) -> Publisher {
    let ci = &cert.ci_claims;
    let issuer = cert.issuer.as_deref().unwrap_or_default();
    let san = cert.identity.as_ref().map(|s| s.as_str().to_string());
    let repo_of =
        |host: &str| ci.source_repository_uri.as_deref().and_then(|u| u.strip_prefix(host)).map(str::to_string);
    let after = |uri: Option<&str>, marker: &str| {
        uri.and_then(|u| u.split_once(marker)).map(|(_, w)| w.split('@').next().unwrap_or(w).to_string())
    };
    match issuer {
        GITHUB_ISSUER => Publisher {
            repository: repo_of("https://github.com/"),
            workflow: after(ci.build_config_uri.as_deref().or(san.as_deref()), "/.github/workflows/"),
            environment: ci.deployment_environment.clone().filter(|e| !e.is_empty()),
            ..Publisher::of(Kind::GitHub)
        },
        GITLAB_ISSUER => Publisher {
            repository: repo_of("https://gitlab.com/"),
            workflow: after(ci.build_config_uri.as_deref().or(san.as_deref()), "//"),
            environment: ci.deployment_environment.clone().filter(|e| !e.is_empty()),
            ..Publisher::of(Kind::GitLab)
        },
        GOOGLE_ISSUER => Publisher { email: san, ..Publisher::of(Kind::Google) },
        _ if ci.build_signer_uri.is_some() => {
            let mut other = vec![("build_signer".to_string(), ci.build_signer_uri.clone().unwrap_or_default())];
            other.extend(ci.source_repository_uri.clone().map(|u| ("source_repository".to_string(), u)));
            Publisher { other, issuer: Some(issuer.to_string()), ..Publisher::of(Kind::Other("CircleCI".into())) }
        }
        _ => Publisher { email: san, issuer: Some(issuer.to_string()), ..Publisher::of(Kind::Email) },
    }
}

fn eq_ci(a: Option<&str>, b: &str) -> bool {
    a.is_some_and(|a| a.eq_ignore_ascii_case(b))
}

/// Whether the certificate's claims are the publisher's: the issuer of its
/// kind, then each claim the publisher names.
fn identity_matches(cert: &sigstore_verify::crypto::CertificateInfo, p: &Publisher) -> Result<(), String> {
    let ci = &cert.ci_claims;
    let issuer = cert.issuer.as_deref().unwrap_or_default();
    let san = cert.identity.as_ref().map(|s| s.as_str());
    let want_issuer = |want: &str| {
        if issuer == want {
            Ok(())
        } else {
            Err(format!("issued by {issuer:?}, a {} publisher's is {want:?}", p.kind.as_str()))
        }
    };
    let repo_and_workflow = |host: &str, marker: &str| -> Result<(), String> {
        let repo = p.repository.as_deref().ok_or("no repository named")?;
        let uri = format!("{host}{repo}");
        if !eq_ci(ci.source_repository_uri.as_deref(), &uri) {
            return Err(format!(
                "source repository {:?}, expected {uri}",
                ci.source_repository_uri.as_deref().unwrap_or("-")
            ));
        }
        if let Some(w) = &p.workflow {
            let prefix = format!("{uri}{marker}{w}@").to_ascii_lowercase();
            let config = ci.build_config_uri.as_deref().or(san).unwrap_or_default();
            if !config.to_ascii_lowercase().starts_with(&prefix) {
                return Err(format!("build config {config:?}, expected the workflow {w}"));
            }
        }
        match (&p.environment, ci.deployment_environment.as_deref()) {
            (Some(want), got) if got != Some(want.as_str()) => {
                Err(format!("environment {:?}, expected {want:?}", got.unwrap_or("none")))
            }
            _ => Ok(()),
        }
    };
    match &p.kind {
        Kind::GitHub => {
            want_issuer(GITHUB_ISSUER).and_then(|()| repo_and_workflow("https://github.com/", "/.github/workflows/"))
        }
        Kind::GitLab => want_issuer(GITLAB_ISSUER).and_then(|()| repo_and_workflow("https://gitlab.com/", "//")),
        Kind::Google => {
            want_issuer(GOOGLE_ISSUER)?;
            match (&p.email, san) {
                (Some(want), Some(got)) if got == want => Ok(()),
                (want, got) => {
                    Err(format!("identity {:?}, expected {:?}", got.unwrap_or("-"), want.as_deref().unwrap_or("-")))
                }
            }
        }
        Kind::Email => match (&p.email, san, &p.issuer) {
            (Some(want), Some(got), Some(iss)) if got == want && issuer == iss => Ok(()),
            _ => Err(format!("identity {:?} from {issuer:?}", san.unwrap_or("-"))),
        },
        Kind::Other(_) => other_matches(cert, p),
    }
}

/// CircleCI's claims: the build signer names the project and pipeline
/// definition; the source repository and ref, when claimed, must agree.
fn other_matches(cert: &sigstore_verify::crypto::CertificateInfo, p: &Publisher) -> Result<(), String> {
    let ci = &cert.ci_claims;
    let (Some(project), Some(pipeline)) = (p.claim("project_id"), p.claim("pipeline_definition_id")) else {
        return Err(format!("airlock cannot check a {} publisher's identity", p.kind.as_str()));
    };
    let signer = format!("https://circleci.com/api/v2/projects/{project}/pipeline-definitions/{pipeline}");
    if ci.build_signer_uri.as_deref() != Some(signer.as_str()) {
        return Err(format!("build signer {:?}, expected {signer}", ci.build_signer_uri.as_deref().unwrap_or("-")));
    }
    // Fulcio writes CircleCI's repository without a scheme.
    let source = ci.source_repository_uri.as_deref().map(|u| u.strip_prefix("https://").unwrap_or(u));
    if let Some(origin) = p.claim("vcs_origin")
        && !eq_ci(source, origin)
    {
        return Err(format!(
            "source repository {:?}, expected {origin}",
            ci.source_repository_uri.as_deref().unwrap_or("-")
        ));
    }
    if let Some(r) = p.claim("vcs_ref")
        && ci.source_repository_ref.as_deref() != Some(r)
    {
        return Err(format!("source ref {:?}, expected {r}", ci.source_repository_ref.as_deref().unwrap_or("-")));
    }
    Ok(())
}

/// Whether a claimed publisher is the pinned one: the pin's kind and each
/// claim the pin names (a pin without a workflow accepts any workflow).
fn same_publisher(claimed: &Publisher, pin: &Publisher) -> bool {
    let same = |a: &Option<String>, b: &Option<String>| {
        b.as_ref().is_none_or(|b| a.as_ref().is_some_and(|a| a.eq_ignore_ascii_case(b)))
    };
    claimed.kind == pin.kind
        && same(&claimed.repository, &pin.repository)
        && same(&claimed.workflow, &pin.workflow)
        && same(&claimed.environment, &pin.environment)
        && same(&claimed.email, &pin.email)
}
