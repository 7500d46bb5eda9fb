//! Booking from chat through a guided flow: service → day → time → name and contact →
//! confirm, each step offering quick replies (the widget shows them as buttons; any
//! channel can type them). The flow starts when a customer asks to book and the business
//! has services; "stop" leaves it. A time taken meanwhile is said in words with other
//! times offered. The confirmation carries the `.ics` link and the cancel and reschedule
//! links, signed (see `domain::appointments::link`). Reminders 24 h and 2 h before go into
//! the booking's conversation, once each.

use crate::domain::appointments::{
    slots, AppointmentError, Appointments, BookRequest, Booking, BookingDetails, Flow, FlowStep,
    Service, REMIND_LATE_SECS,
};
use crate::domain::content::{Author, Content};
use crate::platform::store::Store;
use jiff::civil::Date;
use jiff::tz::TimeZone;

/// Days offered at the day step.
const DAYS_OFFERED: usize = 6;
/// Times offered at the time step.
const TIMES_OFFERED: usize = 12;

/// What the assistant says at a step, and the quick replies offered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Turn {
    /// The message.
    pub text: String,
    /// Buttons the widget shows; tapping one sends its text.
    pub quick_replies: Vec<String>,
}

/// Whether a customer's message asks to book an appointment.
pub fn wants_to_book(text: &str) -> bool {
    let t = text.to_lowercase();
    [
        "book",
        "appointment",
        "schedule a",
        "reserve",
        "reservation",
        "rendez-vous",
        "rdv",
    ]
    .iter()
    .any(|w| t.contains(w))
}

fn wants_to_stop(text: &str) -> bool {
    matches!(
        text.trim().to_lowercase().as_str(),
        "stop" | "cancel" | "never mind" | "nevermind" | "no thanks" | "quit"
    )
}

/// "Paris time" for `Europe/Paris`.
pub fn zone_words(name: &str) -> String {
    if name == "UTC" {
        return "UTC".into();
    }
    format!(
        "{} time",
        name.rsplit('/').next().unwrap_or(name).replace('_', " ")
    )
}

/// Picks the option `text` names: its number (1-based) or its text, case-insensitive.
fn pick(text: &str, options: &[String]) -> Option<usize> {
    let t = text.trim().trim_end_matches('.').to_lowercase();
    if let Ok(n) = t.parse::<usize>() {
        return (1..=options.len()).contains(&n).then(|| n - 1);
    }
    options
        .iter()
        .position(|o| o.to_lowercase() == t)
        .or_else(|| {
            options
                .iter()
                .position(|o| o.to_lowercase().starts_with(&t) && !t.is_empty())
        })
        .or_else(|| options.iter().position(|o| t.contains(&o.to_lowercase())))
}

fn service_label(s: &Service) -> String {
    s.name.clone()
}

fn service_words(s: &Service) -> String {
    if s.price.is_empty() {
        format!("{} ({} min)", s.name, s.duration_minutes)
    } else {
        format!("{} ({} min, {})", s.name, s.duration_minutes, s.price)
    }
}

/// Reads a name, an email address and a phone number from one message ("Ada Lovelace,
/// ada@example.com").
pub fn parse_details(text: &str) -> BookingDetails {
    let mut d = BookingDetails::default();
    let mut name = Vec::new();
    for part in text.split([',', ';', '\n']) {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        if let Some(email) = part.split_whitespace().find(|w| w.contains('@')) {
            d.email = email
                .trim_matches(|c: char| c == '<' || c == '>')
                .to_owned();
            let rest: Vec<&str> = part
                .split_whitespace()
                .filter(|w| !w.contains('@'))
                .collect();
            if !rest.is_empty() {
                name.push(rest.join(" "));
            }
        } else if part.chars().filter(char::is_ascii_digit).count() >= 6
            && part
                .chars()
                .all(|c| c.is_ascii_digit() || " +-().".contains(c))
        {
            d.phone = part.to_owned();
        } else {
            name.push(part.to_owned());
        }
    }
    d.name = name.join(" ").chars().take(100).collect();
    d
}

