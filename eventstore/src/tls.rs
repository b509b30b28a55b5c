//! TLS for PostgreSQL connections, as libpq's `sslmode` and `sslrootcert` say, on rustls.
//!
//! tokio-postgres knows `disable`, `prefer` and `require` only, and refuses parameters it
//! does not know; [`SslSettings::split`] takes `sslmode` and `sslrootcert` out of a
//! connection string before it is parsed, and [`SslSettings::connector`] makes the rustls
//! configuration that does what libpq does:
//!
//! | `sslmode`     | encrypted            | server certificate checked                 |
//! |---------------|----------------------|--------------------------------------------|
//! | `disable`     | no                   | —                                          |
//! | `prefer`      | if the server can    | no                                         |
//! | `require`     | yes                  | no (with `sslrootcert`: as `verify-ca`)    |
//! | `verify-ca`   | yes                  | signed by `sslrootcert` (or system roots)  |
//! | `verify-full` | yes                  | as `verify-ca`, and issued for the host    |
//!
//! The default is `prefer`, as in libpq. Production URLs should say `verify-full`.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::StoreError;

/// libpq's `sslmode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslModeSetting {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslModeSetting {
    fn parse(value: &str) -> Result<SslModeSetting, StoreError> {
        match value {
            "disable" => Ok(SslModeSetting::Disable),
            "allow" | "prefer" => Ok(SslModeSetting::Prefer),
            "require" => Ok(SslModeSetting::Require),
            "verify-ca" => Ok(SslModeSetting::VerifyCa),
            "verify-full" => Ok(SslModeSetting::VerifyFull),
            other => Err(StoreError::Config(format!(
                "sslmode {other:?} is not one of disable, prefer, require, verify-ca, verify-full"
            ))),
        }
    }

    /// What tokio-postgres is told: whether to ask for TLS, and whether it must get it.
    pub fn tokio_postgres_mode(self) -> SslMode {
        match self {
            SslModeSetting::Disable => SslMode::Disable,
            SslModeSetting::Prefer => SslMode::Prefer,
            _ => SslMode::Require,
        }
    }
}

/// The TLS settings of a connection string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SslSettings {
    pub mode: SslModeSetting,
    /// A PEM file of the certificate authorities to trust.
    pub root_cert: Option<String>,
}

impl SslSettings {
    /// Takes `sslmode` and `sslrootcert` out of `database_url` (a `postgres://` URL or a
    /// `key=value` string): the settings, and the string without them.
    pub fn split(database_url: &str) -> Result<(SslSettings, String), StoreError> {
        let mut mode = None;
        let mut root_cert = None;
        let mut take = |key: &str, value: String| -> Result<bool, StoreError> {
            match key {
                "sslmode" => mode = Some(SslModeSetting::parse(&value)?),
                "sslrootcert" => root_cert = Some(value),
                _ => return Ok(false),
            }
            Ok(true)
        };
        let rest = if let Some((base, query)) = database_url
            .split_once('?')
            .filter(|_| database_url.contains("://"))
        {
            let mut kept = Vec::new();
            for pair in query.split('&') {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                let value = percent_encoding::percent_decode_str(value)
                    .decode_utf8()
                    .map_err(|_| StoreError::Config(format!("{key} is not UTF-8")))?
                    .into_owned();
                if !take(key, value)? {
                    kept.push(pair);
                }
            }
            if kept.is_empty() {
                base.to_owned()
            } else {
                format!("{base}?{}", kept.join("&"))
            }
        } else if database_url.contains("://") {
            database_url.to_owned()
        } else {
            let mut kept = Vec::new();
            for token in database_url.split_whitespace() {
                match token.split_once('=') {
                    Some((key, value)) if take(key, value.trim_matches('\'').to_owned())? => {}
                    _ => kept.push(token),
                }
            }
            kept.join(" ")
        };
        let settings = SslSettings {
            mode: mode.unwrap_or(SslModeSetting::Prefer),
            root_cert,
        };
        Ok((settings, rest))
    }

