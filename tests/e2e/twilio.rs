//! SMS on Twilio through the real binaries (issue 16): the owner saves the Twilio Account
//! SID and auth token on the CP, which checks them with a fake Twilio and seals both to
//! the node; an SMS webhook signed by this test's own code (Twilio's scheme, written here
//! with `ring`) is answered by the node from its knowledge base through the fake Messages
//! API; unsigned or wrongly signed ones are refused. A call's recording is downloaded to
//! the node and deleted at the fake Twilio, and the CP gets calls and minutes per hour.
//! Neither the customer's words, nor their number, nor the token, nor the recording reach
//! the CP.

use crate::agents::{contains, files_under, pg_rows_text};
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

#[tokio::test]
async fn an_sms_customer_is_answered_by_the_node_and_the_cp_sees_none_of_it() {
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
    let (browser, api, ws_id, node) =
        workspace_with_node(&cp, "owner@acme.test", "Acme Dental").await;
    create_agent(
        &api,
        &node,
        &ws_id,
        crate::agents::agent_body("Ava", "retrieval", "", ""),
    )
    .await;
    let r = node.upload("/kb/upload", "clinic.md", KB.as_bytes()).await;
    assert_eq!(r.status(), 303, "upload accepted");

    let page = format!("/workspaces/{ws_id}/secrets");
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
    let r = browser
        .post_csrf(
            &page,
            &[
                ("kind", "twilio_auth_token"),
                ("value", TOKEN),
                ("account_sid", SID),
            ],
        )
        .await;
    assert_eq!(r.status(), 303, "accepted: back to the page");

    let webhook = format!("{}/channels/twilio/sms", node.base);
    let params = [
        ("AccountSid", SID),
        ("Body", QUESTION),
        ("From", CUSTOMER),
        ("MessageSid", "SMe2e00000000000000000000000000001"),
        ("NumMedia", "0"),
        ("To", OUR_NUMBER),
    ];
    let form = |p: &[(&str, &str)]| {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(p.iter())
            .finish()
    };
    let post = |signature: Option<String>, body: String| {
        let mut req = node
            .client
            .post(&webhook)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(s) = signature {
            req = req.header("x-twilio-signature", s);
        }
        req.send()
    };
    let signature = twilio_signature(TOKEN, &webhook, &params);
    wait_for("the Twilio credentials on the node", 30, || async {
        let r = post(Some(signature.clone()), form(&params)).await.unwrap();
        (r.status() == 200).then_some(())
    })
    .await;
    let sent = wait_for("the SMS answer", 60, || async {
        received(&twilio, "/Messages.json").await.into_iter().next()
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
    assert_eq!(post(None, form(&forged)).await.unwrap().status(), 403);
    let wrong = twilio_signature("not-the-token", &webhook, &forged);
    assert_eq!(
        post(Some(wrong), form(&forged)).await.unwrap().status(),
        403
    );
    // Twilio retries the first: answered once.
    assert_eq!(
        post(Some(signature.clone()), form(&params))
            .await
            .unwrap()
            .status(),
        200
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        received(&twilio, "/Messages.json").await.len(),
        1,
        "answered once"
    );

    // A call, recorded: the node downloads the recording, deletes it at Twilio and
    // reports only calls and minutes per hour to the CP.
    let rec_path = format!("/2010-04-01/Accounts/{SID}/Recordings/{RECORDING}");
    Mock::given(method("GET"))
        .and(path(format!("{rec_path}.mp3")))
        .and(header("authorization", basic().as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(AUDIO))
        // Before the catch-all 401 of `fake_twilio`.
        .with_priority(1)
        .mount(&twilio)
        .await;
    Mock::given(method("DELETE"))
        .and(path(format!("{rec_path}.json")))
        .and(header("authorization", basic().as_str()))
        .respond_with(ResponseTemplate::new(204))
        .mount(&twilio)
        .await;
    let call = |route: &'static str, p: Vec<(&'static str, &'static str)>| {
        let url = format!("{}/channels/twilio/voice{route}", node.base);
        let signature = twilio_signature(TOKEN, &url, &p);
        node.client
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-twilio-signature", signature)
            .body(form(&p))
            .send()
    };
    let base = |status: &'static str| {
        vec![
            ("AccountSid", SID),
            ("CallSid", "CAe2e00000000000000000000000000001"),
            ("CallStatus", status),
            ("From", CUSTOMER),
            ("To", OUR_NUMBER),
        ]
    };
    assert_eq!(call("", base("ringing")).await.unwrap().status(), 200);
    let mut done = base("completed");
    done.push(("CallDuration", "65"));
    assert_eq!(call("/status", done).await.unwrap().status(), 204);
    let mut recorded = base("completed");
    recorded.extend([
        ("RecordingSid", RECORDING),
        ("RecordingStatus", "completed"),
        ("RecordingDuration", "65"),
    ]);
    assert_eq!(call("/recording", recorded).await.unwrap().status(), 204);
    assert_eq!(
        received(&twilio, &format!("{RECORDING}.json")).await.len(),
        1,
        "deleted at Twilio"
    );
    let calls = wait_for("call counts at the CP", 30, || async {
        let (_, d) = api.get_json(&format!("/api/v1/workspaces/{ws_id}")).await;
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

    // The CP has none of it: words, the customer's number, the token, the recording.
    let canaries = [QUESTION, CUSTOMER, "Elm Street", TOKEN, AUDIO_CANARY];
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
        let rows = pg_rows_text(&cp);
        for c in canaries {
            assert!(!rows.contains(c), "{c:?} in a CP table");
        }
    }
}
