//! Phone dial-in's numbers and PINs: the operator assigns numbers on the internal listener, a tenant's app
//! reads a room's PIN and numbers, the PIN leads back to that room only, and the plan decides.

use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, call, exchange, spawn_app, spawn_configured, tenant_key},
    recordings::RECORDING_PLANS,
};

/// Sends `body` to the operator's API on the internal listener.
pub(crate) async fn operator(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    exchange(app.client.request(method, format!("{}/operator{path}", app.metrics_address)), body).await
}

pub(crate) async fn tenant_id(app: &TestApp, key: &str) -> String {
    let (_, tenant) = call(app, Method::GET, "/v1/tenant", key, None).await;
    tenant["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_rooms_pin_and_its_tenants_numbers_let_callers_in_and_lead_back_to_that_room_only() {
    use convene_domain::MeetingPin;

    let app = spawn_configured(&[("CONVENE_PLANS", RECORDING_PLANS.to_owned())]).await;
    let acme = tenant_key(&app, "owner@acme.example").await;
    let globex = tenant_key(&app, "owner@globex.example").await;
    let (acme_id, globex_id) = (tenant_id(&app, &acme).await, tenant_id(&app, &globex).await);

    // The operator assigns numbers; bad ones, a taken one and an unknown tenant are refused in words.
    let assign = |tenant: &str, number: &str, country: &str, toll_free: bool| json!({ "tenant_id": tenant, "number": number, "country": country, "toll_free": toll_free });
    let (status, added) =
        operator(&app, Method::POST, "/dial-in-numbers", Some(assign(&acme_id, "+44 20 7946 0958", "gb", false))).await;
    assert_eq!((status, added["number"].as_str()), (201, Some("+442079460958")), "{added}");
    let toll_free = assign(&acme_id, "+1 800 555 0199", "US", true);
    assert_eq!(operator(&app, Method::POST, "/dial-in-numbers", Some(toll_free.clone())).await.0, 201);
    let (status, taken) = operator(&app, Method::POST, "/dial-in-numbers", Some(toll_free)).await;
    assert_eq!((status, taken["error"].as_str()), (409, Some("conflict")), "{taken}");
    let moved = assign(&globex_id, "+18005550199", "US", true);
    assert_eq!(operator(&app, Method::POST, "/dial-in-numbers", Some(moved)).await.0, 409, "a number has one tenant");
    for (bad, field) in [
        (assign(&acme_id, "0800 555 0199", "GB", false), "number:"),
        (assign(&acme_id, "+15550100", "GBR", false), "country:"),
        (assign("acme", "+15550101", "US", false), "tenant_id:"),
        (assign("00000000-0000-7000-8000-000000000000", "+15550102", "US", false), "tenant_id:"),
        (json!({ "tenant_id": acme_id, "number": "+15550103", "country": "US", "colour": "red" }), "colour"),
    ] {
        let (status, refused) = operator(&app, Method::POST, "/dial-in-numbers", Some(bad)).await;
        assert_eq!(status, 400, "{refused}");
        assert!(refused["message"].as_str().is_some_and(|words| words.contains(field)), "{refused}");
    }
    let (_, listed) = operator(&app, Method::GET, "/dial-in-numbers", None).await;
    assert_eq!(listed["numbers"].as_array().map(Vec::len), Some(2), "{listed}");

    // The tenant's app reads a room's PIN and numbers, toll-free first, ready to tap.
    let (status, _) = call(&app, Method::POST, "/v1/rooms", &acme, Some(json!({ "name": "weekly-sync" }))).await;
    assert_eq!(status, 201);
    let (status, dial_in) = call(&app, Method::GET, "/v1/rooms/weekly-sync/dial-in", &acme, None).await;
    assert_eq!(status, 200, "{dial_in}");
    let pin = dial_in["pin"].as_str().unwrap().to_owned();
    assert!(MeetingPin::parse(&pin).is_ok(), "{dial_in}");
    assert_eq!(dial_in["numbers"][0]["number"], "+18005550199");
    assert_eq!(dial_in["numbers"][0]["dial"], format!("+18005550199,,{pin}#"));
    assert_eq!(dial_in["numbers"][0]["tel_url"], format!("tel:+18005550199,,{pin}%23"));
    assert_eq!(
        (dial_in["numbers"][1]["country"].as_str(), dial_in["numbers"][1]["toll_free"].as_bool()),
        (Some("GB"), Some(false))
    );
    let (_, again) = call(&app, Method::GET, "/v1/rooms/weekly-sync/dial-in", &acme, None).await;
    assert_eq!(again["pin"], pin.as_str(), "a room keeps its PIN");
    call(&app, Method::POST, "/v1/rooms", &acme, Some(json!({ "name": "all-hands" }))).await;
    let (_, other) = call(&app, Method::GET, "/v1/rooms/all-hands/dial-in", &acme, None).await;
    assert_ne!(other["pin"], pin.as_str(), "every room has its own PIN");

    // The PIN leads the gateway to acme's room and nowhere else.
    let found = convene_api::meetings::dial_in::room_of_pin(&app.db().await, &MeetingPin::parse(&pin).unwrap())
        .await
        .unwrap()
        .expect("the PIN is a room's");
    assert_eq!((found.0.to_string(), found.1.as_str()), (acme_id.clone(), "weekly-sync"));
    let other_pin = other["pin"].as_str().unwrap();
    let unused = (100_000_000..).map(|n: u32| n.to_string()).find(|n| *n != pin && n != other_pin).unwrap();
    let unused = MeetingPin::parse(&unused).unwrap();
    assert!(convene_api::meetings::dial_in::room_of_pin(&app.db().await, &unused).await.unwrap().is_none());

    // Another tenant sees neither the room nor the numbers.
    let (status, _) = call(&app, Method::GET, "/v1/rooms/weekly-sync/dial-in", &globex, None).await;
    assert_eq!(status, 404);
    let (status, theirs) = call(&app, Method::GET, "/v1/dial-in-numbers", &globex, None).await;
    assert_eq!((status, theirs["numbers"].clone()), (200, json!([])));
    let (_, ours) = call(&app, Method::GET, "/v1/dial-in-numbers", &acme, None).await;
    assert_eq!(ours["numbers"].as_array().map(Vec::len), Some(2), "{ours}");

    // Invitations offer the numbers and the meeting room's PIN, in words and in the calendar entry.
    let meeting = json!({
        "organizer": "owner@acme.example", "title": "Board call", "room": "board-call",
        "starts_at": format!("{}-07-01T09:00", crate::helpers::next_year()),
        "ends_at": format!("{}-07-01T10:00", crate::helpers::next_year()),
        "time_zone": "Europe/London", "invitees": ["dan@outside.example"],
    });
    let (status, scheduled) = call(&app, Method::POST, "/v1/scheduled-meetings", &acme, Some(meeting)).await;
    assert_eq!(status, 201, "{scheduled}");
    let (_, board) = call(&app, Method::GET, "/v1/rooms/board-call/dial-in", &acme, None).await;
    let board_pin = MeetingPin::parse(board["pin"].as_str().unwrap()).unwrap();
    let mail = app.mail_to("dan@outside.example", "Invitation: Board call").await;
    let words = format!(
        "To join by phone, dial +18005550199 (US, toll-free) or +442079460958 (GB) and enter the PIN {} followed by #.",
        board_pin.grouped()
    );
    assert!(mail.text.contains(&words), "{}", mail.text);
    // Unfolded, and commas unescaped as RFC 5545 writes them in text.
    let calendar = mail.calendar.unwrap().1.replace("\r\n ", "").replace("\\,", ",");
    assert!(calendar.contains(&format!("Join by phone: +18005550199,,{board_pin}# (US, toll-free)")), "{calendar}");

    // Taken back: gone from the tenant's list, and a second removal finds nothing.
    assert_eq!(operator(&app, Method::DELETE, "/dial-in-numbers/+442079460958", None).await.0, 204);
    assert_eq!(operator(&app, Method::DELETE, "/dial-in-numbers/+442079460958", None).await.0, 404);
    let (_, ours) = call(&app, Method::GET, "/v1/dial-in-numbers", &acme, None).await;
    assert_eq!(ours["numbers"].as_array().map(Vec::len), Some(1), "{ours}");
    app.stop().await;
}

#[tokio::test]
async fn a_plan_without_dial_in_refuses_it_in_words_and_gives_no_pin() {
    let app = spawn_app().await;
    let key = tenant_key(&app, "owner@acme.example").await;
    call(&app, Method::POST, "/v1/rooms", &key, Some(json!({ "name": "weekly-sync" }))).await;
    let (status, refused) = call(&app, Method::GET, "/v1/rooms/weekly-sync/dial-in", &key, None).await;
    assert_eq!((status, refused["error"].as_str()), (403, Some("forbidden")), "{refused}");
    assert!(refused["message"].as_str().is_some_and(|words| words.contains("does not include phone dial-in")));
    let (status, _) = call(&app, Method::GET, "/v1/dial-in-numbers", &key, None).await;
    assert_eq!(status, 403);
    let (status, _) = call(&app, Method::GET, "/v1/rooms/no-such-room/dial-in", &key, None).await;
    assert_eq!(status, 404, "a missing room is missing whatever the plan");
    app.stop().await;
}

#[tokio::test]
async fn jitsi_clients_read_a_rooms_pin_and_the_numbers_in_jitsis_shapes_with_the_tenants_key() {
    let app = spawn_configured(&[("CONVENE_PLANS", RECORDING_PLANS.to_owned())]).await;
    let acme = tenant_key(&app, "owner@acme.example").await;
    let globex = tenant_key(&app, "owner@globex.example").await;
    let acme_id = tenant_id(&app, &acme).await;
    let number = json!({ "tenant_id": acme_id, "number": "+18005550199", "country": "US", "toll_free": true });
    assert_eq!(operator(&app, Method::POST, "/dial-in-numbers", Some(number)).await.0, 201);
    call(&app, Method::POST, "/v1/rooms", &acme, Some(json!({ "name": "weekly-sync" }))).await;
    let conference = format!("weekly-sync@conference.{acme_id}.meet.localhost");

    // A room's PIN, as the invite dialog asks for it, and back from the PIN, as an IVR does.
    let (status, mapped) =
        call(&app, Method::GET, &format!("/conferenceMapper?conference={conference}"), &acme, None).await;
    assert_eq!(status, 200, "{mapped}");
    assert_eq!(mapped["message"], "Successfully retrieved conference mapping");
    assert_eq!(mapped["conference"], conference.as_str());
    let id = mapped["id"].as_u64().expect("a numeric id");
    let (_, ours) = call(&app, Method::GET, "/v1/rooms/weekly-sync/dial-in", &acme, None).await;
    assert_eq!(ours["pin"], id.to_string(), "the same PIN as the API's");
    let (status, back) = call(&app, Method::GET, &format!("/conferenceMapper?id={id}"), &acme, None).await;
    assert_eq!((status, back["conference"].as_str(), back["id"].as_u64()), (200, Some(conference.as_str()), Some(id)));

    // The numbers, in the array shape of Jitsi's swagger.
    let (status, numbers) =
        call(&app, Method::GET, &format!("/phoneNumberList?conference={conference}"), &acme, None).await;
    assert_eq!(status, 200);
    assert_eq!(numbers, json!([{ "countryCode": "US", "tollFree": true, "formattedNumber": "+18005550199" }]));

    // Another tenant's key finds neither the room nor the PIN; no key finds nothing; bad asks are named.
    let (status, missing) =
        call(&app, Method::GET, &format!("/conferenceMapper?conference={conference}"), &globex, None).await;
    assert_eq!((status, missing["conference"].clone()), (404, json!(false)), "{missing}");
    let (status, missing) = call(&app, Method::GET, &format!("/conferenceMapper?id={id}"), &globex, None).await;
    assert_eq!((status, missing["message"].as_str()), (404, Some("No conference mapping was found")));
    let (status, _) =
        call(&app, Method::GET, &format!("/phoneNumberList?conference={conference}"), &globex, None).await;
    assert_eq!(status, 404);
    let anonymous = app.get(&format!("/conferenceMapper?id={id}")).await;
    assert_eq!(anonymous.status(), 401);
    for ask in ["/conferenceMapper", &format!("/conferenceMapper?id={id}&conference={conference}")] {
        let (status, refused) = call(&app, Method::GET, ask, &acme, None).await;
        assert_eq!(status, 400, "{ask}: {refused}");
    }
    let (status, _) =
        call(&app, Method::GET, "/conferenceMapper?conference=weekly-sync@conference.meet.localhost", &acme, None)
            .await;
    assert_eq!(status, 404, "an address without the tenant names no room");
    let (status, _) = call(&app, Method::GET, "/conferenceMapper?id=12345", &acme, None).await;
    assert_eq!(status, 404, "not a PIN");
    app.stop().await;
}
