//! Jitsi's dial-in lookups, in Jitsi's JSON shapes, so Jitsi clients and tooling configured with
//! `dialInConfCodeUrl` and `dialInNumbersUrl` work: `GET /conferenceMapper?conference=<room>@conference.<tenant>.<host>`
//! (the room's PIN, given on first ask) or `?id=<PIN>` (the room a PIN opens), and
//! `GET /phoneNumberList?conference=…`. Unlike Jitsi's, they need the tenant's API key: a PIN lets a caller
//! into the meeting, so it is no more public than a guest link.

use actix_web::{HttpResponse, get, web};
use convene_domain::{MeetingPin, RoomName, TenantId};
use serde::Deserialize;
use serde_json::json;

use crate::{
    http::{
        AppState,
        routes::v1::{ApiTenant, MeetUrl},
    },
    meetings::dial_in::{self, DialInError},
};

/// Registers the two lookups.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(conference_mapper).service(phone_number_list);
}

#[derive(Debug, Deserialize)]
struct Lookup {
    conference: Option<String>,
    id: Option<String>,
}

/// A tenant's room from a conference address, `<room>@conference.<tenant id>.<meet host>` (a multi-tenant
/// Jitsi's room address), when it is the asking tenant's.
fn own_room(conference: &str, tenant: TenantId) -> Option<RoomName> {
    let (room, domain) = conference.split_once('@')?;
    let named = domain.strip_prefix("conference.")?.split('.').next()?;
    (TenantId::parse(named).ok()? == tenant).then(|| RoomName::parse(&room.to_lowercase()).ok()).flatten()
}

fn conference_address(tenant: TenantId, room: &RoomName, meet: &MeetUrl) -> String {
    format!("{room}@conference.{tenant}.{}", meet.0.host_str().unwrap_or("meet"))
}

fn not_found(id: Option<&str>) -> HttpResponse {
    HttpResponse::NotFound()
        .json(json!({ "message": "No conference mapping was found", "id": id, "conference": false }))
}

fn refused(error: DialInError, id: Option<&str>) -> HttpResponse {
    match error {
        DialInError::NotFound => not_found(id),
        DialInError::NotInPlan(words) => HttpResponse::Forbidden().json(json!({ "message": words })),
        other => {
            tracing::error!(error = %other, "a Jitsi dial-in lookup failed");
            HttpResponse::InternalServerError().json(json!({ "message": "internal error" }))
        }
    }
}

const ASK: &str = "give conference=<room>@conference.<tenant id>.<meet host> or id=<PIN>";

/// `GET /conferenceMapper`: a room's PIN, or the room a PIN opens.
#[get("/conferenceMapper")]
async fn conference_mapper(tenant: ApiTenant, lookup: web::Query<Lookup>, state: web::Data<AppState>) -> HttpResponse {
    let tenant = tenant.0;
    let found = |pin: &MeetingPin, conference: String| {
        let id: u64 = pin.as_str().parse().unwrap_or_default();
        HttpResponse::Ok().json(json!({
            "message": "Successfully retrieved conference mapping", "id": id, "conference": conference,
        }))
    };
    match (&lookup.conference, &lookup.id) {
        (Some(conference), None) => {
            let Some(room) = own_room(conference, tenant) else { return not_found(None) };
            match state.dial_in.room(tenant, &room).await {
                Ok(details) => match MeetingPin::parse(&details.pin) {
                    Ok(pin) => found(&pin, conference_address(tenant, &room, &state.meet_url)),
                    Err(_) => refused(DialInError::NotFound, None),
                },
                Err(error) => refused(error, None),
            }
        }
        (None, Some(id)) => {
            let Ok(pin) = MeetingPin::parse(id) else { return not_found(Some(id)) };
            match dial_in::room_of_pin(&state.db, &pin).await {
                Ok(Some((owner, room))) if owner == tenant => {
                    found(&pin, conference_address(tenant, &room, &state.meet_url))
                }
                Ok(_) => not_found(Some(id)),
                Err(error) => refused(error.into(), Some(id)),
            }
        }
        _ => HttpResponse::BadRequest().json(json!({ "message": ASK })),
    }
}

/// `GET /phoneNumberList?conference=…`: the numbers to dial, in Jitsi's current array shape.
#[get("/phoneNumberList")]
async fn phone_number_list(tenant: ApiTenant, lookup: web::Query<Lookup>, state: web::Data<AppState>) -> HttpResponse {
    let tenant = tenant.0;
    if let Some(conference) = &lookup.conference
        && own_room(conference, tenant).is_none()
    {
        return not_found(None);
    }
    match state.dial_in.numbers(tenant).await {
        Ok(numbers) => HttpResponse::Ok().json(
            numbers
                .into_iter()
                .map(|number| {
                    json!({ "countryCode": number.country, "tollFree": number.toll_free, "formattedNumber": number.number })
                })
                .collect::<Vec<_>>(),
        ),
        Err(error) => refused(error, None),
    }
}
