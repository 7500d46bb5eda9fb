//! Free slots, booking, rescheduling, cancelling, listing, reminders due and retention.

use super::slots::{self, Calendar, Window};
use super::{AppointmentError, Appointments, Result, CELL_SECS};
use jiff::civil::Date;
use rusqlite::{params, Connection, OptionalExtension as _, TransactionBehavior};
use std::collections::{BTreeMap, HashSet};

/// Alternatives offered when a slot is taken.
pub const ALTERNATIVES: usize = 5;
/// When the first reminder goes out, seconds before the start.
pub const REMIND_EARLY_SECS: i64 = 24 * 3600;
/// When the second reminder goes out, seconds before the start.
pub const REMIND_LATE_SECS: i64 = 2 * 3600;

/// A free slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slot {
    /// Unix seconds.
    pub starts_at: i64,
    /// Unix seconds.
    pub ends_at: i64,
    /// The staff member who is free (`""`: the business has no staff).
    pub staff_id: String,
}

/// What the customer gives when booking: content, sealed under their data key.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BookingDetails {
    /// Name to book under.
    pub name: String,
    /// Email, if given.
    #[serde(default)]
    pub email: String,
    /// Phone, if given.
    #[serde(default)]
    pub phone: String,
    /// A note for the business.
    #[serde(default)]
    pub note: String,
}

/// A booking's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BookingStatus {
    /// Holds its time.
    Booked,
    /// Cancelled: the time is free again.
    Cancelled,
}

impl BookingStatus {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            BookingStatus::Booked => "booked",
            BookingStatus::Cancelled => "cancelled",
        }
    }
}

/// A booking, its details opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Booking {
    /// Id (UUID).
    pub id: String,
    /// The service booked.
    pub service_id: String,
    /// Its name now ("(deleted service)" once deleted).
    pub service_name: String,
    /// The staff member (`""`: the business).
    pub staff_id: String,
    /// Their name (empty for the business).
    pub staff_name: String,
    /// The contact who booked.
    pub contact_id: String,
    /// The conversation it was booked in, if any.
    pub conversation_id: Option<String>,
    /// Unix seconds.
    pub starts_at: i64,
    /// Unix seconds.
    pub ends_at: i64,
    /// Booked or cancelled.
    pub status: BookingStatus,
    /// Name, email, phone, note.
    pub details: BookingDetails,
    /// Unix seconds.
    pub created_at: i64,
}

/// A reminder to send now, claimed (it will not be handed out again).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reminder {
    /// The booking.
    pub booking: Booking,
    /// Seconds before the start it is for: [`REMIND_EARLY_SECS`] or [`REMIND_LATE_SECS`].
    pub before_secs: i64,
}

/// What booking needs.
#[derive(Clone, Debug)]
pub struct BookRequest {
    /// Service.
    pub service_id: String,
    /// A staff member, or `None` for whoever is free.
    pub staff_id: Option<String>,
    /// Chosen start, unix seconds.
    pub starts_at: i64,
    /// Contact booking.
    pub contact_id: String,
    /// Conversation booked in.
    pub conversation_id: Option<String>,
    /// Name and contact details.
    pub details: BookingDetails,
}

const BOOKING_COLUMNS: &str = "b.id, b.service_id, COALESCE(s.name, '(deleted service)'),
    b.staff_id, COALESCE(t.name, ''), b.contact_id, b.conversation_id, b.starts_at, b.ends_at,
    b.status, b.details_ct, b.created_at";
const BOOKING_FROM: &str = "appt_bookings b LEFT JOIN appt_services s ON s.id = b.service_id
    LEFT JOIN appt_staff t ON t.id = b.staff_id";

struct Row {
    booking: Booking,
    details_ct: Vec<u8>,
}

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    let status: String = r.get(9)?;
    Ok(Row {
        booking: Booking {
            id: r.get(0)?,
            service_id: r.get(1)?,
            service_name: r.get(2)?,
            staff_id: r.get(3)?,
            staff_name: r.get(4)?,
            contact_id: r.get(5)?,
            conversation_id: r.get(6)?,
            starts_at: r.get(7)?,
            ends_at: r.get(8)?,
            status: if status == "booked" {
                BookingStatus::Booked
            } else {
                BookingStatus::Cancelled
            },
            details: BookingDetails::default(),
            created_at: r.get(11)?,
        },
        details_ct: r.get(10)?,
    })
}

