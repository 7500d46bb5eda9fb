//! Fakes of OVHcloud's API and Cloudflare's DNS API for the cloud tests, on 127.0.0.1
//! (wiremock with a stateful responder), speaking their JSON.
//!
//! The fake OVH checks every signed request the way OVH does, with its own code here (ring's
//! SHA-1, never the control plane's function): application and consumer keys, the
//! timestamp against **its own clock**, an hour ahead of ours (a client that signs with its
//! local time instead of the `GET /auth/time` delta is refused), and
//! `"$1$" + hex(sha1(AS+"+"+CK+"+"+METHOD+"+"+URL+"+"+BODY+"+"+TS))`. Anything wrong: 403.
//! The fake Cloudflare checks the bearer token and answers
//! `{"success": …, "errors": […], "messages": […], "result": …}`.

#![allow(dead_code)]

use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

pub const AK: &str = "ovh-test-application-key";
pub const AS: &str = "ovh-test-application-secret";
pub const CK: &str = "ovh-test-consumer-key";
pub const PROJECT: &str = "p0123456789abcdef";
pub const REGION: &str = "GRA11";
/// The project's other region (`GET /cloud/project/{id}/region` lists both).
pub const REGION2: &str = "SBG5";
pub const FLAVOR: &str = "flavor-d2-2";
pub const IMAGE: &str = "image-debian-12";
pub const CF_TOKEN: &str = "cf-test-token";
pub const ZONE: &str = "zone0123456789";
pub const DOMAIN: &str = "nodes.outpost.test";
/// The fake OVH's clock runs this far ahead of ours.
pub const OVH_CLOCK_AHEAD: i64 = 3600;

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// `$1$` + hex SHA-1, computed here with ring.
pub fn ovh_signature(
    secret: &str,
    ck: &str,
    method: &str,
    url: &str,
    body: &str,
    ts: i64,
) -> String {
    let pre = format!("{secret}+{ck}+{method}+{url}+{body}+{ts}");
    let d = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, pre.as_bytes());
    let hex: String = d.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("$1${hex}")
}

#[derive(Default)]
pub struct OvhState {
    pub instances: Vec<Value>,
    /// Bodies of `POST …/instance`.
    pub creates: Vec<Value>,
    /// Ids deleted.
    pub deletes: Vec<String>,
    /// Signed requests refused (bad signature, keys or timestamp).
    pub refused: u32,
    /// Answer the next `POST …/instance` with a quota error.
    pub quota: bool,
    /// Answer this many next signed requests with 503.
    pub fail_5xx: u32,
    /// Instances end in `ERROR` instead of `ACTIVE`.
    pub end_in_error: bool,
    /// `GET …/instance/{id}` polls an instance stays in `BUILD`.
    pub build_polls: u32,
    /// Why the last refused request was refused (for the test's messages).
    pub last_refusal: String,
    /// Reboots asked.
    pub reboots: Vec<String>,
}

#[derive(Clone)]
pub struct FakeOvh {
    pub state: Arc<Mutex<OvhState>>,
    pub uri: String,
    _server: Arc<MockServer>,
}

fn ovh_error(status: u16, class: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({"class": class, "message": message}))
}

struct OvhResponder(Arc<Mutex<OvhState>>);

