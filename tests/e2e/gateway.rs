//! The node gateway under attack and misuse, with the `manual` provisioner so the test
//! itself plays the node (its own keys, CSR and client certificate, real TLS).

use crate::harness::*;
use diesel::prelude::*;
use outpost_protocol::*;

/// The test playing a node (also used by `lifecycle.rs`).
pub struct FakeNode {
    pub id: String,
    key: rcgen::KeyPair,
    cert_pem: String,
    pub client: reqwest::Client,
    age_identity: outpost_crypto::Secret,
}

pub async fn bundle_for(cp: &Cp, api: &Api, name: &str) -> (String, BootstrapBundle) {
    let ws = api.create_workspace(name).await;
    let ws_id = ws["workspace"]["id"].as_str().unwrap().to_owned();
    let node_id = ws["node"]["id"].as_str().unwrap().to_owned();
    let path = cp.node_dir(&node_id).join("data/bootstrap.json");
    let bundle = wait_for("bootstrap bundle", 30, || async {
        let text = std::fs::read_to_string(&path).ok()?;
        serde_json::from_str::<BootstrapBundle>(&text).ok()
    })
    .await;
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    (ws_id, bundle)
}

pub async fn try_enroll(cp: &Cp, b: &BootstrapBundle, token: &str) -> (u16, Option<FakeNode>) {
    let (status, _, node) = try_enroll_at(cp, b, token, None).await;
    (status, node)
}

/// [`try_enroll`] saying the node's time (`node_time`); also returns an error's body.
pub async fn try_enroll_at(
    cp: &Cp,
    b: &BootstrapBundle,
    token: &str,
    node_time: Option<i64>,
) -> (u16, serde_json::Value, Option<FakeNode>) {
    let key = outpost_pki::generate_key().unwrap();
    let (age_identity, age_recipient) = outpost_crypto::generate_age_identity();
    let req = EnrollRequest {
        token: token.to_owned(),
        csr_pem: outpost_pki::make_csr(&key, b.node_id.as_str()).unwrap(),
        age_recipient,
        version: "test".into(),
        node_time,
    };
    let r = gateway_client(&b.ca_pem, None)
        .post(format!("{}/v1/enroll", cp.gateway))
        .json(&req)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    if status != 200 {
        return (status, r.json().await.unwrap_or_default(), None);
    }
    let resp: EnrollResponse = r.json().await.unwrap();
    let client = gateway_client(&b.ca_pem, Some((&resp.cert_pem, &key)));
    (
        status,
        serde_json::Value::Null,
        Some(FakeNode {
            id: resp.node_id.0,
            key,
            cert_pem: resp.cert_pem,
            client,
            age_identity,
        }),
    )
}

impl FakeNode {
    async fn report(&self, cp: &Cp, seq: i64) -> reqwest::Response {
        let r = Report {
            seq,
            epoch: None,
            produced_at: 0,
            version: "test".into(),
            uptime_s: seq,
            checks: vec![Check {
                name: "storage".into(),
                ok: true,
                detail_code: None,
            }],
            counts: vec![CountBucket {
                channel: "web".into(),
                hour: 3600,
                inbound: 2,
                outbound: 2,
                conversations: 1,
            }],
            disk_used_bytes: 1,
            queue_depth: 0,
            exports: vec![],
            retention_sweeps: vec![],
            waiting_conversations: 0,
            ai_counts: vec![],
            booking_counts: vec![],
            call_counts: vec![],
        };
        self.client
            .post(format!("{}/v1/node/report", cp.gateway))
            .json(&r)
            .send()
            .await
            .unwrap()
    }

    pub async fn commands(&self, cp: &Cp) -> Vec<Command> {
        let r = self
            .client
            .get(format!("{}/v1/node/commands?wait=0", cp.gateway))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json::<CommandBatch>().await.unwrap().commands
    }

    /// A freshly enrolled node is first sent its workspace's configuration (no agents
    /// yet); it acks it like a node would.
    pub async fn takes_initial_config(&self, cp: &Cp) {
        let cmds = self.commands(cp).await;
        assert_eq!(cmds.len(), 1, "{cmds:?}");
        let CommandKind::ApplyConfig { config } = &cmds[0].kind else {
            panic!("expected apply_config, got {:?}", cmds[0].kind)
        };
        assert_eq!(config["agents"], serde_json::json!([]));
        let ok = CommandAck {
            ok: true,
            error_code: None,
            receipt: None,
        };
        assert_eq!(self.ack(cp, &cmds[0].id, &ok).await.status(), 200);
    }

