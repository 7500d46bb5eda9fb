//! The control plane goes away for a while: the node keeps running, buffers its reports
//! and replays them when the CP is back; nothing is lost or counted twice.

use crate::harness::*;
use diesel::prelude::*;

fn seqs(cp: &Cp, node_id: &str) -> Vec<i64> {
    use control_plane::infra::schema::node_reports::dsl as r;
    let pool = cp.db();
    let mut conn = pool.get().unwrap();
    r::node_reports
        .filter(r::node_id.eq(node_id))
        .order(r::seq.asc())
        .select(r::seq)
        .load(&mut conn)
        .unwrap()
}

#[tokio::test]
async fn reports_are_buffered_during_an_outage_and_replayed_once() {
    let mut cp = Cp::start();
    let api = Api::new(&cp, "owner@outage.test");
    let ws = api.create_workspace("Outage Dental").await;
    let ws_id = ws["workspace"]["id"].as_str().unwrap().to_owned();
    let d = api.wait_node_state(&ws_id, "healthy", 90).await;
    let node_id = d["node"]["id"].as_str().unwrap().to_owned();
    let pid = std::fs::read_to_string(cp.node_dir(&node_id).join("pid")).unwrap();

    let before = seqs(&cp, &node_id).last().copied().unwrap();
    cp.kill();
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    cp.restart();

    // The same node process is still running and was re-adopted, not restarted.
    assert_eq!(
        std::fs::read_to_string(cp.node_dir(&node_id).join("pid")).unwrap(),
        pid
    );
    let all = wait_for("reports from the outage", 60, || async {
        let s = seqs(&cp, &node_id);
        (s.last().copied().unwrap_or(0) >= before + 5).then_some(s)
    })
    .await;
    // Every sequence number from 1 up is present exactly once: nothing lost, no duplicates.
    let expected: Vec<i64> = (1..=*all.last().unwrap()).collect();
    assert_eq!(all, expected);
    let d = api.wait_node_state(&ws_id, "healthy", 10).await;
    let events: Vec<String> = d["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["detail"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        events
            .iter()
            .any(|e| e == "re-adopted after control-plane restart"),
        "{events:?}"
    );
}
