//! The booking tools a model will call (`find_slots`, `book`, `reschedule`, `cancel`):
//! their JSON Schemas in OpenAI's (`tools: [{type: "function", function: …}]`) and
//! Anthropic's (`tools: [{name, description, input_schema}]`) request formats, and
//! [`Guide::run_tool`], which executes one call for the conversation's contact and
//! answers in JSON. The runtime offers them to OpenAI and Anthropic models when the
//! business has services (`engine::agent`); other providers get the guided flow.
//!
//! A tool acts only for the contact of the conversation it is called in: `reschedule` and
//! `cancel` refuse a booking of anyone else as if it did not exist, so a prompt cannot
//! reach another customer's appointment.

use crate::domain::appointments::{slots, AppointmentError, BookRequest, BookingDetails};
use crate::engine::booking::{zone_words, Guide};
use crate::engine::llm::ToolSpec;
use serde_json::{json, Value};

/// Name, description and JSON Schema of each tool.
pub fn specs() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        (
            "find_slots",
            "Free appointment times for a service, soonest first. Call before booking.",
            json!({
                "type": "object",
                "properties": {
                    "service": {"type": "string", "description": "Service name, as listed"},
                    "from_date": {"type": "string", "description": "First day wanted, YYYY-MM-DD (optional)"}
                },
                "required": ["service"]
            }),
        ),
        (
            "book",
            "Books a free time returned by find_slots for the customer.",
            json!({
                "type": "object",
                "properties": {
                    "service": {"type": "string"},
                    "starts_at": {"type": "integer", "description": "The slot's starts_at, from find_slots"},
                    "name": {"type": "string"},
                    "email": {"type": "string"},
                    "phone": {"type": "string"}
                },
                "required": ["service", "starts_at", "name"]
            }),
        ),
        (
            "reschedule",
            "Moves one of this customer's bookings to another free time.",
            json!({
                "type": "object",
                "properties": {
                    "booking_id": {"type": "string"},
                    "starts_at": {"type": "integer"}
                },
                "required": ["booking_id", "starts_at"]
            }),
        ),
        (
            "cancel",
            "Cancels one of this customer's bookings.",
            json!({
                "type": "object",
                "properties": {"booking_id": {"type": "string"}},
                "required": ["booking_id"]
            }),
        ),
    ]
}

/// The tools as offered in a [`crate::engine::llm::ChatRequest`].
pub fn tool_specs() -> Vec<ToolSpec> {
    specs()
        .into_iter()
        .map(|(name, description, schema)| ToolSpec {
            name,
            description,
            schema,
        })
        .collect()
}

/// The `tools` array of an OpenAI chat-completions request.
pub fn openai_tools() -> Value {
    crate::engine::llm::openai::tools(&tool_specs())
}

/// The `tools` array of an Anthropic messages request.
pub fn anthropic_tools() -> Value {
    crate::engine::llm::anthropic::tools(&tool_specs())
}

fn refusal(code: &str, message: &str) -> Value {
    json!({"ok": false, "error": code, "message": message})
}