    pub async fn ack(&self, cp: &Cp, id: &str, ack: &CommandAck) -> reqwest::Response {
        self.client
            .post(format!("{}/v1/node/commands/{id}/ack", cp.gateway))
            .json(ack)
            .send()
            .await
            .unwrap()
    }

    /// The destruction receipt this node signs with its own key.
    pub fn own_receipt(&self) -> DestructionReceipt {
        self.receipt(&self.key)
    }

    fn receipt(&self, signer: &rcgen::KeyPair) -> DestructionReceipt {
        let der = outpost_pki::pem_to_certs(&self.cert_pem).unwrap().remove(0);
        let body = serde_json::to_string(&ReceiptBody {
            format: RECEIPT_FORMAT.into(),
            node_id: NodeId(self.id.clone()),
            workspace_id: "ws".into(),
            destroyed_at: "2026-11-23T00:00:00Z".into(),
            destroyed: vec!["master_key".into(), "data_dir".into()],
            cert_sha256: outpost_pki::sha256_hex(&der),
        })
        .unwrap();
        let sig = outpost_pki::sign_with_key(signer, body.as_bytes()).unwrap();
        DestructionReceipt {
            body,
            signature: outpost_crypto::b64(&sig),
        }
    }
}

/// A healthy report carrying the given export metadata and retention sweeps.
pub async fn report_with(
    node: &FakeNode,
    cp: &Cp,
    seq: i64,
    exports: Vec<ExportMeta>,
    retention_sweeps: Vec<RetentionSweep>,
) -> reqwest::Response {
    let r = Report {
        seq,
        epoch: None,
        produced_at: 0,
        version: "test".into(),
        uptime_s: seq,
        checks: vec![],
        counts: vec![],
        disk_used_bytes: 1,
        queue_depth: 0,
        exports,
        retention_sweeps,
        waiting_conversations: 0,
        ai_counts: vec![],
        booking_counts: vec![],
        call_counts: vec![],
    };
    node.client
        .post(format!("{}/v1/node/report", cp.gateway))
        .json(&r)
        .send()
        .await
        .unwrap()
}

fn audit_details(cp: &Cp, action: &str) -> Vec<String> {
    use control_plane::infra::schema::audit_events::dsl as a;
    let pool = cp.db();
    let mut conn = pool.get().unwrap();
    a::audit_events
        .filter(a::action.eq(action))
        .select(a::detail)
        .load(&mut conn)
        .unwrap()
}

