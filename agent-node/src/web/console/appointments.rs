//! Long because the console's appointment pages (calendar, settings, a staff member's
//! page) and the customer's signed-link pages share their helpers here.
//!
//! Appointments in the console: the week's calendar (every role with `inbox`), and the
//! settings (zone, step, notice, horizon, weekly hours, services, staff, closed days,
//! each staff member's ICS feed link) for `settings`. And the pages a customer reaches
//! from the links in their confirmation, authorized by the link's signature alone
//! (`domain::appointments::link`): the `.ics` file, cancel, reschedule; and the staff
//! calendar feeds.

use super::access::Nav;
use super::error::MessagePage;
use super::flash::{see_other_done, Done};
use super::{render, valid_id, ConsoleError, ConsoleSession, ConsoleState, WriteSession};
use crate::domain::appointments::link::Purpose;
use crate::domain::appointments::slots::{self, Window};
use crate::domain::appointments::{ics, AppointmentError, Appointments, Settings};
use crate::engine::booking::zone_words;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use jiff::civil::Date;
use serde::Deserialize;
use std::collections::HashMap;

impl From<AppointmentError> for ConsoleError {
    fn from(e: AppointmentError) -> Self {
        match e {
            AppointmentError::Invalid(m) => ConsoleError::BadRequest(m.to_owned()),
            AppointmentError::NotFound => ConsoleError::NotFound,
            AppointmentError::Taken(_) => {
                ConsoleError::BadRequest("That time is no longer available.".to_owned())
            }
            AppointmentError::Content(e) => e.into(),
            AppointmentError::Store(e) => e.into(),
        }
    }
}

/// The book over the console's stores.
pub fn book(state: &ConsoleState) -> Appointments {
    Appointments::new(
        state.store.clone(),
        super::inbox::content(state),
        &state.master,
    )
}

const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

struct DayColumn {
    label: String,
    entries: Vec<String>,
}

struct ServiceRow {
    id: String,
    words: String,
}

struct StaffRow {
    id: String,
    name: String,
    feed: String,
}

struct HoursRow {
    day: &'static str,
    field: String,
    value: String,
}

#[derive(Template)]
#[template(path = "appointments.html")]
struct AppointmentsPage {
    nav: Nav,
    zone: String,
    week_label: String,
    prev_week: String,
    next_week: String,
    days: Vec<DayColumn>,
    can_edit: bool,
    settings: Settings,
    hours: Vec<HoursRow>,
    services: Vec<ServiceRow>,
    staff: Vec<StaffRow>,
    business_feed: String,
    closures: Vec<String>,
}

