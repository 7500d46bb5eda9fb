//! The user-data of a real node: `deploy/cloud-init.yaml.tmpl` with the node's bootstrap
//! bundle (base64: cloud-init writes the exact bytes, 0600), the hardened systemd unit
//! `deploy/agent-node.service`, and the release URL and digest the server checks the
//! binary against. Every value put in is one the configuration checked or base64, so
//! nothing can break out of its YAML or shell line.

use super::config::CloudConfig;
use base64::Engine as _;

const TEMPLATE: &str = include_str!("../../../../../deploy/cloud-init.yaml.tmpl");
const SERVICE: &str = include_str!("../../../../../deploy/agent-node.service");

/// The rendered `#cloud-config` for a node called `hostname` with `bundle` (its
/// bootstrap.json bytes).
pub fn render(cfg: &CloudConfig, hostname: &str, bundle: &[u8]) -> String {
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    TEMPLATE
        .replace("${HOSTNAME}", hostname)
        .replace("${BOOTSTRAP_JSON_B64}", &b64(bundle))
        .replace("${SERVICE_B64}", &b64(SERVICE.as_bytes()))
        .replace("${RELEASE_URL}", &cfg.release_url)
        .replace("${RELEASE_SHA256}", &cfg.release_sha256)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::super::config::{CloudArgs, CloudFile};
    use super::*;
    use outpost_crypto::Secret;

    pub(crate) fn cfg() -> CloudConfig {
        CloudArgs {
            ovh_application_key: Some("ak".into()),
            ovh_application_secret: Some(Secret::new("as".into())),
            ovh_consumer_key: Some(Secret::new("ck".into())),
            ovh_project_id: Some("p1".into()),
            ovh_regions: Some("GRA11".into()),
            ovh_flavor_id: Some("f1".into()),
            ovh_image_id: Some("i1".into()),
            cloudflare_api_token: Some(Secret::new("cf".into())),
            cloudflare_zone_id: Some("z1".into()),
            nodes_domain: Some("nodes.example.com".into()),
            node_release_url: Some("https://releases.example.com/agent-node".into()),
            node_release_sha256: Some("ab".repeat(32)),
            ..Default::default()
        }
        .resolve(CloudFile::default())
        .unwrap()
        .unwrap()
    }

    #[test]
    fn every_placeholder_is_filled_and_the_bundle_is_exact() {
        let bundle = br#"{"token":"n1.secret","ca_pem":"-----BEGIN CERTIFICATE-----\nx\n"}"#;
        let y = render(&cfg(), "acme.nodes.example.com", bundle);
        assert!(y.starts_with("#cloud-config\n"));
        let body: String = y.lines().filter(|l| !l.starts_with('#')).collect();
        assert!(!body.contains("${"), "unfilled placeholder:\n{y}");
        assert!(y.contains("hostname: acme.nodes.example.com"));
        assert!(y.contains(&"ab".repeat(32)));
        assert!(y.contains("'https://releases.example.com/agent-node'"));
        let b64 = base64::engine::general_purpose::STANDARD.encode(bundle);
        assert!(y.contains(&format!("content: {b64}\n")));
    }

    /// The rendered file is valid for cloud-init's own schema. `cloud-init` is a Debian
    /// package (installed by `.ci/run`); without it the check is skipped here, loudly, and
    /// required in CI.
    #[test]
    fn cloud_init_accepts_the_rendered_file() {
        let have = std::process::Command::new("cloud-init")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !have {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "cloud-init is required in CI (apt-get install cloud-init)"
            );
            #[allow(clippy::print_stderr)]
            {
                eprintln!("SKIPPED: cloud-init not installed; the user-data schema is not checked");
            }
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("user-data.yaml");
        std::fs::write(&f, render(&cfg(), "acme.nodes.example.com", b"{}")).unwrap();
        let out = std::process::Command::new("cloud-init")
            .args(["schema", "--config-file"])
            .arg(&f)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cloud-init schema refused the user-data:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
