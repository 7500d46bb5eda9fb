//! Slot computation, pure: from weekly opening windows in the business's IANA time zone,
//! closed days and the times already booked, the start instants a service of a given
//! length can be booked at.
//!
//! Each day's window is turned into two instants (its opening and closing in that zone,
//! as that day's offset says) and slots step through the real time between them. On the
//! spring change (Paris, last Sunday of March) a 00:00–04:00 window is three hours long
//! and 02:00 is never offered; on the autumn change it is five hours long and 02:00 comes
//! twice, as two different instants. Windows end at 24:00 at the latest.

use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use jiff::Timestamp;
use std::collections::HashSet;

/// A weekly opening window: `weekday` 1 (Monday) – 7 (Sunday), minutes after midnight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// 1 = Monday … 7 = Sunday.
    pub weekday: i8,
    /// Opening, minutes after local midnight (0–1439).
    pub start_minute: i32,
    /// Closing, minutes after local midnight (1–1440), after `start_minute`.
    pub end_minute: i32,
}

/// What the computation needs about one bookable resource (a staff member, or the
/// business itself when it has none).
pub struct Calendar<'a> {
    /// The business's zone.
    pub tz: &'a TimeZone,
    /// Weekly windows.
    pub windows: &'a [Window],
    /// Closed days (holidays), local dates.
    pub closed: &'a HashSet<Date>,
    /// Booked intervals `[start, end)`, unix seconds.
    pub busy: &'a [(i64, i64)],
}

