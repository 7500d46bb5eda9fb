//! Billing configuration: `OUTPOST_STRIPE_*` and `OUTPOST_BILLING_GRACE_SECS` (or the
//! matching flags, or a `[billing]` table in the TOML file). Billing is on only when the
//! secret key, the webhook secret and at least one price are all set; none of them set means
//! billing is off, and a partial configuration refuses to start, naming what is missing.

use clap::Args;
use outpost_crypto::Secret;
use serde::Deserialize;
use std::collections::BTreeMap;

/// Stripe's API.
pub const DEFAULT_API_BASE: &str = "https://api.stripe.com";
/// Days an unpaid invoice is tolerated before the workspace is suspended: 7.
pub const DEFAULT_GRACE_SECS: i64 = 7 * 24 * 3600;

fn secret(s: &str) -> Result<Secret, String> {
    Ok(Secret::new(s.to_owned()))
}

/// Stripe flags and environment variables of `serve`. Prefer the environment or the TOML
/// file for the two secrets: flags show in the process list.
#[derive(Args, Debug, Clone, Default)]
pub struct BillingArgs {
    /// Stripe secret API key (`sk_live_…`, `sk_test_…` or a restricted `rk_…` key). Without
    /// it (and the two options below) billing is off: workspaces are on the free `dev` plan
    /// and get their node at once. In the TOML file these options go in a `[billing]` table:
    /// `stripe_secret_key`, `stripe_webhook_secret`, `stripe_api_base`, `grace_secs`, and a
    /// `[billing.prices]` table of `plan = "price_…"`
    #[arg(long, env = "OUTPOST_STRIPE_SECRET_KEY", hide_env_values = true, value_parser = secret)]
    pub stripe_secret_key: Option<Secret>,
    /// Signing secret of the webhook endpoint `<public_url>/stripe/webhook` (`whsec_…`)
    #[arg(long, env = "OUTPOST_STRIPE_WEBHOOK_SECRET", hide_env_values = true, value_parser = secret)]
    pub stripe_webhook_secret: Option<Secret>,
    /// Plans customers can choose and their Stripe recurring price ids, in the order shown:
    /// `starter=price_…,pro=price_…`
    #[arg(long, env = "OUTPOST_STRIPE_PRICES")]
    pub stripe_prices: Option<String>,
    /// Stripe API base URL [default: https://api.stripe.com]
    #[arg(long, env = "OUTPOST_STRIPE_API_BASE")]
    pub stripe_api_base: Option<String>,
    /// Seconds between a failed payment and the workspace's suspension, if the invoice is
    /// still unpaid [default: 604800 = 7 days]
    #[arg(long, env = "OUTPOST_BILLING_GRACE_SECS")]
    pub billing_grace_secs: Option<i64>,
}

/// The `[billing]` table of the TOML file.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct BillingFile {
    stripe_secret_key: Option<String>,
    stripe_webhook_secret: Option<String>,
    stripe_api_base: Option<String>,
    grace_secs: Option<i64>,
    prices: Option<BTreeMap<String, String>>,
}

impl std::fmt::Debug for BillingFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let masked = |s: &Option<String>| s.as_ref().map(|_| "***");
        f.debug_struct("BillingFile")
            .field("stripe_secret_key", &masked(&self.stripe_secret_key))
            .field(
                "stripe_webhook_secret",
                &masked(&self.stripe_webhook_secret),
            )
            .field("stripe_api_base", &self.stripe_api_base)
            .field("grace_secs", &self.grace_secs)
            .field("prices", &self.prices)
            .finish()
    }
}

/// A plan a customer can choose.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Plan {
    /// Name shown and stored (`starter`).
    pub name: String,
    /// Stripe price id (`price_…`).
    pub price: String,
}

/// Billing when it is on. Debug prints the secrets as `***`.
#[derive(Debug, Clone)]
pub struct BillingConfig {
    /// Stripe secret API key.
    pub secret_key: Secret,
    /// Webhook signing secret.
    pub webhook_secret: Secret,
    /// API base URL, no trailing slash.
    pub api_base: String,
    /// Plans in the order shown; at least one.
    pub plans: Vec<Plan>,
    /// Grace period after a failed payment, seconds.
    pub grace_secs: i64,
}

impl BillingConfig {
    /// The plan called `name`.
    pub fn plan(&self, name: &str) -> Option<&Plan> {
        self.plans.iter().find(|p| p.name == name)
    }
}

fn valid_plan_name(n: &str) -> bool {
    (1..=40).contains(&n.len())
        && n.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// Parses `starter=price_1,pro=price_2` (order kept).
pub fn parse_prices(raw: &str) -> anyhow::Result<Vec<Plan>> {
    let mut plans: Vec<Plan> = vec![];
    for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, price) = part
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("stripe_prices: `{part}` is not `plan=price_id`"))?;
        push_plan(&mut plans, name.trim(), price.trim())?;
    }
    Ok(plans)
}

fn push_plan(plans: &mut Vec<Plan>, name: &str, price: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        valid_plan_name(name),
        "stripe_prices: plan name `{name}` must be 1 to 40 of a-z 0-9 - _"
    );
    anyhow::ensure!(
        !price.is_empty() && price.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
        "stripe_prices: the price id of `{name}` must be a Stripe id like price_123"
    );
    anyhow::ensure!(
        plans.iter().all(|p| p.name != name),
        "stripe_prices: plan `{name}` is listed twice"
    );
    plans.push(Plan {
        name: name.to_owned(),
        price: price.to_owned(),
    });
    Ok(())
}