/// Inserts the cells of `[starts_at, ends_at)` for `staff_id`; `Ok(false)` when one is
/// already held (the primary key refuses it).
fn hold_cells(
    tx: &Connection,
    booking_id: &str,
    staff_id: &str,
    starts_at: i64,
    ends_at: i64,
) -> Result<bool> {
    let mut cell = starts_at.div_euclid(CELL_SECS);
    let last = (ends_at - 1).div_euclid(CELL_SECS);
    while cell <= last {
        match tx.execute(
            "INSERT INTO appt_cells (staff_id, cell, booking_id) VALUES (?1, ?2, ?3)",
            params![staff_id, cell, booking_id],
        ) {
            Ok(_) => {}
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                return Ok(false)
            }
            Err(e) => return Err(e.into()),
        }
        cell += 1;
    }
    Ok(true)
}

/// Reminder flags for a booking made or moved at `now`: a reminder whose time has
/// already passed is not sent (the confirmation is fresher).
fn reminder_flags(starts_at: i64, now: i64) -> (bool, bool) {
    (
        starts_at - now <= REMIND_EARLY_SECS,
        starts_at - now <= REMIND_LATE_SECS,
    )
}

impl Appointments {
    /// Resources to look at for `service_id`: the one asked for, or every staff member
    /// who offers it, or the business when there is no staff. A staff member who does
    /// not offer the service has no time for it.
    fn resources(c: &Connection, service_id: &str, staff: Option<&str>) -> Result<Vec<String>> {
        const OFFERS: &str =
            "(NOT EXISTS (SELECT 1 FROM appt_staff_services x WHERE x.staff_id = t.id)
             OR EXISTS (SELECT 1 FROM appt_staff_services x
                        WHERE x.staff_id = t.id AND x.service_id = ?1))";
        if let Some(s) = staff {
            if s.is_empty() {
                return Ok(vec![String::new()]);
            }
            let known: bool = c.query_row(
                "SELECT EXISTS (SELECT 1 FROM appt_staff WHERE id = ?1)",
                [s],
                |r| r.get(0),
            )?;
            if !known {
                return Err(AppointmentError::NotFound);
            }
            let offers: bool = c.query_row(
                &format!("SELECT EXISTS (SELECT 1 FROM appt_staff t WHERE t.id = ?2 AND {OFFERS})"),
                params![service_id, s],
                |r| r.get(0),
            )?;
            return Ok(if offers { vec![s.to_owned()] } else { vec![] });
        }
        let any: bool =
            c.query_row("SELECT EXISTS (SELECT 1 FROM appt_staff)", [], |r| r.get(0))?;
        if !any {
            return Ok(vec![String::new()]);
        }
        let mut st = c.prepare(&format!(
            "SELECT t.id FROM appt_staff t WHERE {OFFERS} ORDER BY t.name, t.id"
        ))?;
        let ids: Vec<String> = st
            .query_map([service_id], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(ids)
    }