impl Respond for OvhResponder {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let path = req.url.path().to_owned();
        let Some(path) = path.strip_prefix("/1.0") else {
            return ovh_error(404, "Client::NotFound", "Got an invalid (or empty) URL");
        };
        let method = req.method.as_str().to_owned();
        if method == "GET" && path == "/auth/time" {
            return ResponseTemplate::new(200).set_body_json(json!(now() + OVH_CLOCK_AHEAD));
        }
        // Every other call is signed.
        let h = |n: &str| {
            req.headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        let ts: i64 = h("X-Ovh-Timestamp").parse().unwrap_or(0);
        let body = String::from_utf8_lossy(&req.body).into_owned();
        // The URL the caller used: this server's own address (from `Host`; wiremock's
        // `req.url` names `localhost`), the path and the query as sent.
        let full_url = format!(
            "http://{}{}{}",
            h("host"),
            req.url.path(),
            req.url.query().map(|q| format!("?{q}")).unwrap_or_default()
        );
        let expected = ovh_signature(AS, CK, &method, &full_url, &body, ts);
        let mut st = self.0.lock().unwrap();
        if h("X-Ovh-Application") != AK
            || h("X-Ovh-Consumer") != CK
            || (ts - (now() + OVH_CLOCK_AHEAD)).abs() > 180
            || h("X-Ovh-Signature") != expected
        {
            st.refused += 1;
            st.last_refusal = format!(
                "{method} {full_url} ts={ts} (ovh clock {}) sig={} expected={expected}",
                now() + OVH_CLOCK_AHEAD,
                h("X-Ovh-Signature")
            );
            return ovh_error(403, "Client::Forbidden", "Invalid signature");
        }
        if st.fail_5xx > 0 {
            st.fail_5xx -= 1;
            return ovh_error(503, "Server::ServiceUnavailable", "Internal server error");
        }
        let project = format!("/cloud/project/{PROJECT}");
        let Some(rest) = path.strip_prefix(&project) else {
            if path == "/auth/currentCredential" {
                return ResponseTemplate::new(200).set_body_json(json!({
                    "applicationId": 1, "credentialId": 2, "status": "validated",
                    "rules": [{"method": "GET", "path": "/cloud/project/*"}]
                }));
            }
            return ovh_error(404, "Client::NotFound", "This service does not exist");
        };
        let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
        match (method.as_str(), segs.as_slice()) {
            ("GET", ["region"]) => ResponseTemplate::new(200).set_body_json(json!([REGION, REGION2])),
            ("GET", ["flavor"]) => ResponseTemplate::new(200).set_body_json(json!([
                {"id": FLAVOR, "name": "d2-2", "region": REGION, "vcpus": 1, "ram": 2000, "disk": 25},
                {"id": "flavor-b2-7", "name": "b2-7", "region": REGION, "vcpus": 2, "ram": 7000, "disk": 50}
            ])),
            ("GET", ["instance"]) => ResponseTemplate::new(200).set_body_json(json!(st.instances)),
            ("POST", ["instance"]) => {
                let b: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                st.creates.push(b.clone());
                if st.quota {
                    return ovh_error(
                        400,
                        "Client::BadRequest",
                        "Quota exceeded for instances: Requested 1, but already used 10 of 10 instances",
                    );
                }
                if b["flavorId"] != FLAVOR {
                    return ovh_error(400, "Client::BadRequest", "Flavor not found");
                }
                if b["imageId"] != IMAGE {
                    return ovh_error(400, "Client::BadRequest", "Image not found");
                }
                if b["region"] != REGION && b["region"] != REGION2 {
                    return ovh_error(400, "Client::BadRequest", "Invalid region parameter");
                }
                let inst = json!({
                    "id": uuid::Uuid::new_v4().to_string(),
                    "name": b["name"], "status": "BUILD", "region": b["region"],
                    "flavorId": FLAVOR, "imageId": IMAGE, "ipAddresses": [],
                    "created": "2026-12-02T00:00:00Z", "monthlyBilling": null,
                });
                st.instances.push(inst.clone());
                ResponseTemplate::new(200).set_body_json(inst)
            }
            ("GET", ["instance", id]) => {
                let (polls, err) = (st.build_polls, st.end_in_error);
                let Some(i) = st.instances.iter_mut().find(|i| i["id"] == *id) else {
                    return ovh_error(404, "Client::NotFound", "Instance not found");
                };
                if i["status"] == "BUILD" {
                    let n = i["polls"].as_u64().unwrap_or(0) + 1;
                    i["polls"] = json!(n);
                    if n > u64::from(polls) {
                        if err {
                            i["status"] = json!("ERROR");
                        } else {
                            i["status"] = json!("ACTIVE");
                            i["ipAddresses"] = json!([
                                {"ip": "10.0.0.5", "type": "private", "version": 4},
                                {"ip": "127.0.0.1", "type": "public", "version": 4},
                                {"ip": "::1", "type": "public", "version": 6}
                            ]);
                        }
                    }
                }
                ResponseTemplate::new(200).set_body_json(i.clone())
            }
            ("POST", ["instance", id, "reboot"]) => {
                st.reboots.push((*id).to_owned());
                ResponseTemplate::new(200).set_body_json(Value::Null)
            }
            ("DELETE", ["instance", id]) => {
                let before = st.instances.len();
                st.instances.retain(|i| i["id"] != *id);
                if st.instances.len() == before {
                    return ovh_error(404, "Client::NotFound", "Instance not found");
                }
                st.deletes.push((*id).to_owned());
                ResponseTemplate::new(200).set_body_json(Value::Null)
            }
            _ => ovh_error(404, "Client::NotFound", "Got an invalid (or empty) URL"),
        }
    }
}

impl FakeOvh {
    pub async fn start() -> FakeOvh {
        let server = MockServer::start().await;
        let state = Arc::new(Mutex::new(OvhState::default()));
        Mock::given(wiremock::matchers::any())
            .respond_with(OvhResponder(state.clone()))
            .mount(&server)
            .await;
        let uri = format!("{}/1.0", server.uri());
        FakeOvh {
            state,
            uri,
            _server: Arc::new(server),
        }
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut OvhState) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }
}

