//! Form endpoints for scheduling meetings and for participant links. Meeting ids are looked up in the
//! actor's tenant only (404 otherwise); join codes are the unguessable part of a participant link.

use actix_web::{HttpRequest, HttpResponse, post, web};
use convene_app::forms::Flash;
use convene_domain::{MaxResolution, RoomSettings, UnknownResolution};
use serde::Deserialize;
use uuid::Uuid;

use crate::{
    http::AppState,
    http::routes::{
        auth::{CookiePolicy, back_with, capitalise, current_session, see_other, unexpected},
        team::{SignedIn, forbidden, not_found},
    },
    meetings::schedule::MeetingInput,
    meetings::scheduled::{Delivery, JoinError, Joiner, MeetingError},
};

/// Registers the endpoints.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(schedule)
        .service(update)
        .service(cancel)
        .service(start)
        .service(join)
        .service(join_as_guest)
        .service(join_as_invitee);
}

/// The meeting form as posted: text fields as typed, checkboxes present only when ticked.
#[derive(Deserialize)]
struct MeetingForm {
    title: String,
    #[serde(default)]
    room: String,
    starts_at: String,
    ends_at: String,
    time_zone: String,
    #[serde(default)]
    weekly_occurrences: String,
    #[serde(default)]
    invitees: String,
    #[serde(default)]
    lobby: Option<String>,
    #[serde(default)]
    password: String,
    #[serde(default)]
    max_participants: String,
    #[serde(default)]
    guests_allowed: Option<String>,
    #[serde(default)]
    recording_allowed: Option<String>,
    #[serde(default)]
    auto_record: Option<String>,
    #[serde(default)]
    end_to_end_encryption: Option<String>,
    #[serde(default)]
    high_fidelity_audio: Option<String>,
    #[serde(default)]
    fixed_display_names: Option<String>,
    #[serde(default)]
    max_resolution: String,
}

impl MeetingForm {
    /// The service's input, or the field that could not even be read.
    fn input(&self) -> Result<MeetingInput, (&'static str, String)> {
        let number = |field: &'static str, text: &str| -> Result<Option<i32>, (&'static str, String)> {
            let text = text.trim();
            if text.is_empty() {
                return Ok(None);
            }
            text.parse().map(Some).map_err(|_| (field, format!("`{text}` is not a whole number")))
        };
        let weekly_occurrences = number("weekly_occurrences", &self.weekly_occurrences)?.unwrap_or(1);
        Ok(MeetingInput {
            title: self.title.clone(),
            room: Some(self.room.trim().to_owned()).filter(|room| !room.is_empty()),
            starts_at: self.starts_at.clone(),
            ends_at: self.ends_at.clone(),
            time_zone: self.time_zone.clone(),
            weekly_occurrences: u32::try_from(weekly_occurrences)
                .map_err(|_| ("weekly_occurrences", "between 1 and 52".to_owned()))?,
            invitees: self
                .invitees
                .split(|c: char| c.is_whitespace() || c == ',' || c == ';')
                .filter(|address| !address.is_empty())
                .map(str::to_owned)
                .collect(),
            settings: RoomSettings {
                lobby: self.lobby.is_some(),
                password: Some(self.password.clone()).filter(|password| !password.is_empty()),
                max_participants: number("max_participants", &self.max_participants)?,
                guests_allowed: self.guests_allowed.is_some(),
                recording_allowed: self.recording_allowed.is_some(),
                auto_record: self.auto_record.is_some(),
                end_to_end_encryption: self.end_to_end_encryption.is_some(),
                high_fidelity_audio: self.high_fidelity_audio.is_some(),
                fixed_display_names: self.fixed_display_names.is_some(),
                max_resolution: match self.max_resolution.trim() {
                    "" => MaxResolution::default(),
                    text => text.parse().map_err(|error: UnknownResolution| ("max_resolution", error.to_string()))?,
                },
            },
        })
    }

    /// A refusal that puts back what was typed (never the room password).
    fn refused(&self, message: &str) -> Flash {
        let ticked = |value: &Option<String>| if value.is_some() { "on" } else { "" };
        Flash::failure("meeting", message)
            .keep("title", &self.title)
            .keep("room", &self.room)
            .keep("starts_at", &self.starts_at)
            .keep("ends_at", &self.ends_at)
            .keep("time_zone", &self.time_zone)
            .keep("weekly_occurrences", &self.weekly_occurrences)
            .keep("invitees", &self.invitees)
            .keep("lobby", ticked(&self.lobby))
            .keep("max_participants", &self.max_participants)
            .keep("guests_allowed", ticked(&self.guests_allowed))
            .keep("recording_allowed", ticked(&self.recording_allowed))
            .keep("auto_record", ticked(&self.auto_record))
            .keep("end_to_end_encryption", ticked(&self.end_to_end_encryption))
            .keep("high_fidelity_audio", ticked(&self.high_fidelity_audio))
            .keep("fixed_display_names", ticked(&self.fixed_display_names))
            .keep("max_resolution", &self.max_resolution)
    }
}

/// Saved: to the meeting's page, saying who could not be mailed.
fn saved(id: Uuid, what: &str, delivery: &Delivery, policy: CookiePolicy) -> HttpResponse {
    let flash = if delivery.failed.is_empty() {
        Flash::success("meeting", what)
    } else {
        Flash::failure("meeting", format!("{what} The mail to {} could not be queued.", delivery.failed.join(", ")))
    };
    back_with(&format!("/meetings/{id}"), &flash, policy)
}

