//! A device identity: the Ed25519 key pair an OpenClaw gateway knows a device by.
//!
//! The gateway pairs, approves and issues tokens per device id, the SHA-256 (hex) of the
//! raw public key; every connect signs the gateway's fresh challenge with the private key.
//! Signing is ring's Ed25519 (already in the tree through rustls): no crypto of ours. The
//! private key never reaches `Debug`, a log or an error: only [`DeviceIdentity::export`]
//! hands it out, for the application to keep where it keeps secrets.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{Ed25519KeyPair, KeyPair as _};

/// Why an identity could not be made or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The system's random source failed while generating a key.
    #[error("the system random source failed")]
    Random,
    /// The exported key is not base64url, or not an Ed25519 PKCS#8 key. The text is not
    /// quoted: it is a secret.
    #[error("not an exported Ed25519 device key")]
    Malformed,
}

/// An Ed25519 device identity. Clones share the key; `Debug` shows the device id only.
#[derive(Clone)]
pub struct DeviceIdentity {
    pair: Arc<Ed25519KeyPair>,
    pkcs8: Arc<[u8]>,
    id: String,
    public_key: String,
}

impl DeviceIdentity {
    /// A new identity from the system's random source.
    pub fn generate() -> Result<Self, IdentityError> {
        let rng = ring::rand::SystemRandom::new();
        let document = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| IdentityError::Random)?;
        Self::from_pkcs8(document.as_ref().to_vec())
    }

    /// The identity whose private key is `seed` (the 32 bytes RFC 8032 calls the secret
    /// key): for keys kept in that form, and for tests that need the same identity twice.
    /// `None` only if ring refuses the document, which it never does for 32 bytes.
    pub fn from_seed(seed: [u8; 32]) -> Option<Self> {
        // The fixed PKCS#8 v1 wrapping of an Ed25519 seed (RFC 8410, section 7).
        const PREFIX: [u8; 16] = [
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        let mut pkcs8 = PREFIX.to_vec();
        pkcs8.extend_from_slice(&seed);
        Self::from_pkcs8(pkcs8).ok()
    }

    /// The identity [`export`](Self::export) wrote: base64url (unpadded or padded) of its
    /// PKCS#8 document. Keys exported by other tools as PKCS#8 v1 (Node's
    /// `privateKey.export({type: "pkcs8"})`) are read too.
    pub fn import(exported: &str) -> Result<Self, IdentityError> {
        let text = exported.trim().trim_end_matches('=');
        let pkcs8 = URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| IdentityError::Malformed)?;
        Self::from_pkcs8(pkcs8)
    }

    fn from_pkcs8(pkcs8: Vec<u8>) -> Result<Self, IdentityError> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&pkcs8)
            .map_err(|_| IdentityError::Malformed)?;
        let raw = pair.public_key().as_ref();
        let digest = ring::digest::digest(&ring::digest::SHA256, raw);
        let id = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        let public_key = URL_SAFE_NO_PAD.encode(raw);
        Ok(Self {
            pair: Arc::new(pair),
            pkcs8: pkcs8.into(),
            id,
            public_key,
        })
    }

    /// The private key, to keep for the next run: base64url of its PKCS#8 document. A
    /// secret: store it as one.
    pub fn export(&self) -> crate::protocol::discord::Token {
        crate::protocol::discord::Token::new(URL_SAFE_NO_PAD.encode(&self.pkcs8))
    }

    /// The device id: the SHA-256 of the raw public key, in lowercase hex.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The raw public key, base64url without padding, as the gateway reads it.
    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    /// The signature of `payload`, base64url without padding.
    pub fn sign(&self, payload: &str) -> String {
        URL_SAFE_NO_PAD.encode(self.pair.sign(payload.as_bytes()).as_ref())
    }
}

impl fmt::Debug for DeviceIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceIdentity")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// What a connect signs: the device, the client, its role and scopes, the challenge's time
/// and nonce, the credential presented, and (v3) the platform and device family, lowercased,
/// so that none of them can be changed by whoever relays the connect. The client signs it
/// and the gateway (`tether-gateway`) checks it with this one text.
#[derive(Debug, Clone, Copy)]
pub struct SignedConnect<'a> {
    /// `device.id`.
    pub device_id: &'a str,
    /// `client.id`.
    pub client_id: &'a str,
    /// `client.mode`.
    pub client_mode: &'a str,
    /// `role`.
    pub role: &'a str,
    /// `scopes`, as sent (joined with commas).
    pub scopes: &'a [String],
    /// `device.signedAt`: the challenge's `ts`.
    pub signed_at: u64,
    /// The credential presented: `auth.token`, else `auth.deviceToken`, else empty.
    pub token: &'a str,
    /// The challenge's nonce.
    pub nonce: &'a str,
    /// `client.platform`.
    pub platform: &'a str,
    /// `client.deviceFamily` (empty when absent).
    pub device_family: &'a str,
}

