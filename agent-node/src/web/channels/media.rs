//! Files customers send: downloaded from the provider when the message arrives and
//! stored sealed with it ([`crate::domain::content::MediaIn`]).
//!
//! WhatsApp: `GET {graph}/{media id}` with the access token gives a short-lived URL,
//! downloaded with the same token. Telegram: `getFile` gives a `file_path`, downloaded
//! from `{bot api}/file/bot{token}/{file_path}`. Only the content types of
//! [`content_type_allowed`] are fetched, at most [`MAX_MEDIA_BYTES`] (checked against the
//! declared size first, then while reading). When a file cannot be kept the message says
//! so in words (`[image could not be fetched: larger than 16 MB]`) and everything else
//! goes on: the message is stored and answered. A caption stays the message's text.

use super::{Channels, SendError};
use crate::domain::content::{content_type_allowed, MediaIn, MAX_MEDIA_BYTES};
use crate::domain::secrets::SecretKind;
use serde::Deserialize;
use std::time::Duration;

/// Why a file was not kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum MediaError {
    /// Larger than [`MAX_MEDIA_BYTES`].
    TooLarge,
    /// A content type the node does not keep.
    Type,
    /// The provider did not give it (404, expired, network, bad digest).
    Unavailable,
}

impl MediaError {
    fn words(self) -> String {
        match self {
            Self::TooLarge => format!(": larger than {} MB", MAX_MEDIA_BYTES / (1024 * 1024)),
            Self::Type => ": this file type is not accepted".to_owned(),
            Self::Unavailable => String::new(),
        }
    }

    pub(super) fn code(self) -> &'static str {
        match self {
            Self::TooLarge => "media_too_large",
            Self::Type => "media_type_refused",
            Self::Unavailable => "media_unavailable",
        }
    }
}

/// A file a message carries, before it is fetched.
pub(super) struct Attachment<'a> {
    /// What the channel calls it (`image`, `photo`, `voice`, `document`…).
    pub kind: &'a str,
    /// The caption, if any: it stays the message's text.
    pub caption: Option<&'a str>,
    /// A document's file name, if any.
    pub file_name: Option<&'a str>,
}

/// The message text for `a` once fetching ended with `outcome`.
pub(super) fn body_for(a: &Attachment<'_>, outcome: &Result<MediaIn, MediaError>) -> String {
    let caption = a.caption.map(str::trim).filter(|c| !c.is_empty());
    let label = match a.file_name.map(str::trim).filter(|n| !n.is_empty()) {
        Some(name) => format!("{}: {}", a.kind, name.chars().take(200).collect::<String>()),
        None => a.kind.to_owned(),
    };
    match (outcome, caption) {
        (Ok(_), Some(c)) => c.to_owned(),
        (Ok(_), None) => format!("[{label}]"),
        (Err(e), Some(c)) => format!("[{label} could not be fetched{}]\n{c}", e.words()),
        (Err(e), None) => format!("[{label} could not be fetched{}]", e.words()),
    }
}

/// `GET {graph}/{media id}` (only what is used). `file_size` comes as a string or a number.
#[derive(Debug, Deserialize)]
struct GraphMedia {
    url: String,
    #[serde(default)]
    mime_type: Option<String>,
    #[serde(default)]
    sha256: Option<String>,
    #[serde(default)]
    file_size: Option<serde_json::Value>,
}

/// A Bot API `File` (only what is used).
#[derive(Debug, Deserialize)]
struct TgFile {
    #[serde(default)]
    file_path: Option<String>,
    #[serde(default)]
    file_size: Option<u64>,
}