impl BillingArgs {
    /// Merges flags/env over the `[billing]` table. `None`: billing is off.
    pub fn resolve(&self, file: Option<BillingFile>) -> anyhow::Result<Option<BillingConfig>> {
        let file = file.unwrap_or_default();
        let secret_key = self
            .stripe_secret_key
            .clone()
            .or(file.stripe_secret_key.map(Secret::new))
            .filter(|s| !s.expose().is_empty());
        let webhook_secret = self
            .stripe_webhook_secret
            .clone()
            .or(file.stripe_webhook_secret.map(Secret::new))
            .filter(|s| !s.expose().is_empty());
        let plans = match (&self.stripe_prices, file.prices) {
            (Some(raw), _) => parse_prices(raw)?,
            (None, Some(table)) => {
                let mut plans = vec![];
                for (name, price) in &table {
                    push_plan(&mut plans, name, price)?;
                }
                plans
            }
            (None, None) => vec![],
        };
        let mut missing = vec![];
        if secret_key.is_none() {
            missing.push("OUTPOST_STRIPE_SECRET_KEY (stripe_secret_key)");
        }
        if webhook_secret.is_none() {
            missing.push("OUTPOST_STRIPE_WEBHOOK_SECRET (stripe_webhook_secret)");
        }
        if plans.is_empty() {
            missing.push("OUTPOST_STRIPE_PRICES (stripe_prices / [billing.prices])");
        }
        let (Some(secret_key), Some(webhook_secret), false) =
            (secret_key, webhook_secret, plans.is_empty())
        else {
            if missing.len() == 3 {
                return Ok(None);
            }
            anyhow::bail!(
                "billing is partly configured: set {} as well, or unset the other Stripe options to run with billing off",
                missing.join(" and ")
            );
        };
        let api_base = self
            .stripe_api_base
            .clone()
            .or(file.stripe_api_base)
            .unwrap_or_else(|| DEFAULT_API_BASE.to_owned())
            .trim_end_matches('/')
            .to_owned();
        anyhow::ensure!(
            api_base.starts_with("https://") || api_base.starts_with("http://"),
            "stripe_api_base must be an http(s) URL"
        );
        let grace_secs = self
            .billing_grace_secs
            .or(file.grace_secs)
            .unwrap_or(DEFAULT_GRACE_SECS);
        anyhow::ensure!(grace_secs >= 0, "billing_grace_secs must be 0 or more");
        Ok(Some(BillingConfig {
            secret_key,
            webhook_secret,
            api_base,
            plans,
            grace_secs,
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn args(key: Option<&str>, whsec: Option<&str>, prices: Option<&str>) -> BillingArgs {
        BillingArgs {
            stripe_secret_key: key.map(|k| Secret::new(k.into())),
            stripe_webhook_secret: whsec.map(|k| Secret::new(k.into())),
            stripe_prices: prices.map(str::to_owned),
            ..Default::default()
        }
    }

    #[test]
    fn nothing_set_is_off_and_all_set_is_on() {
        assert!(args(None, None, None).resolve(None).unwrap().is_none());
        let c = args(
            Some("sk_test_1"),
            Some("whsec_1"),
            Some("starter=price_a, pro=price_b"),
        )
        .resolve(None)
        .unwrap()
        .unwrap();
        assert_eq!(c.api_base, DEFAULT_API_BASE);
        assert_eq!(c.grace_secs, 604_800);
        let names: Vec<_> = c.plans.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["starter", "pro"], "order kept");
        assert_eq!(c.plan("pro").unwrap().price, "price_b");
    }

    #[test]
    fn a_partial_configuration_names_what_is_missing() {
        let e = args(Some("sk_test_1"), None, None)
            .resolve(None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("OUTPOST_STRIPE_WEBHOOK_SECRET"), "{e}");
        assert!(e.contains("OUTPOST_STRIPE_PRICES"), "{e}");
        assert!(!e.contains("OUTPOST_STRIPE_SECRET_KEY"), "{e}");
        let e = args(None, Some("whsec_1"), Some("a=price_1"))
            .resolve(None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("OUTPOST_STRIPE_SECRET_KEY"), "{e}");
    }

    #[test]
    fn prices_are_validated() {
        for bad in [
            "starter",
            "Starter=price_1",
            "a=price_1,a=price_2",
            "a=pri ce",
        ] {
            assert!(parse_prices(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let c = args(
            Some("sk_test_canary123"),
            Some("whsec_canary456"),
            Some("a=price_1"),
        )
        .resolve(None)
        .unwrap()
        .unwrap();
        let text = format!("{c:?} {:?}", args(Some("sk_test_canary123"), None, None));
        assert!(!text.contains("canary"), "{text}");
        let file: BillingFile =
            toml::from_str("stripe_secret_key = \"sk_test_canary789\"\n[prices]\na = \"price_1\"")
                .unwrap();
        assert!(!format!("{file:?}").contains("canary"));
        let c = BillingArgs::default().resolve(Some(file));
        assert!(c.unwrap_err().to_string().contains("WEBHOOK_SECRET"));
    }
}
