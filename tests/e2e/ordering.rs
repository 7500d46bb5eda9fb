//! Report ordering under faults (issue 18, defect 1): an absurd `seq` is refused and cannot
//! freeze the node's status, and a node restored from a backup (its `seq` going back, with
//! a new `epoch`) is followed again. The test plays the node over real mTLS.

use crate::gateway::{bundle_for, try_enroll, FakeNode};
use crate::harness::*;
use diesel::prelude::*;

/// Posts a report whose `uptime_s` marks it, so the test can tell which one the CP applied.
/// Raw JSON: the body is what a node of any version could send.
async fn post(
    node: &FakeNode,
    cp: &Cp,
    seq: i64,
    epoch: Option<&str>,
    marker: i64,
) -> (u16, serde_json::Value) {
    let mut body = serde_json::json!({
        "seq": seq, "produced_at": 0, "version": "test", "uptime_s": marker,
        "checks": [{"name": "storage", "ok": true}],
    });
    if let Some(e) = epoch {
        body["epoch"] = e.into();
    }
    let r = node
        .client
        .post(format!("{}/v1/node/report", cp.gateway))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

/// The `uptime_s` of the report the CP last applied to the node.
fn applied(cp: &Cp, node_id: &str) -> Option<i64> {
    use control_plane::infra::schema::nodes::dsl as n;
    let pool = cp.db();
    let mut conn = pool.get().unwrap();
    n::nodes
        .find(node_id)
        .select(n::uptime_s)
        .first(&mut conn)
        .unwrap()
}

async fn enrolled(cp: &Cp, name: &str) -> FakeNode {
    let api = Api::new(cp, "ops@acme.test");
    let (_, bundle) = bundle_for(cp, &api, name).await;
    let (status, node) = try_enroll(cp, &bundle, &bundle.token).await;
    assert_eq!(status, 200);
    let node = node.unwrap();
    node.takes_initial_config(cp).await;
    node
}

#[tokio::test]
async fn an_absurd_seq_is_refused_and_cannot_freeze_the_node() {
    let cp = Cp::start_with(Opts {
        provisioner: "manual",
        ..Opts::default()
    });
    let node = enrolled(&cp, "Alpha Clinic").await;

    let (status, ack) = post(&node, &cp, 1, None, 101).await;
    assert_eq!((status, ack["accepted"].as_bool()), (200, Some(true)));
    assert_eq!(applied(&cp, &node.id), Some(101));

    // i64::MAX (and a negative seq) → 400 invalid_seq, with or without an epoch.
    for (seq, epoch) in [(i64::MAX, None), (i64::MAX, Some("boot-a")), (-1, None)] {
        let (status, body) = post(&node, &cp, seq, epoch, 999).await;
        assert_eq!(status, 400, "seq {seq}: {body}");
        assert_eq!(body["code"], "invalid_seq", "{body}");
    }
    assert_eq!(applied(&cp, &node.id), Some(101));

    // The normal reports that follow are applied: the node's status follows them.
    for seq in 2..=4 {
        let (status, ack) = post(&node, &cp, seq, None, 100 + seq).await;
        assert_eq!((status, ack["accepted"].as_bool()), (200, Some(true)));
        assert_eq!(applied(&cp, &node.id), Some(100 + seq));
    }
}

#[tokio::test]
async fn a_node_restored_from_a_backup_is_followed_again() {
    let cp = Cp::start_with(Opts {
        provisioner: "manual",
        ..Opts::default()
    });
    let node = enrolled(&cp, "Beta Clinic").await;

    for seq in 1..=5 {
        let (status, _) = post(&node, &cp, seq, Some("boot-a"), 100 + seq).await;
        assert_eq!(status, 200);
    }
    assert_eq!(applied(&cp, &node.id), Some(105));
    // An older report of the same epoch is acknowledged but changes nothing.
    let (status, ack) = post(&node, &cp, 3, Some("boot-a"), 999).await;
    assert_eq!((status, ack["accepted"].as_bool()), (200, Some(false)));
    assert_eq!(applied(&cp, &node.id), Some(105));

    // Restored from a backup taken at seq 2: the node boots with a new epoch and its seq
    // goes back. Those reports are new, and they are the node's status now.
    for seq in 3..=4 {
        let (status, ack) = post(&node, &cp, seq, Some("boot-b"), 200 + seq).await;
        assert_eq!((status, ack["accepted"].as_bool()), (200, Some(true)));
        assert_eq!(applied(&cp, &node.id), Some(200 + seq));
    }
    // Within the new epoch, ordering holds again: a replay changes nothing.
    let (status, ack) = post(&node, &cp, 3, Some("boot-b"), 999).await;
    assert_eq!((status, ack["accepted"].as_bool()), (200, Some(false)));
    assert_eq!(applied(&cp, &node.id), Some(204));
}

/// Report counts are checked (issue 18, defect 7): a negative figure or more buckets than
/// a node sends (it carries three hours per channel) → 400 `invalid_counts`, nothing
/// stored; a normal report still goes through.
#[tokio::test]
async fn report_counts_are_bounded_and_never_negative() {
    let cp = Cp::start_with(Opts {
        provisioner: "manual",
        ..Opts::default()
    });
    let node = enrolled(&cp, "Gamma Clinic").await;
    let bucket = |hour: i64, inbound: i64| {
        serde_json::json!({"channel": "web", "hour": hour, "inbound": inbound,
                           "outbound": 0, "conversations": 0})
    };
    let send = |seq: i64, counts: Vec<serde_json::Value>| {
        let body = serde_json::json!({
            "seq": seq, "produced_at": 0, "version": "test", "uptime_s": seq,
            "counts": counts,
        });
        let client = node.client.clone();
        let url = format!("{}/v1/node/report", cp.gateway);
        async move {
            let r = client.post(url).json(&body).send().await.unwrap();
            let status = r.status().as_u16();
            (
                status,
                r.json::<serde_json::Value>().await.unwrap_or_default(),
            )
        }
    };
    let many: Vec<_> = (0..outpost_protocol::MAX_COUNT_BUCKETS as i64 + 1)
        .map(|h| bucket(h * 3600, 1))
        .collect();
    for counts in [vec![bucket(3600, -5)], vec![bucket(-3600, 1)], many] {
        let (status, body) = send(1, counts).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["code"], "invalid_counts", "{body}");
    }
    let stored: i64 = {
        use control_plane::infra::schema::usage_counts::dsl as u;
        let pool = cp.db();
        let mut conn = pool.get().unwrap();
        u::usage_counts
            .filter(u::node_id.eq(&node.id))
            .count()
            .get_result(&mut conn)
            .unwrap()
    };
    assert_eq!(stored, 0);
    let (status, body) = send(1, vec![bucket(3600, 4)]).await;
    assert_eq!(
        (status, body["accepted"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
}
