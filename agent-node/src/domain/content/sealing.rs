//! What every sealed column is sealed with: the associated data binding each ciphertext
//! to its row (a ciphertext moved to another row does not open), and sealing and opening
//! under a contact's data key.

use super::{ContentError, Dek, Result};

pub(super) fn key_aad(contact_id: &str, kek_id: i64) -> Vec<u8> {
    format!("contact-key:{contact_id}:{kek_id}").into_bytes()
}

pub(super) fn identity_aad(contact_id: &str) -> Vec<u8> {
    format!("contact-identity:{contact_id}").into_bytes()
}

pub(super) fn name_aad(contact_id: &str) -> Vec<u8> {
    format!("contact-name:{contact_id}").into_bytes()
}

pub(super) fn email_aad(contact_id: &str) -> Vec<u8> {
    format!("contact-email:{contact_id}").into_bytes()
}

pub(super) fn phone_aad(contact_id: &str) -> Vec<u8> {
    format!("contact-phone:{contact_id}").into_bytes()
}

/// The contact fields the team types in besides the name, sealed like it.
#[derive(Clone, Copy)]
pub(super) enum Detail {
    Email,
    Phone,
}

impl Detail {
    pub(super) fn column(self) -> &'static str {
        match self {
            Detail::Email => "email_ct",
            Detail::Phone => "phone_ct",
        }
    }
    pub(super) fn aad(self, contact_id: &str) -> Vec<u8> {
        match self {
            Detail::Email => email_aad(contact_id),
            Detail::Phone => phone_aad(contact_id),
        }
    }
    /// The timeline event a change records.
    pub(super) fn event(self) -> &'static str {
        match self {
            Detail::Email => "email_changed",
            Detail::Phone => "phone_changed",
        }
    }
    pub(super) fn label(self) -> &'static str {
        match self {
            Detail::Email => "Email",
            Detail::Phone => "Phone",
        }
    }
}

pub(super) fn tags_aad(contact_id: &str) -> Vec<u8> {
    format!("contact-tags:{contact_id}").into_bytes()
}

pub(super) fn msg_aad(id: i64) -> Vec<u8> {
    format!("msg:{id}").into_bytes()
}

pub(super) fn media_aad(message_id: i64) -> Vec<u8> {
    format!("media:{message_id}").into_bytes()
}

pub(super) fn message_extra_aad(message_id: i64) -> Vec<u8> {
    format!("message-extra:{message_id}").into_bytes()
}

pub(super) fn event_aad(id: i64) -> Vec<u8> {
    format!("event:{id}").into_bytes()
}

pub(super) fn followup_aad(id: &str) -> Vec<u8> {
    format!("followup:{id}").into_bytes()
}

pub(super) fn followup_template_aad(id: &str) -> Vec<u8> {
    format!("followup-template:{id}").into_bytes()
}

pub(super) fn seal(dek: &Dek, plaintext: &str, aad: &[u8]) -> Vec<u8> {
    outpost_crypto::aead_seal(dek, plaintext.as_bytes(), aad)
}

pub(super) fn open(dek: &Dek, sealed: &[u8], aad: &[u8]) -> Result<String> {
    let plain = outpost_crypto::aead_open(dek, sealed, aad).map_err(|_| ContentError::Crypto)?;
    String::from_utf8(plain).map_err(|_| ContentError::Crypto)
}

pub(super) fn open_opt(dek: &Dek, sealed: Option<Vec<u8>>, aad: &[u8]) -> Result<Option<String>> {
    sealed.map(|s| open(dek, &s, aad)).transpose()
}

pub(super) fn open_tags(
    dek: &Dek,
    sealed: Option<Vec<u8>>,
    contact_id: &str,
) -> Result<Vec<String>> {
    match open_opt(dek, sealed, &tags_aad(contact_id))? {
        Some(json) => serde_json::from_str(&json).map_err(|_| ContentError::Crypto),
        None => Ok(Vec::new()),
    }
}

/// Associated data of a booking's contact details (`domain::appointments`).
pub(super) fn booking_aad(id: &str) -> Vec<u8> {
    format!("booking:{id}").into_bytes()
}

impl super::Content {
    /// Seals a booking's contact details (JSON) under the contact's data key, bound to
    /// the booking id: erasing the contact leaves them unreadable in every copy.
    pub fn seal_booking(&self, contact_id: &str, booking_id: &str, json: &str) -> Result<Vec<u8>> {
        self.run(|c| {
            let dek = self.dek(c, contact_id)?;
            Ok(seal(&dek, json, &booking_aad(booking_id)))
        })
    }

    /// Opens what [`Self::seal_booking`] sealed.
    pub fn open_booking(
        &self,
        contact_id: &str,
        booking_id: &str,
        sealed: &[u8],
    ) -> Result<String> {
        self.run(|c| {
            let dek = self.dek(c, contact_id)?;
            open(&dek, sealed, &booking_aad(booking_id))
        })
    }
}
