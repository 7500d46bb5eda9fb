//! The content store's value types. Enums are stored as their `as_str` names.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

macro_rules! stored_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident => $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vm])* $variant),+
        }

        impl $name {
            /// Every value, in display order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The stored (and URL) name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $s),+
                }
            }

            /// Inverse of `as_str`.
            pub fn parse(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }

        impl FromSql for $name {
            fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
                Self::parse(v.as_str()?).ok_or(FromSqlError::InvalidType)
            }
        }
    };
}

stored_enum!(
    /// Who wrote a message.
    Author {
        /// The customer's contact (inbound).
        Contact => "contact",
        /// The AI agent (outbound).
        Agent => "agent",
        /// A team member in the console (outbound).
        Human => "human",
        /// The node itself (status changes); not counted.
        System => "system",
    }
);

stored_enum!(
    /// Who answers a conversation.
    ConversationStatus {
        /// The agent answers.
        Open => "open",
        /// Taken over: a team member answers, the agent stays silent.
        Human => "human",
        /// Done; the contact writing again reopens it.
        Closed => "closed",
    }
);

stored_enum!(
    /// A contact's sales stage.
    Stage {
        /// Not qualified yet.
        New => "new",
        /// A real lead.
        Qualified => "qualified",
        /// Became a customer.
        Won => "won",
        /// Not interested.
        Lost => "lost",
    }
);

stored_enum!(
    /// What a follow-up is.
    FollowupKind {
        /// A reminder for the team.
        Reminder => "reminder",
        /// A message to send the contact when due.
        Message => "message",
    }
);

stored_enum!(
    /// Where a follow-up stands.
    FollowupStatus {
        /// Not due or not handled yet.
        Pending => "pending",
        /// Handled by a team member.
        Done => "done",
        /// The message was sent.
        Sent => "sent",
        /// Sending the message failed.
        Failed => "failed",
        /// Cancelled.
        Cancelled => "cancelled",
    }
);

impl ConversationStatus {
    /// Label for the console.
    pub fn label(self) -> &'static str {
        match self {
            Self::Open => "Assistant",
            Self::Human => "Taken over",
            Self::Closed => "Closed",
        }
    }
}

impl Stage {
    /// Label for the console.
    pub fn label(self) -> &'static str {
        match self {
            Self::New => "New",
            Self::Qualified => "Qualified",
            Self::Won => "Won",
            Self::Lost => "Lost",
        }
    }
}

impl FollowupKind {
    /// Label for the console.
    pub fn label(self) -> &'static str {
        match self {
            Self::Reminder => "Reminder",
            Self::Message => "Message to send",
        }
    }
}

/// A conversation between a contact and an agent on one channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conversation {
    /// Conversation id (UUID).
    pub id: String,
    /// The contact.
    pub contact_id: String,
    /// The agent answering.
    pub agent_id: String,
    /// Channel name (`web`, `telegram`, `whatsapp`).
    pub channel: String,
    /// Who answers.
    pub status: ConversationStatus,
    /// Unix seconds.
    pub created_at: i64,
    /// Last activity, unix seconds.
    pub updated_at: i64,
    /// Since when the conversation waits for the team (the customer asked for a person
    /// and nobody has taken it over yet), unix seconds.
    pub waiting_since: Option<i64>,
}

impl Conversation {
    /// A team member has it: taken over, not merely waiting for someone.
    pub fn taken_over(&self) -> bool {
        self.status == ConversationStatus::Human && self.waiting_since.is_none()
    }

    /// What the console calls its state.
    pub fn status_label(&self) -> &'static str {
        if self.waiting_since.is_some() {
            "Waiting for the team"
        } else {
            self.status.label()
        }
    }
}

/// One message, decrypted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Increasing id (pollers ask for `id > last seen`).
    pub id: i64,
    /// The conversation.
    pub conversation_id: String,
    /// Who wrote it.
    pub author: Author,
    /// The text.
    pub body: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// A row of the inbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConversationSummary {
    /// Conversation id.
    pub id: String,
    /// The contact.
    pub contact_id: String,
    /// The contact's name, or a neutral label (never its channel identity).
    pub contact_name: String,
    /// The agent.
    pub agent_id: String,
    /// Channel name.
    pub channel: String,
    /// Who answers.
    pub status: ConversationStatus,
    /// Author of the last message, if any.
    pub last_author: Option<Author>,
    /// First characters of the last message (empty when there is none).
    pub preview: String,
    /// Last activity, unix seconds.
    pub updated_at: i64,
    /// See [`Conversation::waiting_since`].
    pub waiting_since: Option<i64>,
}

/// A row of the contact list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContactSummary {
    /// Contact id (UUID).
    pub id: String,
    /// Name or neutral label.
    pub display_name: String,
    /// Email address the team entered, if any.
    pub email: Option<String>,
    /// Phone number the team entered, if any.
    pub phone: Option<String>,
    /// Channel the contact came from.
    pub channel: String,
    /// Sales stage.
    pub stage: Stage,
    /// Lead score, 0–100.
    pub score: i64,
    /// Tags.
    pub tags: Vec<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub last_seen_at: i64,
}