impl SignedConnect<'_> {
    /// `v2|deviceId|clientId|clientMode|role|scopes|signedAt|token|nonce`: the older text,
    /// which gateways still accept.
    pub fn payload_v2(&self) -> String {
        self.common("v2").join("|")
    }

    /// `v3|deviceId|clientId|clientMode|role|scopes|signedAt|token|nonce|platform|deviceFamily`
    pub fn payload_v3(&self) -> String {
        let mut fields = self.common("v3");
        fields.push(normalize(self.platform));
        fields.push(normalize(self.device_family));
        fields.join("|")
    }

    /// The fields both texts share, after the version.
    fn common(&self, version: &str) -> Vec<String> {
        vec![
            version.to_owned(),
            self.device_id.to_owned(),
            self.client_id.to_owned(),
            self.client_mode.to_owned(),
            self.role.to_owned(),
            self.scopes.join(","),
            self.signed_at.to_string(),
            self.token.to_owned(),
            self.nonce.to_owned(),
        ]
    }
}

/// Metadata as the gateway binds it into the signature: trimmed, ASCII lowercased.
fn normalize(value: &str) -> String {
    value.trim().to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_survives_export_and_import_and_keeps_its_id() {
        let identity = DeviceIdentity::generate().unwrap_or_else(|e| panic!("{e}"));
        let again =
            DeviceIdentity::import(identity.export().expose()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(identity.id(), again.id());
        assert_eq!(identity.public_key(), again.public_key());
        assert_eq!(identity.id().len(), 64);
        assert_eq!(
            URL_SAFE_NO_PAD
                .decode(identity.public_key())
                .map(|k| k.len()),
            Ok(32)
        );
    }

    #[test]
    fn a_seed_gives_the_same_identity_every_time() {
        let a = DeviceIdentity::from_seed([1; 32]).map(|i| i.id().to_owned());
        let b = DeviceIdentity::from_seed([1; 32]).map(|i| i.id().to_owned());
        assert!(a.is_some());
        assert_eq!(a, b);
        assert_ne!(
            a,
            DeviceIdentity::from_seed([2; 32]).map(|i| i.id().to_owned())
        );
    }

    #[test]
    fn debug_shows_the_id_and_never_the_key() {
        let identity = DeviceIdentity::generate().unwrap_or_else(|e| panic!("{e}"));
        let debug = format!("{identity:?}");
        assert!(debug.contains(identity.id()));
        assert!(!debug.contains(identity.export().expose()));
    }

    #[test]
    fn a_malformed_export_is_refused_without_quoting_it() {
        let error = DeviceIdentity::import("not a key!").err();
        assert_eq!(error, Some(IdentityError::Malformed));
        assert!(
            !error
                .map(|e| e.to_string())
                .unwrap_or_default()
                .contains("not a key")
        );
    }

    #[test]
    fn the_signature_verifies_against_the_public_key() {
        let identity = DeviceIdentity::generate().unwrap_or_else(|e| panic!("{e}"));
        let signature = URL_SAFE_NO_PAD
            .decode(identity.sign("hello"))
            .unwrap_or_default();
        let key = URL_SAFE_NO_PAD
            .decode(identity.public_key())
            .unwrap_or_default();
        let verifier = ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key);
        assert!(verifier.verify(b"hello", &signature).is_ok());
    }

    #[test]
    fn the_v3_payload_lowercases_platform_and_family() {
        let scopes = ["operator.read".to_string(), "operator.write".to_string()];
        let signed = SignedConnect {
            device_id: "dev",
            client_id: "cli",
            client_mode: "cli",
            role: "operator",
            scopes: &scopes,
            signed_at: 1737264000000,
            token: "tok",
            nonce: "n1",
            platform: " Linux ",
            device_family: "",
        };
        assert_eq!(
            signed.payload_v3(),
            "v3|dev|cli|cli|operator|operator.read,operator.write|1737264000000|tok|n1|linux|"
        );
    }
}