    /// Free start instants per resource, within `[from, until)`, `exclude` a booking
    /// being moved.
    #[allow(clippy::too_many_arguments)]
    fn free_by_staff(
        &self,
        c: &Connection,
        service_id: &str,
        duration_secs: i64,
        staff: Option<&str>,
        (from, until): (i64, i64),
        now: i64,
        exclude: Option<&str>,
    ) -> Result<Vec<(String, Vec<i64>)>> {
        let settings = self.settings_in(c)?;
        let tz = settings.tz();
        let from = from.max(now + settings.notice_minutes * 60);
        let until = until.min(now + settings.horizon_days * 86_400);
        let mut out = Vec::new();
        for res in Self::resources(c, service_id, staff)? {
            let mut windows = hours_in(c, &res)?;
            if windows.is_empty() && !res.is_empty() {
                windows = hours_in(c, "")?;
            }
            let closed: HashSet<Date> = {
                let mut st = c.prepare(
                    "SELECT day FROM appt_closures WHERE staff_id = '' OR staff_id = ?1",
                )?;
                let days: Vec<String> = st
                    .query_map([&res], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                days.iter().filter_map(|d| d.parse().ok()).collect()
            };
            let busy: Vec<(i64, i64)> = {
                let mut st = c.prepare(
                    "SELECT starts_at, ends_at FROM appt_bookings
                     WHERE staff_id = ?1 AND status = 'booked' AND ends_at > ?2 AND starts_at < ?3
                       AND id != ?4",
                )?;
                let rows = st.query_map(
                    params![res, from - 86_400, until + 86_400, exclude.unwrap_or("")],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            let cal = Calendar {
                tz: &tz,
                windows: &windows,
                closed: &closed,
                busy: &busy,
            };
            let starts =
                slots::free_slots(&cal, duration_secs, settings.step_minutes * 60, from, until);
            out.push((res, starts));
        }
        Ok(out)
    }

    fn settings_in(&self, c: &Connection) -> Result<super::Settings> {
        Ok(c.query_row(
            "SELECT time_zone, step_minutes, notice_minutes, horizon_days
                 FROM appt_settings WHERE id = 1",
            [],
            |r| {
                Ok(super::Settings {
                    time_zone: r.get(0)?,
                    step_minutes: r.get(1)?,
                    notice_minutes: r.get(2)?,
                    horizon_days: r.get(3)?,
                })
            },
        )
        .optional()?
        .unwrap_or_default())
    }

    /// Free slots of a service within `[from, until)` as seen at `now` (notice and
    /// horizon applied), soonest first, one per start time (the first free staff member
    /// by name), at most `limit`.
    pub fn find_slots(
        &self,
        service_id: &str,
        staff: Option<&str>,
        from: i64,
        until: i64,
        now: i64,
        limit: usize,
    ) -> Result<Vec<Slot>> {
        let service = self.service(service_id)?;
        let dur = service.duration_minutes * 60;
        self.run(|c| {
            let mut by_start: BTreeMap<i64, String> = BTreeMap::new();
            for (res, starts) in
                self.free_by_staff(c, service_id, dur, staff, (from, until), now, None)?
            {
                for s in starts {
                    by_start.entry(s).or_insert_with(|| res.clone());
                }
            }
            Ok(by_start
                .into_iter()
                .take(limit)
                .map(|(starts_at, staff_id)| Slot {
                    starts_at,
                    ends_at: starts_at + dur,
                    staff_id,
                })
                .collect())
        })
    }

    /// Days (local dates, ascending) with at least one free slot of the service, from
    /// `now`, at most `limit`.
    pub fn free_days(&self, service_id: &str, now: i64, limit: usize) -> Result<Vec<Date>> {
        let tz = self.settings()?.tz();
        let mut days: Vec<Date> = Vec::new();
        for s in self.find_slots(service_id, None, now, i64::MAX / 2, now, usize::MAX)? {
            if let Some(d) = slots::local_date(&tz, s.starts_at) {
                if days.last() != Some(&d) {
                    days.push(d);
                    if days.len() == limit {
                        break;
                    }
                }
            }
        }
        Ok(days)
    }

    /// Books `req` at `now`. The slot must be offered (hours, closed days, notice,
    /// horizon) and free; when another booking got it first, or it is not offered,
    /// [`AppointmentError::Taken`] carries other free slots.
    pub fn book(&self, req: &BookRequest, now: i64) -> Result<Booking> {
        if req.details.name.trim().is_empty() {
            return Err(AppointmentError::Invalid("A name is required to book."));
        }
        let service = self.service(&req.service_id)?;
        let dur = service.duration_minutes * 60;
        let id = uuid::Uuid::new_v4().to_string();
        let json = serde_json::to_string(&req.details)
            .map_err(|_| AppointmentError::Invalid("Unreadable details."))?;
        let sealed = self.content.seal_booking(&req.contact_id, &id, &json)?;
        let booked = self.run(|c| {
            let candidates: Vec<String> = self
                .free_by_staff(
                    c,
                    &req.service_id,
                    dur,
                    req.staff_id.as_deref(),
                    (req.starts_at, req.starts_at + 1),
                    now,
                    None,
                )?
                .into_iter()
                .filter(|(_, starts)| starts.contains(&req.starts_at))
                .map(|(res, _)| res)
                .collect();
            let mut tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let (early, late) = reminder_flags(req.starts_at, now);
            for res in candidates {
                let sp = tx.savepoint()?;
                sp.execute(
                    "INSERT INTO appt_bookings (id, service_id, staff_id, contact_id,
                         conversation_id, starts_at, ends_at, status, details_ct,
                         reminded_24h, reminded_2h, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'booked', ?8, ?9, ?10, ?11, ?11)",
                    params![
                        id,
                        req.service_id,
                        res,
                        req.contact_id,
                        req.conversation_id,
                        req.starts_at,
                        req.starts_at + dur,
                        sealed,
                        early,
                        late,
                        now
                    ],
                )?;
                if hold_cells(&sp, &id, &res, req.starts_at, req.starts_at + dur)? {
                    sp.commit()?;
                    tx.commit()?;
                    return Ok(true);
                }
                // dropping the savepoint rolls it back
            }
            Ok(false)
        })?;
        if !booked {
            return Err(self.taken(&req.service_id, req.staff_id.as_deref(), now));
        }
        self.booking(&id)
    }

    fn taken(&self, service_id: &str, staff: Option<&str>, now: i64) -> AppointmentError {
        match self.find_slots(service_id, staff, now, i64::MAX / 2, now, ALTERNATIVES) {
            Ok(others) => AppointmentError::Taken(others),
            Err(e) => e,
        }
    }

    /// Moves a booking to `starts_at` (same service and staff member), if that time is
    /// offered and free; otherwise [`AppointmentError::Taken`] and the booking keeps its
    /// time.
    pub fn reschedule(&self, id: &str, starts_at: i64, now: i64) -> Result<Booking> {
        let old = self.booking(id)?;
        if old.status != BookingStatus::Booked {
            return Err(AppointmentError::Invalid("This booking was cancelled."));
        }
        let dur = old.ends_at - old.starts_at;
        let moved = self.run(|c| {
            let free = self
                .free_by_staff(
                    c,
                    &old.service_id,
                    dur,
                    Some(&old.staff_id),
                    (starts_at, starts_at + 1),
                    now,
                    Some(id),
                )?
                .into_iter()
                .any(|(_, starts)| starts.contains(&starts_at));
            if !free {
                return Ok(false);
            }
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute("DELETE FROM appt_cells WHERE booking_id = ?1", [id])?;
            let (early, late) = reminder_flags(starts_at, now);
            tx.execute(
                "UPDATE appt_bookings SET starts_at = ?2, ends_at = ?3, reminded_24h = ?4,
                     reminded_2h = ?5, updated_at = ?6 WHERE id = ?1",
                params![id, starts_at, starts_at + dur, early, late, now],
            )?;
            if !hold_cells(&tx, id, &old.staff_id, starts_at, starts_at + dur)? {
                return Ok(false); // rolled back: the booking keeps its time
            }
            tx.commit()?;
            Ok(true)
        })?;
        if !moved {
            let staff = (!old.staff_id.is_empty()).then_some(old.staff_id.as_str());
            return Err(self.taken(&old.service_id, staff, now));
        }
        self.booking(id)
    }

    /// Cancels a booking: its time is free again. Cancelling twice is harmless.
    pub fn cancel(&self, id: &str, now: i64) -> Result<Booking> {
        self.run(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let n = tx.execute(
                "UPDATE appt_bookings SET status = 'cancelled', updated_at = ?2 WHERE id = ?1",
                params![id, now],
            )?;
            if n == 0 {
                return Err(AppointmentError::NotFound);
            }
            tx.execute("DELETE FROM appt_cells WHERE booking_id = ?1", [id])?;
            tx.commit()?;
            Ok(())
        })?;
        self.booking(id)
    }

    fn open_rows(&self, rows: Vec<Row>) -> Result<Vec<Booking>> {
        rows.into_iter()
            .map(|r| {
                let mut b = r.booking;
                let json = self
                    .content
                    .open_booking(&b.contact_id, &b.id, &r.details_ct)?;
                b.details = serde_json::from_str(&json).unwrap_or_default();
                Ok(b)
            })
            .collect()
    }

    fn query(&self, filter: &str, p: impl rusqlite::Params) -> Result<Vec<Booking>> {
        let rows = self.run(|c| {
            let mut st = c.prepare(&format!(
                "SELECT {BOOKING_COLUMNS} FROM {BOOKING_FROM} WHERE {filter}"
            ))?;
            let rows = st.query_map(p, read_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })?;
        self.open_rows(rows)
    }

    /// One booking.
    pub fn booking(&self, id: &str) -> Result<Booking> {
        self.query("b.id = ?1", [id])?
            .pop()
            .ok_or(AppointmentError::NotFound)
    }

    /// Bookings (booked or cancelled) starting within `[from, until)`, of one staff
    /// member if given, by start.
    pub fn bookings_between(
        &self,
        from: i64,
        until: i64,
        staff: Option<&str>,
    ) -> Result<Vec<Booking>> {
        match staff {
            Some(s) => self.query(
                "b.starts_at >= ?1 AND b.starts_at < ?2 AND b.staff_id = ?3
                 ORDER BY b.starts_at, b.id",
                params![from, until, s],
            ),
            None => self.query(
                "b.starts_at >= ?1 AND b.starts_at < ?2 ORDER BY b.starts_at, b.id",
                params![from, until],
            ),
        }
    }

    /// A contact's bookings, soonest first.
    pub fn contact_bookings(&self, contact_id: &str) -> Result<Vec<Booking>> {
        self.query("b.contact_id = ?1 ORDER BY b.starts_at, b.id", [contact_id])
    }

    /// Every booking, by start (exports).
    pub fn all_bookings(&self) -> Result<Vec<Booking>> {
        self.query("1 = 1 ORDER BY b.starts_at, b.id", [])
    }

    /// Claims the reminders due at `now`: for each booking still ahead, the 2-hour one
    /// when its time has come (which also retires the 24-hour one), else the 24-hour one.
    /// A claimed reminder is never handed out again.
    pub fn claim_due_reminders(&self, now: i64) -> Result<Vec<Reminder>> {
        let due = self.query(
            "b.status = 'booked' AND b.starts_at > ?1 AND (
                 (b.reminded_2h = 0 AND b.starts_at - ?2 <= ?1)
              OR (b.reminded_24h = 0 AND b.starts_at - ?3 <= ?1))
             ORDER BY b.starts_at",
            params![now, REMIND_LATE_SECS, REMIND_EARLY_SECS],
        )?;
        let mut out = Vec::new();
        for booking in due {
            let late = booking.starts_at - REMIND_LATE_SECS <= now;
            let claimed = self.run(|c| {
                Ok(if late {
                    c.execute(
                        "UPDATE appt_bookings SET reminded_2h = 1, reminded_24h = 1
                         WHERE id = ?1 AND reminded_2h = 0",
                        [&booking.id],
                    )?
                } else {
                    c.execute(
                        "UPDATE appt_bookings SET reminded_24h = 1
                         WHERE id = ?1 AND reminded_24h = 0",
                        [&booking.id],
                    )?
                } == 1)
            })?;
            if claimed {
                out.push(Reminder {
                    booking,
                    before_secs: if late {
                        REMIND_LATE_SECS
                    } else {
                        REMIND_EARLY_SECS
                    },
                });
            }
        }
        Ok(out)
    }

    /// Bookings that ended before `cutoff` (retention preview).
    pub fn count_ended_before(&self, cutoff: i64) -> Result<i64> {
        self.run(|c| {
            Ok(c.query_row(
                "SELECT COUNT(*) FROM appt_bookings WHERE ends_at < ?1",
                [cutoff],
                |r| r.get(0),
            )?)
        })
    }

    /// Deletes bookings that ended before `cutoff` (retention); returns how many.
    pub fn delete_ended_before(&self, cutoff: i64) -> Result<usize> {
        Ok(delete_ended_before(&self.store, cutoff)?)
    }
}

fn hours_in(c: &Connection, staff_id: &str) -> Result<Vec<Window>> {
    let mut st = c.prepare(
        "SELECT weekday, start_minute, end_minute FROM appt_hours WHERE staff_id = ?1
         ORDER BY weekday, start_minute",
    )?;
    let rows = st.query_map([staff_id], |r| {
        Ok(Window {
            weekday: r.get(0)?,
            start_minute: r.get(1)?,
            end_minute: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Deletes bookings that ended before `cutoff` (the retention sweep, which follows the
/// messages' period); returns how many.
pub fn delete_ended_before(
    store: &crate::platform::store::Store,
    cutoff: i64,
) -> crate::platform::store::Result<usize> {
    store.with(|c| Ok(c.execute("DELETE FROM appt_bookings WHERE ends_at < ?1", [cutoff])?))
}
