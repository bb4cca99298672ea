//! TLS for `wss://`, with rustls and the ring provider.

use std::sync::Arc;

/// A client configuration trusting the webpki roots (and the platform's, with the
/// `native-roots` feature).
pub(crate) fn default_config() -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    #[cfg(feature = "native-roots")]
    {
        let native = rustls_native_certs::load_native_certs();
        for cert in native.certs {
            // A platform certificate rustls cannot parse is skipped, not fatal.
            let _ = roots.add(cert);
        }
    }
    client_config(roots).map(Arc::new)
}

/// A client configuration trusting exactly `roots` (a private CA, or a test's self-signed
/// certificate).
pub fn client_config(roots: rustls::RootCertStore) -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
