//! iCalendar (RFC 5545) for a booking's confirmation and the staff feeds. Times are
//! written in UTC (`…Z`), which every calendar shows in its user's zone; text is escaped
//! and lines folded at 75 octets as the RFC asks.

use super::{Booking, BookingStatus};

/// The iCalendar text of `bookings` (one `VEVENT` each; cancelled ones as
/// `STATUS:CANCELLED` so calendars remove them), named `calendar_name`.
pub fn calendar(calendar_name: &str, host: &str, bookings: &[Booking], now: i64) -> String {
    let mut lines = vec![
        "BEGIN:VCALENDAR".to_owned(),
        "VERSION:2.0".to_owned(),
        "PRODID:-//Outpost//Appointments//EN".to_owned(),
        "CALSCALE:GREGORIAN".to_owned(),
        "METHOD:PUBLISH".to_owned(),
        format!("X-WR-CALNAME:{}", escape(calendar_name)),
    ];
    for b in bookings {
        lines.push("BEGIN:VEVENT".to_owned());
        lines.push(format!("UID:{}@{}", b.id, escape(host)));
        lines.push(format!("DTSTAMP:{}", utc(now)));
        lines.push(format!("DTSTART:{}", utc(b.starts_at)));
        lines.push(format!("DTEND:{}", utc(b.ends_at)));
        let summary = if b.details.name.is_empty() {
            b.service_name.clone()
        } else {
            format!("{} – {}", b.service_name, b.details.name)
        };
        lines.push(format!("SUMMARY:{}", escape(&summary)));
        if !b.staff_name.is_empty() {
            lines.push(format!(
                "DESCRIPTION:{}",
                escape(&format!("With {}", b.staff_name))
            ));
        }
        lines.push(format!(
            "STATUS:{}",
            match b.status {
                BookingStatus::Booked => "CONFIRMED",
                BookingStatus::Cancelled => "CANCELLED",
            }
        ));
        lines.push("END:VEVENT".to_owned());
    }
    lines.push("END:VCALENDAR".to_owned());
    let mut out = String::new();
    for l in lines {
        fold(&l, &mut out);
    }
    out
}

/// `20260329T070000Z`.
pub fn utc(at: i64) -> String {
    jiff::Timestamp::from_second(at)
        .map(|t| t.strftime("%Y%m%dT%H%M%SZ").to_string())
        .unwrap_or_default()
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// Appends `line` folded at 75 octets (never inside a UTF-8 character), CRLF-ended.
fn fold(line: &str, out: &mut String) {
    let mut width = 0;
    for ch in line.chars() {
        if width + ch.len_utf8() > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(ch);
        width += ch.len_utf8();
    }
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::appointments::BookingDetails;

    #[test]
    fn an_event_is_in_utc_escaped_and_folded() {
        let b = Booking {
            id: "b1".into(),
            service_id: "s".into(),
            service_name: "Cleaning, polish; whitening".into(),
            staff_id: String::new(),
            staff_name: String::new(),
            contact_id: "c".into(),
            conversation_id: None,
            starts_at: 1_774_767_600, // 2026-03-29T07:00:00Z
            ends_at: 1_774_771_200,
            status: BookingStatus::Booked,
            details: BookingDetails {
                name: "Zoé ".repeat(30),
                ..Default::default()
            },
            created_at: 0,
        };
        let ics = calendar("Acme", "acme.example", &[b], 1_774_700_000);
        assert!(ics.contains("DTSTART:20260329T070000Z\r\n"), "{ics}");
        assert!(ics.contains("DTEND:20260329T080000Z\r\n"));
        assert!(ics.contains("SUMMARY:Cleaning\\, polish\\; whitening – Zoé"));
        assert!(ics.contains("STATUS:CONFIRMED"));
        assert!(ics.lines().all(|l| l.len() <= 76), "folded: {ics}");
        assert!(ics.starts_with("BEGIN:VCALENDAR\r\n") && ics.ends_with("END:VCALENDAR\r\n"));
    }
}
