//! Media customers send on a channel (pictures, voice notes, documents, videos,
//! stickers), kept on the node next to the message that carried them.
//!
//! The bytes are sealed under the contact's data key like the message body (associated
//! data `media:<message id>`), so erasing the contact makes every copy unreadable, and
//! the row goes with its message (foreign keys with `ON DELETE CASCADE`): retention and
//! erasure need no code of their own. Only the kind, the content type and the size are
//! in clear. Only the types of [`content_type_allowed`] are kept, at most
//! [`MAX_MEDIA_BYTES`] each.

use super::sealing::media_aad;
use super::*;
use rusqlite::{params, Connection, OptionalExtension as _};

/// Migration adding the media table (see `MIGRATIONS` in `src/migrations.rs`).
pub const MEDIA_SCHEMA: &str = r#"
CREATE TABLE message_media (
    message_id INTEGER PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    contact_id TEXT NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    data_ct BLOB NOT NULL
);
CREATE INDEX message_media_contact ON message_media (contact_id, message_id);
"#;

/// The kind of a call's recording, attached to a system message of the call.
pub const RECORDING_KIND: &str = "recording";
/// The kind of a message a caller left, attached to the caller's message.
pub const VOICEMAIL_KIND: &str = "voicemail";
/// [`RECORDING_KIND`] and [`VOICEMAIL_KIND`] as an SQL list: call audio has its own
/// retention period.
pub(super) const CALL_AUDIO_KINDS_SQL: &str = "('recording', 'voicemail')";

/// Largest media file kept (WhatsApp's own limit for audio and video).
pub const MAX_MEDIA_BYTES: usize = 16 * 1024 * 1024;

/// The content types kept, with the file extension used in downloads and exports.
/// Anything else (SVG, HTML, executables…) is refused before it is downloaded.
const ALLOWED: &[(&str, &str)] = &[
    ("image/jpeg", "jpg"),
    ("image/png", "png"),
    ("image/webp", "webp"),
    ("image/gif", "gif"),
    ("audio/ogg", "ogg"),
    ("audio/mpeg", "mp3"),
    ("audio/mp4", "m4a"),
    ("audio/aac", "aac"),
    ("audio/amr", "amr"),
    ("video/mp4", "mp4"),
    ("video/3gpp", "3gp"),
    ("application/pdf", "pdf"),
    ("text/plain", "txt"),
    ("application/msword", "doc"),
    ("application/vnd.ms-excel", "xls"),
    ("application/vnd.ms-powerpoint", "ppt"),
    (
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "docx",
    ),
    (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "xlsx",
    ),
    (
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "pptx",
    ),
];

/// The canonical form of `content_type` (parameters such as `; codecs=opus` dropped,
/// lower case) if it is one the node keeps.
pub fn content_type_allowed(content_type: &str) -> Option<&'static str> {
    let base = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    ALLOWED.iter().find(|(t, _)| *t == base).map(|(t, _)| *t)
}

/// The file extension of an allowed content type (`bin` otherwise).
pub fn extension(content_type: &str) -> &'static str {
    ALLOWED
        .iter()
        .find(|(t, _)| *t == content_type)
        .map_or("bin", |(_, e)| *e)
}

/// Whether the console shows this type as an image in the page (raster images only).
pub fn shown_inline(content_type: &str) -> bool {
    matches!(
        content_type,
        "image/jpeg" | "image/png" | "image/webp" | "image/gif"
    )
}

/// A downloaded file to store with an inbound message.
#[derive(Clone)]
pub struct MediaIn {
    /// What the channel calls it (`image`, `photo`, `voice`, `document`…).
    pub kind: String,
    /// An allowed content type (see [`content_type_allowed`]).
    pub content_type: &'static str,
    /// The bytes.
    pub data: Vec<u8>,
}

impl std::fmt::Debug for MediaIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "MediaIn({}, {} bytes)",
            self.content_type,
            self.data.len()
        )
    }
}

/// What is known about a stored file without opening it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaInfo {
    /// The message it came with.
    pub message_id: i64,
    /// What the channel calls it.
    pub kind: String,
    /// Its content type.
    pub content_type: String,
    /// Bytes.
    pub size: i64,
}

impl MediaInfo {
    /// The name it is downloaded and exported under: `<kind>-<message id>.<ext>`.
    pub fn file_name(&self) -> String {
        format!(
            "{}-{}.{}",
            self.kind,
            self.message_id,
            extension(&self.content_type)
        )
    }
}

/// A stored file, opened.
#[derive(Clone)]
pub struct Media {
    /// About it.
    pub info: MediaInfo,
    /// The bytes.
    pub data: Vec<u8>,
}

impl std::fmt::Debug for Media {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Media({:?})", self.info)
    }
}

const INFO_COLUMNS: &str = "message_id, kind, content_type, size";

fn info_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<MediaInfo> {
    Ok(MediaInfo {
        message_id: r.get(0)?,
        kind: r.get(1)?,
        content_type: r.get(2)?,
        size: r.get(3)?,
    })
}