impl Guide<'_> {
    /// Runs the tool `name` with `args` for `contact_id` in `conversation_id` at `now`;
    /// the answer the model reads, in JSON. Storage failures are errors; everything a
    /// customer could cause is an answer with `ok: false`.
    pub fn run_tool(
        &self,
        name: &str,
        args: &Value,
        conversation_id: &str,
        contact_id: &str,
        now: i64,
    ) -> Result<Value, AppointmentError> {
        let settings = self.book.settings()?;
        let tz = settings.tz();
        let zone = zone_words(&settings.time_zone);
        let slot_json =
            |starts_at: i64| json!({"starts_at": starts_at, "label": slots::label(&tz, starts_at)});
        let service_named = |n: &str| -> Result<Option<_>, AppointmentError> {
            let n = n.trim().to_lowercase();
            Ok(self
                .book
                .services()?
                .into_iter()
                .find(|s| s.name.to_lowercase() == n))
        };
        let own = |id: &str| -> Result<Option<_>, AppointmentError> {
            match self.book.booking(id) {
                Ok(b) if b.contact_id == contact_id => Ok(Some(b)),
                Ok(_) | Err(AppointmentError::NotFound) => Ok(None),
                Err(e) => Err(e),
            }
        };
        let taken = |others: Vec<crate::domain::appointments::Slot>| {
            json!({"ok": false, "error": "taken",
                   "message": "That time is no longer available.",
                   "other_slots": others.iter().map(|s| slot_json(s.starts_at)).collect::<Vec<_>>()})
        };
        Ok(match name {
            "find_slots" => {
                let Some(service) = service_named(args["service"].as_str().unwrap_or_default())?
                else {
                    let names: Vec<String> =
                        self.book.services()?.into_iter().map(|s| s.name).collect();
                    return Ok(json!({"ok": false, "error": "unknown_service", "services": names}));
                };
                let from = args["from_date"]
                    .as_str()
                    .and_then(|d| d.parse::<jiff::civil::Date>().ok())
                    .and_then(|d| slots::instant(&tz, d, 0))
                    .unwrap_or(now);
                let found = self
                    .book
                    .find_slots(&service.id, None, from, i64::MAX / 2, now, 10)?;
                json!({"ok": true, "service": service.name, "duration_minutes": service.duration_minutes,
                       "time_zone": zone,
                       "slots": found.iter().map(|s| slot_json(s.starts_at)).collect::<Vec<_>>()})
            }
            "book" => {
                let Some(service) = service_named(args["service"].as_str().unwrap_or_default())?
                else {
                    return Ok(refusal("unknown_service", "No service has that name."));
                };
                let req = BookRequest {
                    service_id: service.id,
                    staff_id: None,
                    starts_at: args["starts_at"].as_i64().unwrap_or_default(),
                    contact_id: contact_id.to_owned(),
                    conversation_id: Some(conversation_id.to_owned()),
                    details: BookingDetails {
                        name: args["name"].as_str().unwrap_or_default().to_owned(),
                        email: args["email"].as_str().unwrap_or_default().to_owned(),
                        phone: args["phone"].as_str().unwrap_or_default().to_owned(),
                        note: String::new(),
                    },
                };
                match self.book.book(&req, now) {
                    Ok(b) => {
                        json!({"ok": true, "booking_id": b.id, "label": slots::label(&tz, b.starts_at),
                                    "time_zone": zone, "confirmation": self.confirmation(&b)?})
                    }
                    Err(AppointmentError::Taken(others)) => taken(others),
                    Err(AppointmentError::Invalid(m)) => refusal("invalid", m),
                    Err(e) => return Err(e),
                }
            }
            "reschedule" | "cancel" => {
                let Some(b) = own(args["booking_id"].as_str().unwrap_or_default())? else {
                    return Ok(refusal(
                        "unknown_booking",
                        "This customer has no such booking.",
                    ));
                };
                let result = if name == "cancel" {
                    self.book.cancel(&b.id, now)
                } else {
                    self.book
                        .reschedule(&b.id, args["starts_at"].as_i64().unwrap_or_default(), now)
                };
                match result {
                    Ok(b) => json!({"ok": true, "booking_id": b.id, "status": b.status.as_str(),
                                    "label": slots::label(&tz, b.starts_at), "time_zone": zone}),
                    Err(AppointmentError::Taken(others)) => taken(others),
                    Err(AppointmentError::Invalid(m)) => refusal("invalid", m),
                    Err(e) => return Err(e),
                }
            }
            _ => refusal("unknown_tool", "No such tool."),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schemas_follow_each_providers_request_format() {
        let o = openai_tools();
        assert_eq!(o[0]["type"], "function");
        assert_eq!(o[0]["function"]["name"], "find_slots");
        assert_eq!(o[1]["function"]["parameters"]["required"][1], "starts_at");
        let a = anthropic_tools();
        assert_eq!(a[3]["name"], "cancel");
        assert_eq!(a[3]["input_schema"]["type"], "object");
        let names: Vec<&str> = specs().iter().map(|s| s.0).collect();
        assert_eq!(names, ["find_slots", "book", "reschedule", "cancel"]);
    }
}
