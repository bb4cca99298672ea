//! OpenClaw devices on the server side: the proof a `connect` carries (an Ed25519
//! signature over the live challenge), the pairing requests waiting for someone's approval,
//! and the device tokens of approved devices.
//!
//! A device is its key: its id is the SHA-256 of the raw public key, so a connect naming
//! an id its key does not hash to is refused before the signature is looked at. The
//! signature must cover this connection's nonce (a replayed or borrowed connect fails) and
//! the credential presented, in the v3 text (v2 is accepted, as the real gateway does).
//! Verification is ring's; nothing here is crypto of ours.

use std::collections::{BTreeMap, HashMap};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use tether_core::protocol::openclaw::SignedConnect;

/// Why a device's proof was refused: the message, detail code and reason the real gateway
/// gives for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum DeviceProofError {
    /// `device.id` is not the hash of `device.publicKey`.
    #[error("device identity mismatch")]
    IdMismatch,
    /// The public key is not 32 bytes of base64.
    #[error("device public key invalid")]
    PublicKey,
    /// No nonce.
    #[error("device nonce required")]
    NonceRequired,
    /// Not this connection's challenge nonce.
    #[error("device nonce mismatch")]
    NonceMismatch,
    /// `signedAt` is not this connection's challenge time.
    #[error("device signature expired")]
    Expired,
    /// The signature does not verify over the v3 or v2 text.
    #[error("device signature invalid")]
    Signature,
}

impl DeviceProofError {
    /// The `details.code` of the refusal.
    pub fn detail_code(self) -> &'static str {
        match self {
            Self::IdMismatch => "DEVICE_AUTH_DEVICE_ID_MISMATCH",
            Self::PublicKey => "DEVICE_AUTH_PUBLIC_KEY_INVALID",
            Self::NonceRequired => "DEVICE_AUTH_NONCE_REQUIRED",
            Self::NonceMismatch => "DEVICE_AUTH_NONCE_MISMATCH",
            Self::Expired => "DEVICE_AUTH_SIGNATURE_EXPIRED",
            Self::Signature => "DEVICE_AUTH_SIGNATURE_INVALID",
        }
    }

    /// The `details.reason` of the refusal.
    pub fn reason(self) -> &'static str {
        match self {
            Self::IdMismatch => "device-id-mismatch",
            Self::PublicKey => "device-public-key",
            Self::NonceRequired => "device-nonce-missing",
            Self::NonceMismatch => "device-nonce-mismatch",
            Self::Expired => "device-signature-stale",
            Self::Signature => "device-signature",
        }
    }
}

/// The `device` of a connect, as sent.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Proof<'a> {
    pub(crate) id: &'a str,
    pub(crate) public_key: &'a str,
    pub(crate) signature: &'a str,
    pub(crate) signed_at: u64,
    pub(crate) nonce: &'a str,
}

/// The challenge this connection was sent.
#[derive(Debug, Clone)]
pub(crate) struct Challenge {
    pub(crate) nonce: String,
    pub(crate) ts: u64,
    /// Whether `ts` is the wall clock (Unix ms): then `signedAt` may be the client's own
    /// clock within the skew; else it must be `ts` itself.
    pub(crate) wall: bool,
}

/// Base64 as clients write it: url-safe or standard, padded or not.
fn decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim().trim_end_matches('=');
    URL_SAFE_NO_PAD.decode(text).ok().or_else(|| {
        let padded = format!("{text}{}", "=".repeat((4 - text.len() % 4) % 4));
        STANDARD.decode(padded).ok()
    })
}

/// The lowercase hex SHA-256 of a raw public key: the device id.
pub(crate) fn device_id(raw_key: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, raw_key)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Checks a device's proof in the real gateway's order: the id against the key, the
/// challenge's time and nonce, then the signature over the v3 or the v2 text.
pub(crate) fn verify(
    proof: &Proof<'_>,
    challenge: &Challenge,
    signed: &SignedConnect<'_>,
) -> Result<(), DeviceProofError> {
    let key = decode(proof.public_key)
        .filter(|k| k.len() == 32)
        .ok_or(DeviceProofError::PublicKey)?;
    if device_id(&key) != proof.id {
        return Err(DeviceProofError::IdMismatch);
    }
    let skew = u64::try_from(crate::SIGNATURE_SKEW.as_millis()).unwrap_or(u64::MAX);
    let in_time = if challenge.wall {
        proof.signed_at.abs_diff(challenge.ts) <= skew
    } else {
        proof.signed_at == challenge.ts
    };
    if !in_time {
        return Err(DeviceProofError::Expired);
    }
    if proof.nonce.trim().is_empty() {
        return Err(DeviceProofError::NonceRequired);
    }
    if proof.nonce != challenge.nonce {
        return Err(DeviceProofError::NonceMismatch);
    }
    let signature = decode(proof.signature).ok_or(DeviceProofError::Signature)?;
    let key = ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key);
    let verifies = |text: String| key.verify(text.as_bytes(), &signature).is_ok();
    if verifies(signed.payload_v3()) || verifies(signed.payload_v2()) {
        Ok(())
    } else {
        Err(DeviceProofError::Signature)
    }
}

