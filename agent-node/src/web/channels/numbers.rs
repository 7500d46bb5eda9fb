//! The Twilio account's phone numbers: listed for the console
//! (`GET /2010-04-01/Accounts/{sid}/IncomingPhoneNumbers.json`) and assigned to an agent,
//! which points the number's voice, SMS and status webhooks at this node's own https
//! addresses (`POST …/IncomingPhoneNumbers/{sid}.json`). The business's numbers and which
//! agent answers each are configuration, not content (meta `twilio_numbers`).

use super::{ChannelError, Channels};
use crate::platform::store::Store;
use outpost_protocol::AgentConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// Meta key of the number → agent map.
pub const NUMBERS_KEY: &str = "twilio_numbers";

/// One of the account's numbers, as Twilio lists it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct Number {
    /// `PN…`.
    pub sid: String,
    /// E.164.
    pub phone_number: String,
    /// The name given at Twilio.
    #[serde(default)]
    pub friendly_name: String,
    /// Where calls go now.
    #[serde(default)]
    pub voice_url: Option<String>,
    /// Where messages go now.
    #[serde(default)]
    pub sms_url: Option<String>,
}

#[derive(Debug, Deserialize)]
struct NumberPage {
    #[serde(default)]
    incoming_phone_numbers: Vec<Number>,
}

/// Why Twilio's numbers could not be read or changed, in words for the owner.
#[derive(Debug, thiserror::Error)]
pub enum NumbersError {
    /// No Account SID and auth token on this node.
    #[error("Save the Twilio auth token and Account SID first.")]
    NotConfigured,
    /// Twilio refused the credentials.
    #[error("Twilio refused the saved credentials: save the current auth token again.")]
    Refused,
    /// Not a number of this account.
    #[error("That number is not one of this Twilio account's.")]
    Unknown,
    /// Twilio did not answer as expected.
    #[error("Twilio could not be reached; try again in a minute.")]
    Unreachable,
    /// The node database failed.
    #[error("The node could not read or save its settings.")]
    Store,
}

impl From<crate::platform::store::StoreError> for NumbersError {
    fn from(_: crate::platform::store::StoreError) -> Self {
        NumbersError::Store
    }
}

/// Which agent answers each number (E.164 → agent id).
pub fn number_agents(store: &Store) -> BTreeMap<String, String> {
    store
        .meta(NUMBERS_KEY)
        .ok()
        .flatten()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default()
}

/// A number sid is `PN` and 32 hex digits (it goes into the URL path).
fn valid_sid(sid: &str) -> bool {
    sid.len() == 34 && sid.starts_with("PN") && sid[2..].chars().all(|c| c.is_ascii_hexdigit())
}

impl Channels {
    /// The agents configured on this node, as (id, name).
    pub fn agent_names(&self) -> Result<Vec<(String, String)>, ChannelError> {
        Ok(self
            .runtime
            .config()?
            .agents
            .iter()
            .map(|a| (a.id.clone(), a.name.clone()))
            .collect())
    }

    /// The agent answering `channel` on our number `number`: the one assigned to the
    /// number, else [`Channels::agent_for`].
    pub(super) fn agent_for_number(
        &self,
        channel: &str,
        number: Option<&str>,
    ) -> Result<Option<AgentConfig>, ChannelError> {
        if let Some(id) = number.and_then(|n| number_agents(&self.store).get(n).cloned()) {
            if let Some(agent) = self.runtime.agent(&id)? {
                return Ok(Some(agent));
            }
        }
        self.agent_for(channel)
    }