/// One contact, decrypted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContactDetail {
    /// Contact id (UUID).
    pub id: String,
    /// The stored name, if any.
    pub name: Option<String>,
    /// Name or neutral label.
    pub display_name: String,
    /// Email address the team entered (see [`check_email`]), if any.
    pub email: Option<String>,
    /// Phone number the team entered (see [`check_phone`]), if any. Not the channel
    /// identity, which may also be a phone number but is never edited.
    pub phone: Option<String>,
    /// Channel the contact came from.
    pub channel: String,
    /// Channel identity (chat id, phone number, web visitor id).
    pub identity: String,
    /// Sales stage.
    pub stage: Stage,
    /// Lead score, 0–100.
    pub score: i64,
    /// Tags.
    pub tags: Vec<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub last_seen_at: i64,
}

/// Changes to a contact; `None` fields stay as they are.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContactUpdate {
    /// New name; an empty string removes the name.
    pub name: Option<String>,
    /// New email address; an empty string removes it. Checked with [`check_email`].
    pub email: Option<String>,
    /// New phone number; an empty string removes it. Checked with [`check_phone`].
    pub phone: Option<String>,
    /// New stage.
    pub stage: Option<Stage>,
    /// New score, 0–100.
    pub score: Option<i64>,
    /// New tags (replace the old ones).
    pub tags: Option<Vec<String>>,
}

/// Longest email address accepted, characters (RFC 5321's limit on a path).
pub const MAX_EMAIL_CHARS: usize = 254;
/// Longest phone number accepted, characters.
pub const MAX_PHONE_CHARS: usize = 32;

/// An email address as stored: trimmed; empty means "none". Refused (with a message for
/// the user that does not quote the value) unless it is plausible: one `@` with text on
/// both sides, a dot inside the domain, no spaces or control characters, at most
/// [`MAX_EMAIL_CHARS`]. Deliverability is not checked: nothing here sends mail.
pub fn check_email(raw: &str) -> Result<String, &'static str> {
    let email = raw.trim();
    if email.is_empty() {
        return Ok(String::new());
    }
    if email.chars().count() > MAX_EMAIL_CHARS {
        return Err("An email address can be at most 254 characters.");
    }
    let plausible = email.matches('@').count() == 1
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    if plausible {
        Ok(email.to_owned())
    } else {
        Err("The email address is not valid: write it like name@example.com, without spaces.")
    }
}

/// A phone number as stored: trimmed; empty means "none". Refused (with a message for
/// the user that does not quote the value) unless it has only digits, spaces and
/// `+ ( ) - .`, at least one digit, and at most [`MAX_PHONE_CHARS`].
pub fn check_phone(raw: &str) -> Result<String, &'static str> {
    let phone = raw.trim();
    if phone.is_empty() {
        return Ok(String::new());
    }
    if phone.chars().count() > MAX_PHONE_CHARS {
        return Err("A phone number can be at most 32 characters.");
    }
    let allowed = phone
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '+' | '(' | ')' | '-' | '.'));
    if allowed && phone.chars().any(|c| c.is_ascii_digit()) {
        Ok(phone.to_owned())
    } else {
        Err("The phone number is not valid: use digits, spaces and + ( ) - . only.")
    }
}

/// A follow-up, decrypted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Followup {
    /// Follow-up id (UUID).
    pub id: String,
    /// The contact.
    pub contact_id: String,
    /// Reminder or message.
    pub kind: FollowupKind,
    /// When it is due, unix seconds.
    pub due_at: i64,
    /// The text.
    pub text: String,
    /// Where it stands.
    pub status: FollowupStatus,
    /// CP user id of who scheduled it.
    pub created_by: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// When it was completed, unix seconds.
    pub done_at: Option<i64>,
}

/// What a timeline entry is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TimelineKind {
    /// A message in one of the contact's conversations.
    Message(Author),
    /// An event: `created`, `note`, `name_changed`, `email_changed`, `phone_changed`,
    /// `stage_changed`, `score_changed`, `tags_changed`,
    /// `conversation_takeover|handback|reopened|closed`, `followup_done`.
    Event(String),
    /// A follow-up (at its creation time).
    Followup {
        /// Reminder or message.
        kind: FollowupKind,
        /// When it is due.
        due_at: i64,
        /// Where it stands.
        status: FollowupStatus,
    },
}

/// One entry of a contact's timeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimelineEntry {
    /// Unix seconds.
    pub at: i64,
    /// What it is.
    pub kind: TimelineKind,
    /// Message text, event detail or follow-up text.
    pub text: String,
    /// CP user id (or `agent`) behind an event or follow-up.
    pub actor: Option<String>,
    /// The conversation of a message.
    pub conversation_id: Option<String>,
    /// Tie-breaker within one second (row id).
    pub seq: i64,
}

impl TimelineEntry {
    /// Short label for the console ("Contact", "Note", "Stage changed", …).
    pub fn label(&self) -> String {
        match &self.kind {
            TimelineKind::Message(a) => match a {
                Author::Contact => "Contact".to_owned(),
                Author::Agent => "Assistant".to_owned(),
                Author::Human => "Team".to_owned(),
                Author::System => "System".to_owned(),
            },
            TimelineKind::Event(k) => match k.as_str() {
                "created" => "Contact created".to_owned(),
                "note" => "Note".to_owned(),
                other => {
                    let s = other.replace('_', " ");
                    let mut c = s.chars();
                    c.next()
                        .map(|f| f.to_uppercase().chain(c).collect())
                        .unwrap_or_default()
                }
            },
            TimelineKind::Followup { kind, .. } => format!("Follow-up ({})", kind.label()),
        }
    }
}