/// A device waiting for someone to approve it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairingRequest {
    /// The request's id, to approve or reject it by.
    pub request_id: String,
    /// The device.
    pub device_id: String,
    /// The role it asks for.
    pub role: String,
    /// `client.id`.
    pub client_id: String,
    /// `client.mode`.
    pub client_mode: String,
    /// `client.platform`.
    pub platform: String,
    /// `client.displayName`, if any.
    pub display_name: Option<String>,
    /// The commands a node declares.
    pub commands: Vec<String>,
    public_key: String,
}

/// An approved device: its key, and a token per role it was approved for.
#[derive(Debug, Clone)]
struct Paired {
    public_key: String,
    tokens: BTreeMap<String, String>,
}

/// Paired devices and pending pairing requests, both bounded.
#[derive(Debug, Default)]
pub(crate) struct Devices {
    paired: HashMap<String, Paired>,
    pending: BTreeMap<String, PairingRequest>,
}

/// What a connect's device is, as far as pairing goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Standing {
    /// Paired for this role: its token.
    Paired { token: String },
    /// Not (yet) for this role: the pending request (new or the one already waiting).
    Pending(PairingRequest),
}

/// The most pairing requests that wait at once; the oldest gives way.
const MAX_PENDING: usize = 1024;

/// A secret of 32 random bytes, base64url: a device token, a request id.
pub(crate) fn random_secret() -> Option<String> {
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new().fill(&mut bytes).ok()?;
    Some(URL_SAFE_NO_PAD.encode(bytes))
}

impl Devices {
    /// Where `request`'s device stands for its role: paired (its token) or pending, and
    /// whether the pending request is new. A device whose key changed is a new device: it
    /// pairs again. `None` only if no request id could be drawn.
    pub(crate) fn standing(&mut self, request: PairingRequest) -> Option<(Standing, bool)> {
        if let Some(paired) = self.paired.get(&request.device_id) {
            if paired.public_key == request.public_key {
                if let Some(token) = paired.tokens.get(&request.role) {
                    let token = token.clone();
                    return Some((Standing::Paired { token }, false));
                }
            }
        }
        if let Some(waiting) = self.pending.values().find(|p| {
            p.device_id == request.device_id
                && p.role == request.role
                && p.public_key == request.public_key
        }) {
            return Some((Standing::Pending(waiting.clone()), false));
        }
        while self.pending.len() >= MAX_PENDING {
            self.pending.pop_first();
        }
        let mut request = request;
        request.request_id = random_secret()?;
        self.pending
            .insert(request.request_id.clone(), request.clone());
        Some((Standing::Pending(request), true))
    }

    /// Approves a pending request: its device is paired for its role with a new token.
    pub(crate) fn approve(&mut self, request_id: &str) -> Option<PairingRequest> {
        let request = self.pending.remove(request_id)?;
        let token = random_secret()?;
        let paired = self
            .paired
            .entry(request.device_id.clone())
            .or_insert_with(|| Paired {
                public_key: request.public_key.clone(),
                tokens: BTreeMap::new(),
            });
        if paired.public_key != request.public_key {
            paired.public_key = request.public_key.clone();
            paired.tokens.clear();
        }
        paired.tokens.insert(request.role.clone(), token);
        Some(request)
    }

    /// Rejects a pending request.
    pub(crate) fn reject(&mut self, request_id: &str) -> Option<PairingRequest> {
        self.pending.remove(request_id)
    }

    /// Whether `token` is the device token of `device_id` for `role`.
    pub(crate) fn token_matches(&self, device_id: &str, role: &str, token: &str) -> bool {
        self.paired
            .get(device_id)
            .and_then(|p| p.tokens.get(role))
            .is_some_and(|t| constant_time_eq(t.as_bytes(), token.as_bytes()))
    }