/// "09:00-12:00, 14:00-18:00" of a day's windows.
fn windows_words(windows: &[Window], weekday: i8) -> String {
    windows
        .iter()
        .filter(|w| w.weekday == weekday)
        .map(|w| format!("{}-{}", clock(w.start_minute), clock(w.end_minute)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn clock(minute: i32) -> String {
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

fn parse_clock(s: &str) -> Option<i32> {
    let (h, m) = s.trim().split_once(':')?;
    let (h, m): (i32, i32) = (h.trim().parse().ok()?, m.trim().parse().ok()?);
    ((0..=24).contains(&h) && (0..60).contains(&m) && h * 60 + m <= 1440).then_some(h * 60 + m)
}

/// The windows of one weekday from "09:00-12:00, 14:00-18:00".
pub fn parse_windows(weekday: i8, text: &str) -> Option<Vec<Window>> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-')?;
        out.push(Window {
            weekday,
            start_minute: parse_clock(a)?,
            end_minute: parse_clock(b)?,
        });
    }
    Some(out)
}

#[derive(Deserialize)]
struct WeekQuery {
    week: Option<String>,
}

async fn page(
    state: web::Data<ConsoleState>,
    session: ConsoleSession,
    query: web::Query<WeekQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let nav = Nav::for_session(&session);
    let can_edit = session.may("POST", "/appointments/settings");
    let week = query.week.as_deref().and_then(|w| w.parse::<Date>().ok());
    let page = web::block(move || {
        let book = book(&state);
        let settings = book.settings()?;
        let tz = settings.tz();
        let now = crate::platform::store::now();
        let today = slots::local_date(&tz, now).unwrap_or_default();
        let start = week.unwrap_or(today);
        // back to Monday
        let offset = i64::from(start.weekday().to_monday_zero_offset());
        let monday = start
            .checked_sub(jiff::Span::new().days(offset))
            .unwrap_or(start);
        let days_of_week: Vec<Date> = (0..7)
            .filter_map(|i| monday.checked_add(jiff::Span::new().days(i)).ok())
            .collect();
        let from = slots::instant(&tz, monday, 0).unwrap_or(now);
        let until = days_of_week
            .last()
            .and_then(|d| slots::instant(&tz, *d, 1440))
            .unwrap_or(now);
        let bookings = book.bookings_between(from, until, None)?;
        let days = days_of_week
            .iter()
            .map(|d| DayColumn {
                label: slots::day_label(*d),
                entries: bookings
                    .iter()
                    .filter(|b| slots::local_date(&tz, b.starts_at) == Some(*d))
                    .map(|b| {
                        let time = slots::label(&tz, b.starts_at);
                        let time = time.rsplit(' ').next().unwrap_or_default().to_owned();
                        format!(
                            "{time} {} — {}{}{}",
                            b.service_name,
                            b.details.name,
                            if b.staff_name.is_empty() {
                                String::new()
                            } else {
                                format!(" ({})", b.staff_name)
                            },
                            if b.status == crate::domain::appointments::BookingStatus::Cancelled {
                                " [cancelled]"
                            } else {
                                ""
                            }
                        )
                    })
                    .collect(),
            })
            .collect();
        let hours_all = book.hours("")?;
        let base = state.origin.clone();
        let node = state.node_id.0.clone();
        let page = AppointmentsPage {
            nav,
            zone: zone_words(&settings.time_zone),
            week_label: format!("Week of {}", slots::day_label(monday)),
            prev_week: monday
                .checked_sub(jiff::Span::new().days(7))
                .map(|d| d.to_string())
                .unwrap_or_default(),
            next_week: monday
                .checked_add(jiff::Span::new().days(7))
                .map(|d| d.to_string())
                .unwrap_or_default(),
            days,
            can_edit,
            hours: (1..=7)
                .map(|wd: i8| HoursRow {
                    day: WEEKDAYS[usize::try_from(wd - 1).unwrap_or(0)],
                    field: format!("hours_{wd}"),
                    value: windows_words(&hours_all, wd),
                })
                .collect(),
            services: book
                .services()?
                .into_iter()
                .map(|s| ServiceRow {
                    words: if s.price.is_empty() {
                        format!("{} — {} min", s.name, s.duration_minutes)
                    } else {
                        format!("{} — {} min — {}", s.name, s.duration_minutes, s.price)
                    },
                    id: s.id,
                })
                .collect(),
            staff: book
                .staff()?
                .into_iter()
                .map(|s| StaffRow {
                    feed: if can_edit {
                        book.feed_link(&base, &node, &s.id, now)
                    } else {
                        String::new()
                    },
                    id: s.id,
                    name: s.name,
                })
                .collect(),
            business_feed: if can_edit {
                book.feed_link(&base, &node, "", now)
            } else {
                String::new()
            },
            closures: book
                .closures()?
                .into_iter()
                .filter(|c| c.staff_id.is_empty())
                .map(|c| {
                    if c.label.is_empty() {
                        slots::day_label(c.day)
                    } else {
                        format!("{} — {}", slots::day_label(c.day), c.label)
                    }
                })
                .collect(),
            settings,
        };
        Ok::<_, ConsoleError>(page)
    })
    .await??;
    render(&page)
}

async fn save_settings(
    state: web::Data<ConsoleState>,
    session: WriteSession,
    form: web::Form<HashMap<String, String>>,
) -> Result<HttpResponse, ConsoleError> {
    let num = |k: &str| -> Result<i64, ConsoleError> {
        form.get(k)
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| ConsoleError::BadRequest(format!("Enter a number for {k}.")))
    };
    let settings = Settings {
        time_zone: form
            .get("time_zone")
            .cloned()
            .unwrap_or_default()
            .trim()
            .to_owned(),
        step_minutes: num("step_minutes")?,
        notice_minutes: num("notice_minutes")?,
        horizon_days: num("horizon_days")?,
    };
    let mut windows = Vec::new();
    for wd in 1..=7i8 {
        let text = form
            .get(&format!("hours_{wd}"))
            .cloned()
            .unwrap_or_default();
        windows.extend(parse_windows(wd, &text).ok_or_else(|| {
            ConsoleError::BadRequest(format!(
                "{}: write hours as 09:00-12:00, 14:00-18:00.",
                WEEKDAYS[usize::try_from(wd - 1).unwrap_or(0)]
            ))
        })?);
    }
    web::block(move || {
        let book = book(&state);
        book.save_settings(&settings)?;
        book.set_hours("", &windows)?;
        Ok::<_, ConsoleError>(())
    })
    .await??;
    tracing::info!(user = %session.user_id, "appointment settings saved");
    Ok(see_other_done("/appointments", Done::Saved))
}

async fn add_service(
    state: web::Data<ConsoleState>,
    _session: WriteSession,
    form: web::Form<HashMap<String, String>>,
) -> Result<HttpResponse, ConsoleError> {
    let name = form.get("name").cloned().unwrap_or_default();
    let price = form.get("price").cloned().unwrap_or_default();
    let minutes: i64 = form
        .get("duration_minutes")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    web::block(move || book(&state).add_service(&name, minutes, &price)).await??;
    Ok(see_other_done("/appointments", Done::Saved))
}

async fn delete_service(
    state: web::Data<ConsoleState>,
    _session: WriteSession,
    path: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let id = path.into_inner();
    if !valid_id(&id) {
        return Err(ConsoleError::NotFound);
    }
    web::block(move || book(&state).delete_service(&id)).await??;
    Ok(see_other_done("/appointments", Done::Deleted))
}

async fn add_staff(
    state: web::Data<ConsoleState>,
    _session: WriteSession,
    form: web::Form<HashMap<String, String>>,
) -> Result<HttpResponse, ConsoleError> {
    let name = form.get("name").cloned().unwrap_or_default();
    web::block(move || book(&state).add_staff(&name)).await??;
    Ok(see_other_done("/appointments", Done::Saved))
}

async fn delete_staff(
    state: web::Data<ConsoleState>,
    _session: WriteSession,
    path: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let id = path.into_inner();
    if !valid_id(&id) {
        return Err(ConsoleError::NotFound);
    }
    web::block(move || book(&state).delete_staff(&id)).await??;
    Ok(see_other_done("/appointments", Done::Deleted))
}

async fn add_closure(
    state: web::Data<ConsoleState>,
    _session: WriteSession,
    form: web::Form<HashMap<String, String>>,
) -> Result<HttpResponse, ConsoleError> {
    let day: Date = form
        .get("day")
        .and_then(|d| d.trim().parse().ok())
        .ok_or_else(|| ConsoleError::BadRequest("Pick a date.".to_owned()))?;
    let label = form.get("label").cloned().unwrap_or_default();
    web::block(move || book(&state).add_closure("", day, &label)).await??;
    Ok(see_other_done("/appointments", Done::Saved))
}

struct OfferRow {
    id: String,
    name: String,
    checked: bool,
}

#[derive(Template)]
#[template(path = "appointment_staff.html")]
struct StaffPage {
    nav: Nav,
    id: String,
    name: String,
    own_hours: bool,
    hours: Vec<HoursRow>,
    services: Vec<OfferRow>,
    closures: Vec<String>,
}

/// One staff member's page: the services they offer, their weekly hours (the
/// business's when they have none) and their own closed days.
async fn staff_page(
    state: web::Data<ConsoleState>,
    session: ConsoleSession,
    path: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let id = path.into_inner();
    if !valid_id(&id) {
        return Err(ConsoleError::NotFound);
    }
    let nav = Nav::for_session(&session);
    let page = web::block(move || {
        let book = book(&state);
        let member = book
            .staff()?
            .into_iter()
            .find(|s| s.id == id)
            .ok_or(ConsoleError::NotFound)?;
        let own = book.hours(&id)?;
        let offered = book.staff_services(&id)?;
        Ok::<_, ConsoleError>(StaffPage {
            nav,
            own_hours: !own.is_empty(),
            hours: (1..=7)
                .map(|wd: i8| HoursRow {
                    day: WEEKDAYS[usize::try_from(wd - 1).unwrap_or(0)],
                    field: format!("hours_{wd}"),
                    value: windows_words(&own, wd),
                })
                .collect(),
            services: book
                .services()?
                .into_iter()
                .map(|s| OfferRow {
                    checked: offered.contains(&s.id),
                    id: s.id,
                    name: s.name,
                })
                .collect(),
            closures: book
                .closures()?
                .into_iter()
                .filter(|c| c.staff_id == id)
                .map(|c| {
                    if c.label.is_empty() {
                        slots::day_label(c.day)
                    } else {
                        format!("{} — {}", slots::day_label(c.day), c.label)
                    }
                })
                .collect(),
            id,
            name: member.name,
        })
    })
    .await??;
    render(&page)
}

/// Saves a staff member's services (none ticked: every service) and weekly hours (all
/// empty: the business's).
async fn save_staff(
    state: web::Data<ConsoleState>,
    session: WriteSession,
    path: web::Path<String>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, ConsoleError> {
    let id = path.into_inner();
    if !valid_id(&id) {
        return Err(ConsoleError::NotFound);
    }
    let services: Vec<String> = form
        .iter()
        .filter(|(k, _)| k == "service")
        .map(|(_, v)| v.clone())
        .collect();
    let mut windows = Vec::new();
    for wd in 1..=7i8 {
        let field = format!("hours_{wd}");
        let text = form
            .iter()
            .find(|(k, _)| *k == field)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default();
        windows.extend(parse_windows(wd, text).ok_or_else(|| {
            ConsoleError::BadRequest(format!(
                "{}: write hours as 09:00-12:00, 14:00-18:00.",
                WEEKDAYS[usize::try_from(wd - 1).unwrap_or(0)]
            ))
        })?);
    }
    let back = format!("/appointments/staff/{id}");
    web::block(move || {
        let book = book(&state);
        book.set_staff_services(&id, &services)?;
        book.set_hours(&id, &windows)?;
        Ok::<_, ConsoleError>(())
    })
    .await??;
    tracing::info!(user = %session.user_id, "staff hours and services saved");
    Ok(see_other_done(&back, Done::Saved))
}

/// Closes a day for one staff member.
async fn add_staff_closure(
    state: web::Data<ConsoleState>,
    _session: WriteSession,
    path: web::Path<String>,
    form: web::Form<HashMap<String, String>>,
) -> Result<HttpResponse, ConsoleError> {
    let id = path.into_inner();
    if !valid_id(&id) {
        return Err(ConsoleError::NotFound);
    }
    let day: Date = form
        .get("day")
        .and_then(|d| d.trim().parse().ok())
        .ok_or_else(|| ConsoleError::BadRequest("Pick a date.".to_owned()))?;
    let label = form.get("label").cloned().unwrap_or_default();
    let back = format!("/appointments/staff/{id}");
    web::block(move || {
        let book = book(&state);
        if !book.staff()?.iter().any(|s| s.id == id) {
            return Err(ConsoleError::NotFound);
        }
        book.add_closure(&id, day, &label)?;
        Ok(())
    })
    .await??;
    Ok(see_other_done(&back, Done::Saved))
}

// ---- pages reached through signed links ----

#[derive(Deserialize)]
struct LinkQuery {
    purpose: Option<String>,
    expires: Option<i64>,
    sig: Option<String>,
}

#[derive(Template)]
#[template(path = "appointment_link.html")]
struct LinkPage {
    title: String,
    message: String,
    /// `(action, button)`: a form posting the same signed query.
    forms: Vec<(String, String)>,
}

fn refused() -> HttpResponse {
    MessagePage {
        title: "Link not valid",
        message: "This link is not valid or has expired. Ask the business for a new one.",
    }
    .respond(StatusCode::FORBIDDEN)
}

/// Checks the link for `purpose` and `subject`; `Some(query string)` when genuine.
fn checked(
    state: &ConsoleState,
    book: &Appointments,
    q: &LinkQuery,
    purpose: Purpose,
    subject: &str,
) -> Option<String> {
    let (Some(p), Some(expires), Some(sig)) = (&q.purpose, q.expires, &q.sig) else {
        return None;
    };
    if Purpose::parse(p) != Some(purpose) {
        return None;
    }
    book.link_ok(
        &state.node_id.0,
        purpose,
        subject,
        expires,
        sig,
        crate::platform::store::now(),
    )
    .then(|| format!("purpose={p}&expires={expires}&sig={sig}"))
}

fn ics_response(name: &str, body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/calendar; charset=utf-8")
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"{name}\""),
        ))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .body(body)
}

