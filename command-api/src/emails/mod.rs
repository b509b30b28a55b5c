//! Transactional email: the shop tells its customers what happened to their orders.
//!
//! - [`ledger`]: the effect ledger (`emails`): one row per (template, event), no personal
//!   data, and each attempt's outcome.
//! - [`reactor`]: a log follower that writes the ledger rows with its checkpoint, and the
//!   sender that works them off on the active instance.
//! - [`compose`]: the message of one row, rendered from the templates in
//!   `command-api/templates/emails` with the customer's data opened only now.
//! - [`mailer`]: SMTP (`smtp://`, `smtp+starttls://`, `smtps://`) or `.eml` files.

pub mod compose;
pub mod ledger;
pub mod mailer;
pub mod reactor;

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

/// Email settings (`AGORA_SMTP_URL`, `AGORA_MAIL_FROM`, `AGORA_SHOP_NAME`, ...). Email is
/// off unless `AGORA_SMTP_URL` or `AGORA_MAIL_DIR` is set.
#[derive(Debug, Clone, Args)]
pub struct EmailSettings {
    /// The SMTP server: `smtp://` (no TLS: a local relay), `smtp+starttls://` or
    /// `smtps://` (implicit TLS), with `user:password@` when it needs a login.
    #[arg(long, env = "AGORA_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// Instead of SMTP, write each message as an `.eml` file into this directory
    /// (`agora dev`).
    #[arg(long, env = "AGORA_MAIL_DIR")]
    pub mail_dir: Option<PathBuf>,
    /// The sender address (`shop@example.com`).
    #[arg(long, env = "AGORA_MAIL_FROM", default_value = "shop@agora.invalid")]
    pub mail_from: String,
    /// The shop's name, in the sender and the messages.
    #[arg(long, env = "AGORA_SHOP_NAME", default_value = "Agora")]
    pub shop_name: String,
    /// Where a parcel is tracked: `{tracking_number}` and `{carrier}` are filled in.
    #[arg(
        long,
        env = "AGORA_TRACKING_URL",
        default_value = "https://t.17track.net/en#nums={tracking_number}"
    )]
    pub tracking_url: String,
    /// Attempts before an email is `failed`.
    #[arg(long, env = "AGORA_EMAIL_MAX_ATTEMPTS", default_value_t = 10)]
    pub email_max_attempts: u32,
    /// The first retry's delay (doubling, at most 1 h, jittered).
    #[arg(long, env = "AGORA_EMAIL_RETRY_BASE", default_value = "5s", value_parser = humantime::parse_duration)]
    pub email_retry_base: Duration,
}

impl Default for EmailSettings {
    fn default() -> Self {
        EmailSettings {
            smtp_url: None,
            mail_dir: None,
            mail_from: "shop@agora.invalid".into(),
            shop_name: "Agora".into(),
            tracking_url: "https://t.17track.net/en#nums={tracking_number}".into(),
            email_max_attempts: 10,
            email_retry_base: Duration::from_secs(5),
        }
    }
}

impl EmailSettings {
    /// True when email is on.
    pub fn enabled(&self) -> bool {
        self.smtp_url.as_deref().is_some_and(|u| !u.is_empty()) || self.mail_dir.is_some()
    }
}
