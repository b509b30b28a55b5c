//! Where messages go: an SMTP server (lettre's pooled async transport: `smtp://` without
//! TLS for a local relay, `smtp+starttls://`, or `smtps://` with implicit TLS; a login
//! from the URL; a timeout), or `.eml` files in a directory (`agora dev`). The URL's
//! password is never logged nor echoed in an error.

use std::time::Duration;

use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use percent_encoding::percent_decode_str;

use super::EmailSettings;

/// How long one SMTP command may take.
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(10);
/// SMTP connections kept open at most.
pub const SMTP_POOL: u32 = 8;

/// A configured way to send.
#[derive(Clone)]
pub enum Mailer {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Files(AsyncFileTransport<Tokio1Executor>, std::path::PathBuf),
}

/// Why a message was not sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError {
    /// The server refused this message for good (a 5xx answer): retrying cannot help.
    pub permanent: bool,
    pub reason: String,
}

impl Mailer {
    /// The mailer `settings` ask for; `None` when email is off.
    pub fn from_settings(settings: &EmailSettings) -> Result<Option<Mailer>, String> {
        if let Some(url) = settings.smtp_url.as_deref().filter(|u| !u.is_empty()) {
            return smtp(url).map(|t| Some(Mailer::Smtp(t)));
        }
        if let Some(dir) = &settings.mail_dir {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create the mail directory {}: {e}", dir.display()))?;
            return Ok(Some(Mailer::Files(
                AsyncFileTransport::<Tokio1Executor>::new(dir),
                dir.clone(),
            )));
        }
        Ok(None)
    }

    /// Sends `message`.
    pub async fn send(&self, message: Message) -> Result<(), SendError> {
        match self {
            Mailer::Smtp(transport) => {
                transport
                    .send(message)
                    .await
                    .map(drop)
                    .map_err(|e| SendError {
                        permanent: e.is_permanent(),
                        reason: e.to_string(),
                    })
            }
            Mailer::Files(transport, _) => {
                transport
                    .send(message)
                    .await
                    .map(drop)
                    .map_err(|e| SendError {
                        permanent: false,
                        reason: e.to_string(),
                    })
            }
        }
    }

    /// Where messages go, for the logs (no password).
    pub fn describe(&self) -> String {
        match self {
            Mailer::Smtp(_) => "SMTP".to_owned(),
            Mailer::Files(_, dir) => format!(".eml files in {}", dir.display()),
        }
    }
}

/// The SMTP transport of `url`.
fn smtp(url: &str) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let parsed = url::Url::parse(url).map_err(|_| {
        "AGORA_SMTP_URL is not a URL (smtp://, smtp+starttls:// or smtps://host[:port])".to_owned()
    })?;
    let host = parsed
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or("AGORA_SMTP_URL names no host")?
        .to_owned();
    let builder = match parsed.scheme() {
        "smtp" => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host).port(25),
        "smtp+starttls" => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&host)
            .map_err(|e| format!("AGORA_SMTP_URL: {e}"))?
            .port(587),
        "smtps" => AsyncSmtpTransport::<Tokio1Executor>::relay(&host)
            .map_err(|e| format!("AGORA_SMTP_URL: {e}"))?
            .port(465),
        other => {
            return Err(format!(
                "AGORA_SMTP_URL: the scheme must be smtp, smtp+starttls or smtps, not {other:?}"
            ))
        }
    };
    let mut builder = builder
        .timeout(Some(SMTP_TIMEOUT))
        .pool_config(PoolConfig::new().max_size(SMTP_POOL));
    if let Some(port) = parsed.port() {
        builder = builder.port(port);
    }
    if !parsed.username().is_empty() {
        let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
        builder = builder.credentials(Credentials::new(
            decode(parsed.username()),
            decode(parsed.password().unwrap_or_default()),
        ));
    }
    Ok(builder.build())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str) -> EmailSettings {
        EmailSettings {
            smtp_url: Some(url.to_owned()),
            ..EmailSettings::default()
        }
    }

    // A pooled transport starts its pool's task: it needs a runtime.
    #[tokio::test]
    async fn smtp_urls_are_read_and_bad_ones_refused_without_the_password() {
        for good in [
            "smtp://127.0.0.1:2525",
            "smtp+starttls://user:pa%40ss@mail.example.com",
            "smtps://user:secret@mail.example.com:465",
        ] {
            assert!(Mailer::from_settings(&settings(good)).is_ok(), "{good}");
        }
        for bad in [
            "http://user:hunter2@mail.example.com",
            "not a url hunter2",
            "smtp://user:hunter2@",
        ] {
            let error = Mailer::from_settings(&settings(bad)).err().expect(bad);
            assert!(!error.contains("hunter2"), "{error}");
        }
        assert!(Mailer::from_settings(&EmailSettings::default())
            .unwrap()
            .is_none());
    }
}
