//! What a secret is for: the kinds of secret a node stores sealed under its master key
//! (provider keys, channel tokens). The CP names them in `deliver_secret` and
//! `remove_secret` commands by [`SecretKind::as_str`]; the value never appears here.

use serde::{Deserialize, Serialize};

macro_rules! kinds {
    ($($variant:ident => $name:literal, $label:literal;)*) => {
        /// What a secret is for. Serialized as its [`SecretKind::as_str`] name.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum SecretKind {
            $(#[doc = $label] $variant,)*
        }

        impl SecretKind {
            /// Every kind, in the order pages list them.
            pub const ALL: &'static [SecretKind] = &[$(SecretKind::$variant,)*];

            /// Stable snake_case name.
            pub const fn as_str(self) -> &'static str {
                match self { $(SecretKind::$variant => $name,)* }
            }

            /// Name for people.
            pub const fn label(self) -> &'static str {
                match self { $(SecretKind::$variant => $label,)* }
            }
        }
    };
}

kinds! {
    OpenaiApiKey => "openai_api_key", "OpenAI API key";
    AnthropicApiKey => "anthropic_api_key", "Anthropic API key";
    OpenaiCompatibleApiKey => "openai_compatible_api_key", "OpenAI-compatible endpoint key";
    TelegramBotToken => "telegram_bot_token", "Telegram bot token";
    WhatsappAccessToken => "whatsapp_access_token", "WhatsApp access token";
    WhatsappAppSecret => "whatsapp_app_secret", "WhatsApp app secret";
    WhatsappPhoneNumberId => "whatsapp_phone_number_id", "WhatsApp phone number id";
    WhatsappVerifyToken => "whatsapp_verify_token", "WhatsApp webhook verify token";
    TwilioAuthToken => "twilio_auth_token", "Twilio auth token";
    TwilioAccountSid => "twilio_account_sid", "Twilio account SID";
}

impl SecretKind {
    /// Parses [`SecretKind::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for SecretKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_its_name_and_serde() {
        assert_eq!(SecretKind::ALL.len(), 10);
        for &kind in SecretKind::ALL {
            assert_eq!(SecretKind::parse(kind.as_str()), Some(kind));
            assert_eq!(kind.to_string(), kind.as_str());
            let json = serde_json::to_string(&kind).expect("serialize");
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            assert_eq!(
                serde_json::from_str::<SecretKind>(&json).expect("deserialize"),
                kind
            );
            assert!(!kind.label().is_empty());
        }
        assert_eq!(SecretKind::parse("OpenaiApiKey"), None);
        assert_eq!(SecretKind::parse(""), None);
    }
}
