//! rustls' client configuration for an integration: the ring provider, the roots its settings
//! name (Mozilla's bundled roots or the system's store), plus its `ca_certs`, HTTP/1.1 by ALPN.

use std::sync::Arc;

use rustls::RootCertStore;

use crate::integrations::{Roots, Tls};

/// The client configuration for `tls`, or why it cannot be made (no usable root at all).
pub fn config(tls: &Tls) -> Result<rustls::ClientConfig, String> {
    let mut roots = RootCertStore::empty();
    match tls.roots {
        Roots::Bundled => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Roots::System => {
            // Reads the platform's store (on Linux the distribution's bundle, or `SSL_CERT_FILE`
            // / `SSL_CERT_DIR`); a few unreadable entries are no reason to refuse the rest.
            let found = rustls_native_certs::load_native_certs();
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                let why = found.errors.first().map(|e| format!(": {e}")).unwrap_or_default();
                return Err(format!("`tls_roots: system` found no certificate in the system's trust store{why}"));
            }
        }
    }
    for cert in &tls.ca_certs {
        roots.add(cert.clone()).map_err(|e| format!("a `ca_certs` certificate cannot be used: {e}"))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_roots_make_a_config() {
        let config = config(&Tls::default()).expect("config");
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }
}