#[derive(Default)]
pub struct CfState {
    pub records: Vec<Value>,
    /// Answer this many next requests with 503 (the API is down).
    pub down: u32,
    /// Every record ever created or updated (to check nothing was proxied).
    pub written: Vec<Value>,
    pub refused: u32,
}

#[derive(Clone)]
pub struct FakeCloudflare {
    pub state: Arc<Mutex<CfState>>,
    pub uri: String,
    _server: Arc<MockServer>,
}

fn cf(status: u16, success: bool, errors: Value, result: Value) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "success": success, "errors": errors, "messages": [], "result": result
    }))
}

struct CfResponder(Arc<Mutex<CfState>>);

impl Respond for CfResponder {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let mut st = self.0.lock().unwrap();
        let auth = req
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if auth != format!("Bearer {CF_TOKEN}") {
            st.refused += 1;
            return cf(
                403,
                false,
                json!([{"code": 10000, "message": "Authentication error"}]),
                Value::Null,
            );
        }
        if st.down > 0 {
            st.down -= 1;
            return cf(
                503,
                false,
                json!([{"code": 10013, "message": "Service unavailable"}]),
                Value::Null,
            );
        }
        let prefix = format!("/client/v4/zones/{ZONE}/dns_records");
        let Some(rest) = req.url.path().strip_prefix(&prefix) else {
            return cf(
                404,
                false,
                json!([{"code": 7003, "message": "Could not route"}]),
                Value::Null,
            );
        };
        let id = rest.trim_start_matches('/').to_owned();
        let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
        let stamp = "2026-12-02T00:00:00.000000Z";
        match (req.method.as_str(), id.as_str()) {
            ("GET", "") => {
                let name = req
                    .url
                    .query_pairs()
                    .find(|(k, _)| k == "name")
                    .map(|(_, v)| v.into_owned());
                let list: Vec<Value> = st
                    .records
                    .iter()
                    .filter(|r| name.as_deref().is_none_or(|n| r["name"] == n))
                    .cloned()
                    .collect();
                let n = list.len();
                ResponseTemplate::new(200).set_body_json(json!({
                    "success": true, "errors": [], "messages": [], "result": list,
                    "result_info": {"page": 1, "per_page": 100, "count": n, "total_count": n}
                }))
            }
            ("POST", "") => {
                let rec = json!({
                    "id": uuid::Uuid::new_v4().simple().to_string(),
                    "zone_id": ZONE, "zone_name": "outpost.test",
                    "name": body["name"], "type": body["type"], "content": body["content"],
                    "proxied": body["proxied"].as_bool().unwrap_or(false), "proxiable": true,
                    "ttl": body["ttl"].as_u64().unwrap_or(1), "meta": {},
                    "created_on": stamp, "modified_on": stamp,
                });
                st.written.push(body);
                st.records.push(rec.clone());
                cf(200, true, json!([]), rec)
            }
            ("PUT", id) => {
                st.written.push(body.clone());
                let Some(r) = st.records.iter_mut().find(|r| r["id"] == id) else {
                    return cf(
                        404,
                        false,
                        json!([{"code": 81044, "message": "Record does not exist."}]),
                        Value::Null,
                    );
                };
                for k in ["name", "type", "content", "proxied", "ttl"] {
                    if !body[k].is_null() {
                        r[k] = body[k].clone();
                    }
                }
                cf(200, true, json!([]), r.clone())
            }
            ("DELETE", id) => {
                let before = st.records.len();
                st.records.retain(|r| r["id"] != id);
                if st.records.len() == before {
                    return cf(
                        404,
                        false,
                        json!([{"code": 81044, "message": "Record does not exist."}]),
                        Value::Null,
                    );
                }
                cf(200, true, json!([]), json!({"id": id}))
            }
            _ => cf(
                405,
                false,
                json!([{"code": 10000, "message": "Method not allowed"}]),
                Value::Null,
            ),
        }
    }
}

impl FakeCloudflare {
    pub async fn start() -> FakeCloudflare {
        let server = MockServer::start().await;
        let state = Arc::new(Mutex::new(CfState::default()));
        Mock::given(wiremock::matchers::any())
            .respond_with(CfResponder(state.clone()))
            .mount(&server)
            .await;
        let uri = format!("{}/client/v4", server.uri());
        FakeCloudflare {
            state,
            uri,
            _server: Arc::new(server),
        }
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut CfState) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }
}