/// Maps a refusal at `location`; a refused form comes back with what was typed.
fn refused(location: &str, form: Option<&MeetingForm>, error: MeetingError, policy: CookiePolicy) -> HttpResponse {
    let flash = |message: &str| form.map_or_else(|| Flash::failure("meeting", message), |form| form.refused(message));
    match error {
        MeetingError::Invalid { field, message } => {
            back_with(location, &flash("Please correct the marked fields.").field(field, capitalise(&message)), policy)
        }
        MeetingError::Forbidden => forbidden(),
        MeetingError::NotFound => not_found(),
        error @ (MeetingError::Unverified | MeetingError::Closed(_) | MeetingError::RateLimited) => {
            back_with(location, &flash(&capitalise(&error.to_string())), policy)
        }
        error => unexpected(location, "meeting", &error, policy),
    }
}

#[post("/meetings")]
async fn schedule(SignedIn(actor): SignedIn, form: web::Form<MeetingForm>, state: web::Data<AppState>) -> HttpResponse {
    let input = match form.input() {
        Ok(input) => input,
        Err((field, message)) => {
            return refused("/meetings/new", Some(&form), MeetingError::Invalid { field, message }, state.cookies);
        }
    };
    match state.meetings.schedule(actor, input).await {
        Ok((id, delivery)) => saved(id, "The meeting is scheduled.", &delivery, state.cookies),
        Err(error) => refused("/meetings/new", Some(&form), error, state.cookies),
    }
}

#[post("/meetings/{id}")]
async fn update(
    SignedIn(actor): SignedIn,
    id: web::Path<Uuid>,
    form: web::Form<MeetingForm>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let location = format!("/meetings/{id}");
    let input = match form.input() {
        Ok(input) => input,
        Err((field, message)) => {
            return refused(&location, Some(&form), MeetingError::Invalid { field, message }, state.cookies);
        }
    };
    match state.meetings.update(actor, *id, input).await {
        Ok(delivery) => saved(*id, "The meeting is updated and everyone invited was told.", &delivery, state.cookies),
        Err(error) => refused(&location, Some(&form), error, state.cookies),
    }
}

#[post("/meetings/{id}/cancel")]
async fn cancel(SignedIn(actor): SignedIn, id: web::Path<Uuid>, state: web::Data<AppState>) -> HttpResponse {
    let location = format!("/meetings/{id}");
    match state.meetings.cancel(actor, *id).await {
        Ok(delivery) => saved(*id, "The meeting is cancelled and everyone invited was told.", &delivery, state.cookies),
        Err(error) => refused(&location, None, error, state.cookies),
    }
}

/// The moderator's "Start": straight into the meeting with a moderator token.
#[post("/meetings/{id}/start")]
async fn start(SignedIn(actor): SignedIn, id: web::Path<Uuid>, state: web::Data<AppState>) -> HttpResponse {
    let location = format!("/meetings/{id}");
    match state.meetings.start(actor, *id).await {
        Ok(url) => see_other(&url).finish(),
        Err(error) => refused(&location, None, error, state.cookies),
    }
}

fn join_outcome(code: &str, result: Result<String, JoinError>, policy: CookiePolicy) -> HttpResponse {
    let location = format!("/join/{code}");
    match result {
        Ok(url) => see_other(&url).finish(),
        Err(JoinError::NotFound) => not_found(),
        Err(JoinError::Internal(error)) => unexpected(&location, "join", error.as_ref(), policy),
        Err(error) => back_with(&location, &Flash::failure("join", capitalise(&error.to_string())), policy),
    }
}

/// A signed-in person follows a participant link; people without a session sign in first and come back.
#[post("/join/{code}")]
async fn join(request: HttpRequest, code: web::Path<String>, state: web::Data<AppState>) -> HttpResponse {
    let Some(session) = current_session(&state.accounts, &request).await else {
        let next = format!("/join/{code}");
        let next: String = url::form_urlencoded::byte_serialize(next.as_bytes()).collect();
        return see_other(&format!("/login?next={next}")).finish();
    };
    join_outcome(&code, state.meetings.join(&code, Joiner::Person(session.user_id)).await, state.cookies)
}

#[derive(Deserialize)]
struct GuestForm {
    name: String,
}

/// Someone without an account joins by name, when the meeting admits guests.
#[post("/join/{code}/guest")]
async fn join_as_guest(
    code: web::Path<String>,
    form: web::Form<GuestForm>,
    state: web::Data<AppState>,
) -> HttpResponse {
    join_outcome(&code, state.meetings.join(&code, Joiner::Guest(form.into_inner().name)).await, state.cookies)
}

#[derive(Deserialize)]
struct InviteeForm {
    invite: String,
}

/// An invitee follows their personal link: in under their invited name, no account needed.
#[post("/join/{code}/invitee")]
async fn join_as_invitee(
    code: web::Path<String>,
    form: web::Form<InviteeForm>,
    state: web::Data<AppState>,
) -> HttpResponse {
    join_outcome(&code, state.meetings.join(&code, Joiner::Invitee(form.into_inner().invite)).await, state.cookies)
}