async fn booking_ics(
    state: web::Data<ConsoleState>,
    path: web::Path<String>,
    query: web::Query<LinkQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let id = path.into_inner();
    if !valid_id(&id) {
        return Ok(refused());
    }
    let result = web::block(move || {
        let book = book(&state);
        if checked(&state, &book, &query, Purpose::Event, &id).is_none() {
            return Ok::<_, ConsoleError>(None);
        }
        let b = book.booking(&id)?;
        let host = state
            .origin
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        Ok(Some(ics::calendar(
            &state.workspace.name,
            &host,
            &[b],
            crate::platform::store::now(),
        )))
    })
    .await?;
    match result {
        Ok(Some(body)) => Ok(ics_response("appointment.ics", body)),
        Ok(None) | Err(ConsoleError::NotFound) => Ok(refused()),
        Err(e) => Err(e),
    }
}

async fn feed(
    state: web::Data<ConsoleState>,
    path: web::Path<String>,
    query: web::Query<LinkQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let who = path.into_inner();
    let staff = if who == "all" { String::new() } else { who };
    if !staff.is_empty() && !valid_id(&staff) {
        return Ok(refused());
    }
    let body = web::block(move || {
        let book = book(&state);
        if checked(&state, &book, &query, Purpose::Feed, &staff).is_none() {
            return Ok::<_, ConsoleError>(None);
        }
        let now = crate::platform::store::now();
        let filter = (!staff.is_empty()).then_some(staff.as_str());
        let bookings = book.bookings_between(now - 30 * 86_400, now + 366 * 86_400, filter)?;
        let host = state
            .origin
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        Ok(Some(ics::calendar(
            &state.workspace.name,
            &host,
            &bookings,
            now,
        )))
    })
    .await??;
    Ok(match body {
        Some(b) => ics_response("calendar.ics", b),
        None => refused(),
    })
}

