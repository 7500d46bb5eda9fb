//! The business's appointment settings: zone, slot step, notice and horizon; services;
//! staff; weekly hours and closed days (for everyone, or one staff member).

use super::slots::Window;
use super::{AppointmentError, Appointments, Result, CELL_SECS};
use crate::platform::store;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use rusqlite::{params, OptionalExtension as _};

/// The book's general settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// IANA zone of the hours, e.g. `Europe/Paris`.
    pub time_zone: String,
    /// Minutes between offered start times.
    pub step_minutes: i64,
    /// Shortest notice for a booking, minutes.
    pub notice_minutes: i64,
    /// How far ahead bookings are offered, days.
    pub horizon_days: i64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            time_zone: "UTC".into(),
            step_minutes: 30,
            notice_minutes: 60,
            horizon_days: 30,
        }
    }
}

impl Settings {
    /// The zone (UTC if the tz database does not know the name).
    pub fn tz(&self) -> TimeZone {
        jiff::tz::db().get(&self.time_zone).unwrap_or(TimeZone::UTC)
    }
}

/// A bookable service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    /// Id (UUID).
    pub id: String,
    /// "Check-up".
    pub name: String,
    /// Length, minutes (a multiple of 5, at most 12 hours).
    pub duration_minutes: i64,
    /// Free text: "€60", "from $40".
    pub price: String,
}

/// A staff member with their own calendar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Staff {
    /// Id (UUID).
    pub id: String,
    /// Name shown to customers.
    pub name: String,
}

/// A closed day (holiday) for everyone (`staff_id` empty) or one staff member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Closure {
    /// `""` for the whole business.
    pub staff_id: String,
    /// Local date.
    pub day: Date,
    /// "Christmas".
    pub label: String,
}

fn clean_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(AppointmentError::Invalid(
            "A name is required (100 characters at most).",
        ));
    }
    Ok(name.to_owned())
}

impl Appointments {
    /// The general settings (defaults until saved).
    pub fn settings(&self) -> Result<Settings> {
        self.run(|c| {
            Ok(c.query_row(
                "SELECT time_zone, step_minutes, notice_minutes, horizon_days
                 FROM appt_settings WHERE id = 1",
                [],
                |r| {
                    Ok(Settings {
                        time_zone: r.get(0)?,
                        step_minutes: r.get(1)?,
                        notice_minutes: r.get(2)?,
                        horizon_days: r.get(3)?,
                    })
                },
            )
            .optional()?
            .unwrap_or_default())
        })
    }

    /// Saves the general settings after checking them.
    pub fn save_settings(&self, s: &Settings) -> Result<()> {
        if jiff::tz::db().get(&s.time_zone).is_err() {
            return Err(AppointmentError::Invalid(
                "Unknown time zone: use an IANA name such as Europe/Paris.",
            ));
        }
        if !(5..=240).contains(&s.step_minutes) || s.step_minutes % (CELL_SECS / 60) != 0 {
            return Err(AppointmentError::Invalid(
                "The step must be 5 to 240 minutes, a multiple of 5.",
            ));
        }
        if !(0..=60 * 24 * 14).contains(&s.notice_minutes) || !(1..=365).contains(&s.horizon_days) {
            return Err(AppointmentError::Invalid(
                "Notice is 0 to 14 days and the horizon 1 to 365 days.",
            ));
        }
        self.run(|c| {
            c.execute(
                "INSERT INTO appt_settings (id, time_zone, step_minutes, notice_minutes, horizon_days)
                 VALUES (1, ?1, ?2, ?3, ?4)
                 ON CONFLICT (id) DO UPDATE SET time_zone = ?1, step_minutes = ?2,
                     notice_minutes = ?3, horizon_days = ?4",
                params![s.time_zone, s.step_minutes, s.notice_minutes, s.horizon_days],
            )?;
            Ok(())
        })
    }

    /// Adds a service; returns its id.
    pub fn add_service(&self, name: &str, duration_minutes: i64, price: &str) -> Result<String> {
        let name = clean_name(name)?;
        if !(5..=720).contains(&duration_minutes) || duration_minutes % 5 != 0 {
            return Err(AppointmentError::Invalid(
                "A service lasts 5 minutes to 12 hours, in steps of 5 minutes.",
            ));
        }
        let price: String = price.trim().chars().take(60).collect();
        let id = uuid::Uuid::new_v4().to_string();
        self.run(|c| {
            c.execute(
                "INSERT INTO appt_services (id, name, duration_minutes, price, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, name, duration_minutes, price, store::now()],
            )?;
            Ok(())
        })?;
        Ok(id)
    }

    /// Deletes a service (its bookings stay, under the name they were made with gone:
    /// they show as "(deleted service)").
    pub fn delete_service(&self, id: &str) -> Result<()> {
        self.run(|c| {
            c.execute("DELETE FROM appt_services WHERE id = ?1", [id])?;
            Ok(())
        })
    }

