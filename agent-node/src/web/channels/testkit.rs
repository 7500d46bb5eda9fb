//! A runtime over a temporary node.db with one retrieval agent and a KB document.

use super::*;
use crate::domain::secrets::{SecretKind, SecretSource};
use crate::engine::llm::{LlmHealth, ProviderUrls, Providers};
use outpost_crypto::Secret;

/// The WhatsApp access token the tests' kits hold.
pub(crate) const WA_ACCESS_TOKEN: &str = "EAAGcanaryAccessToken123";
/// The WhatsApp phone number id the tests' kits hold.
pub(crate) const WA_PHONE_ID: &str = "106540352242922";

/// A kit whose WhatsApp calls go to `graph` (a fake Graph API), with the access token
/// and phone number id stored.
pub(crate) fn whatsapp_kit(graph: &str) -> Kit {
    let k = kit(ChannelUrls {
        telegram: "http://127.0.0.1:9".into(),
        graph: graph.to_owned(),
        twilio: "http://127.0.0.1:9".into(),
    });
    k.put(SecretKind::WhatsappAccessToken, WA_ACCESS_TOKEN);
    k.put(SecretKind::WhatsappPhoneNumberId, WA_PHONE_ID);
    k
}

pub(crate) struct Kit {
    pub dir: tempfile::TempDir,
    pub store: Arc<Store>,
    pub channels: Arc<Channels>,
}

pub(crate) fn kit(urls: ChannelUrls) -> Kit {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(Store::open(&dir.path().join("node.db")).expect("db"));
    let master = Arc::new(MasterKey::from_bytes([11; 32]));
    let providers = Providers::new(
        ProviderUrls::default(),
        SecretStore::new(store.clone(), master.clone()),
    )
    .expect("providers");
    let runtime = Arc::new(Runtime::new(
        store.clone(),
        &master,
        providers,
        Arc::new(LlmHealth::default()),
    ));
    let config = serde_json::json!({
        "revision": 1,
        "agents": [{
            "id": "a1",
            "name": "Ava",
            "model": {"provider": "retrieval"},
            "channels": ["telegram", "whatsapp"]
        }]
    });
    store
        .with(|c| Store::set_meta(c, crate::platform::store::CONFIG_KEY, &config.to_string()))
        .expect("config");
    crate::domain::kb::KnowledgeBase::new(store.clone(), &master)
        .add_document(
            "hours.md",
            crate::domain::kb::DocKind::Text,
            b"Opening hours: the clinic is open Monday to Friday from 8 am to 6 pm.",
            None,
        )
        .expect("kb");
    let channels = Arc::new(
        Channels::new(
            runtime,
            store.clone(),
            master,
            urls,
            "http://acme.localhost:1",
        )
        .expect("channels"),
    );
    Kit {
        dir,
        store,
        channels,
    }
}

impl Kit {
    pub(crate) fn put(&self, kind: SecretKind, value: &str) {
        self.channels
            .secrets
            .put(kind, &Secret::new(value.to_owned()), SecretSource::Console)
            .expect("secret");
    }

    pub(crate) fn message_count(&self) -> i64 {
        self.store
            .with(|c| Ok(c.query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0))?))
            .expect("count")
    }

    /// Every byte of node.db and its WAL, for canaries.
    pub(crate) fn db_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for f in ["node.db", "node.db-wal"] {
            if let Ok(b) = std::fs::read(self.dir.path().join(f)) {
                out.extend(b);
            }
        }
        out
    }
}

/// Runs delivery until the fake `server` received `n` requests whose path ends with
/// `suffix` (answers are produced in background tasks); returns them.
pub(crate) async fn deliver_until(
    channels: &Arc<Channels>,
    server: &wiremock::MockServer,
    suffix: &str,
    n: usize,
) -> Vec<wiremock::Request> {
    for _ in 0..100 {
        channels.deliver_pending(&[]).await.expect("deliver");
        let got: Vec<wiremock::Request> = server
            .received_requests()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.url.path().ends_with(suffix))
            .collect();
        if got.len() >= n {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{suffix} was not called {n} time(s)");
}

pub(crate) fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// `X-Twilio-Signature` as Twilio computes it (base64 of HMAC-SHA1 over the URL and the
/// POST parameters sorted by name, each name then value), written here with ring and not
/// with the node's code, so that the tests check the node against Twilio's rule.
pub(crate) fn twilio_sign(token: &str, url: &str, params: &[(&str, &str)]) -> String {
    use base64::Engine as _;
    let mut p = params.to_vec();
    p.sort();
    let mut data = url.to_owned();
    for (k, v) in p {
        data.push_str(k);
        data.push_str(v);
    }
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, token.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(ring::hmac::sign(&key, data.as_bytes()))
}

/// A webhook as Twilio sends it: `params` as a form to `uri`, with `X-Twilio-Signature:
/// signature` when there is one (see [`twilio_sign`]).
pub(crate) fn twilio_request(
    uri: &str,
    params: &[(&str, &str)],
    signature: Option<String>,
) -> actix_web::test::TestRequest {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter())
        .finish();
    let req = actix_web::test::TestRequest::post()
        .uri(uri)
        .insert_header(("Content-Type", "application/x-www-form-urlencoded"))
        .set_payload(body);
    match signature {
        Some(s) => req.insert_header(("X-Twilio-Signature", s)),
        None => req,
    }
}

/// A test service's answer as (status, body).
pub(crate) async fn status_and_body<B: actix_web::body::MessageBody>(
    resp: actix_web::dev::ServiceResponse<B>,
) -> (u16, String) {
    let status = resp.status().as_u16();
    let body = actix_web::test::read_body(resp).await;
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// A kit whose Twilio API calls go to `twilio` (a fake Twilio).
pub(crate) fn twilio_kit(twilio: &str) -> Kit {
    kit(ChannelUrls {
        telegram: "http://127.0.0.1:9".into(),
        graph: "http://127.0.0.1:9".into(),
        twilio: twilio.to_owned(),
    })
}

/// The node's one voice agent in the tests of calls: "Ava" (`a1`), on the voice channel,
/// open around the clock every day or never.
pub(crate) struct VoiceAgent<'a> {
    pub language: &'a str,
    /// `None`: the default greeting.
    pub greeting: Option<&'a str>,
    pub open: bool,
}

/// Stores Twilio's account SID and auth token, `agent` as the node's only agent, and the
/// voice `settings`.
pub(crate) fn configure_voice(
    k: &Kit,
    (sid, token): (&str, &str),
    agent: VoiceAgent<'_>,
    settings: super::voice::VoiceSettings,
) {
    k.put(SecretKind::TwilioAccountSid, sid);
    k.put(SecretKind::TwilioAuthToken, token);
    let days = [agent.open; 7];
    let mut a1 = serde_json::json!({
        "id": "a1",
        "name": "Ava",
        "language": agent.language,
        "model": {"provider": "retrieval"},
        "channels": ["voice"],
        "business_hours": {
            "days": days,
            "open_minute": 0,
            "close_minute": 1440,
            "time_zone": "UTC"
        }
    });
    if let Some(g) = agent.greeting {
        a1["greeting"] = g.into();
    }
    let config = serde_json::json!({"revision": 2, "agents": [a1]});
    k.store
        .with(|c| Store::set_meta(c, crate::platform::store::CONFIG_KEY, &config.to_string()))
        .expect("config");
    settings.save(&k.store).expect("settings");
}
