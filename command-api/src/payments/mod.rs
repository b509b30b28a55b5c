//! Payments through a payment provider: settings, the provider behind one small trait
//! ([`provider::PaymentProvider`], Stripe's API first, a manual one for development), and
//! the provider's signed webhooks. The routes are in [`crate::routes::payments`].
//!
//! Settings: `AGORA_PAYMENTS=stripe|manual` (default `manual`), `AGORA_STRIPE_API_BASE`,
//! `AGORA_STRIPE_SECRET_KEY`, `AGORA_STRIPE_WEBHOOK_SECRETS` (comma-separated, several
//! during a rotation), `AGORA_STRIPE_WEBHOOK_TOLERANCE` (default 5 minutes). Secrets are
//! refused when empty and never printed (`--help` and `Debug` hide them).

pub mod manual;
pub mod provider;
pub mod reconcile;
pub mod stripe;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};

pub use provider::{PaymentProvider, ProviderError, ProviderPayment, ProviderRefund};

/// Which provider takes the payments.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum ProviderKind {
    /// Development: an admin confirms payments; no money moves.
    #[default]
    Manual,
    /// Stripe's API (or one compatible with it at `AGORA_STRIPE_API_BASE`).
    Stripe,
}

/// The payment settings.
#[derive(Clone, Args)]
pub struct PaymentSettings {
    /// The payment provider: `stripe`, or `manual` (development: an admin confirms).
    #[arg(long = "payments", env = "AGORA_PAYMENTS", value_enum, default_value_t = ProviderKind::Manual)]
    pub provider: ProviderKind,
    /// Stripe's API base URL.
    #[arg(long, env = "AGORA_STRIPE_API_BASE", default_value = stripe::DEFAULT_API_BASE)]
    pub stripe_api_base: String,
    /// Stripe's secret API key (`sk_...`); required with `AGORA_PAYMENTS=stripe`.
    #[arg(long, env = "AGORA_STRIPE_SECRET_KEY", hide_env_values = true)]
    pub stripe_secret_key: Option<String>,
    /// The webhook endpoint's signing secrets (`whsec_...`), comma-separated (the old and
    /// the new one during a rotation); required with `AGORA_PAYMENTS=stripe`.
    #[arg(long, env = "AGORA_STRIPE_WEBHOOK_SECRETS", hide_env_values = true)]
    pub stripe_webhook_secrets: Option<String>,
    /// The oldest (and furthest in the future) a webhook's signed timestamp may be.
    #[arg(long, env = "AGORA_STRIPE_WEBHOOK_TOLERANCE", default_value = "5m", value_parser = humantime::parse_duration)]
    pub stripe_webhook_tolerance: Duration,
}

impl Default for PaymentSettings {
    fn default() -> Self {
        PaymentSettings {
            provider: ProviderKind::Manual,
            stripe_api_base: stripe::DEFAULT_API_BASE.to_owned(),
            stripe_secret_key: None,
            stripe_webhook_secrets: None,
            stripe_webhook_tolerance: Duration::from_secs(300),
        }
    }
}

impl std::fmt::Debug for PaymentSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaymentSettings")
            .field("provider", &self.provider)
            .field("stripe_api_base", &self.stripe_api_base)
            .field(
                "stripe_secret_key",
                &self.stripe_secret_key.as_ref().map(|_| "<hidden>"),
            )
            .field(
                "stripe_webhook_secrets",
                &self.stripe_webhook_secrets.as_ref().map(|_| "<hidden>"),
            )
            .field("stripe_webhook_tolerance", &self.stripe_webhook_tolerance)
            .finish()
    }
}

/// Payments as this process takes them.
pub struct Payments {
    pub provider: Arc<dyn PaymentProvider>,
    /// The webhook signing secrets (none with the manual provider: its webhook is refused).
    pub webhook_secrets: Vec<Vec<u8>>,
    pub webhook_tolerance: Duration,
}

impl std::fmt::Debug for Payments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Payments")
            .field("provider", &self.provider.name())
            .finish_non_exhaustive()
    }
}

impl Payments {
    /// The manual provider.
    pub fn manual() -> Self {
        Payments {
            provider: Arc::new(manual::ManualProvider),
            webhook_secrets: Vec::new(),
            webhook_tolerance: Duration::from_secs(300),
        }
    }

    /// Whether payments are confirmed by an admin (the development provider).
    pub fn is_manual(&self) -> bool {
        self.provider.name() == "manual"
    }
}

impl PaymentSettings {
    /// The payments these settings describe; a clear error for a missing or empty secret.
    pub fn payments(&self) -> Result<Payments, String> {
        match self.provider {
            ProviderKind::Manual => Ok(Payments {
                webhook_tolerance: self.stripe_webhook_tolerance,
                ..Payments::manual()
            }),
            ProviderKind::Stripe => {
                let key = self
                    .stripe_secret_key
                    .as_deref()
                    .map(str::trim)
                    .filter(|key| !key.is_empty())
                    .ok_or("AGORA_PAYMENTS=stripe needs AGORA_STRIPE_SECRET_KEY")?;
                let secrets: Vec<Vec<u8>> = self
                    .stripe_webhook_secrets
                    .as_deref()
                    .unwrap_or("")
                    .split(',')
                    .map(str::trim)
                    .filter(|secret| !secret.is_empty())
                    .map(|secret| secret.as_bytes().to_vec())
                    .collect();
                if secrets.is_empty() {
                    return Err(
                        "AGORA_PAYMENTS=stripe needs AGORA_STRIPE_WEBHOOK_SECRETS (comma-separated)"
                            .into(),
                    );
                }
                let provider = stripe::StripeProvider::new(&self.stripe_api_base, key)?;
                Ok(Payments {
                    provider: Arc::new(provider),
                    webhook_secrets: secrets,
                    webhook_tolerance: self.stripe_webhook_tolerance,
                })
            }
        }
    }
}
