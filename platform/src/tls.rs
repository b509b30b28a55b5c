//! HTTPS for the APIs: the rustls server configuration from `AGORA_TLS_CERT` (a PEM
//! certificate chain, the server's certificate first) and `AGORA_TLS_KEY` (its PEM private
//! key: PKCS#8, PKCS#1 or SEC1). Both or neither: one without the other is a
//! configuration error, never a silent fall back to plain HTTP.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
pub use rustls::ServerConfig;

/// `AGORA_TLS_CERT` and `AGORA_TLS_KEY`, as both APIs read them.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsSettings {
    /// Serve HTTPS with this PEM certificate chain (with `AGORA_TLS_KEY`).
    #[arg(long, env = "AGORA_TLS_CERT", value_name = "PEM")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of `AGORA_TLS_CERT`.
    #[arg(long, env = "AGORA_TLS_KEY", value_name = "PEM")]
    pub tls_key: Option<PathBuf>,
}

impl TlsSettings {
    /// The TLS server configuration, or `None` for plain HTTP.
    pub fn server_config(&self) -> anyhow::Result<Option<ServerConfig>> {
        server_config(self.tls_cert.as_deref(), self.tls_key.as_deref())
    }
}

/// The TLS server configuration, or `None` when neither file is given.
pub fn server_config(
    cert: Option<&Path>,
    key: Option<&Path>,
) -> anyhow::Result<Option<ServerConfig>> {
    let (cert, key) = match (cert, key) {
        (None, None) => return Ok(None),
        (Some(cert), Some(key)) => (cert, key),
        _ => anyhow::bail!("set both AGORA_TLS_CERT and AGORA_TLS_KEY to serve HTTPS, or neither"),
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
        .with_context(|| {
            format!(
                "AGORA_TLS_CERT {}: not a PEM certificate chain",
                cert.display()
            )
        })?;
    anyhow::ensure!(
        !chain.is_empty(),
        "AGORA_TLS_CERT {} holds no certificate",
        cert.display()
    );
    let private_key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("AGORA_TLS_KEY {}: not a PEM private key", key.display()))?;
    let config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, private_key)
            .context("AGORA_TLS_CERT and AGORA_TLS_KEY do not make a usable certificate and key")?;
    Ok(Some(config))
}