    /// The rustls connector for these settings.
    pub fn connector(&self) -> Result<MakeRustlsConnect, StoreError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|error| StoreError::Config(format!("TLS: {error}")))?;
        let verify = match self.mode {
            SslModeSetting::VerifyCa | SslModeSetting::VerifyFull => true,
            SslModeSetting::Require => self.root_cert.is_some(),
            SslModeSetting::Disable | SslModeSetting::Prefer => false,
        };
        let config = if verify {
            let roots = Arc::new(self.roots()?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|error| StoreError::Config(format!("TLS roots: {error}")))?;
            let verifier: Arc<dyn ServerCertVerifier> = if self.mode == SslModeSetting::VerifyFull {
                webpki
            } else {
                Arc::new(AnyHostName(webpki))
            };
            builder
                .dangerous()
                .with_custom_certificate_verifier(verifier)
                .with_no_client_auth()
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Unchecked(provider)))
                .with_no_client_auth()
        };
        Ok(MakeRustlsConnect::new(config))
    }

    /// The authorities to trust: `sslrootcert`, else none (libpq would read
    /// `~/.postgresql/root.crt`; we ask for the file to be named).
    fn roots(&self) -> Result<RootCertStore, StoreError> {
        let Some(path) = &self.root_cert else {
            return Err(StoreError::Config(
                "sslmode verify-ca and verify-full need sslrootcert=<a PEM file of CA certificates>"
                    .into(),
            ));
        };
        let mut roots = RootCertStore::empty();
        for certificate in CertificateDer::pem_file_iter(path)
            .map_err(|error| StoreError::Config(format!("sslrootcert {path}: {error}")))?
        {
            let certificate = certificate
                .map_err(|error| StoreError::Config(format!("sslrootcert {path}: {error}")))?;
            roots
                .add(certificate)
                .map_err(|error| StoreError::Config(format!("sslrootcert {path}: {error}")))?;
        }
        if roots.is_empty() {
            return Err(StoreError::Config(format!(
                "sslrootcert {path} holds no certificate"
            )));
        }
        Ok(roots)
    }
}

/// `verify-ca`: the chain must lead to a trusted root; the name it was issued for does not
/// matter.
#[derive(Debug)]
struct AnyHostName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyHostName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer` and `require` without `sslrootcert`: encrypted, the certificate not checked
/// (as libpq does); the handshake's signatures still are.
#[derive(Debug)]
struct Unchecked(Arc<CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssl_settings_are_taken_out_of_urls_and_key_value_strings() {
        let (settings, rest) = SslSettings::split(
            "postgres://u@db.example:5432/agora?sslmode=verify-full&sslrootcert=%2Fca.pem&application_name=x",
        )
        .unwrap();
        assert_eq!(settings.mode, SslModeSetting::VerifyFull);
        assert_eq!(settings.root_cert.as_deref(), Some("/ca.pem"));
        assert_eq!(
            rest,
            "postgres://u@db.example:5432/agora?application_name=x"
        );

        let (settings, rest) =
            SslSettings::split("host=db user=u sslmode=require sslrootcert=/ca.pem").unwrap();
        assert_eq!(settings.mode, SslModeSetting::Require);
        assert_eq!(rest, "host=db user=u");

        let (settings, rest) = SslSettings::split("postgres://u@localhost/agora").unwrap();
        assert_eq!(settings.mode, SslModeSetting::Prefer);
        assert_eq!(rest, "postgres://u@localhost/agora");

        assert!(SslSettings::split("postgres://u@h/d?sslmode=sometimes").is_err());
    }

    #[test]
    fn verifying_modes_need_a_root_certificate() {
        let (settings, _) = SslSettings::split("postgres://u@h/d?sslmode=verify-full").unwrap();
        assert!(settings.connector().is_err());
        let (settings, _) =
            SslSettings::split("postgres://u@h/d?sslmode=verify-ca&sslrootcert=/nonexistent.pem")
                .unwrap();
        assert!(settings.connector().is_err());
        let (settings, _) = SslSettings::split("postgres://u@h/d?sslmode=require").unwrap();
        assert!(settings.connector().is_ok());
    }
}