#[tokio::test]
async fn enrollment_tokens_certificates_and_commands_are_checked() {
    let cp = Cp::start_with(Opts {
        provisioner: "manual",
        ..Opts::default()
    });
    let api = Api::new(&cp, "ops@acme.test");

    // Unknown token → 401, audited.
    let (_, bundle_a) = bundle_for(&cp, &api, "Alpha Clinic").await;
    let unknown = format!("{}.{}", bundle_a.node_id, outpost_crypto::random_token());
    assert_eq!(try_enroll(&cp, &bundle_a, &unknown).await.0, 401);
    assert_eq!(try_enroll(&cp, &bundle_a, "garbage").await.0, 401);
    // The right token enrolls once; reusing it → 401.
    let (status, node_a) = try_enroll(&cp, &bundle_a, &bundle_a.token).await;
    assert_eq!(status, 200);
    let node_a = node_a.unwrap();
    node_a.takes_initial_config(&cp).await;
    assert_eq!(try_enroll(&cp, &bundle_a, &bundle_a.token).await.0, 401);
    // Expired token → 401.
    let (_, bundle_c) = bundle_for(&cp, &api, "Gamma Clinic").await;
    {
        use control_plane::infra::schema::bootstrap_tokens::dsl as t;
        let pool = cp.db();
        let mut conn = pool.get().unwrap();
        diesel::update(t::bootstrap_tokens.filter(t::node_id.eq(bundle_c.node_id.as_str())))
            .set(t::expires_at.eq(1))
            .execute(&mut conn)
            .unwrap();
    }
    assert_eq!(try_enroll(&cp, &bundle_c, &bundle_c.token).await.0, 401);
    let refused = audit_details(&cp, "node.enroll_refused");
    for code in [
        "unknown_token",
        "malformed_token",
        "token_reused",
        "token_expired",
    ] {
        assert!(
            refused.iter().any(|d| d == code),
            "audit has {code}: {refused:?}"
        );
    }

    // Reports: accepted once, a replay is acknowledged but not counted again.
    let r = node_a.report(&cp, 1).await;
    assert_eq!(r.status(), 200);
    assert!(r.json::<ReportAck>().await.unwrap().accepted);
    let r = node_a.report(&cp, 1).await;
    assert!(
        !r.json::<ReportAck>().await.unwrap().accepted,
        "replay is not counted"
    );
    let list = api.get_json("/api/v1/workspaces").await.1;
    let ws_a_id = list["workspaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["slug"] == "alpha-clinic")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let ws_a = api.wait_node_state(&ws_a_id, "healthy", 10).await;
    assert_eq!(
        ws_a["usage"][0]["inbound"], 2,
        "replayed counts are not added twice"
    );

    // Malformed and oversized bodies.
    let r = node_a
        .client
        .post(format!("{}/v1/node/report", cp.gateway))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<ErrorBody>().await.unwrap().code, "malformed_json");
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(1024 * 1024 + 10));
    let r = node_a
        .client
        .post(format!("{}/v1/node/report", cp.gateway))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);

    // No client certificate → 401 on node routes.
    let anon = gateway_client(&bundle_a.ca_pem, None);
    let r = anon
        .get(format!("{}/v1/node/commands", cp.gateway))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<ErrorBody>().await.unwrap().code,
        "client_certificate_required"
    );

    // A certificate from another CA, with the same node identity, fails the handshake.
    let (other_ca, _) = outpost_pki::CertificateAuthority::generate("evil").unwrap();
    let k = outpost_pki::generate_key().unwrap();
    let forged = other_ca
        .sign_node_csr(&outpost_pki::make_csr(&k, &node_a.id).unwrap(), &node_a.id)
        .unwrap();
    let evil = gateway_client(&bundle_a.ca_pem, Some((&forged.pem, &k)));
    assert!(evil
        .get(format!("{}/v1/node/commands", cp.gateway))
        .send()
        .await
        .is_err());

    // Node B, then delete B's workspace now (no export window): node A can neither see
    // nor ack B's command.
    let (ws_b, bundle_b) = bundle_for(&cp, &api, "Beta Clinic").await;
    let node_b = try_enroll(&cp, &bundle_b, &bundle_b.token).await.1.unwrap();
    node_b.takes_initial_config(&cp).await;
    assert_eq!(node_b.report(&cp, 1).await.status(), 200);
    let r = api
        .req(
            reqwest::Method::DELETE,
            &format!("/api/v1/workspaces/{ws_b}?immediately=true&confirm=beta-clinic"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert!(node_a.commands(&cp).await.is_empty());
    let cmds = node_b.commands(&cp).await;
    assert_eq!(cmds.len(), 1);
    assert_eq!(cmds[0].kind, CommandKind::Deprovision);
    let ok = CommandAck {
        ok: true,
        error_code: None,
        receipt: Some(node_a.receipt(&node_a.key)),
    };
    assert_eq!(
        node_a.ack(&cp, &cmds[0].id, &ok).await.status(),
        404,
        "A cannot ack B's command"
    );

    // A forged receipt (signed by another key) is rejected; the genuine one is accepted.
    let stranger = outpost_pki::generate_key().unwrap();
    let forged = CommandAck {
        ok: true,
        error_code: None,
        receipt: Some(node_b.receipt(&stranger)),
    };
    let r = node_b.ack(&cp, &cmds[0].id, &forged).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<ErrorBody>().await.unwrap().code, "invalid_receipt");
    let genuine = CommandAck {
        ok: true,
        error_code: None,
        receipt: Some(node_b.receipt(&node_b.key)),
    };
    assert_eq!(node_b.ack(&cp, &cmds[0].id, &genuine).await.status(), 200);
    let d = api.wait_node_state(&ws_b, "destroyed", 10).await;
    assert!(d["node"]["receipt_body"].is_string());

    // The destroyed node's certificate is refused from now on.
    let r = node_b.report(&cp, 2).await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.json::<ErrorBody>().await.unwrap().code,
        "certificate_revoked"
    );
}

impl FakeNode {
    /// `POST /v1/node/renew` with a fresh key presenting `client`'s certificate.
    async fn renew_with(
        &self,
        cp: &Cp,
        client: &reqwest::Client,
    ) -> (u16, Option<(String, rcgen::KeyPair)>, String) {
        let k = outpost_pki::generate_key().unwrap();
        let r = client
            .post(format!("{}/v1/node/renew", cp.gateway))
            .json(&RenewRequest {
                csr_pem: outpost_pki::make_csr(&k, &self.id).unwrap(),
            })
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        if status == 200 {
            let pem = r.json::<RenewResponse>().await.unwrap().cert_pem;
            return (status, Some((pem, k)), String::new());
        }
        (status, None, r.json::<ErrorBody>().await.unwrap().code)
    }
}

