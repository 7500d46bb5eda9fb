//! SMS on Twilio through the real binaries (issue 16): the owner saves the Twilio Account
//! SID and auth token on the CP, which checks them with a fake Twilio and seals both to
//! the node; an SMS webhook signed by this test's own code (Twilio's scheme, written here
//! with `ring`) is answered by the node from its knowledge base through the fake Messages
//! API; unsigned or wrongly signed ones are refused. A phone call is played the same way
//! through its TwiML steps (greeting, a speech turn answered from the knowledge base, a
//! transfer to the staff number set in the node's console, the end) and shows up in the
//! console's inbox. A recorded call's recording is downloaded to the node and deleted at
//! the fake Twilio, and the CP gets calls and minutes per hour. Neither the customer's
//! words, nor their number, nor the token, nor the recording reach the CP.

use crate::agents::{contains, conversation_ids, files_under, node_answering_from, pg_rows_text};
use crate::harness::*;
use base64::Engine as _;
use std::time::Duration;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const SID: &str = "ACe2e0000000000000000000000000beef";
const TOKEN: &str = "e2e-canary-twilio-token-6d2a";
const OUR_NUMBER: &str = "+15005550006";
const CUSTOMER: &str = "+14155559876";
const QUESTION: &str = "Where can I park my car?";
const CALLER: &str = "+14155550123";
const STAFF: &str = "+14155550100";
const CALL_SID: &str = "CAe2e00000000000000000000000000001";
const RECORDING: &str = "REe2e00000000000000000000000000001";
const AUDIO_CANARY: &str = "CANARY-E2E-RECORDED-CALL";
const AUDIO: &[u8] = b"ID3\x04CANARY-E2E-RECORDED-CALL";

const KB: &str = "# Parking\n\nFree parking is available behind the building on Elm Street.\n";

fn basic() -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{SID}:{TOKEN}"))
    )
}

/// Twilio's account lookup and Messages API, checking the basic credentials.
async fn fake_twilio() -> MockServer {
    let s = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/2010-04-01/Accounts/{SID}.json")))
        .and(header("authorization", basic().as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "sid": SID, "friendly_name": "Acme", "status": "active"
        })))
        .mount(&s)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/2010-04-01/Accounts/{SID}/Messages.json")))
        .and(header("authorization", basic().as_str()))
        .respond_with(ResponseTemplate::new(201).set_body_json(serde_json::json!({
            "sid": "SM00000000000000000000000000000e2e", "status": "queued"
        })))
        .mount(&s)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401).set_body_json(serde_json::json!({
            "code": 20003, "message": "Authenticate", "status": 401
        })))
        .mount(&s)
        .await;
    s
}

/// `X-Twilio-Signature` as Twilio computes it: the URL, then every POST parameter sorted
/// by name as name+value, HMAC-SHA1 under the auth token, base64.
fn twilio_signature(token: &str, url: &str, params: &[(&str, &str)]) -> String {
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

async fn received(server: &MockServer, suffix: &str) -> Vec<Request> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.url.path().ends_with(suffix))
        .collect()
}

/// A CP whose node has a retrieval agent with the parking document; the Twilio credential
/// is not saved yet.
struct TwilioNode {
    twilio: MockServer,
    cp: Cp,
    browser: Browser,
    api: Api,
    ws_id: String,
    node: NodeConsole,
}

impl TwilioNode {
    async fn start() -> TwilioNode {
        let twilio = fake_twilio().await;
        let cp = Cp::start_with(Opts {
            env: vec![
                ("OUTPOST_ALLOW_LOCAL_PROVIDERS", "true".into()),
                ("OUTPOST_TWILIO_API_BASE", twilio.uri()),
                // The local provisioner's nodes inherit it.
                ("OUTPOST_NODE_TWILIO_API_BASE", twilio.uri()),
            ],
            ..Opts::default()
        });
        let (browser, api, ws_id, node) = node_answering_from(&cp, KB).await;
        TwilioNode {
            twilio,
            cp,
            browser,
            api,
            ws_id,
            node,
        }
    }

