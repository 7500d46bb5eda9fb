//! No NUL byte in any text, at the edge of both listeners.
//!
//! PostgreSQL's `TEXT` cannot hold U+0000 (it answers "invalid byte sequence for encoding
//! UTF8: 0x00", SQLSTATE 22021), SQLite stores it and every page then shows a string cut
//! short, and no name, message or code needs it. So before any extractor runs, a request
//! whose path, query string, JSON body (`\u0000`) or any other body but a file upload
//! (`%00`, a raw 0x00) carries one is answered 400 `invalid_text` (a compressed body, which
//! would hide its bytes, 400 `unsupported_content_type`) — the JSON error on `/api/` and
//! `/v1/`, the error page on pages. `AppError`'s mapping of 22021 is the safety net behind this, for text that
//! reaches the database some other way. A node whose report is refused with a 400 drops
//! that report and goes on (`agent-node` `uplink::phone_home::reports`), so the refusal
//! cannot wedge its outbox.

use super::render::{PageError, BODY_LIMIT};
use crate::error::{AppError, Code, NUL_IN_TEXT};
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::web::{Bytes, BytesMut};
use actix_web::{HttpMessage, ResponseError};
use futures_util::StreamExt;

/// Whether a percent-encoded string (path, query, form body) decodes to a NUL.
pub fn urlencoded_has_nul(s: &[u8]) -> bool {
    s.contains(&0) || s.windows(3).any(|w| w == b"%00")
}

/// Whether a JSON text holds a NUL: a raw 0x00 byte, or the escape `\u0000` (and not an
/// escaped backslash followed by `u0000`, which is the text `\u0000`).
pub fn json_has_nul(s: &[u8]) -> bool {
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            0 => return true,
            b'\\' => {
                if s.get(i + 1) == Some(&b'u') && s.get(i + 2..i + 6).is_some_and(|h| h == b"0000")
                {
                    return true;
                }
                // Skip the escaped character, so `\\` never starts an escape.
                i += 2;
            }
            _ => i += 1,
        }
    }
    false
}

fn refusal() -> AppError {
    AppError::invalid(Code::InvalidText, NUL_IN_TEXT)
}

fn respond(req: ServiceRequest, e: AppError) -> ServiceResponse {
    let api = req.path().starts_with("/api/") || req.path().starts_with("/v1/");
    let res = if api {
        e.error_response()
    } else {
        PageError(e).error_response()
    };
    req.into_response(res)
}

/// The middleware (`middleware::from_fn(text::refuse_nul)`), on both listeners, before the
/// access guard (whose lookups read the path) and every extractor.
pub async fn refuse_nul(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::EitherBody<impl MessageBody>>, actix_web::Error> {
    let raw_path = req.uri().path().as_bytes();
    let raw_query = req.uri().query().unwrap_or_default().as_bytes();
    if urlencoded_has_nul(raw_path) || urlencoded_has_nul(raw_query) {
        let e = refusal();
        return Ok(respond(req, e).map_into_right_body());
    }
    // A compressed body would hide its bytes from the check below (the extractors
    // decompress); no browser, node or webhook sender compresses what it sends here.
    let encoded = req
        .headers()
        .get(header::CONTENT_ENCODING)
        .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
    if encoded {
        let e = AppError::invalid(
            Code::UnsupportedContentType,
            "Send the request body uncompressed (no Content-Encoding).",
        );
        return Ok(respond(req, e).map_into_right_body());
    }
    let kind = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    // Every body but a file upload is checked, whatever its declared type: the page forms'
    // extractor reads the bytes as a form whatever the header says, and actix's JSON
    // extractor takes any `*/json`.
    let json = kind.ends_with("/json") || kind.ends_with("+json");
    if !kind.starts_with("multipart/") {
        // Read the body (no more than the listeners' limit), check it, and put it back
        // for the extractors, byte for byte (the Stripe webhook signs the raw body).
        let mut payload = req.take_payload();
        let mut body = BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk?;
            if body.len() + chunk.len() > BODY_LIMIT {
                return Ok(respond(req, AppError::PayloadTooLarge).map_into_right_body());
            }
            body.extend_from_slice(&chunk);
        }
        let body: Bytes = body.freeze();
        let nul = if json {
            json_has_nul(&body)
        } else {
            urlencoded_has_nul(&body)
        };
        if nul {
            let e = refusal();
            return Ok(respond(req, e).map_into_right_body());
        }
        req.set_payload(actix_web::dev::Payload::from(body));
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_is_found_in_json_escapes_and_form_encodings_only() {
        assert!(json_has_nul(br#"{"name":"a\u0000b"}"#));
        assert!(json_has_nul(br#"{"name":"\\\u0000"}"#));
        assert!(json_has_nul(b"{\"name\":\"a\0\"}"));
        // An escaped backslash then `u0000` is the six characters `\u0000`.
        assert!(!json_has_nul(br#"{"name":"a\\u0000b"}"#));
        assert!(!json_has_nul(br#"{"name":"\u00e9\"\\"}"#));
        assert!(urlencoded_has_nul(b"name=a%00b"));
        assert!(!urlencoded_has_nul(b"name=a%2500b"));
    }
}