/// Start instants (unix seconds, ascending) of `duration_secs`-long slots stepping by
/// `step_secs` from each window's opening, that start within `[from, until)`, fit in
/// their window and overlap nothing busy.
pub fn free_slots(
    cal: &Calendar<'_>,
    duration_secs: i64,
    step_secs: i64,
    from: i64,
    until: i64,
) -> Vec<i64> {
    let mut out = Vec::new();
    if duration_secs <= 0 || step_secs <= 0 || until <= from {
        return out;
    }
    let Some(mut day) = local_date(cal.tz, from) else {
        return out;
    };
    // One day of margin before: a window of the previous local day may still be open.
    if let Ok(prev) = day.yesterday() {
        day = prev;
    }
    let Some(last) = local_date(cal.tz, until) else {
        return out;
    };
    while day <= last {
        if !cal.closed.contains(&day) {
            let weekday = day.weekday().to_monday_one_offset();
            for w in cal.windows.iter().filter(|w| w.weekday == weekday) {
                let (Some(open), Some(close)) = (
                    instant(cal.tz, day, w.start_minute),
                    instant(cal.tz, day, w.end_minute),
                ) else {
                    continue;
                };
                let mut t = open;
                while t + duration_secs <= close {
                    if t >= from && t < until && !overlaps(cal.busy, t, t + duration_secs) {
                        out.push(t);
                    }
                    t += step_secs;
                }
            }
        }
        match day.tomorrow() {
            Ok(next) => day = next,
            Err(_) => break,
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Whether `[start, end)` overlaps any busy interval.
pub fn overlaps(busy: &[(i64, i64)], start: i64, end: i64) -> bool {
    busy.iter().any(|&(b0, b1)| start < b1 && b0 < end)
}

/// The local date of `at` in `tz`.
pub fn local_date(tz: &TimeZone, at: i64) -> Option<Date> {
    Timestamp::from_second(at)
        .ok()
        .map(|t| t.to_zoned_datetime(tz.clone()).date())
}

/// The instant of `minute` minutes after midnight of `day` in `tz` (1440 = the next
/// midnight). A local time that does not exist (skipped by a spring change) is taken as
/// the instant after the gap; one that occurs twice, as the earlier.
pub fn instant(tz: &TimeZone, day: Date, minute: i32) -> Option<i64> {
    let (day, minute) = if minute >= 1440 {
        (day.tomorrow().ok()?, minute - 1440)
    } else {
        (day, minute)
    };
    let h = i8::try_from(minute / 60).ok()?;
    let m = i8::try_from(minute % 60).ok()?;
    let dt = day.at(h, m, 0, 0);
    dt.to_zoned_datetime(tz.clone())
        .ok()
        .map(|z| z.timestamp().as_second())
}

/// "Tue 31 Mar 09:30" in `tz`, how chat offers a slot.
pub fn label(tz: &TimeZone, at: i64) -> String {
    Timestamp::from_second(at)
        .map(|t| {
            t.to_zoned_datetime(tz.clone())
                .strftime("%a %-d %b %H:%M")
                .to_string()
        })
        .unwrap_or_default()
}

/// "Tue 31 Mar", how chat offers a day.
pub fn day_label(day: Date) -> String {
    day.strftime("%a %-d %b").to_string()
}

/// The weekday number (1 = Monday) of a [`Weekday`].
pub fn weekday_number(w: Weekday) -> i8 {
    w.to_monday_one_offset()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn paris() -> TimeZone {
        jiff::tz::db()
            .get("Europe/Paris")
            .expect("Paris is in the tz database")
    }

    fn at(s: &str) -> i64 {
        s.parse::<Timestamp>().expect("instant").as_second()
    }

    fn every_day(start_minute: i32, end_minute: i32) -> Vec<Window> {
        (1..=7)
            .map(|weekday| Window {
                weekday,
                start_minute,
                end_minute,
            })
            .collect()
    }

    #[test]
    fn nine_oclock_in_paris_moves_an_hour_in_utc_across_the_spring_change() {
        let tz = paris();
        let windows = every_day(9 * 60, 10 * 60);
        let closed = HashSet::new();
        let cal = Calendar {
            tz: &tz,
            windows: &windows,
            closed: &closed,
            busy: &[],
        };
        // Saturday 28 March 2026 is still winter (UTC+1); Sunday 29 is summer (UTC+2).
        let slots = free_slots(
            &cal,
            3600,
            1800,
            at("2026-03-28T00:00:00Z"),
            at("2026-03-30T00:00:00Z"),
        );
        assert_eq!(
            slots,
            vec![at("2026-03-28T08:00:00Z"), at("2026-03-29T07:00:00Z")]
        );
        assert_eq!(label(&tz, slots[1]), "Sun 29 Mar 09:00");
    }

    #[test]
    fn the_skipped_hour_is_never_offered_and_the_repeated_one_is_offered_twice() {
        let tz = paris();
        let windows = every_day(0, 4 * 60);
        let closed = HashSet::new();
        let cal = Calendar {
            tz: &tz,
            windows: &windows,
            closed: &closed,
            busy: &[],
        };
        // Spring: 00:00 CET (23:00Z) to 04:00 CEST (02:00Z) is three hours.
        let spring = free_slots(
            &cal,
            3600,
            3600,
            at("2026-03-28T23:00:00Z"),
            at("2026-03-29T03:00:00Z"),
        );
        let labels: Vec<String> = spring.iter().map(|t| label(&tz, *t)).collect();
        assert_eq!(
            labels,
            ["Sun 29 Mar 00:00", "Sun 29 Mar 01:00", "Sun 29 Mar 03:00"]
        );
        // Autumn (Sunday 25 October 2026): 00:00 CEST (22:00Z) to 04:00 CET (03:00Z) is
        // five hours; 02:00 local happens at 00:00Z and again at 01:00Z.
        let autumn = free_slots(
            &cal,
            3600,
            3600,
            at("2026-10-24T22:00:00Z"),
            at("2026-10-25T03:00:00Z"),
        );
        assert_eq!(
            autumn,
            vec![
                at("2026-10-24T22:00:00Z"),
                at("2026-10-24T23:00:00Z"),
                at("2026-10-25T00:00:00Z"),
                at("2026-10-25T01:00:00Z"),
                at("2026-10-25T02:00:00Z"),
            ]
        );
        assert_eq!(label(&tz, autumn[2]), label(&tz, autumn[3]), "02:00 twice");
    }

    #[test]
    fn closed_days_and_busy_times_are_left_out() {
        let tz = paris();
        let windows = every_day(9 * 60, 12 * 60);
        let christmas = Date::new(2026, 12, 25).expect("date");
        let closed: HashSet<Date> = [christmas].into_iter().collect();
        let busy = [(at("2026-12-24T09:00:00Z"), at("2026-12-24T09:30:00Z"))];
        let cal = Calendar {
            tz: &tz,
            windows: &windows,
            closed: &closed,
            busy: &busy,
        };
        let slots = free_slots(
            &cal,
            3600,
            1800,
            at("2026-12-24T00:00:00Z"),
            at("2026-12-26T00:00:00Z"),
        );
        // 09:00–12:00 Paris is 08:00–11:00Z; the booking 10:00–10:30 Paris blocks the
        // hour-long slots starting 09:30 and 10:00.
        assert_eq!(
            slots,
            vec![
                at("2026-12-24T08:00:00Z"),
                at("2026-12-24T09:30:00Z"),
                at("2026-12-24T10:00:00Z"),
            ]
        );
    }

    proptest! {
        #[test]
        fn slots_never_overlap_a_booking(
            bookings in proptest::collection::vec((0i64..(14 * 96), 1i64..12), 0..30),
            duration in 1i64..12,
            step in 1i64..6,
        ) {
            let tz = paris();
            let windows = every_day(8 * 60, 20 * 60);
            let closed = HashSet::new();
            // Start on the Monday before the spring change, in 15-minute cells.
            let origin = at("2026-03-23T00:00:00Z");
            let busy: Vec<(i64, i64)> = bookings
                .iter()
                .map(|(cell, len)| (origin + cell * 900, origin + (cell + len) * 900))
                .collect();
            let cal = Calendar { tz: &tz, windows: &windows, closed: &closed, busy: &busy };
            let dur = duration * 900;
            let slots = free_slots(&cal, dur, step * 900, origin, origin + 14 * 86_400);
            for s in &slots {
                for (b0, b1) in &busy {
                    prop_assert!(*s + dur <= *b0 || *b1 <= *s, "slot {s} overlaps {b0}–{b1}");
                }
                let open = instant(&tz, local_date(&tz, *s).expect("date"), 8 * 60).expect("open");
                let close = instant(&tz, local_date(&tz, *s).expect("date"), 20 * 60).expect("close");
                prop_assert!(open <= *s && *s + dur <= close);
            }
        }
    }
}