    /// The services, by name.
    pub fn services(&self) -> Result<Vec<Service>> {
        self.run(|c| {
            let mut st = c.prepare(
                "SELECT id, name, duration_minutes, price FROM appt_services ORDER BY name, id",
            )?;
            let rows = st.query_map([], |r| {
                Ok(Service {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    duration_minutes: r.get(2)?,
                    price: r.get(3)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// One service.
    pub fn service(&self, id: &str) -> Result<Service> {
        self.services()?
            .into_iter()
            .find(|s| s.id == id)
            .ok_or(AppointmentError::NotFound)
    }

    /// Adds a staff member; returns the id.
    pub fn add_staff(&self, name: &str) -> Result<String> {
        let name = clean_name(name)?;
        let id = uuid::Uuid::new_v4().to_string();
        self.run(|c| {
            c.execute(
                "INSERT INTO appt_staff (id, name, created_at) VALUES (?1, ?2, ?3)",
                params![id, name, store::now()],
            )?;
            Ok(())
        })?;
        Ok(id)
    }

    /// Removes a staff member with their own hours and closed days.
    pub fn delete_staff(&self, id: &str) -> Result<()> {
        self.run(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            tx.execute("DELETE FROM appt_hours WHERE staff_id = ?1", [id])?;
            tx.execute("DELETE FROM appt_closures WHERE staff_id = ?1", [id])?;
            tx.execute("DELETE FROM appt_staff_services WHERE staff_id = ?1", [id])?;
            tx.execute("DELETE FROM appt_staff WHERE id = ?1", [id])?;
            tx.commit()?;
            Ok(())
        })
    }

    /// Sets the services `staff_id` offers (none: every service). Unknown service ids
    /// are ignored.
    pub fn set_staff_services(&self, staff_id: &str, service_ids: &[String]) -> Result<()> {
        self.run(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let known: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM appt_staff WHERE id = ?1)",
                [staff_id],
                |r| r.get(0),
            )?;
            if !known {
                return Err(AppointmentError::NotFound);
            }
            tx.execute(
                "DELETE FROM appt_staff_services WHERE staff_id = ?1",
                [staff_id],
            )?;
            for s in service_ids {
                tx.execute(
                    "INSERT OR IGNORE INTO appt_staff_services (staff_id, service_id)
                     SELECT ?1, id FROM appt_services WHERE id = ?2",
                    params![staff_id, s],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    /// The services `staff_id` offers by choice; empty: every service.
    pub fn staff_services(&self, staff_id: &str) -> Result<Vec<String>> {
        self.run(|c| {
            let mut st = c.prepare(
                "SELECT service_id FROM appt_staff_services WHERE staff_id = ?1 ORDER BY service_id",
            )?;
            let rows = st.query_map([staff_id], |r| r.get(0))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// The staff, by name.
    pub fn staff(&self) -> Result<Vec<Staff>> {
        self.run(|c| {
            let mut st = c.prepare("SELECT id, name FROM appt_staff ORDER BY name, id")?;
            let rows = st.query_map([], |r| {
                Ok(Staff {
                    id: r.get(0)?,
                    name: r.get(1)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Replaces the weekly hours of `staff_id` (`""`: the business's).
    pub fn set_hours(&self, staff_id: &str, windows: &[Window]) -> Result<()> {
        for w in windows {
            if !(1..=7).contains(&w.weekday)
                || w.start_minute < 0
                || w.start_minute >= w.end_minute
                || w.end_minute > 1440
                || w.start_minute % 5 != 0
                || w.end_minute % 5 != 0
            {
                return Err(AppointmentError::Invalid(
                    "Hours open before they close, within the day, on 5-minute marks.",
                ));
            }
        }
        self.run(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            tx.execute("DELETE FROM appt_hours WHERE staff_id = ?1", [staff_id])?;
            for w in windows {
                tx.execute(
                    "INSERT INTO appt_hours (staff_id, weekday, start_minute, end_minute)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![staff_id, w.weekday, w.start_minute, w.end_minute],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    /// The weekly hours of `staff_id` (`""`: the business's), by day and time.
    pub fn hours(&self, staff_id: &str) -> Result<Vec<Window>> {
        self.run(|c| {
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
        })
    }

    /// Closes a day for everyone (`staff_id` empty) or one staff member.
    pub fn add_closure(&self, staff_id: &str, day: Date, label: &str) -> Result<()> {
        let label: String = label.trim().chars().take(100).collect();
        self.run(|c| {
            c.execute(
                "INSERT INTO appt_closures (staff_id, day, label) VALUES (?1, ?2, ?3)
                 ON CONFLICT (staff_id, day) DO UPDATE SET label = ?3",
                params![staff_id, day.to_string(), label],
            )?;
            Ok(())
        })
    }

    /// Reopens a closed day.
    pub fn delete_closure(&self, staff_id: &str, day: Date) -> Result<()> {
        self.run(|c| {
            c.execute(
                "DELETE FROM appt_closures WHERE staff_id = ?1 AND day = ?2",
                params![staff_id, day.to_string()],
            )?;
            Ok(())
        })
    }

    /// Every closed day, by date.
    pub fn closures(&self) -> Result<Vec<Closure>> {
        self.run(|c| {
            let mut st =
                c.prepare("SELECT staff_id, day, label FROM appt_closures ORDER BY day, staff_id")?;
            let rows = st.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (staff_id, day, label) = row?;
                if let Ok(day) = day.parse::<Date>() {
                    out.push(Closure {
                        staff_id,
                        day,
                        label,
                    });
                }
            }
            Ok(out)
        })
    }
}
