#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

const STRICT: Policy = Policy::STRICT;
const LOCAL: Policy = Policy::new(true);

fn refused(p: Policy, url: &str) -> Refused {
    match p.check(url) {
        Ok(u) => panic!("{url} allowed (parsed as {u})"),
        Err(e) => e,
    }
}

/// The bypasses of the old "http only to this machine" rule (issue 20): refused, with the
/// switch on or off.
#[test]
fn the_bypass_strings_of_the_issue_are_refused() {
    for p in [STRICT, LOCAL] {
        for url in [
            "http://127.0.0.1@169.254.169.254/v1",
            "http://127.0.0.1:80@10.0.0.5/v1",
            "http://[::1]@10.0.0.5/v1",
            "https://user:pw@api.example.com/v1",
        ] {
            assert_eq!(refused(p, url), Refused::Userinfo, "{url}");
        }
        assert_eq!(
            refused(p, "http://127.attacker.example/v1"),
            Refused::NotHttps
        );
        for url in ["https://169.254.169.254/v1", "https://10.0.0.5/v1"] {
            assert_eq!(refused(p, url), Refused::Private, "{url}");
        }
    }
}

/// WHATWG parsing turns every spelling of 127.0.0.1 into 127.0.0.1 before we look.
#[test]
fn numeric_spellings_of_loopback_are_loopback() {
    for url in [
        "http://2130706433/",
        "http://0x7f.1/",
        "http://0x7f000001/",
        "http://017700000001/",
        "http://0177.0.0.1/",
        "http://127.1/",
        "http://127.0.0.1./",
        "https://127.0.0.1/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:7f00:1]/",
        "http://[::1]/",
        "http://[0:0:0:0:0:0:0:1]/",
        "http://localhost:8080/v1",
        "https://LOCALHOST./v1",
        "http://api.localhost/v1",
        "https://a.b.localhost/v1",
    ] {
        assert_eq!(refused(STRICT, url), Refused::Private, "{url}");
        assert!(LOCAL.check(url).is_ok(), "{url} with the switch on");
    }
    assert_eq!(
        Url::parse("http://0x7f.1/").unwrap().host_str(),
        Some("127.0.0.1")
    );
    assert_eq!(
        Url::parse("http://017700000001/").unwrap().host_str(),
        Some("127.0.0.1")
    );
}

/// Private, reserved and special ranges, in every IPv6 disguise: refused even with the
/// switch on (it allows loopback, nothing else).
#[test]
fn private_and_special_addresses_are_refused_in_every_form() {
    for url in [
        "https://10.0.0.1/",
        "https://10.255.255.255/",
        "https://172.16.0.1/",
        "https://172.31.255.255/",
        "https://192.168.1.1/",
        "https://169.254.169.254/latest/meta-data/",
        "https://100.64.0.1/",
        "https://100.127.255.255/",
        "https://0.0.0.0/",
        "https://0/",
        "https://0.1.2.3/",
        "https://224.0.0.1/",
        "https://239.255.255.250/",
        "https://240.0.0.1/",
        "https://255.255.255.255/",
        "https://192.0.0.170/",
        "https://192.0.2.1/",
        "https://198.18.0.1/",
        "https://198.51.100.7/",
        "https://203.0.113.9/",
        "https://2852039166/", // 169.254.169.254 in decimal
        "https://0xa9.0xfe.0xa9.0xfe/",
        "https://012.0.0.1/", // octal 10.0.0.1
        "https://[::]/",
        "https://[fe80::1]/",
        "https://[febf::1]/",
        "https://[fec0::1]/",
        "https://[fc00::1]/",
        "https://[fd12:3456::1]/",
        "https://[ff02::1]/",
        "https://[::ffff:10.0.0.5]/",
        "https://[::ffff:169.254.169.254]/",
        "https://[::ffff:a9fe:a9fe]/",
        "https://[::10.0.0.5]/",
        "https://[64:ff9b::a9fe:a9fe]/",
        "https://[64:ff9b:1::1]/",
        "https://[2002:a9fe:a9fe::1]/",
        "https://[2001:db8::1]/",
        "https://[2001::1]/",
        "https://[100::1]/",
    ] {
        for p in [STRICT, LOCAL] {
            assert_eq!(refused(p, url), Refused::Private, "{url}");
        }
    }
    // The compatible, NAT64 and 6to4 forms of loopback are loopback: refused, unless
    // the switch is on.
    for url in [
        "https://[::127.0.0.1]/",
        "https://[64:ff9b::7f00:1]/",
        "https://[2002:7f00:1::1]/",
    ] {
        assert_eq!(refused(STRICT, url), Refused::Private, "{url}");
        assert!(LOCAL.check(url).is_ok(), "{url}");
    }
}