fn declared_size(v: Option<&serde_json::Value>) -> Option<u64> {
    match v? {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn too_large(size: Option<u64>) -> bool {
    size.is_some_and(|s| s > MAX_MEDIA_BYTES as u64)
}

/// `scheme://host[:port]` of a URL.
fn origin(url: &str) -> &str {
    let rest = url.find("://").map_or(0, |i| i + 3);
    let end = url[rest..].find('/').map_or(url.len(), |i| rest + i);
    &url[..end]
}

impl Channels {
    /// Reads the body of `req`'s response, at most [`MAX_MEDIA_BYTES`].
    pub(super) async fn download(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<Vec<u8>, MediaError> {
        // Errors are never formatted: a Telegram file URL carries the bot token.
        let mut resp = req
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .map_err(|_| MediaError::Unavailable)?;
        if !resp.status().is_success() {
            return Err(MediaError::Unavailable);
        }
        if too_large(resp.content_length()) {
            return Err(MediaError::TooLarge);
        }
        let mut data = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|_| MediaError::Unavailable)? {
            if data.len() + chunk.len() > MAX_MEDIA_BYTES {
                return Err(MediaError::TooLarge);
            }
            data.extend_from_slice(&chunk);
        }
        Ok(data)
    }

    /// Fetches the WhatsApp media `media_id`, whose type the webhook declared as
    /// `mime_type`. Logged by code only.
    pub(super) async fn whatsapp_media(
        &self,
        media_id: &str,
        mime_type: Option<&str>,
    ) -> Result<MediaIn, MediaError> {
        let r = self.whatsapp_media_inner(media_id, mime_type).await;
        if let Err(e) = &r {
            tracing::warn!(code = e.code(), "a WhatsApp file was not kept");
        }
        r
    }

    async fn whatsapp_media_inner(
        &self,
        media_id: &str,
        mime_type: Option<&str>,
    ) -> Result<MediaIn, MediaError> {
        if let Some(t) = mime_type {
            content_type_allowed(t).ok_or(MediaError::Type)?;
        }
        let token = match self.whatsapp_secret(SecretKind::WhatsappAccessToken) {
            Ok(Some(t)) => t,
            Ok(None) | Err(_) => return Err(MediaError::Unavailable),
        };
        if media_id.is_empty() || !media_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(MediaError::Unavailable);
        }
        let meta: GraphMedia = self
            .http
            .get(format!("{}/{media_id}", self.urls.graph))
            .bearer_auth(token.expose())
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .ok()
            .filter(|r| r.status().is_success())
            .ok_or(MediaError::Unavailable)?
            .json()
            .await
            .map_err(|_| MediaError::Unavailable)?;
        let content_type = meta
            .mime_type
            .as_deref()
            .or(mime_type)
            .and_then(content_type_allowed)
            .ok_or(MediaError::Type)?;
        if too_large(declared_size(meta.file_size.as_ref())) {
            return Err(MediaError::TooLarge);
        }
        // The token goes only to Meta's https hosts (or, in tests, the fake Graph API).
        if !(meta.url.starts_with("https://") || origin(&meta.url) == origin(&self.urls.graph)) {
            return Err(MediaError::Unavailable);
        }
        let data = self
            .download(self.http.get(&meta.url).bearer_auth(token.expose()))
            .await?;
        if let Some(expected) = meta.sha256.as_deref().filter(|s| s.len() == 64) {
            let got = ring::digest::digest(&ring::digest::SHA256, &data);
            if !expected.eq_ignore_ascii_case(&outpost_common::hex(got.as_ref())) {
                return Err(MediaError::Unavailable);
            }
        }
        Ok(MediaIn {
            kind: String::new(),
            content_type,
            data,
        })
    }

    /// Fetches the Telegram file `file_id` of type `content_type` and declared size.
    pub(super) async fn telegram_media(
        &self,
        file_id: &str,
        content_type: Option<&str>,
        size: Option<u64>,
    ) -> Result<MediaIn, MediaError> {
        let r = self.telegram_media_inner(file_id, content_type, size).await;
        if let Err(e) = &r {
            tracing::warn!(code = e.code(), "a Telegram file was not kept");
        }
        r
    }

    async fn telegram_media_inner(
        &self,
        file_id: &str,
        content_type: Option<&str>,
        size: Option<u64>,
    ) -> Result<MediaIn, MediaError> {
        let content_type = content_type
            .and_then(content_type_allowed)
            .ok_or(MediaError::Type)?;
        if too_large(size) {
            return Err(MediaError::TooLarge);
        }
        let token = match self.telegram_token() {
            Ok(Some(t)) => t,
            Ok(None) | Err(_) => return Err(MediaError::Unavailable),
        };
        let file: TgFile = self
            .telegram_call(
                &token,
                "getFile",
                &serde_json::json!({ "file_id": file_id }),
                Duration::from_secs(30),
            )
            .await
            .map_err(|_: SendError| MediaError::Unavailable)
            .and_then(|v| serde_json::from_value(v).map_err(|_| MediaError::Unavailable))?;
        if too_large(file.file_size) {
            return Err(MediaError::TooLarge);
        }
        let path = file
            .file_path
            .filter(|p| !p.is_empty() && !p.contains("..") && !p.starts_with('/'))
            .ok_or(MediaError::Unavailable)?;
        let url = format!("{}/file/bot{}/{path}", self.urls.telegram, token.expose());
        let data = self.download(self.http.get(url)).await?;
        Ok(MediaIn {
            kind: String::new(),
            content_type,
            data,
        })
    }
}

#[cfg(test)]
#[path = "media_tests.rs"]
mod tests;
