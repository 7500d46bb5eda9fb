//! Where a conversation is in the guided booking flow of the built-in responder
//! (service → day → time → name and contact → confirm). One row per conversation,
//! deleted when the flow ends or with the conversation; the details typed so far are
//! sealed like the booking's.

use super::{Appointments, BookingDetails, Result};
use rusqlite::{params, OptionalExtension as _};

/// A step of the flow: what the assistant last asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowStep {
    /// Which service.
    Service,
    /// Which day.
    Day,
    /// Which time.
    Time,
    /// Name, email or phone.
    Details,
    /// Yes or no.
    Confirm,
}

impl FlowStep {
    fn as_str(self) -> &'static str {
        match self {
            FlowStep::Service => "service",
            FlowStep::Day => "day",
            FlowStep::Time => "time",
            FlowStep::Details => "details",
            FlowStep::Confirm => "confirm",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "day" => FlowStep::Day,
            "time" => FlowStep::Time,
            "details" => FlowStep::Details,
            "confirm" => FlowStep::Confirm,
            _ => FlowStep::Service,
        }
    }
}

/// A conversation's flow state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flow {
    /// The conversation.
    pub conversation_id: String,
    /// Its contact.
    pub contact_id: String,
    /// What was last asked.
    pub step: FlowStep,
    /// The service chosen.
    pub service_id: Option<String>,
    /// The day chosen (`YYYY-MM-DD`, local).
    pub day: Option<String>,
    /// The time chosen, unix seconds.
    pub starts_at: Option<i64>,
    /// Name and contact details given.
    pub details: Option<BookingDetails>,
}

fn flow_aad_id(conversation_id: &str) -> String {
    format!("flow:{conversation_id}")
}

impl Appointments {
    /// The flow of a conversation, if one is under way.
    pub fn flow(&self, conversation_id: &str) -> Result<Option<Flow>> {
        let row = self.run(|c| {
            Ok(c.query_row(
                "SELECT contact_id, step, service_id, day, starts_at, details_ct
                 FROM appt_flows WHERE conversation_id = ?1",
                [conversation_id],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, Option<i64>>(4)?,
                        r.get::<_, Option<Vec<u8>>>(5)?,
                    ))
                },
            )
            .optional()?)
        })?;
        let Some((contact_id, step, service_id, day, starts_at, details_ct)) = row else {
            return Ok(None);
        };
        let details = match details_ct {
            Some(ct) => {
                let json =
                    self.content
                        .open_booking(&contact_id, &flow_aad_id(conversation_id), &ct)?;
                serde_json::from_str(&json).ok()
            }
            None => None,
        };
        Ok(Some(Flow {
            conversation_id: conversation_id.to_owned(),
            contact_id,
            step: FlowStep::parse(&step),
            service_id,
            day,
            starts_at,
            details,
        }))
    }

    /// Saves a flow's state.
    pub fn save_flow(&self, f: &Flow, now: i64) -> Result<()> {
        let details_ct = match &f.details {
            Some(d) => Some(self.content.seal_booking(
                &f.contact_id,
                &flow_aad_id(&f.conversation_id),
                &serde_json::to_string(d).unwrap_or_default(),
            )?),
            None => None,
        };
        self.run(|c| {
            c.execute(
                "INSERT INTO appt_flows (conversation_id, contact_id, step, service_id, day,
                     starts_at, details_ct, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (conversation_id) DO UPDATE SET step = ?3, service_id = ?4,
                     day = ?5, starts_at = ?6, details_ct = ?7, updated_at = ?8",
                params![
                    f.conversation_id,
                    f.contact_id,
                    f.step.as_str(),
                    f.service_id,
                    f.day,
                    f.starts_at,
                    details_ct,
                    now
                ],
            )?;
            Ok(())
        })
    }

    /// Ends a conversation's flow.
    pub fn end_flow(&self, conversation_id: &str) -> Result<()> {
        self.run(|c| {
            c.execute(
                "DELETE FROM appt_flows WHERE conversation_id = ?1",
                [conversation_id],
            )?;
            Ok(())
        })
    }
}
