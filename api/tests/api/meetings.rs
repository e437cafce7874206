//! Scheduling meetings on the site: invitations with iCalendar parts (parsed back with an independent
//! parser), updates and cancellations, participant links for members, invitees and guests, and the
//! refusals: bad input, unconfirmed organisers, other tenants' meetings.

use icalendar::parser::{Component, read_calendar, unfold};

use crate::helpers::{
    TestApp, invite_and_accept, next_year, post_and_follow, set_cookie, sign_up, spawn_app, verify_email,
};

/// Next year, so the meetings are always in the future.
fn meeting_form(title: &str, starts: &str, ends: &str, invitees: &str) -> Vec<(&'static str, String)> {
    let year = next_year();
    vec![
        ("title", title.to_owned()),
        ("room", String::new()),
        ("starts_at", format!("{year}-{starts}")),
        ("ends_at", format!("{year}-{ends}")),
        ("time_zone", "Europe/Berlin".to_owned()),
        ("weekly_occurrences", "3".to_owned()),
        ("invitees", invitees.to_owned()),
        ("guests_allowed", "on".to_owned()),
        ("max_resolution", "1080p".to_owned()),
    ]
}

fn borrowed<'a>(fields: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    fields.iter().map(|(name, value)| (*name, value.as_str())).collect()
}

/// A verified owner of a new organisation.
async fn organiser(app: &TestApp, organisation: &str, email: &str) -> String {
    let session = sign_up(app, organisation, email).await;
    verify_email(app, email).await;
    session
}