/// The guided flow over the node's book and content.
pub struct Guide<'a> {
    /// The book.
    pub book: &'a Appointments,
    /// The content store.
    pub content: &'a Content,
    /// The node database (its public URL and id, for links).
    pub store: &'a Store,
}

impl Guide<'_> {
    /// The turn that answers `text` in `conversation_id` at `now`, or `None` when the
    /// message is not about booking (the usual responder answers it).
    pub fn turn(
        &self,
        conversation_id: &str,
        contact_id: &str,
        text: &str,
        now: i64,
    ) -> Result<Option<Turn>, AppointmentError> {
        let flow = self.book.flow(conversation_id)?;
        let Some(mut flow) = flow else {
            if !wants_to_book(text) {
                return Ok(None);
            }
            let services = self.book.services()?;
            if services.is_empty() {
                return Ok(None);
            }
            let mut flow = Flow {
                conversation_id: conversation_id.to_owned(),
                contact_id: contact_id.to_owned(),
                step: FlowStep::Service,
                service_id: None,
                day: None,
                starts_at: None,
                details: None,
            };
            // "book a check-up" names the service at once
            let labels: Vec<String> = services.iter().map(service_label).collect();
            let named = services
                .iter()
                .position(|s| text.to_lowercase().contains(&s.name.to_lowercase()));
            if let Some(i) = named.or((services.len() == 1).then_some(0)) {
                flow.service_id = Some(services[i].id.clone());
                return self.ask_day(&mut flow, now, None).map(Some);
            }
            self.book.save_flow(&flow, now)?;
            return Ok(Some(Turn {
                text: format!(
                    "Happy to book that. Which service? {}",
                    services
                        .iter()
                        .map(service_words)
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
                quick_replies: labels,
            }));
        };
        if wants_to_stop(text) {
            self.book.end_flow(conversation_id)?;
            return Ok(Some(Turn {
                text: "All right, nothing was booked.".into(),
                quick_replies: vec![],
            }));
        }
        match flow.step {
            FlowStep::Service => {
                let services = self.book.services()?;
                let labels: Vec<String> = services.iter().map(service_label).collect();
                match pick(text, &labels) {
                    Some(i) => {
                        flow.service_id = Some(services[i].id.clone());
                        self.ask_day(&mut flow, now, None).map(Some)
                    }
                    None => Ok(Some(Turn {
                        text: "Which service would you like? (Or say \"stop\".)".into(),
                        quick_replies: labels,
                    })),
                }
            }
            FlowStep::Day => {
                let tz = self.book.settings()?.tz();
                let days = self.days(&flow, now)?;
                let labels: Vec<String> = days.iter().map(|d| slots::day_label(*d)).collect();
                match pick(text, &labels) {
                    Some(i) => {
                        flow.day = Some(days[i].to_string());
                        self.ask_time(&mut flow, &tz, now, None).map(Some)
                    }
                    None => self
                        .ask_day(&mut flow, now, Some("Please pick one of these days."))
                        .map(Some),
                }
            }
            FlowStep::Time => {
                let tz = self.book.settings()?.tz();
                let times = self.times(&flow, &tz, now)?;
                let labels: Vec<String> = times.iter().map(|t| hhmm(&tz, *t)).collect();
                let full: Vec<String> = times.iter().map(|t| slots::label(&tz, *t)).collect();
                match pick(text, &labels).or_else(|| pick(text, &full)) {
                    Some(i) => {
                        flow.starts_at = Some(times[i]);
                        flow.step = FlowStep::Details;
                        self.book.save_flow(&flow, now)?;
                        Ok(Some(Turn {
                            text: "What name should I book under? Add an email address or phone number so we can reach you.".into(),
                            quick_replies: vec![],
                        }))
                    }
                    None => self
                        .ask_time(&mut flow, &tz, now, Some("Please pick one of these times."))
                        .map(Some),
                }
            }
            FlowStep::Details => {
                let details = parse_details(text);
                if details.name.trim().is_empty() {
                    return Ok(Some(Turn {
                        text: "What name should I book under?".into(),
                        quick_replies: vec![],
                    }));
                }
                flow.details = Some(details);
                flow.step = FlowStep::Confirm;
                self.book.save_flow(&flow, now)?;
                self.confirm_question(&flow).map(Some)
            }
            FlowStep::Confirm => {
                let t = text.trim().to_lowercase();
                if !(t.starts_with("yes") || t == "y" || t == "ok" || t.starts_with("confirm")) {
                    self.book.end_flow(conversation_id)?;
                    return Ok(Some(Turn {
                        text: "All right, nothing was booked.".into(),
                        quick_replies: vec![],
                    }));
                }
                self.book_it(&mut flow, now).map(Some)
            }
        }
    }

    fn days(&self, flow: &Flow, now: i64) -> Result<Vec<Date>, AppointmentError> {
        let service = flow.service_id.as_deref().unwrap_or_default();
        self.book.free_days(service, now, DAYS_OFFERED)
    }

    fn times(&self, flow: &Flow, tz: &TimeZone, now: i64) -> Result<Vec<i64>, AppointmentError> {
        let Some(day) = flow.day.as_deref().and_then(|d| d.parse::<Date>().ok()) else {
            return Ok(vec![]);
        };
        let (Some(from), Some(until)) = (slots::instant(tz, day, 0), slots::instant(tz, day, 1440))
        else {
            return Ok(vec![]);
        };
        let service = flow.service_id.as_deref().unwrap_or_default();
        Ok(self
            .book
            .find_slots(service, None, from, until, now, TIMES_OFFERED)?
            .into_iter()
            .map(|s| s.starts_at)
            .collect())
    }

    fn ask_day(
        &self,
        flow: &mut Flow,
        now: i64,
        prefix: Option<&str>,
    ) -> Result<Turn, AppointmentError> {
        let days = self.days(flow, now)?;
        if days.is_empty() {
            self.book.end_flow(&flow.conversation_id)?;
            return Ok(Turn {
                text: "Sorry, there is no free time to book in the coming weeks. A member of the team can help: ask for a person.".into(),
                quick_replies: vec![],
            });
        }
        flow.step = FlowStep::Day;
        self.book.save_flow(flow, now)?;
        let service = self
            .book
            .service(flow.service_id.as_deref().unwrap_or_default())?;
        Ok(Turn {
            text: format!(
                "{}Which day would you like for {}?",
                prefix.map(|p| format!("{p} ")).unwrap_or_default(),
                service_words(&service)
            ),
            quick_replies: days.iter().map(|d| slots::day_label(*d)).collect(),
        })
    }

    fn ask_time(
        &self,
        flow: &mut Flow,
        tz: &TimeZone,
        now: i64,
        prefix: Option<&str>,
    ) -> Result<Turn, AppointmentError> {
        let times = self.times(flow, tz, now)?;
        if times.is_empty() {
            flow.day = None;
            return self.ask_day(flow, now, Some("That day is full now."));
        }
        flow.step = FlowStep::Time;
        self.book.save_flow(flow, now)?;
        let settings = self.book.settings()?;
        Ok(Turn {
            text: format!(
                "{}Which time ({})?",
                prefix.map(|p| format!("{p} ")).unwrap_or_default(),
                zone_words(&settings.time_zone)
            ),
            quick_replies: times.iter().map(|t| hhmm(tz, *t)).collect(),
        })
    }

    fn confirm_question(&self, flow: &Flow) -> Result<Turn, AppointmentError> {
        let settings = self.book.settings()?;
        let tz = settings.tz();
        let service = self
            .book
            .service(flow.service_id.as_deref().unwrap_or_default())?;
        let name = flow
            .details
            .as_ref()
            .map(|d| d.name.clone())
            .unwrap_or_default();
        Ok(Turn {
            text: format!(
                "{} on {} ({}) for {name}. Shall I book it?",
                service_words(&service),
                slots::label(&tz, flow.starts_at.unwrap_or_default()),
                zone_words(&settings.time_zone)
            ),
            quick_replies: vec!["Yes, book it".into(), "No".into()],
        })
    }

    fn book_it(&self, flow: &mut Flow, now: i64) -> Result<Turn, AppointmentError> {
        let req = BookRequest {
            service_id: flow.service_id.clone().unwrap_or_default(),
            staff_id: None,
            starts_at: flow.starts_at.unwrap_or_default(),
            contact_id: flow.contact_id.clone(),
            conversation_id: Some(flow.conversation_id.clone()),
            details: flow.details.clone().unwrap_or_default(),
        };
        match self.book.book(&req, now) {
            Ok(b) => {
                self.book.end_flow(&flow.conversation_id)?;
                Ok(Turn {
                    text: self.confirmation(&b)?,
                    quick_replies: vec![],
                })
            }
            Err(AppointmentError::Taken(others)) => {
                let tz = self.book.settings()?.tz();
                flow.step = FlowStep::Time;
                flow.day = others
                    .first()
                    .and_then(|s| slots::local_date(&tz, s.starts_at))
                    .map(|d| d.to_string());
                self.book.save_flow(flow, now)?;
                let labels: Vec<String> = others
                    .iter()
                    .map(|s| slots::label(&tz, s.starts_at))
                    .collect();
                Ok(Turn {
                    text: if labels.is_empty() {
                        "Sorry, that time was just taken and nothing else is free soon.".into()
                    } else {
                        format!(
                            "Sorry, that time was just taken. Other times: {}.",
                            labels.join(", ")
                        )
                    },
                    quick_replies: labels,
                })
            }
            Err(e) => Err(e),
        }
    }

    /// The confirmation message of a booking, with its signed links.
    pub fn confirmation(&self, b: &Booking) -> Result<String, AppointmentError> {
        let settings = self.book.settings()?;
        let tz = settings.tz();
        let mut text = format!(
            "Booked: {} on {} ({}){}.",
            b.service_name,
            slots::label(&tz, b.starts_at),
            zone_words(&settings.time_zone),
            if b.staff_name.is_empty() {
                String::new()
            } else {
                format!(" with {}", b.staff_name)
            }
        );
        if let Some(state) = self.store.node_state()? {
            let links = self
                .book
                .links(&state.public_url, state.node_id.as_str(), b);
            text.push_str(&format!(
                "\nAdd it to your calendar: {}\nReschedule: {}\nCancel: {}",
                links.ics, links.reschedule, links.cancel
            ));
        }
        Ok(text)
    }

    /// Sends the reminders due at `now` into each booking's conversation (or the
    /// contact's latest), once each. Returns how many were sent.
    pub fn send_due_reminders(&self, now: i64) -> Result<usize, AppointmentError> {
        let settings = self.book.settings()?;
        let tz = settings.tz();
        let mut sent = 0;
        for r in self.book.claim_due_reminders(now)? {
            let b = &r.booking;
            let conv = match &b.conversation_id {
                Some(c) if self.content.conversation(c)?.is_some() => Some(c.clone()),
                _ => self
                    .content
                    .contact_conversations(&b.contact_id, 1)?
                    .first()
                    .map(|c| c.id.clone()),
            };
            let Some(conv) = conv else { continue };
            let when = if r.before_secs == REMIND_LATE_SECS {
                "today"
            } else {
                "tomorrow"
            };
            let text = format!(
                "Reminder: your {} is {when}, {} ({}).",
                b.service_name,
                slots::label(&tz, b.starts_at),
                zone_words(&settings.time_zone)
            );
            self.content.append_message(&conv, Author::Agent, &text)?;
            sent += 1;
        }
        Ok(sent)
    }
}

/// "09:30" in `tz`.
fn hhmm(tz: &TimeZone, at: i64) -> String {
    jiff::Timestamp::from_second(at)
        .map(|t| {
            t.to_zoned_datetime(tz.clone())
                .strftime("%H:%M")
                .to_string()
        })
        .unwrap_or_default()
}