#[test]
fn public_https_addresses_pass_and_http_does_not() {
    for url in [
        "https://api.openai.com/v1",
        "https://api.deepseek.com/v1/",
        "https://93.184.215.14/v1",
        "https://[2606:4700::1111]/v1",
        "https://100.128.0.1/",
        "https://172.32.0.1/",
        "https://[64:ff9b::808:808]/",
    ] {
        assert!(STRICT.check(url).is_ok(), "{url}");
    }
    for p in [STRICT, LOCAL] {
        for url in [
            "http://api.openai.com/v1",
            "http://93.184.215.14/v1",
            "http://[2606:4700::1111]/",
        ] {
            assert_eq!(refused(p, url), Refused::NotHttps, "{url}");
        }
        for url in ["ftp://example.com/", "file:///etc/passwd", "gopher://x/"] {
            assert_eq!(refused(p, url), Refused::NotHttps, "{url}");
        }
        for url in ["", "api.openai.com/v1", "https://", "https://exa mple.com/"] {
            assert_eq!(refused(p, url), Refused::NotAUrl, "{url:?}");
        }
    }
}

#[test]
fn messages_are_words_for_the_owner() {
    assert_eq!(Refused::NotHttps.to_string(), "The address must use https.");
    assert!(Refused::Private
        .to_string()
        .starts_with("This address points to a private network"));
}

/// A lookup that answers `addr` for every name, like a rebinding DNS server would.
fn answering(addr: IpAddr) -> Lookup {
    Arc::new(move |_name: String| Box::pin(async move { Ok(vec![addr]) }))
}

fn client(p: Policy, redirects: Redirects, lookup: Lookup) -> Client {
    Client::with_lookup(
        "outpost-test/0",
        Duration::from_secs(2),
        p,
        redirects,
        lookup,
    )
    .unwrap()
}

/// A name that resolves to a private address is refused on the address connected to,
/// before any byte is sent; the error says why.
#[tokio::test]
async fn a_name_resolving_to_a_private_address_is_refused_when_connecting() {
    let fake = MockServer::start().await;
    Mock::given(path("/v1/models"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&fake)
        .await;
    let port = fake.address().port();
    let url = format!("https://models.example.test:{port}/v1/models");
    // The URL alone passes: it names a host.
    assert!(STRICT.check(&url).is_ok());
    for addr in [
        "127.0.0.1",
        "10.0.0.5",
        "169.254.169.254",
        "::1",
        "::ffff:127.0.0.1",
    ] {
        let c = client(STRICT, Redirects::None, answering(addr.parse().unwrap()));
        let err = c.get(&url).unwrap().send().await.expect_err(addr);
        assert_eq!(refusal_of(&err), Some(Refused::Private), "{addr}: {err:?}");
    }
    // With the switch on, a name on loopback is reached (over http here: the fake).
    let c = client(
        LOCAL,
        Redirects::None,
        answering("127.0.0.1".parse().unwrap()),
    );
    let r = c
        .get(&format!("http://localhost:{port}/v1/models"))
        .unwrap()
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // ... but a private one still is not.
    let c = client(
        LOCAL,
        Redirects::None,
        answering("10.0.0.5".parse().unwrap()),
    );
    let err = c.get(&url).unwrap().send().await.unwrap_err();
    assert_eq!(refusal_of(&err), Some(Refused::Private));
    assert!(fake.received_requests().await.unwrap().len() == 1);
}

/// The real resolver: `localhost` is refused even if it were not caught by name.
#[tokio::test]
async fn the_system_resolver_is_guarded_too() {
    let c = Client::new(
        "outpost-test/0",
        Duration::from_secs(2),
        STRICT,
        Redirects::None,
    )
    .unwrap();
    let err = c
        .checked_base_client()
        .get("https://localhost:9/")
        .send()
        .await
        .unwrap_err();
    assert_eq!(refusal_of(&err), Some(Refused::Private), "{err:?}");
}

/// IP literals never reach the resolver: the request builder checks them.
#[test]
fn literals_are_checked_when_the_request_is_built() {
    let c = client(STRICT, Redirects::None, system_lookup());
    assert_eq!(
        c.get("https://169.254.169.254/latest/meta-data/")
            .unwrap_err(),
        Refused::Private
    );
    assert_eq!(
        c.post("http://127.0.0.1@169.254.169.254/v1").unwrap_err(),
        Refused::Userinfo
    );
}

/// A 302 to the metadata address: not followed without redirects; refused by the checked
/// policy (which would follow a public hop).
#[tokio::test]
async fn redirects_to_private_addresses_are_not_followed() {
    let fake = MockServer::start().await;
    Mock::given(path("/v1/models"))
        .respond_with(
            ResponseTemplate::new(302)
                .insert_header("location", "http://169.254.169.254/latest/meta-data/iam"),
        )
        .mount(&fake)
        .await;
    Mock::given(path("/hop"))
        .respond_with(ResponseTemplate::new(302).insert_header("location", "/v1/models"))
        .mount(&fake)
        .await;
    let url = format!("{}/v1/models", fake.uri());
    let c = client(LOCAL, Redirects::None, system_lookup());
    let r = c.get(&url).unwrap().send().await.unwrap();
    assert_eq!(r.status(), 302, "the 3xx is the answer");

    let c = client(LOCAL, Redirects::Checked { max: 5 }, system_lookup());
    let err = c
        .get(&format!("{}/hop", fake.uri()))
        .unwrap()
        .send()
        .await
        .unwrap_err();
    assert!(err.is_redirect(), "{err:?}");
    assert_eq!(refusal_of(&err), Some(Refused::Private), "{err:?}");
    // The first call, then /hop and /v1/models: never the metadata address.
    assert_eq!(fake.received_requests().await.unwrap().len(), 3);
}