    fn secrets_page(&self) -> String {
        format!("/workspaces/{}/secrets", self.ws_id)
    }

    /// Saves the Account SID and auth token on the CP, which checks them with the fake.
    async fn save_credential(&self) {
        let r = self
            .browser
            .post_csrf(
                &self.secrets_page(),
                &[
                    ("kind", "twilio_auth_token"),
                    ("value", TOKEN),
                    ("account_sid", SID),
                ],
            )
            .await;
        assert_eq!(r.status(), 303, "accepted: back to the page");
    }

    /// Posts a webhook to the node as Twilio would, signed with `token` (unsigned if
    /// `None`).
    async fn post(
        &self,
        path: &str,
        params: &[(&str, &str)],
        token: Option<&str>,
    ) -> reqwest::Response {
        let url = format!("{}{path}", self.node.base);
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params.iter())
            .finish();
        let mut req = self
            .node
            .client
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(token) = token {
            req = req.header("x-twilio-signature", twilio_signature(token, &url, params));
        }
        req.send().await.unwrap()
    }

    /// Asserts that none of `canaries` is in the CP's files, log or tables.
    fn assert_cp_has_none(&self, canaries: &[&str]) {
        let cp = &self.cp;
        let node_root = cp.data_dir().join("nodes");
        for f in files_under(&cp.data_dir(), Some(&node_root))
            .iter()
            .chain([cp.log_path()].iter())
        {
            let bytes = std::fs::read(f).unwrap();
            for c in canaries {
                assert!(!contains(&bytes, c), "{c:?} in CP file {}", f.display());
            }
        }
        if cp.db_url.starts_with("postgres") {
            let rows = pg_rows_text(cp);
            for c in canaries {
                assert!(!rows.contains(c), "{c:?} in a CP table");
            }
        }
    }
}

#[tokio::test]
async fn an_sms_customer_is_answered_by_the_node_and_the_cp_sees_none_of_it() {
    let t = TwilioNode::start().await;
    let (browser, twilio) = (&t.browser, &t.twilio);
    let page = t.secrets_page();
    // A wrong token is refused in words; without the SID nothing can be checked.
    let r = browser
        .post_csrf(
            &page,
            &[
                ("kind", "twilio_auth_token"),
                ("value", "not-the-token"),
                ("account_sid", SID),
            ],
        )
        .await;
    assert_eq!(r.status(), 400);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("invalid or has been revoked"));
    let r = browser
        .post_csrf(&page, &[("kind", "twilio_auth_token"), ("value", TOKEN)])
        .await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("Account SID"));
    t.save_credential().await;

    let params = [
        ("AccountSid", SID),
        ("Body", QUESTION),
        ("From", CUSTOMER),
        ("MessageSid", "SMe2e00000000000000000000000000001"),
        ("NumMedia", "0"),
        ("To", OUR_NUMBER),
    ];
    const SMS: &str = "/channels/twilio/sms";
    wait_for("the Twilio credentials on the node", 30, || async {
        let r = t.post(SMS, &params, Some(TOKEN)).await;
        (r.status() == 200).then_some(())
    })
    .await;
    let sent = wait_for("the SMS answer", 60, || async {
        received(twilio, "/Messages.json").await.into_iter().next()
    })
    .await;
    let reply: Vec<(String, String)> = url::form_urlencoded::parse(&sent.body)
        .into_owned()
        .collect();
    let field = |n: &str| {
        reply
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert_eq!(field("To"), CUSTOMER);
    assert_eq!(field("From"), OUR_NUMBER);
    assert!(field("Body").contains("Elm Street"), "{}", field("Body"));

    // Forged: unsigned, or signed with another token → 403, nothing stored or sent.
    let mut forged = params;
    forged[3].1 = "SMe2e00000000000000000000000000002";
    assert_eq!(t.post(SMS, &forged, None).await.status(), 403);
    assert_eq!(
        t.post(SMS, &forged, Some("not-the-token")).await.status(),
        403
    );
    // Twilio retries the first: answered once.
    assert_eq!(t.post(SMS, &params, Some(TOKEN)).await.status(), 200);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        received(twilio, "/Messages.json").await.len(),
        1,
        "answered once"
    );

    // The CP has none of it: words, the customer's number, the token.
    t.assert_cp_has_none(&[QUESTION, CUSTOMER, "Elm Street", TOKEN]);
}