async fn manage_page(
    state: web::Data<ConsoleState>,
    path: web::Path<(String, String)>,
    query: web::Query<LinkQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let (id, action) = path.into_inner();
    let purpose = match action.as_str() {
        "cancel" => Purpose::Cancel,
        "reschedule" => Purpose::Reschedule,
        _ => return Err(ConsoleError::NotFound),
    };
    if !valid_id(&id) {
        return Ok(refused());
    }
    let page = web::block(move || {
        let book = book(&state);
        let Some(q) = checked(&state, &book, &query, purpose, &id) else {
            return Ok::<_, ConsoleError>(None);
        };
        let b = book.booking(&id)?;
        let settings = book.settings()?;
        let tz = settings.tz();
        let when = format!(
            "{} on {} ({})",
            b.service_name,
            slots::label(&tz, b.starts_at),
            zone_words(&settings.time_zone)
        );
        if b.status == crate::domain::appointments::BookingStatus::Cancelled {
            return Ok(Some(LinkPage {
                title: "Appointment cancelled".into(),
                message: format!("{when} is cancelled."),
                forms: vec![],
            }));
        }
        Ok(Some(match purpose {
            Purpose::Cancel => LinkPage {
                title: "Cancel your appointment".into(),
                message: format!("Cancel {when}?"),
                forms: vec![(
                    format!("/appointments/{id}/cancel?{q}"),
                    "Cancel the appointment".into(),
                )],
            },
            _ => {
                let now = crate::platform::store::now();
                let staff = (!b.staff_id.is_empty()).then_some(b.staff_id.as_str());
                let others = book.find_slots(&b.service_id, staff, now, i64::MAX / 2, now, 12)?;
                LinkPage {
                    title: "Move your appointment".into(),
                    message: format!("{when}. Pick another time:"),
                    forms: others
                        .iter()
                        .map(|s| {
                            (
                                format!(
                                    "/appointments/{id}/reschedule?{q}&starts_at={}",
                                    s.starts_at
                                ),
                                slots::label(&tz, s.starts_at),
                            )
                        })
                        .collect(),
                }
            }
        }))
    })
    .await?;
    match page {
        Ok(Some(p)) => render(&p),
        Ok(None) | Err(ConsoleError::NotFound) => Ok(refused()),
        Err(e) => Err(e),
    }
}

