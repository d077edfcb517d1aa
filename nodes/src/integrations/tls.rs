//! An integration's TLS settings as the file states them: which roots a server certificate is
//! checked against (`tls_roots:`) and the extra CA certificates it trusts (`ca_certs:`), for
//! company proxies that inspect TLS with a CA of their own. `http::tls` turns them into rustls'
//! client configuration.

use std::fmt;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

/// Where the trusted roots come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Roots {
    /// Mozilla's roots, compiled in (`webpki-roots`): the same on every machine.
    #[default]
    Bundled,
    /// The operating system's trust store, where a company installs its own CA.
    System,
}

impl Roots {
    /// Every choice, as written in the file.
    pub const NAMES: [&str; 2] = ["bundled", "system"];

    pub fn parse(text: &str) -> Option<Roots> {
        match text {
            "bundled" => Some(Roots::Bundled),
            "system" => Some(Roots::System),
            _ => None,
        }
    }
}

/// The TLS settings of one integration. Equal settings share one connection pool.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Tls {
    pub roots: Roots,
    /// Trusted in addition to `roots` (DER), from the `ca_certs:` PEM file.
    pub ca_certs: Vec<CertificateDer<'static>>,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls").field("roots", &self.roots).field("ca_certs", &self.ca_certs.len()).finish()
    }
}

/// The certificates of a PEM bundle; other PEM sections (keys) are refused, so that a private
/// key pasted by mistake is pointed out rather than ignored.
pub fn parse_pem(bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    if bytes.windows(11).any(|w| w == b"PRIVATE KEY") {
        return Err("holds a private key; give only the CA's certificates".to_owned());
    }
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("is not a PEM certificate bundle: {e}"))?;
    if certs.is_empty() {
        return Err("holds no `-----BEGIN CERTIFICATE-----` section".to_owned());
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_bundles() {
        assert!(parse_pem(b"").unwrap_err().contains("no `-----BEGIN CERTIFICATE"));
        assert!(parse_pem(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").is_err());
        let one = "-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n";
        assert_eq!(parse_pem(one.as_bytes()).map(|c| c.len()), Ok(1));
        assert_eq!(parse_pem(format!("{one}{one}").as_bytes()).map(|c| c.len()), Ok(2));
    }

    #[test]
    fn roots_names_round_trip() {
        for name in Roots::NAMES {
            assert!(Roots::parse(name).is_some(), "{name}");
        }
        assert_eq!(Roots::parse("os"), None);
    }
}