#[tokio::test]
async fn a_phone_call_is_answered_transferred_and_logged_on_the_node_only() {
    let t = TwilioNode::start().await;
    t.save_credential().await;
    // The owner sets where calls are transferred, in the node's console.
    let r = t
        .node
        .post(
            "/settings/voice",
            &[("transfer_number", STAFF), ("voice", "Polly.Joanna")],
        )
        .await;
    assert_eq!(r.status(), 303, "voice settings saved");

    let call = |status: &'static str| {
        vec![
            ("AccountSid", SID),
            ("CallSid", CALL_SID),
            ("CallStatus", status),
            ("Direction", "inbound"),
            ("From", CALLER),
            ("To", OUR_NUMBER),
        ]
    };
    // The call comes in: greeted, then listened to.
    let greeting = wait_for("the Twilio credentials on the node", 30, || async {
        let r = t
            .post("/channels/twilio/voice", &call("ringing"), Some(TOKEN))
            .await;
        if r.status() != 200 {
            return None;
        }
        Some(r.text().await.unwrap())
    })
    .await;
    assert!(
        greeting.contains("Hello! Ask me anything about Acme Dental."),
        "{greeting}"
    );
    assert!(greeting.contains(r#"<Gather input="speech""#), "{greeting}");
    assert!(
        greeting.contains(&format!(
            "{}/channels/twilio/voice/gather?turn=1",
            t.node.base
        )),
        "{greeting}"
    );
    // A forged step is refused.
    let forged = t
        .post(
            "/channels/twilio/voice",
            &call("ringing"),
            Some("not-the-token"),
        )
        .await;
    assert_eq!(forged.status(), 403);

    // A speech turn is answered from the knowledge base.
    let mut turn = call("in-progress");
    turn.push(("SpeechResult", QUESTION));
    let r = t
        .post("/channels/twilio/voice/gather?turn=1", &turn, Some(TOKEN))
        .await;
    assert_eq!(r.status(), 200);
    let answer = r.text().await.unwrap();
    assert!(answer.contains("Elm Street"), "{answer}");
    assert!(answer.contains(r#"voice="Polly.Joanna""#), "{answer}");
    assert!(answer.contains("gather?turn=2"), "{answer}");

    // Asking for a person: the staff number is dialled.
    let mut turn = call("in-progress");
    turn.push(("SpeechResult", "Can I talk to a person please"));
    let r = t
        .post("/channels/twilio/voice/gather?turn=2", &turn, Some(TOKEN))
        .await;
    let transfer = r.text().await.unwrap();
    assert!(
        transfer.contains(&format!(
            r#"<Dial timeout="25" method="POST" action="{}/channels/twilio/voice/dialed">{STAFF}</Dial>"#,
            t.node.base
        )),
        "{transfer}"
    );
    assert!(!transfer.contains("<Gather"), "{transfer}");

    // The call ends.
    let mut done = call("completed");
    done.push(("CallDuration", "42"));
    let r = t
        .post("/channels/twilio/voice/status", &done, Some(TOKEN))
        .await;
    assert_eq!(r.status(), 204);

    // The console's inbox shows the call: its turns and its duration.
    let ids = conversation_ids(&t.node).await;
    assert_eq!(ids.len(), 1, "one conversation: {ids:?}");
    let page = t
        .node
        .get(&format!("/inbox/{}", ids[0]))
        .await
        .text()
        .await
        .unwrap();
    for shown in [
        QUESTION,
        "Elm Street",
        "Call transferred to the team.",
        "42 s",
        "Ended",
    ] {
        assert!(
            page.contains(shown),
            "{shown:?} not in the conversation: {page}"
        );
    }
    assert!(!page.contains("Take this call"), "the call is over");

    t.assert_cp_has_none(&[QUESTION, CALLER, "Elm Street", TOKEN, CALL_SID]);
}

#[tokio::test]
async fn a_recorded_call_stays_on_the_node_is_deleted_at_twilio_and_counted_at_the_cp() {
    let t = TwilioNode::start().await;
    t.save_credential().await;
    let rec_path = format!("/2010-04-01/Accounts/{SID}/Recordings/{RECORDING}");
    Mock::given(method("GET"))
        .and(path(format!("{rec_path}.mp3")))
        .and(header("authorization", basic().as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(AUDIO))
        // Before the catch-all 401 of `fake_twilio`.
        .with_priority(1)
        .mount(&t.twilio)
        .await;
    Mock::given(method("DELETE"))
        .and(path(format!("{rec_path}.json")))
        .and(header("authorization", basic().as_str()))
        .respond_with(ResponseTemplate::new(204))
        .mount(&t.twilio)
        .await;
    let base = |status: &'static str| {
        vec![
            ("AccountSid", SID),
            ("CallSid", CALL_SID),
            ("CallStatus", status),
            ("From", CALLER),
            ("To", OUR_NUMBER),
        ]
    };
    wait_for("the Twilio credentials on the node", 30, || async {
        let r = t
            .post("/channels/twilio/voice", &base("ringing"), Some(TOKEN))
            .await;
        (r.status() == 200).then_some(())
    })
    .await;
    let mut done = base("completed");
    done.push(("CallDuration", "65"));
    let r = t
        .post("/channels/twilio/voice/status", &done, Some(TOKEN))
        .await;
    assert_eq!(r.status(), 204);
    let mut recorded = base("completed");
    recorded.extend([
        ("RecordingSid", RECORDING),
        ("RecordingStatus", "completed"),
        ("RecordingDuration", "65"),
    ]);
    let r = t
        .post("/channels/twilio/voice/recording", &recorded, Some(TOKEN))
        .await;
    assert_eq!(r.status(), 204);
    assert_eq!(
        received(&t.twilio, &format!("{RECORDING}.json"))
            .await
            .len(),
        1,
        "deleted at Twilio"
    );
    // The recording is in the caller's conversation on the node.
    let ids = conversation_ids(&t.node).await;
    let mut shown = false;
    for id in ids {
        let page = t
            .node
            .get(&format!("/inbox/{id}"))
            .await
            .text()
            .await
            .unwrap();
        shown |= page.contains("Call recording (1:05)") && page.contains("<audio");
    }
    assert!(shown, "the recording is played in the inbox");
    // The CP gets one call of two minutes, as counts.
    let calls = wait_for("call counts at the CP", 30, || async {
        let (_, d) = t
            .api
            .get_json(&format!("/api/v1/workspaces/{}", t.ws_id))
            .await;
        let rows = d["call_usage"].as_array()?.clone();
        let sum = |k: &str| rows.iter().filter_map(|r| r[k].as_i64()).sum::<i64>();
        (sum("minutes") > 0).then(|| (sum("calls"), sum("minutes"), rows.clone()))
    })
    .await;
    assert_eq!(
        (calls.0, calls.1),
        (1, 2),
        "one call of 65 s: {:?}",
        calls.2
    );
    t.assert_cp_has_none(&[CALLER, TOKEN, CALL_SID, RECORDING, AUDIO_CANARY]);
}