#[derive(Deserialize)]
struct ManageQuery {
    purpose: Option<String>,
    expires: Option<i64>,
    sig: Option<String>,
    starts_at: Option<i64>,
}

async fn manage(
    state: web::Data<ConsoleState>,
    path: web::Path<(String, String)>,
    query: web::Query<ManageQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let (id, action) = path.into_inner();
    let purpose = match action.as_str() {
        "cancel" => Purpose::Cancel,
        "reschedule" => Purpose::Reschedule,
        _ => return Err(ConsoleError::NotFound),
    };
    if !valid_id(&id) {
        return Ok(refused());
    }
    let q = query.into_inner();
    let link = LinkQuery {
        purpose: q.purpose,
        expires: q.expires,
        sig: q.sig,
    };
    let done = web::block(move || {
        let book = book(&state);
        if checked(&state, &book, &link, purpose, &id).is_none() {
            return Ok::<_, AppointmentError>(None);
        }
        let now = crate::platform::store::now();
        let settings = book.settings()?;
        let tz = settings.tz();
        let b = match purpose {
            Purpose::Cancel => book.cancel(&id, now)?,
            _ => book.reschedule(&id, q.starts_at.unwrap_or_default(), now)?,
        };
        let when = format!(
            "{} on {} ({})",
            b.service_name,
            slots::label(&tz, b.starts_at),
            zone_words(&settings.time_zone)
        );
        Ok(Some(match purpose {
            Purpose::Cancel => LinkPage {
                title: "Appointment cancelled".into(),
                message: format!("{when} is cancelled."),
                forms: vec![],
            },
            _ => LinkPage {
                title: "Appointment moved".into(),
                message: format!("Your appointment is now {when}."),
                forms: vec![],
            },
        }))
    })
    .await?;
    match done {
        Ok(Some(p)) => render(&p),
        Ok(None) | Err(AppointmentError::NotFound) => Ok(refused()),
        Err(AppointmentError::Taken(_)) => Ok(MessagePage {
            title: "That time is taken",
            message: "Someone booked that time first. Go back and pick another.",
        }
        .respond(StatusCode::CONFLICT)),
        Err(e) => Err(e.into()),
    }
}

/// Routes of this section.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/appointments", web::get().to(page))
        .route("/appointments/settings", web::post().to(save_settings))
        .route("/appointments/services", web::post().to(add_service))
        .route(
            "/appointments/services/{id}/delete",
            web::post().to(delete_service),
        )
        .route("/appointments/staff", web::post().to(add_staff))
        .route(
            "/appointments/staff/{id}/delete",
            web::post().to(delete_staff),
        )
        .route(
            "/appointments/staff/{id}/closures",
            web::post().to(add_staff_closure),
        )
        .route("/appointments/staff/{id}", web::get().to(staff_page))
        .route("/appointments/staff/{id}", web::post().to(save_staff))
        .route("/appointments/closures", web::post().to(add_closure))
        .route(
            "/appointments/feed/{staff}/calendar.ics",
            web::get().to(feed),
        )
        .route("/appointments/{id}/booking.ics", web::get().to(booking_ics))
        .route("/appointments/{id}/{action}", web::get().to(manage_page))
        .route("/appointments/{id}/{action}", web::post().to(manage));
}