fn certificate_events(cp: &Cp, node_id: &str) -> usize {
    use control_plane::infra::schema::node_events::dsl as e;
    let pool = cp.db();
    let mut conn = pool.get().unwrap();
    e::node_events
        .filter(e::node_id.eq(node_id))
        .filter(e::kind.eq("certificate"))
        .count()
        .get_result::<i64>(&mut conn)
        .unwrap() as usize
}

/// Issue 18, defect 2: a node whose clock runs ahead asked for a certificate many times
/// a second. The CP refuses to renew a certificate with more than half its life left
/// and more than one renewal an hour per node, in words, and writes no event for it.
#[tokio::test]
async fn renewal_of_a_fresh_certificate_or_twice_an_hour_is_refused() {
    let cp = Cp::start_with(Opts {
        provisioner: "manual",
        ..Opts::default()
    });
    let api = Api::new(&cp, "ops@acme.test");
    let (_, bundle) = bundle_for(&cp, &api, "Alpha Clinic").await;
    let node = try_enroll(&cp, &bundle, &bundle.token).await.1.unwrap();
    let events_before = certificate_events(&cp, &node.id);

    // Fresh from enrollment: refused, and nothing written.
    let (status, _, code) = node.renew_with(&cp, &node.client).await;
    assert_eq!((status, code.as_str()), (409, "certificate_fresh"));
    assert_eq!(certificate_events(&cp, &node.id), events_before);

    // Past half of its life (as if issued 31 days before its expiry in 30 days): renewed,
    // and the new one works.
    {
        use control_plane::infra::schema::node_certs::dsl as c;
        let pool = cp.db();
        let mut conn = pool.get().unwrap();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        diesel::update(c::node_certs.filter(c::node_id.eq(&node.id)))
            .set(c::created_at.eq(now - 31 * 86_400))
            .execute(&mut conn)
            .unwrap();
    }
    let (status, renewed, _) = node.renew_with(&cp, &node.client).await;
    assert_eq!(status, 200);
    let (pem, key) = renewed.unwrap();
    let renewed_client = gateway_client(&bundle.ca_pem, Some((&pem, &key)));
    assert_eq!(
        renewed_client
            .get(format!("{}/v1/node/commands", cp.gateway))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(certificate_events(&cp, &node.id), events_before + 1);

    // The old certificate is still valid and old, but the node renewed within the hour.
    let (status, _, code) = node.renew_with(&cp, &node.client).await;
    assert_eq!((status, code.as_str()), (409, "renewal_too_soon"));
    // The new one is fresh.
    let (status, _, code) = node.renew_with(&cp, &renewed_client).await;
    assert_eq!(status, 409);
    assert!(
        code == "certificate_fresh" || code == "renewal_too_soon",
        "{code}"
    );
    assert_eq!(certificate_events(&cp, &node.id), events_before + 1);
}

#[tokio::test]
async fn sealed_secrets_open_only_on_their_node_and_expire_when_undelivered() {
    let cp = Cp::start_with(Opts {
        provisioner: "manual",
        ..Opts::default()
    });
    let api = Api::new(&cp, "owner@acme.test");
    let browser = Browser::signin(&cp, "owner@acme.test").await;
    let (ws, bundle) = bundle_for(&cp, &api, "Acme Dental").await;
    let page = format!("/workspaces/{ws}/secrets");
    // Before the node has enrolled there is nothing to seal to: said, nothing stored.
    let r = browser
        .post_csrf(
            &page,
            &[("kind", "whatsapp_verify_token"), ("value", "early-1234")],
        )
        .await;
    assert_eq!(r.status(), 409);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("Your node is not running yet"));
    let node = try_enroll(&cp, &bundle, &bundle.token).await.1.unwrap();
    node.takes_initial_config(&cp).await;

    // A credential that cannot be checked with a provider is sealed as is.
    let r = browser
        .post_csrf(
            &page,
            &[
                ("kind", "whatsapp_verify_token"),
                ("value", "verify-canary-42ab"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303, "accepted: back to the page");
    let cmds = node.commands(&cp).await;
    assert_eq!(cmds.len(), 1);
    let CommandKind::DeliverSecret {
        secret_kind,
        sealed,
    } = &cmds[0].kind
    else {
        panic!("expected deliver_secret, got {:?}", cmds[0].kind)
    };
    assert_eq!(secret_kind, "whatsapp_verify_token");
    assert!(!sealed.contains("canary"));
    // Only this node's identity opens it.
    let plain = outpost_crypto::open_with_identity(&node.age_identity, sealed).unwrap();
    assert_eq!(plain.as_slice(), b"verify-canary-42ab");
    let (stranger, _) = outpost_crypto::generate_age_identity();
    assert!(outpost_crypto::open_with_identity(&stranger, sealed).is_err());
    let ok = CommandAck {
        ok: true,
        error_code: None,
        receipt: None,
    };
    assert_eq!(node.ack(&cp, &cmds[0].id, &ok).await.status(), 200);
    let listing = browser.get(&page).await.text().await.unwrap();
    assert!(listing.contains("delivered to your node") && listing.contains("…42ab"));
    {
        use control_plane::infra::schema::commands::dsl as c;
        let pool = cp.db();
        let mut conn = pool.get().unwrap();
        let payload: Option<String> = c::commands
            .filter(c::id.eq(&cmds[0].id))
            .select(c::payload)
            .first(&mut conn)
            .unwrap();
        assert!(payload.is_none(), "the sealed payload is deleted on ack");
    }

    // A node that never fetches it: after an hour the ciphertext is deleted and the user
    // is told to retry.
    let r = browser
        .post_csrf(
            &page,
            &[
                ("kind", "whatsapp_app_secret"),
                ("value", "app-secret-77cd"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303, "accepted: back to the page");
    {
        use control_plane::infra::schema::commands::dsl as c;
        let pool = cp.db();
        let mut conn = pool.get().unwrap();
        diesel::update(
            c::commands
                .filter(c::kind.eq("deliver_secret"))
                .filter(c::acked_at.is_null()),
        )
        .set(c::expires_at.eq(Some(1_i64)))
        .execute(&mut conn)
        .unwrap();
    }
    wait_for("the undelivered secret to expire", 30, || async {
        let p = browser.get(&page).await.text().await.unwrap();
        p.contains("not delivered: your node was unreachable for an hour")
            .then_some(())
    })
    .await;
    assert!(
        node.commands(&cp).await.is_empty(),
        "the ciphertext is gone"
    );
}

/// A node waiting in its long-poll gets a command queued for it at once, although the
/// poll no longer reads the database every 2 s while it waits (issue 18): the queueing
/// wakes it. An agent created through the API pushes the configuration to the node.
#[tokio::test]
async fn a_waiting_long_poll_gets_a_queued_command_within_two_seconds() {
    let cp = Cp::start_with(Opts {
        provisioner: "manual",
        ..Opts::default()
    });
    let api = Api::new(&cp, "poll@example.test");
    let (ws_id, b) = bundle_for(&cp, &api, "Poll Bakery").await;
    let (status, node) = try_enroll(&cp, &b, &b.token).await;
    assert_eq!(status, 200);
    let node = node.unwrap();
    node.takes_initial_config(&cp).await;
    for round in 0..2 {
        let poll = {
            let (client, url) = (
                node.client.clone(),
                format!("{}/v1/node/commands?wait=25", cp.gateway),
            );
            tokio::spawn(async move {
                let r = client.get(url).send().await.unwrap();
                assert_eq!(r.status(), 200);
                (
                    r.json::<CommandBatch>().await.unwrap().commands,
                    std::time::Instant::now(),
                )
            })
        };
        // Let the poll reach its wait (it reads once on arrival, then sleeps).
        tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
        assert!(
            !poll.is_finished(),
            "the poll waits while nothing is queued"
        );
        let queued = std::time::Instant::now();
        let r = api
            .req(
                reqwest::Method::POST,
                &format!("/api/v1/workspaces/{ws_id}/agents"),
            )
            .json(&serde_json::json!({
                "name": format!("Agent {round}"), "greeting": "Hi", "instructions": "Be brief.",
                "language": "en", "fallback_message": "Sorry.", "open": "00:00", "close": "24:00",
                "time_zone": "UTC", "provider": "retrieval", "model": "", "base_url": "",
                "allowed_origins": [], "channels": []
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let (cmds, got) = poll.await.unwrap();
        assert_eq!(cmds.len(), 1, "round {round}: {cmds:?}");
        assert!(matches!(cmds[0].kind, CommandKind::ApplyConfig { .. }));
        let waited = got.saturating_duration_since(queued);
        assert!(
            waited < std::time::Duration::from_secs(2),
            "round {round}: the command reached the node after {waited:?}"
        );
        let ok = CommandAck {
            ok: true,
            error_code: None,
            receipt: None,
        };
        assert_eq!(node.ack(&cp, &cmds[0].id, &ok).await.status(), 200);
    }
}
