//! What more than one test file of this crate needs.
#![allow(clippy::unwrap_used, dead_code)]

use rustls::pki_types::CertificateDer;

/// A self-signed certificate for `localhost`: the server's rustls configuration, and the
/// certificate for a client to trust.
pub(crate) fn localhost_tls() -> (rustls::ServerConfig, CertificateDer<'static>) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_der = cert.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let server_config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert_der.clone()], key)
        .unwrap();
    (server_config, cert_der)
}