/// Schedules and answers the meeting's path.
async fn schedule(app: &TestApp, session: &str, fields: &[(&'static str, String)]) -> String {
    let response = app.post_form("/meetings", &borrowed(fields), Some(session)).await;
    assert_eq!(response.status(), 303);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with("/meetings/"), "scheduled: {location}");
    location
}

fn event<'a>(components: &'a [Component<'a>]) -> &'a Component<'a> {
    components.iter().find(|component| component.name == "VEVENT").expect("an event")
}

fn prop(component: &Component<'_>, name: &str) -> String {
    component.find_prop(name).map(|prop| prop.val.to_string()).unwrap_or_default()
}

/// The participant link on a meeting's page.
fn join_path(page: &str) -> String {
    let start = page.find("http://localhost:3000/join/").expect("a participant link");
    let link: String = page[start..].chars().take_while(|c| *c != '<' && *c != '"').collect();
    link.trim_start_matches("http://localhost:3000").to_owned()
}

#[tokio::test]
async fn invitations_carry_an_ics_request_updates_raise_the_sequence_and_cancelling_sends_cancel() {
    let app = spawn_app().await;
    let owner = organiser(&app, "Acme", "ann@acme.example").await;
    let form = meeting_form("Planning; Q1", "03-23T10:00", "03-23T11:00", "bob@outside.example\ncy@outside.example");
    let path = schedule(&app, &owner, &form).await;

    let page = app.get_with_cookie(&path, &owner).await.text().await.unwrap();
    assert!(page.contains("Planning; Q1") && page.contains("Weekly, 3 times"), "{page}");
    assert!(page.contains("bob@outside.example") && page.contains("Video up to 1080p"), "{page}");
    let listing = app.get_with_cookie("/meetings", &owner).await.text().await.unwrap();
    assert!(listing.contains("Planning; Q1") && listing.contains("2 invited"), "{listing}");

    let mail = app.mail_to("bob@outside.example", "Invitation: Planning; Q1").await;
    let (method, ics) = mail.calendar.clone().expect("an inline calendar part");
    assert_eq!(method, "REQUEST");
    assert!(mail.attachments.iter().any(|(name, _, body)| name == "invite.ics" && *body == ics));
    let unfolded = unfold(&ics);
    let calendar = read_calendar(&unfolded).expect("the invitation parses");
    assert!(calendar.properties.iter().any(|prop| prop.name == "METHOD" && prop.val == "REQUEST"));
    let request = event(&calendar.components);
    let year = next_year();
    assert_eq!(prop(request, "DTSTART"), format!("{year}0323T100000"));
    assert_eq!(request.find_prop("DTSTART").unwrap().params[0].val.as_ref().unwrap().as_str(), "Europe/Berlin");
    assert_eq!(prop(request, "RRULE"), "FREQ=WEEKLY;COUNT=3");
    assert_eq!(prop(request, "SEQUENCE"), "0");
    assert_eq!(prop(request, "SUMMARY"), "Planning; Q1", "escaped in the file, plain once parsed");
    let uid = prop(request, "UID");
    assert!(calendar.components.iter().any(|component| component.name == "VTIMEZONE"), "the zone is described");
    let attendees: Vec<_> =
        request.properties.iter().filter(|prop| prop.name == "ATTENDEE").map(|prop| prop.val.to_string()).collect();
    assert_eq!(attendees, ["mailto:bob@outside.example", "mailto:cy@outside.example"]);
    assert!(prop(request, "URL").starts_with("http://localhost:3000/join/"));

    // Move it an hour later and drop cy: bob gets an update, cy a cancellation.
    let moved = meeting_form("Planning; Q1", "03-23T11:00", "03-23T12:00", "bob@outside.example");
    let page = post_and_follow(&app, &path, &borrowed(&moved), &owner).await;
    assert!(page.contains("The meeting is updated"), "{page}");
    let update = app.mail_to("bob@outside.example", "Updated invitation").await;
    let unfolded = unfold(&update.calendar.as_ref().unwrap().1);
    let calendar = read_calendar(&unfolded).unwrap();
    let updated = event(&calendar.components);
    assert_eq!((prop(updated, "UID"), prop(updated, "SEQUENCE")), (uid.clone(), "1".to_owned()));
    assert_eq!(prop(updated, "DTSTART"), format!("{year}0323T110000"));
    let dropped = app.mail_to("cy@outside.example", "Cancelled: Planning; Q1").await;
    assert_eq!(dropped.calendar.as_ref().unwrap().0, "CANCEL");

    let page = post_and_follow(&app, &format!("{path}/cancel"), &[], &owner).await;
    assert!(page.contains("The meeting is cancelled") && page.contains("This meeting was cancelled."), "{page}");
    let cancel = app.mail_to("bob@outside.example", "Cancelled: Planning; Q1").await;
    let (method, ics) = cancel.calendar.unwrap();
    assert_eq!(method, "CANCEL");
    let unfolded = unfold(&ics);
    let calendar = read_calendar(&unfolded).unwrap();
    assert!(calendar.properties.iter().any(|prop| prop.name == "METHOD" && prop.val == "CANCEL"));
    let cancelled = event(&calendar.components);
    assert_eq!((prop(cancelled, "UID"), prop(cancelled, "SEQUENCE")), (uid, "2".to_owned()));
    assert_eq!(prop(cancelled, "STATUS"), "CANCELLED");
    app.stop().await;
}

#[tokio::test]
async fn bad_meetings_are_refused_field_by_field_and_unconfirmed_organisers_are_told_why() {
    let app = spawn_app().await;
    let unconfirmed = sign_up(&app, "Acme", "ann@acme.example").await;
    let form = meeting_form("Sync", "05-01T10:00", "05-01T11:00", "");
    let page = post_and_follow(&app, "/meetings", &borrowed(&form), &unconfirmed).await;
    assert!(page.contains("Confirm your email address before scheduling meetings."), "{page}");
    verify_email(&app, "ann@acme.example").await;
    let owner = unconfirmed;

    let cases: [(&str, &str, &str); 8] = [
        ("ends_at", "05-01T09:00", "Must be at least 5 minutes after the start."),
        ("time_zone", "Mars/Olympus", "is not a known time zone"),
        ("invitees", "bob@outside.example\nnot-an-address", "`not-an-address` is not an email address"),
        ("room", "team/standup", "Room names use"),
        ("room", "ｒｏｏｍ", "Room names use"),
        ("title", " ", "1 to 200 characters"),
        ("weekly_occurrences", "99", "Between 1 and 52"),
        ("max_participants", "many", "is not a whole number"),
    ];
    for (field, value, message) in cases {
        let mut fields = form.clone();
        for entry in &mut fields {
            if entry.0 == field {
                entry.1 = if field == "ends_at" || field == "starts_at" {
                    format!("{}-{value}", next_year())
                } else {
                    value.to_owned()
                };
            }
        }
        if !fields.iter().any(|(name, _)| *name == field) {
            fields.push((field, value.to_owned()));
        }
        let page = post_and_follow(&app, "/meetings", &borrowed(&fields), &owner).await;
        assert!(page.contains(message), "{field}={value}: expected {message:?} in {page}");
        assert!(page.contains(&format!("{field}-error")), "{field} is marked");
    }
    let listing = app.get_with_cookie("/meetings", &owner).await.text().await.unwrap();
    assert!(listing.contains("Nothing scheduled."), "nothing was created: {listing}");

    let mut taken = form.clone();
    taken[1].1 = "standup".to_owned();
    schedule(&app, &owner, &taken).await;
    let page = post_and_follow(&app, "/meetings", &borrowed(&taken), &owner).await;
    assert!(page.contains("`standup` is already in use"), "{page}");
    app.stop().await;
}

#[tokio::test]
async fn participant_links_open_the_meeting_for_invitees_members_and_guests_only() {
    let app = spawn_app().await;
    let owner = organiser(&app, "Acme", "ann@acme.example").await;
    let mut form = meeting_form("Review", "02-02T10:00", "02-02T11:00", "bob@outside.example");
    form[1].1 = "review".to_owned();
    let path = schedule(&app, &owner, &form).await;
    let page = app.get_with_cookie(&path, &owner).await.text().await.unwrap();
    let join = join_path(&page);

    // Signed out: the page offers sign-in and, since guests are allowed, a name.
    let public = app.get(&join).await.text().await.unwrap();
    assert!(public.contains("Acme") && public.contains("Review"), "{public}");
    assert!(public.contains(&format!("/login?next={join}")) && public.contains("Join as a guest"), "{public}");
    let response = app.post_form(&join, &[], None).await;
    assert_eq!(response.headers()["location"].to_str().unwrap(), format!("/login?next=%2Fjoin%2F{}", &join[6..]));

    // A guest gets a participant token for this room.
    let response = app.post_form(&format!("{join}/guest"), &[("name", "Gail Guest")], None).await;
    let meet = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(meet.starts_with("http://meet.localhost:3000/review?jwt="), "{meet}");
    let landed = app.get_on_host("meet.localhost:3000", &meet["http://meet.localhost:3000".len()..]).await;
    let landed = landed.text().await.unwrap();
    assert!(landed.contains(r#"data-invitation="valid""#) && landed.contains("as a participant"), "{landed}");
    let page = post_and_follow(&app, &format!("{join}/guest"), &[("name", "   ")], "").await;
    assert!(page.contains("Enter your name"), "{page}");

    // The invited address, once confirmed, joins as a participant; the owner's "Start" makes a moderator.
    let bob = sign_up(&app, "Bob's", "bob@outside.example").await;
    let page = post_and_follow(&app, &join, &[], &bob).await;
    assert!(page.contains("This invitation is for someone else"), "unconfirmed addresses are not trusted: {page}");
    verify_email(&app, "bob@outside.example").await;
    let response = app.post_form(&join, &[], Some(&bob)).await;
    let meet = response.headers()["location"].to_str().unwrap().to_owned();
    let landed = app.get_on_host("meet.localhost:3000", &meet["http://meet.localhost:3000".len()..]).await;
    assert!(landed.text().await.unwrap().contains("as a participant"));
    let response = app.post_form(&format!("{path}/start"), &[], Some(&owner)).await;
    let meet = response.headers()["location"].to_str().unwrap().to_owned();
    let landed = app.get_on_host("meet.localhost:3000", &meet["http://meet.localhost:3000".len()..]).await;
    assert!(landed.text().await.unwrap().contains("as a moderator"));

    // Someone neither invited nor a member is refused.
    let stranger = organiser(&app, "Other", "eve@other.example").await;
    let page = post_and_follow(&app, &join, &[], &stranger).await;
    assert!(page.contains("This invitation is for someone else"), "{page}");

    // Unknown and cancelled links say so.
    let unknown = app.get("/join/no-such-code").await;
    assert_eq!(unknown.status(), 404);
    assert!(unknown.text().await.unwrap().contains("This link does not lead to a meeting"));
    post_and_follow(&app, &format!("{path}/cancel"), &[], &owner).await;
    let page = post_and_follow(&app, &format!("{join}/guest"), &[("name", "Gail")], "").await;
    assert!(page.contains("This meeting was cancelled"), "{page}");
    app.stop().await;
}

#[tokio::test]
async fn an_organiser_demoted_to_participant_no_longer_moderates_their_meeting() {
    let app = spawn_app().await;
    let owner = organiser(&app, "Acme", "ann@acme.example").await;
    let mo = invite_and_accept(&app, &owner, "mo@acme.example", "moderator").await;
    let path = schedule(&app, &mo, &meeting_form("Standup", "03-03T10:00", "03-03T11:00", "")).await;
    let page = app.get_with_cookie(&path, &mo).await.text().await.unwrap();
    let join = join_path(&page);
    let db = app.db().await;
    let mo_id = {
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
        let found = convene_api::entities::membership::Entity::find()
            .filter(convene_api::entities::membership::Column::Role.eq("moderator"))
            .one(&db)
            .await
            .unwrap();
        found.expect("the moderator").user_id
    };
    let page = post_and_follow(&app, &format!("/team/members/{mo_id}/role"), &[("role", "participant")], &owner).await;
    assert!(page.contains("Role changed."), "{page}");

    let start = app.post_form(&format!("{path}/start"), &[], Some(&mo)).await;
    assert_ne!(start.status(), 303, "a participant cannot start the meeting as moderator");
    let response = app.post_form(&join, &[], Some(&mo)).await;
    let meet = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(meet.starts_with("http://meet.localhost:3000/"), "{meet}");
    let landed = app.get_on_host("meet.localhost:3000", &meet["http://meet.localhost:3000".len()..]).await;
    let landed = landed.text().await.unwrap();
    assert!(landed.contains("as a participant"), "the organiser's link now makes a participant: {landed}");
    app.stop().await;
}

#[tokio::test]
async fn another_tenants_meeting_is_not_found_and_participants_cannot_schedule() {
    let app = spawn_app().await;
    let owner = organiser(&app, "Acme", "ann@acme.example").await;
    let path = schedule(&app, &owner, &meeting_form("Board", "04-01T10:00", "04-01T11:00", "")).await;
    let other = organiser(&app, "Other", "eve@other.example").await;

    assert_eq!(app.get_with_cookie(&path, &other).await.status(), 404);
    let form = meeting_form("Mine now", "04-01T10:00", "04-01T11:00", "");
    for (target, fields) in
        [(path.clone(), borrowed(&form)), (format!("{path}/cancel"), Vec::new()), (format!("{path}/start"), Vec::new())]
    {
        let response = app.post_form(&target, &fields, Some(&other)).await;
        assert_eq!(response.status(), 404, "{target}");
    }
    assert_eq!(app.get_with_cookie("/meetings/not-a-uuid", &owner).await.status(), 404);
    let page = app.get_with_cookie(&path, &owner).await.text().await.unwrap();
    assert!(page.contains("Board") && !page.contains("Mine now"), "unchanged: {page}");

    let participant = invite_and_accept(&app, &owner, "pat@acme.example", "participant").await;
    assert_eq!(app.get_with_cookie("/meetings", &participant).await.status(), 403);
    assert_eq!(app.post_form(&format!("{path}/start"), &[], Some(&participant)).await.status(), 403);
    let response = app.post_form("/meetings", &borrowed(&form), Some(&participant)).await;
    assert_eq!(response.status(), 403);
    app.stop().await;
}

#[tokio::test]
async fn sign_in_continues_to_a_local_next_page_only() {
    let app = spawn_app().await;
    let session = sign_up(&app, "Acme", "ann@acme.example").await;
    drop(session);
    let fields =
        |next: &'static str| [("email", "ann@acme.example"), ("password", crate::helpers::PASSWORD), ("next", next)];
    let response = app.post_form("/auth/login", &fields("/join/abc"), None).await;
    assert_eq!(response.headers()["location"], "/join/abc");
    assert!(set_cookie(&response, "convene_session").is_some());
    for elsewhere in ["//evil.example/x", "https://evil.example/", "/\\evil.example"] {
        let response = app.post_form("/auth/login", &fields(elsewhere), None).await;
        assert_eq!(response.headers()["location"], "/dashboard", "{elsewhere} is ignored");
    }
    let login = app.get("/login?next=/join/abc").await.text().await.unwrap();
    assert!(login.contains(r#"name="next" value="/join/abc""#), "{login}");
    // A member page visited signed out sends to sign-in at once (no page first), and back afterwards.
    for page in ["/meetings/new", "/team", "/audit"] {
        let response = app.get(page).await;
        assert_eq!(response.status(), 302, "{page}");
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        assert_eq!(location, format!("/login?next={}", page.replace('/', "%2F")));
        let login = app.get(&location).await.text().await.unwrap();
        assert!(login.contains(&format!(r#"name="next" value="{page}""#)), "{login}");
    }
    app.stop().await;
}

#[tokio::test]
async fn the_api_schedules_replaces_and_cancels_meetings_for_a_moderator_of_the_tenant() {
    use reqwest::Method;
    use serde_json::json;

    use crate::helpers::{call, tenant_key};

    let app = spawn_app().await;
    let key = tenant_key(&app, "owner@acme.example").await;
    let other = tenant_key(&app, "owner@other.example").await;
    let year = next_year();
    let meeting = json!({
        "organizer": "owner@acme.example",
        "title": "API sync",
        "room": "api-sync",
        "starts_at": format!("{year}-07-01T09:00"),
        "ends_at": format!("{year}-07-01T09:30"),
        "time_zone": "America/New_York",
        "invitees": ["dan@outside.example"],
        "lobby": true,
    });
    let (status, created) = call(&app, Method::POST, "/v1/scheduled-meetings", &key, Some(meeting.clone())).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["starts_at"], format!("{year}-07-01T13:00:00Z"), "09:00 in New York is 13:00 UTC");
    assert_eq!((created["room"].as_str(), created["lobby"].as_bool()), (Some("api-sync"), Some(true)));
    assert_eq!(created["organizer"], "owner@acme.example");
    assert!(created["join_url"].as_str().unwrap().starts_with("http://localhost:3000/join/"));
    let mail = app.mail_to("dan@outside.example", "Invitation: API sync").await;
    assert_eq!(mail.calendar.unwrap().0, "REQUEST");
    let id = created["id"].as_str().unwrap().to_owned();

    let (status, listed) = call(&app, Method::GET, "/v1/scheduled-meetings?limit=10", &key, None).await;
    assert_eq!((status, listed["scheduled_meetings"][0]["id"].as_str()), (200, Some(id.as_str())));
    let mut replacement = meeting.clone();
    replacement["title"] = json!("API sync (moved)");
    replacement["starts_at"] = json!(format!("{year}-07-02T09:00"));
    replacement["ends_at"] = json!(format!("{year}-07-02T09:30"));
    let path = format!("/v1/scheduled-meetings/{id}");
    let (status, replaced) = call(&app, Method::PUT, &path, &key, Some(replacement.clone())).await;
    assert_eq!((status, replaced["title"].as_str()), (200, Some("API sync (moved)")));
    app.mail_to("dan@outside.example", "Updated invitation: API sync (moved)").await;

    // Refusals: an organiser who is not a member, an unknown field, another tenant's meeting.
    let mut stranger = meeting.clone();
    stranger["organizer"] = json!("nobody@acme.example");
    let (status, refused) = call(&app, Method::POST, "/v1/scheduled-meetings", &key, Some(stranger)).await;
    assert_eq!(status, 400);
    assert!(refused["message"].as_str().unwrap().starts_with("organizer:"), "{refused}");
    let mut unknown = meeting.clone();
    unknown["colour"] = json!("blue");
    let (status, _) = call(&app, Method::POST, "/v1/scheduled-meetings", &key, Some(unknown)).await;
    assert_eq!(status, 400);
    let (status, _) = call(&app, Method::GET, &path, &other, None).await;
    assert_eq!(status, 404);
    let cancel = format!("{path}?organizer=owner%40other.example");
    assert_eq!(call(&app, Method::DELETE, &cancel, &other, None).await.0, 404);

    let cancel = format!("{path}?organizer=owner%40acme.example");
    assert_eq!(call(&app, Method::DELETE, &cancel, &key, None).await.0, 204);
    app.mail_to("dan@outside.example", "Cancelled: API sync (moved)").await;
    let (_, cancelled) = call(&app, Method::GET, &path, &key, None).await;
    assert!(cancelled["cancelled_at"].is_string(), "{cancelled}");
    let (status, closed) = call(&app, Method::PUT, &path, &key, Some(replacement)).await;
    assert_eq!((status, closed["error"].as_str()), (409, Some("conflict")));
    app.stop().await;
}

/// The token in a meet link.
fn token_of(meet: &str) -> String {
    meet.split("jwt=").nth(1).expect("a token in the link").to_owned()
}

#[tokio::test]
async fn links_stop_opening_the_room_when_the_meeting_is_cancelled_or_the_invitation_withdrawn() {
    let app = spawn_app().await;
    let owner = organiser(&app, "Acme", "ann@acme.example").await;
    let mut form = meeting_form("Retro", "04-04T10:00", "04-04T11:00", "bob@outside.example");
    form[1].1 = "retro".to_owned();
    let path = schedule(&app, &owner, &form).await;
    let page = app.get_with_cookie(&path, &owner).await.text().await.unwrap();
    let join = join_path(&page);
    let location = |response: reqwest::Response| response.headers()["location"].to_str().unwrap().to_owned();
    let guest = token_of(&location(app.post_form(&format!("{join}/guest"), &[("name", "Gail")], None).await));
    let bob = sign_up(&app, "Bob's", "bob@outside.example").await;
    verify_email(&app, "bob@outside.example").await;
    let bob = token_of(&location(app.post_form(&join, &[], Some(&bob)).await));
    let start = token_of(&location(app.post_form(&format!("{path}/start"), &[], Some(&owner)).await));
    for token in [&guest, &bob] {
        let (_socket, welcome) = crate::signal::hello(&app, "retro", token).await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
    }

    // Bob is no longer invited and guests are no longer allowed: their links stop working.
    let mut changed = meeting_form("Retro", "04-04T10:00", "04-04T11:00", "");
    changed.retain(|(name, _)| *name != "guests_allowed" && *name != "room");
    let page = post_and_follow(&app, &path, &borrowed(&changed), &owner).await;
    assert!(page.contains("The meeting is updated"), "{page}");
    let (_, refused) = crate::signal::hello(&app, "retro", &bob).await;
    assert!(refused["message"].as_str().unwrap().contains("withdrawn"), "{refused}");
    let (_, refused) = crate::signal::hello(&app, "retro", &guest).await;
    assert!(refused["message"].as_str().unwrap().contains("guests"), "{refused}");

    post_and_follow(&app, &format!("{path}/cancel"), &[], &owner).await;
    let (_, refused) = crate::signal::hello(&app, "retro", &start).await;
    assert_eq!(refused["reason"], "ended", "{refused}");
    assert!(refused["message"].as_str().unwrap().contains("cancelled"), "{refused}");
    app.stop().await;
}

#[tokio::test]
async fn an_invitee_without_an_account_joins_by_their_personal_link_until_it_is_withdrawn_or_replaced() {
    let app = spawn_app().await;
    let owner = organiser(&app, "Acme", "ann@acme.example").await;
    let mut form =
        meeting_form("Kick-off", "05-05T10:00", "05-05T11:00", "nia.new@elsewhere.example\nbob@outside.example");
    form[1].1 = "kick-off".to_owned();
    form.retain(|(name, _)| *name != "guests_allowed");
    let path = schedule(&app, &owner, &form).await;
    let mail = app.mail_to("nia.new@elsewhere.example", "Invitation: Kick-off").await;
    let personal = mail.link("http://localhost:3000/join/").trim_start_matches("http://localhost:3000").to_owned();
    let (join, secret) = personal.split_once("?invite=").expect("a personal link");
    let ics = mail.calendar.clone().unwrap().1;
    assert!(unfold(&ics).contains(&personal), "the calendar entry carries the personal link too");
    let bob_mail = app.mail_to("bob@outside.example", "Invitation: Kick-off").await;
    let bob_secret = bob_mail.link("http://localhost:3000/join/").split_once("?invite=").unwrap().1.to_owned();
    assert_ne!(secret, bob_secret, "each invitee's link is their own");

    // The page offers to join under the invited name, with no account and no guest form.
    let page = app.get(&personal).await.text().await.unwrap();
    assert!(page.contains("Join as Nia New") && !page.contains("Join as a guest"), "{page}");
    let response = app.post_form(&format!("{join}/invitee"), &[("invite", secret)], None).await;
    let meet = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(meet.starts_with("http://meet.localhost:3000/kick-off?jwt="), "{meet}");
    let landed = app.get_on_host("meet.localhost:3000", &meet["http://meet.localhost:3000".len()..]).await;
    let landed = landed.text().await.unwrap();
    assert!(landed.contains("Welcome, Nia New") && landed.contains("as a participant"), "{landed}");
    let nia = token_of(&meet);
    let (_socket, welcome) = crate::signal::hello(&app, "kick-off", &nia).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");

    // A secret works only for its own meeting, and nonsense gets the same clear refusal.
    let other = schedule(&app, &owner, &meeting_form("Other", "06-06T10:00", "06-06T11:00", "")).await;
    let other_page = app.get_with_cookie(&other, &owner).await.text().await.unwrap();
    let other_join = join_path(&other_page);
    for (code, invite) in [(other_join.as_str(), secret.to_owned()), (join, "x".repeat(5000)), (join, String::new())] {
        let page = post_and_follow(&app, &format!("{code}/invitee"), &[("invite", &invite)], "").await;
        assert!(page.contains("This personal link no longer opens the meeting"), "{page}");
    }

    // An update mail carries a fresh link; the old one stops working, the token already given still does.
    let moved = meeting_form("Kick-off", "05-05T11:00", "05-05T12:00", "nia.new@elsewhere.example");
    post_and_follow(&app, &path, &borrowed(&moved), &owner).await;
    let update = app.mail_to("nia.new@elsewhere.example", "Updated invitation").await;
    let fresh = update.link("http://localhost:3000/join/").split_once("?invite=").unwrap().1.to_owned();
    assert_ne!(fresh, secret);
    let stale = app.get(&personal).await.text().await.unwrap();
    assert!(stale.contains("a newer mail") && !stale.contains("Join as Nia New"), "{stale}");
    let (_socket, welcome) = crate::signal::hello(&app, "kick-off", &nia).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    // Bob was dropped: his link and anything it gave him stop at once.
    let page = post_and_follow(&app, &format!("{join}/invitee"), &[("invite", &bob_secret)], "").await;
    assert!(page.contains("This personal link no longer opens the meeting"), "{page}");

    // Uninvited: the fresh link and Nia's token stop too.
    let dropped = meeting_form("Kick-off", "05-05T11:00", "05-05T12:00", "");
    post_and_follow(&app, &path, &borrowed(&dropped), &owner).await;
    let page = post_and_follow(&app, &format!("{join}/invitee"), &[("invite", &fresh)], "").await;
    assert!(page.contains("This personal link no longer opens the meeting"), "{page}");
    let (_, refused) = crate::signal::hello(&app, "kick-off", &nia).await;
    assert!(refused["message"].as_str().unwrap().contains("withdrawn"), "{refused}");
    app.stop().await;
}
