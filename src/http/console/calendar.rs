//! The calendar: a month of retirements by effective date (days in UTC), and the
//! secret addresses a calendar application subscribes to (`/v1/calendars/….ics`, made,
//! listed and revoked through the same use cases as GraphQL's `createCalendarFeed`).

use super::{Chrome, ConsolePage, ConsoleUser, PageError, Posted};
use crate::domain::{Retirement, RetirementState};
use crate::http::AppState;
use crate::service::{CalendarFeed, MAX_RETIREMENT_LIST};
use askama::Template;
use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{Datelike, Days, Months, NaiveDate, TimeZone, Utc};

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct MonthQuery {
    /// `YYYY-MM`; this month when absent.
    month: String,
}

/// One day of the grid; days of the neighbouring months fill the first and last weeks.
struct Day {
    number: u32,
    in_month: bool,
    today: bool,
    retirements: Vec<Retirement>,
    /// Brownout windows starting this day: the retirement and the window.
    brownouts: Vec<(Retirement, crate::domain::Brownout)>,
}

#[derive(Template)]
#[template(path = "console/calendar.html")]
struct CalendarPage {
    chrome: Chrome,
    weeks: Vec<Vec<Day>>,
    shown: usize,
    previous: String,
    next: String,
    feeds: Vec<CalendarFeed>,
    /// The address of a feed just made: shown this once.
    new_feed: Option<(String, String)>,
    error: Option<String>,
}

/// `GET /ui/calendar?month=YYYY-MM`.
pub async fn page(
    State(state): State<AppState>,
    Extension(user): Extension<ConsoleUser>,
    Query(query): Query<MonthQuery>,
) -> Result<Response, PageError> {
    let first = if query.month.is_empty() {
        let today = state.services.now().date_naive();
        today.with_day(1).unwrap_or(today)
    } else {
        NaiveDate::parse_from_str(&format!("{}-01", query.month.trim()), "%Y-%m-%d")
            .map_err(|_| PageError::invalid("give the month as YYYY-MM"))?
    };
    render(&state, &user, first, None, None).await
}

async fn render(
    state: &AppState,
    user: &ConsoleUser,
    first: NaiveDate,
    new_feed: Option<(String, String)>,
    error: Option<String>,
) -> Result<Response, PageError> {
    let out_of_range = || PageError::invalid("that month is out of range");
    let next_first = first
        .checked_add_months(Months::new(1))
        .ok_or_else(out_of_range)?;
    let previous_first = first
        .checked_sub_months(Months::new(1))
        .ok_or_else(out_of_range)?;
    let at_midnight = |d: NaiveDate| Utc.from_utc_datetime(&d.and_time(chrono::NaiveTime::MIN));
    let shown_states: Vec<RetirementState> = RetirementState::ALL
        .iter()
        .copied()
        .filter(|s| *s != RetirementState::Cancelled)
        .collect();
    let retirements = state
        .services
        .retirements()
        .list(
            &shown_states,
            Some(at_midnight(first)),
            Some(at_midnight(next_first)),
            Some(MAX_RETIREMENT_LIST),
        )
        .await?;
    let shown = retirements.len();
    // Brownouts precede their retirement's date by the notice period at most: those of
    // retirements pending up to a year after the month.
    let later = next_first
        .checked_add_months(Months::new(13))
        .ok_or_else(out_of_range)?;
    let pending: Vec<RetirementState> = RetirementState::ALL
        .iter()
        .copied()
        .filter(|s| s.is_pending())
        .collect();
    let brownouts = state
        .services
        .retirements()
        .list(
            &pending,
            Some(at_midnight(first)),
            Some(at_midnight(later)),
            Some(MAX_RETIREMENT_LIST),
        )
        .await?
        .into_iter()
        .flat_map(|r| {
            let windows = r.levers.brownouts.clone();
            windows.into_iter().map(move |w| (r.clone(), w))
        })
        .filter(|(_, w)| w.start >= at_midnight(first) && w.start < at_midnight(next_first))
        .collect();
    let today = state.services.now().date_naive();
    let weeks = month_grid(first, next_first, today, retirements, brownouts);
    let status = super::page::status_with(&error);
    let page = CalendarPage {
        chrome: Chrome::new(
            user,
            "/ui/calendar",
            format!("Retirements in {}", first.format("%B %Y")),
        ),
        weeks,
        shown,
        previous: format!("/ui/calendar?month={}", previous_first.format("%Y-%m")),
        next: format!("/ui/calendar?month={}", next_first.format("%Y-%m")),
        feeds: state
            .services
            .retirements()
            .calendar_feeds(user.actor())
            .await?,
        new_feed,
        error,
    };
    Ok((status, ConsolePage(page)).into_response())
}

/// The weeks (Monday first) that hold the month starting `first`, each retirement on
/// its effective day.
fn month_grid(
    first: NaiveDate,
    next_first: NaiveDate,
    today: NaiveDate,
    mut retirements: Vec<Retirement>,
    mut brownouts: Vec<(Retirement, crate::domain::Brownout)>,
) -> Vec<Vec<Day>> {
    let start = first - Days::new(u64::from(first.weekday().num_days_from_monday()));
    let mut weeks = Vec::new();
    let mut day = start;
    while day < next_first {
        let mut week = Vec::with_capacity(7);
        for _ in 0..7 {
            let (on_day, rest) = retirements
                .into_iter()
                .partition(|r| r.effective_at.date_naive() == day);
            retirements = rest;
            let (windows, later) = brownouts
                .into_iter()
                .partition(|(_, w)| w.start.date_naive() == day);
            brownouts = later;
            week.push(Day {
                number: day.day(),
                in_month: day >= first && day < next_first,
                today: day == today,
                retirements: on_day,
                brownouts: windows,
            });
            day = day + Days::new(1);
        }
        weeks.push(week);
    }
    weeks
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct FeedForm {
    name: String,
}

/// `POST /ui/calendar/feeds`: makes a feed and shows its address once.
pub async fn create_feed(
    State(state): State<AppState>,
    posted: Posted<FeedForm>,
) -> Result<Response, PageError> {
    let Posted { user, form } = posted;
    let this_month = {
        let today = state.services.now().date_naive();
        today.with_day(1).unwrap_or(today)
    };
    match state
        .services
        .retirements()
        .create_calendar_feed(user.actor(), &form.name)
        .await
    {
        Ok(made) => {
            let shown = (made.feed.name.clone(), made.url.as_str().to_owned());
            render(&state, &user, this_month, Some(shown), None).await
        }
        Err(e) => {
            let message = PageError::refusal_or_message(e)?;
            render(&state, &user, this_month, None, Some(message)).await
        }
    }
}

#[derive(serde::Deserialize, Default)]
pub struct RevokeForm {}

/// `POST /ui/calendar/feeds/{id}/revoke`.
pub async fn revoke_feed(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    posted: Posted<RevokeForm>,
) -> Result<Response, PageError> {
    state
        .services
        .retirements()
        .revoke_calendar_feed(posted.user.actor(), id)
        .await?;
    Ok(Redirect::to("/ui/calendar#subscribe").into_response())
}
