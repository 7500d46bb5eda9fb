//! AWS Signature Version 4 (HMAC-SHA256 via ring), enough for Amazon SES: one request,
//! signed headers, no presigned URLs, no chunked payloads. Checked against AWS's
//! published example (IAM `ListUsers`, 2015-08-30) in the tests below.
//!
//! <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html>

use outpost_common::hex;
use ring::{digest, hmac};

/// What is signed.
pub struct Request<'a> {
    /// `GET`, `POST`…
    pub method: &'a str,
    /// Absolute path, e.g. `/v2/email/outbound-emails` (unencoded).
    pub path: &'a str,
    /// Query parameters (unencoded).
    pub query: &'a [(&'a str, &'a str)],
    /// Headers to sign, `host` and `x-amz-date` included (any case; values as sent).
    pub headers: &'a [(&'a str, &'a str)],
    /// Request body.
    pub body: &'a [u8],
}

/// Who signs, for which region and service.
pub struct Scope<'a> {
    /// Access key id.
    pub access_key_id: &'a str,
    /// Secret access key.
    pub secret_access_key: &'a str,
    /// e.g. `eu-west-1`.
    pub region: &'a str,
    /// e.g. `ses`.
    pub service: &'a str,
}

/// `x-amz-date` for a time: `20150830T123600Z`.
pub fn amz_date(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, data).as_ref())
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> hmac::Tag {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data)
}

/// URI-encodes as SigV4 wants: every byte but `A-Z a-z 0-9 - _ . ~` as `%XX` (uppercase);
/// `/` kept when `keep_slash`.
fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The canonical request and the `SignedHeaders` list.
pub fn canonical_request(req: &Request<'_>) -> (String, String) {
    let path = if req.path.is_empty() {
        "/".to_owned()
    } else {
        uri_encode(req.path, true)
    };
    let mut query: Vec<(String, String)> = req
        .query
        .iter()
        .map(|(k, v)| (uri_encode(k, false), uri_encode(v, false)))
        .collect();
    query.sort();
    let query = query
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|(k, v)| {
            let v = v.split_whitespace().collect::<Vec<_>>().join(" ");
            (k.to_ascii_lowercase(), v)
        })
        .collect();
    headers.sort();
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed = headers
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let text = format!(
        "{}\n{path}\n{query}\n{canonical_headers}\n{signed}\n{}",
        req.method,
        sha256_hex(req.body)
    );
    (text, signed)
}

/// The signing key of a day, region and service (`kSigning`).
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> hmac::Tag {
    let k_date = hmac_sha256(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac_sha256(k_date.as_ref(), region.as_bytes());
    let k_service = hmac_sha256(k_region.as_ref(), service.as_bytes());
    hmac_sha256(k_service.as_ref(), b"aws4_request")
}

/// The `Authorization` header for `req` at `amz_date` (which must be the request's
/// `x-amz-date` header).
pub fn authorization(req: &Request<'_>, scope: &Scope<'_>, amz_date: &str) -> String {
    let date = amz_date.get(..8).unwrap_or(amz_date);
    let credential_scope = format!("{date}/{}/{}/aws4_request", scope.region, scope.service);
    let (canonical, signed_headers) = canonical_request(req);
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{credential_scope}\n{}",
        sha256_hex(canonical.as_bytes())
    );
    let key = signing_key(scope.secret_access_key, date, scope.region, scope.service);
    let signature = hex(hmac_sha256(key.as_ref(), string_to_sign.as_bytes()).as_ref());
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{credential_scope}, SignedHeaders={signed_headers}, Signature={signature}",
        scope.access_key_id
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's published example: IAM `ListUsers`, signed on 2015-08-30 12:36:00 UTC with the
    /// documentation's example credentials. Every intermediate value is AWS's.
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const HEADERS: &[(&str, &str)] = &[
        (
            "Content-Type",
            "application/x-www-form-urlencoded; charset=utf-8",
        ),
        ("Host", "iam.amazonaws.com"),
        ("X-Amz-Date", "20150830T123600Z"),
    ];

    fn list_users() -> Request<'static> {
        Request {
            method: "GET",
            path: "/",
            query: &[("Version", "2010-05-08"), ("Action", "ListUsers")],
            headers: HEADERS,
            body: b"",
        }
    }

    #[test]
    fn the_aws_example_canonical_request_hashes_to_the_published_value() {
        let (canonical, signed) = canonical_request(&list_users());
        assert_eq!(
            canonical,
            "GET\n/\nAction=ListUsers&Version=2010-05-08\n\
             content-type:application/x-www-form-urlencoded; charset=utf-8\n\
             host:iam.amazonaws.com\nx-amz-date:20150830T123600Z\n\n\
             content-type;host;x-amz-date\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(signed, "content-type;host;x-amz-date");
        assert_eq!(
            sha256_hex(canonical.as_bytes()),
            "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"
        );
    }

    #[test]
    fn the_aws_example_signing_key_and_signature_match() {
        let key = signing_key(SECRET, "20150830", "us-east-1", "iam");
        assert_eq!(
            hex(key.as_ref()),
            "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
        );
        let auth = authorization(
            &list_users(),
            &Scope {
                access_key_id: "AKIDEXAMPLE",
                secret_access_key: SECRET,
                region: "us-east-1",
                service: "iam",
            },
            "20150830T123600Z",
        );
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, \
             Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
    }

    #[test]
    fn a_change_to_the_body_path_or_secret_changes_the_signature() {
        let scope = |secret| Scope {
            access_key_id: "AKID",
            secret_access_key: secret,
            region: "eu-west-1",
            service: "ses",
        };
        let headers = [
            ("host", "email.eu-west-1.amazonaws.com"),
            ("x-amz-date", "20261123T110000Z"),
        ];
        let req = |path, body| Request {
            method: "POST",
            path,
            query: &[],
            headers: &headers,
            body,
        };
        let base = authorization(
            &req("/v2/email/outbound-emails", b"{}"),
            &scope("s"),
            "20261123T110000Z",
        );
        for other in [
            authorization(
                &req("/v2/email/outbound-emails", b"{ }"),
                &scope("s"),
                "20261123T110000Z",
            ),
            authorization(
                &req("/v2/email/outbound-email", b"{}"),
                &scope("s"),
                "20261123T110000Z",
            ),
            authorization(
                &req("/v2/email/outbound-emails", b"{}"),
                &scope("t"),
                "20261123T110000Z",
            ),
        ] {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn dates_and_encoding() {
        let t = time::macros::datetime!(2015-08-30 12:36:00 UTC);
        assert_eq!(amz_date(t), "20150830T123600Z");
        assert_eq!(uri_encode("a b/c~*", true), "a%20b/c~%2A");
        assert_eq!(uri_encode("a/b", false), "a%2Fb");
    }
}
