//! The OpenAPI document at `GET /api/v1/openapi.json` describes exactly the API that
//! exists: every row of the route table under `/api/v1` is in it (method and path), it
//! lists nothing else, and what it references is defined.

use crate::harness::*;
use control_plane::app::routes::{Access, UI};
use std::collections::BTreeSet;

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

#[tokio::test]
async fn the_openapi_document_lists_exactly_the_api_routes() {
    let cp = Cp::start();
    // Public: a client reads it before it has a token.
    let r = no_redirect_client()
        .get(format!("{}/api/v1/openapi.json", cp.ui))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let doc: serde_json::Value = r.json().await.unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1."),
        "{}",
        doc["openapi"]
    );

    let table: BTreeSet<(String, String)> = UI
        .iter()
        .filter(|r| r.path.starts_with("/api/v1/"))
        .map(|r| (r.method.as_str().to_lowercase(), r.path.to_owned()))
        .collect();
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if !METHODS.contains(&method.as_str()) {
                continue;
            }
            documented.insert((method.clone(), path.clone()));
            let row = UI
                .iter()
                .find(|r| r.path == path && r.method.as_str().eq_ignore_ascii_case(method));
            // Bearer auth on every route the table protects; none on its public ones.
            let security = &op["security"];
            if row.is_some_and(|r| r.access == Access::Public) {
                assert_eq!(security, &serde_json::json!([{}]), "{method} {path}");
            } else {
                assert!(
                    security.is_null(),
                    "{method} {path}: the document's default"
                );
                assert!(op["responses"]["401"].is_object(), "{method} {path}");
            }
            assert!(op["responses"]["500"].is_object(), "{method} {path}");
        }
    }
    let missing: Vec<_> = table.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "routes of app::routes::UI missing from the OpenAPI document (annotate the handler \
         with #[utoipa::path] and add it to app::openapi::ApiDoc): {missing:?}"
    );
    let extra: Vec<_> = documented.difference(&table).collect();
    assert!(
        extra.is_empty(),
        "the OpenAPI document lists routes that do not exist: {extra:?}"
    );
    assert_eq!(doc["security"], serde_json::json!([{"api_token": []}]));
    assert_eq!(
        doc["components"]["securitySchemes"]["api_token"]["scheme"],
        "bearer"
    );

    // Every error code is in the error schema, and every reference resolves.
    let codes = doc["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .unwrap();
    for code in control_plane::error::Code::ALL {
        assert!(codes.contains(&code.as_str().into()), "{}", code.as_str());
    }
    let mut refs = vec![];
    collect_refs(&doc, &mut refs);
    assert!(!refs.is_empty());
    for r in refs {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected reference {r}"));
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "{r} is not defined"
        );
    }
}

fn collect_refs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            if let Some(serde_json::Value::String(r)) = m.get("$ref") {
                out.push(r.clone());
            }
            m.values().for_each(|v| collect_refs(v, out));
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}