impl Content {
    /// Stores `media` with message `message_id` of `contact_id`, sealed under `dek`.
    pub(super) fn insert_media(
        &self,
        c: &Connection,
        dek: &Dek,
        message_id: i64,
        contact_id: &str,
        media: &MediaIn,
    ) -> Result<()> {
        if media.data.len() > MAX_MEDIA_BYTES {
            return Err(ContentError::Invalid("the file is too large"));
        }
        c.execute(
            "INSERT INTO message_media (message_id, contact_id, kind, content_type, size, data_ct)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                message_id,
                contact_id,
                media.kind,
                media.content_type,
                i64::try_from(media.data.len()).unwrap_or(i64::MAX),
                outpost_crypto::aead_seal(dek, &media.data, &media_aad(message_id)),
            ],
        )?;
        Ok(())
    }

    fn open_media(
        &self,
        c: &Connection,
        keys: &mut KeyCache,
        message_id: i64,
    ) -> Result<Option<Media>> {
        let row: Option<(MediaInfo, String, Vec<u8>)> = c
            .query_row(
                &format!(
                    "SELECT {INFO_COLUMNS}, contact_id, data_ct FROM message_media
                     WHERE message_id = ?1"
                ),
                [message_id],
                |r| Ok((info_row(r)?, r.get(4)?, r.get(5)?)),
            )
            .optional()?;
        let Some((info, contact_id, sealed)) = row else {
            return Ok(None);
        };
        let dek = self.dek_cached(c, &mut keys.0, &contact_id)?;
        let data = outpost_crypto::aead_open(dek, &sealed, &media_aad(message_id))
            .map_err(|_| ContentError::Crypto)?;
        Ok(Some(Media { info, data }))
    }

    /// The file stored with message `message_id`, opened; `None` if it has none (or it
    /// is gone with its contact).
    pub fn media(&self, message_id: i64) -> Result<Option<Media>> {
        self.run(|c| self.open_media(c, &mut KeyCache::default(), message_id))
    }

    /// What is stored with the messages of a conversation, by message id.
    pub fn media_of_conversation(&self, conversation_id: &str) -> Result<Vec<MediaInfo>> {
        self.run(|c| {
            let mut st = c.prepare(&format!(
                "SELECT {INFO_COLUMNS} FROM message_media
                 WHERE message_id IN (SELECT id FROM messages WHERE conversation_id = ?1)
                 ORDER BY message_id"
            ))?;
            let rows = st.query_map([conversation_id], info_row)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// The next stored file after message `after` (of one contact, or all), opened:
    /// exports read them one at a time.
    pub fn media_after(
        &self,
        contact: Option<&str>,
        after: i64,
        keys: &mut KeyCache,
    ) -> Result<Option<Media>> {
        self.run(|c| {
            let next: Option<i64> = match contact {
                Some(id) => c
                    .query_row(
                        "SELECT message_id FROM message_media
                         WHERE contact_id = ?1 AND message_id > ?2
                         ORDER BY message_id LIMIT 1",
                        params![id, after],
                        |r| r.get(0),
                    )
                    .optional()?,
                None => c
                    .query_row(
                        "SELECT message_id FROM message_media WHERE message_id > ?1
                         ORDER BY message_id LIMIT 1",
                        [after],
                        |r| r.get(0),
                    )
                    .optional()?,
            };
            match next {
                Some(id) => self.open_media(c, keys, id),
                None => Ok(None),
            }
        })
    }

    /// Appends a message carrying `media` to a conversation, once: `claim` runs first in
    /// the same transaction and says whether the file is new (a provider's retry is
    /// not), `then` records what the channel keeps about it. `None` when not new.
    pub fn append_media_once(
        &self,
        conversation_id: &str,
        author: Author,
        body: &str,
        media: &MediaIn,
        claim: impl FnOnce(&Connection) -> rusqlite::Result<bool>,
        then: impl FnOnce(&Connection, &Message) -> rusqlite::Result<()>,
    ) -> Result<Option<Message>> {
        self.run(|c| {
            let tx = begin(c)?;
            if !claim(&tx)? {
                return Ok(None);
            }
            let msg = self.append_in(&tx, conversation_id, author, body)?;
            let contact: String = tx.query_row(
                "SELECT contact_id FROM conversations WHERE id = ?1",
                [conversation_id],
                |r| r.get(0),
            )?;
            let dek = self.dek(&tx, &contact)?;
            self.insert_media(&tx, &dek, msg.id, &contact, media)?;
            then(&tx, &msg)?;
            tx.commit()?;
            Ok(Some(msg))
        })
    }

    /// How many call recordings and voicemails came before `cutoff` (what
    /// [`Self::delete_call_audio_before`] would delete now).
    pub fn count_call_audio_before(&self, cutoff: i64) -> Result<i64> {
        self.run(|c| {
            Ok(c.query_row(
                &format!(
                    "SELECT COUNT(*) FROM message_media f JOIN messages m ON m.id = f.message_id
                     WHERE f.kind IN {CALL_AUDIO_KINDS_SQL} AND m.created_at < ?1"
                ),
                [cutoff],
                |r| r.get(0),
            )?)
        })
    }

    /// Deletes the call recordings and voicemails that came before `cutoff`. The message
    /// that carried each stays (it says "Call recording (1:23)") and is then kept for the
    /// period of its own class.
    pub fn delete_call_audio_before(&self, cutoff: i64) -> Result<i64> {
        self.run(|c| {
            let n = c.execute(
                &format!(
                    "DELETE FROM message_media WHERE kind IN {CALL_AUDIO_KINDS_SQL}
                       AND message_id IN (SELECT id FROM messages WHERE created_at < ?1)"
                ),
                [cutoff],
            )?;
            Ok(i64::try_from(n).unwrap_or(i64::MAX))
        })
    }
}