    /// The pairing requests waiting now.
    pub(crate) fn pending(&self) -> impl Iterator<Item = &PairingRequest> {
        self.pending.values()
    }
}

impl PairingRequest {
    /// A request (its id not given yet) for the device of `proof`.
    pub(crate) fn new(proof: &Proof<'_>, role: &str, client: ClientFields<'_>) -> Self {
        Self {
            request_id: String::new(),
            device_id: proof.id.to_owned(),
            role: role.to_owned(),
            client_id: client.id.to_owned(),
            client_mode: client.mode.to_owned(),
            platform: client.platform.to_owned(),
            display_name: client.display_name.map(str::to_owned),
            commands: client.commands.to_vec(),
            public_key: proof.public_key.to_owned(),
        }
    }
}

/// The client fields a pairing request records.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientFields<'a> {
    pub(crate) id: &'a str,
    pub(crate) mode: &'a str,
    pub(crate) platform: &'a str,
    pub(crate) display_name: Option<&'a str>,
    pub(crate) commands: &'a [String],
}

/// Compares secrets in time that does not depend on where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use tether_core::protocol::openclaw::DeviceIdentity;

    fn signed<'a>(id: &'a str, nonce: &'a str, scopes: &'a [String]) -> SignedConnect<'a> {
        SignedConnect {
            device_id: id,
            client_id: "node-host",
            client_mode: "node",
            role: "node",
            scopes,
            signed_at: 42,
            token: "t",
            nonce,
            platform: "linux",
            device_family: "",
        }
    }

    #[test]
    fn a_proof_verifies_only_over_its_own_challenge_and_key() {
        let identity = DeviceIdentity::from_seed([3; 32]).unwrap_or_else(|| panic!("seed"));
        let scopes = Vec::new();
        let text = signed(identity.id(), "n1", &scopes);
        let signature = identity.sign(&text.payload_v3());
        let proof = Proof {
            id: identity.id(),
            public_key: identity.public_key(),
            signature: &signature,
            signed_at: 42,
            nonce: "n1",
        };
        let challenge = Challenge {
            nonce: "n1".into(),
            ts: 42,
            wall: false,
        };
        assert_eq!(verify(&proof, &challenge, &text), Ok(()));
        let other = Challenge {
            nonce: "n2".into(),
            ts: 42,
            wall: false,
        };
        assert_eq!(
            verify(&proof, &other, &text),
            Err(DeviceProofError::NonceMismatch)
        );
        let later = Challenge {
            nonce: "n1".into(),
            ts: 43,
            wall: false,
        };
        assert_eq!(
            verify(&proof, &later, &text),
            Err(DeviceProofError::Expired)
        );
        // On the wall clock, the client's own time within the skew is accepted.
        let wall = |ts| Challenge {
            nonce: "n1".into(),
            ts,
            wall: true,
        };
        assert_eq!(verify(&proof, &wall(42 + 119_000), &text), Ok(()));
        assert_eq!(
            verify(&proof, &wall(42 + 121_000), &text),
            Err(DeviceProofError::Expired)
        );
        let forged = Proof { id: "00", ..proof };
        assert_eq!(
            verify(&forged, &challenge, &text),
            Err(DeviceProofError::IdMismatch)
        );
        let changed = SignedConnect {
            role: "operator",
            ..text
        };
        assert_eq!(
            verify(&proof, &challenge, &changed),
            Err(DeviceProofError::Signature)
        );
    }

    #[test]
    fn pairing_is_pending_once_then_paired_with_a_token() {
        let mut devices = Devices::default();
        let proof = Proof {
            id: "dev",
            public_key: "key",
            signature: "",
            signed_at: 0,
            nonce: "n",
        };
        let client = ClientFields {
            id: "node-host",
            mode: "node",
            platform: "linux",
            display_name: None,
            commands: &[],
        };
        let request = || PairingRequest::new(&proof, "node", client);
        let Some((Standing::Pending(first), true)) = devices.standing(request()) else {
            panic!("pending, new");
        };
        let Some((Standing::Pending(again), false)) = devices.standing(request()) else {
            panic!("still pending, not new");
        };
        assert_eq!(first.request_id, again.request_id, "one request per device");
        assert!(devices.approve(&first.request_id).is_some());
        let Some((Standing::Paired { token }, _)) = devices.standing(request()) else {
            panic!("paired");
        };
        assert!(devices.token_matches("dev", "node", &token));
        assert!(!devices.token_matches("dev", "operator", &token));
        assert!(!devices.token_matches("dev", "node", "guess"));
    }
}
