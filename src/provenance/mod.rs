//! PEP 740 provenance: the wire form of the objects PyPI serves beside a
//! file (`wire`), and their offline verification (`verify`): every
//! attestation's Sigstore evidence (DSSE signature, Fulcio chain and SCT,
//! Rekor entry) checked by `sigstore-verify` against a trusted root, its
//! in-toto subject bound to the file's name and sha256, and the signing
//! certificate's identity held against the publisher the provenance claims
//! (or the one a manifest pins).

pub mod verify;
pub mod wire;

pub use verify::{
    Kind, Publisher, PublisherRecord, Step, TrustRoot, Verified, VerifyError, verify_attestation, verify_provenance,
};