    async fn twilio_call(
        &self,
        req: impl FnOnce(&reqwest::Client, &str, &str) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, NumbersError> {
        let Some((sid, token)) = self.twilio_credentials()? else {
            return Err(NumbersError::NotConfigured);
        };
        let base = format!("{}/2010-04-01/Accounts/{}", self.urls.twilio, sid.expose());
        let resp = req(&self.http, &base, sid.expose())
            .basic_auth(sid.expose(), Some(token.expose()))
            .timeout(Duration::from_secs(20))
            .send()
            .await
            .map_err(|_| NumbersError::Unreachable)?;
        match resp.status().as_u16() {
            200..=299 => Ok(resp),
            401 | 403 => Err(NumbersError::Refused),
            404 => Err(NumbersError::Unknown),
            status => {
                tracing::warn!(status, "Twilio numbers call failed");
                Err(NumbersError::Unreachable)
            }
        }
    }

    /// The account's numbers (first 100).
    pub async fn twilio_numbers(&self) -> Result<Vec<Number>, NumbersError> {
        let resp = self
            .twilio_call(|http, base, _| {
                http.get(format!("{base}/IncomingPhoneNumbers.json"))
                    .query(&[("PageSize", "100")])
            })
            .await?;
        let page: NumberPage = resp.json().await.map_err(|_| NumbersError::Unreachable)?;
        Ok(page.incoming_phone_numbers)
    }

    /// Points number `number_sid` at this node and has `agent_id` answer it.
    pub async fn assign_number(
        &self,
        number_sid: &str,
        agent_id: &str,
    ) -> Result<Number, NumbersError> {
        if !valid_sid(number_sid) {
            return Err(NumbersError::Unknown);
        }
        if self.runtime.agent(agent_id).ok().flatten().is_none() {
            return Err(NumbersError::Unknown);
        }
        let public = self.public_url.clone();
        let form = [
            ("VoiceUrl", format!("{public}/channels/twilio/voice")),
            ("VoiceMethod", "POST".to_owned()),
            ("SmsUrl", format!("{public}/channels/twilio/sms")),
            ("SmsMethod", "POST".to_owned()),
            (
                "StatusCallback",
                format!("{public}/channels/twilio/voice/status"),
            ),
            ("StatusCallbackMethod", "POST".to_owned()),
        ];
        let resp = self
            .twilio_call(|http, base, _| {
                http.post(format!("{base}/IncomingPhoneNumbers/{number_sid}.json"))
                    .form(&form)
            })
            .await?;
        let number: Number = resp.json().await.map_err(|_| NumbersError::Unreachable)?;
        let mut map = number_agents(&self.store);
        map.insert(number.phone_number.clone(), agent_id.to_owned());
        let json = serde_json::to_string(&map).unwrap_or_default();
        self.store
            .with(|c| Store::set_meta(c, NUMBERS_KEY, &json))?;
        tracing::info!("Twilio number pointed at this node");
        Ok(number)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::testkit::kit;
    use super::super::{ChannelUrls, SMS};
    use super::*;
    use crate::domain::secrets::SecretKind;
    use base64::Engine as _;
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    pub(crate) const SID: &str = "AC0123456789abcdef0123456789abcdef";
    pub(crate) const TOKEN: &str = "numbers-canary-token";
    pub(crate) const PN: &str = "PN0123456789abcdef0123456789abcdef";
    pub(crate) const NUMBER: &str = "+15005550006";

    /// Twilio's numbers API for one account with one number.
    pub(crate) async fn fake_twilio() -> MockServer {
        let s = MockServer::start().await;
        let auth = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{SID}:{TOKEN}"))
        );
        let number = serde_json::json!({
            "sid": PN, "phone_number": NUMBER, "friendly_name": "Front desk",
            "voice_url": "https://demo.twilio.com/welcome/voice/", "sms_url": ""
        });
        Mock::given(method("GET"))
            .and(path(format!(
                "/2010-04-01/Accounts/{SID}/IncomingPhoneNumbers.json"
            )))
            .and(header("authorization", auth.as_str()))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "incoming_phone_numbers": [number], "page": 0, "page_size": 100
            })))
            .mount(&s)
            .await;
        let mut updated = number.clone();
        updated["voice_url"] = "http://acme.localhost:1/channels/twilio/voice".into();
        Mock::given(method("POST"))
            .and(path(format!(
                "/2010-04-01/Accounts/{SID}/IncomingPhoneNumbers/{PN}.json"
            )))
            .and(header("authorization", auth.as_str()))
            .respond_with(ResponseTemplate::new(200).set_body_json(updated))
            .mount(&s)
            .await;
        s
    }

    #[tokio::test]
    async fn a_number_is_listed_pointed_at_the_node_and_answered_by_its_agent() {
        let twilio = fake_twilio().await;
        let k = kit(ChannelUrls {
            telegram: "http://127.0.0.1:9".into(),
            graph: "http://127.0.0.1:9".into(),
            twilio: twilio.uri(),
        });
        assert!(matches!(
            k.channels.twilio_numbers().await,
            Err(NumbersError::NotConfigured)
        ));
        k.put(SecretKind::TwilioAccountSid, SID);
        k.put(SecretKind::TwilioAuthToken, TOKEN);
        let config = serde_json::json!({"revision": 3, "agents": [
            {"id": "a1", "name": "Ava", "model": {"provider": "retrieval"}},
            {"id": "a2", "name": "Bea", "model": {"provider": "retrieval"}}
        ]});
        k.store
            .with(|c| Store::set_meta(c, crate::platform::store::CONFIG_KEY, &config.to_string()))
            .expect("config");

        let numbers = k.channels.twilio_numbers().await.expect("numbers");
        assert_eq!(numbers.len(), 1);
        assert_eq!(numbers[0].phone_number, NUMBER);
        for (sid, agent) in [("PN../../x", "a2"), (PN, "nobody")] {
            assert!(matches!(
                k.channels.assign_number(sid, agent).await,
                Err(NumbersError::Unknown)
            ));
        }
        k.channels.assign_number(PN, "a2").await.expect("assign");
        let sent = twilio.received_requests().await.unwrap_or_default();
        let post = sent
            .iter()
            .find(|r| r.method.as_str() == "POST")
            .expect("post");
        let form: BTreeMap<String, String> = url::form_urlencoded::parse(&post.body)
            .into_owned()
            .collect();
        let public = "http://acme.localhost:1";
        assert_eq!(form["VoiceUrl"], format!("{public}/channels/twilio/voice"));
        assert_eq!(form["SmsUrl"], format!("{public}/channels/twilio/sms"));
        assert_eq!(
            form["StatusCallback"],
            format!("{public}/channels/twilio/voice/status")
        );
        assert_eq!(form["VoiceMethod"], "POST");
        // Messages to that number are answered by Bea, others by the first agent.
        assert_eq!(
            k.channels
                .agent_for_number(SMS, Some(NUMBER))
                .expect("agent")
                .map(|a| a.id),
            Some("a2".to_owned())
        );
        assert_eq!(
            k.channels
                .agent_for_number(SMS, Some("+15005550009"))
                .expect("agent")
                .map(|a| a.id),
            Some("a1".to_owned())
        );
    }
}
