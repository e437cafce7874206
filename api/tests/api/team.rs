//! Team, invitations, roles, API keys and the `/v1` key check, and the rule that another tenant's ids
//! always answer 404.

use convene_api::entities::{audit_event, invitation, membership, tenant, webhook_delivery};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::Value;

use crate::helpers::{PASSWORD, TestApp, invite_and_accept, post_and_follow, set_cookie, shown, sign_up, spawn_app};

/// The user id of the one member with `role` (tests set up exactly one).
async fn member_with_role(app: &TestApp, role: &str) -> uuid::Uuid {
    let db = app.db().await;
    let found = membership::Entity::find().filter(membership::Column::Role.eq(role)).one(&db).await.unwrap();
    found.unwrap_or_else(|| panic!("no {role}")).user_id
}

#[tokio::test]
async fn an_owner_invites_a_moderator_who_joins_and_appears_on_the_team() {
    let app = spawn_app().await;
    let owner = sign_up(&app, "Acme", "owner@acme.example").await;
    let moderator = invite_and_accept(&app, &owner, "mo@acme.example", "moderator").await;

    let dashboard = shown(&app.get_with_cookie("/dashboard", &moderator).await.text().await.unwrap());
    assert!(dashboard.contains("<strong>Acme</strong>") && dashboard.contains(">moderator<"), "{dashboard}");
    assert!(!dashboard.contains("Confirm your email address"), "the invitation link verified the address");
    let team = app.get_with_cookie("/team", &owner).await.text().await.unwrap();
    assert!(team.contains("mo@acme.example") && team.contains("New Person"), "{team}");

    let token_reuse =
        app.mail_to("mo@acme.example", "invited you to").await.link("http://localhost:3000/invitations/accept?token=");
    let reused = app.get(&token_reuse.replace("http://localhost:3000", "")).await.text().await.unwrap();
    assert!(reused.contains("This link has already been used."), "{reused}");

    let db = app.db().await;
    let events: Vec<String> =
        audit_event::Entity::find().all(&db).await.unwrap().into_iter().map(|e| e.event).collect();
    assert!(events.contains(&"member_invited".into()) && events.contains(&"invitation_accepted".into()));
    app.stop().await;
}

#[tokio::test]
async fn roles_decide_who_may_manage_the_team_and_the_last_owner_stays() {
    let app = spawn_app().await;
    let owner = sign_up(&app, "Acme", "owner@acme.example").await;
    let moderator = invite_and_accept(&app, &owner, "mo@acme.example", "moderator").await;
    let mo_id = member_with_role(&app, "moderator").await;
    let owner_id = member_with_role(&app, "owner").await;

    let refused =
        app.post_form("/team/invite", &[("email", "x@acme.example"), ("role", "participant")], Some(&moderator)).await;
    assert_eq!(refused.status(), 403, "moderators do not invite");
    assert_eq!(app.get_with_cookie("/keys", &moderator).await.status(), 403, "nor see API keys");
    assert_eq!(app.get_with_cookie("/audit", &moderator).await.status(), 403, "nor the audit log");
    let refused = app.post_form(&format!("/team/members/{owner_id}/remove"), &[], Some(&moderator)).await;
    assert_eq!(refused.status(), 403);

    let page = post_and_follow(&app, &format!("/team/members/{owner_id}/role"), &[("role", "admin")], &owner).await;
    assert!(page.contains("The organisation needs at least one owner"), "{page}");
    let page = post_and_follow(&app, &format!("/team/members/{mo_id}/role"), &[("role", "owner")], &owner).await;
    assert!(page.contains("Role changed."), "{page}");
    let page =
        post_and_follow(&app, &format!("/team/members/{owner_id}/role"), &[("role", "participant")], &moderator).await;
    assert!(page.contains("Role changed."), "with two owners one may step down: {page}");
    let page = post_and_follow(&app, &format!("/team/members/{owner_id}/remove"), &[], &moderator).await;
    assert!(page.contains("Member removed."), "{page}");
    let removed = app.get_with_cookie("/dashboard", &owner).await.text().await.unwrap();
    assert!(removed.contains("You do not belong to any organisation yet."), "{removed}");

    let page = post_and_follow(&app, "/team/invite", &[("email", "broken"), ("role", "participant")], &moderator).await;
    assert!(page.contains("is not a valid email address"), "{page}");
    let page =
        post_and_follow(&app, "/team/invite", &[("email", "mo@acme.example"), ("role", "admin")], &moderator).await;
    assert!(page.contains("Mo@acme.example is already a member") || page.contains("is already a member"), "{page}");
    app.stop().await;
}

#[tokio::test]
async fn bad_invitation_links_and_weak_passwords_are_explained() {
    let app = spawn_app().await;
    let owner = sign_up(&app, "Acme", "owner@acme.example").await;
    post_and_follow(&app, "/team/invite", &[("email", "new@acme.example"), ("role", "participant")], &owner).await;
    let token =
        app.mail_to("new@acme.example", "invited you to").await.link("http://localhost:3000/invitations/accept?token=");
    let token = token.split("token=").nth(1).unwrap().to_owned();

    let unknown = app.get("/invitations/accept?token=nonsense").await.text().await.unwrap();
    assert!(unknown.contains("This invitation cannot be used"), "{unknown}");
    let weak =
        app.post_form("/invitations/accept", &[("token", &token), ("name", "N"), ("password", "short")], None).await;
    assert_eq!(weak.status(), 303);
    let flash = set_cookie(&weak, "convene_flash").unwrap();
    let page = app
        .get_with_cookie(weak.headers()["location"].to_str().unwrap(), &format!("convene_flash={flash}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("The password is too short"), "{page}");

    let db = app.db().await;
    let pending = invitation::Entity::find().one(&db).await.unwrap().unwrap();
    assert!(pending.accepted_at.is_none(), "a refused acceptance leaves the invitation usable");
    app.stop().await;
}

#[tokio::test]
async fn api_keys_are_shown_once_work_on_v1_and_stop_when_revoked() {
    let app = spawn_app().await;
    let owner = sign_up(&app, "Acme", "owner@acme.example").await;
    let page = post_and_follow(&app, "/keys", &[("name", "backend")], &owner).await;
    assert!(page.contains("Copy it now"), "{page}");
    let key = page.split(r#"<code id="new-key">"#).nth(1).and_then(|rest| rest.split('<').next()).unwrap().to_owned();
    assert!(key.starts_with("cvn_"), "{key}");
    let listed = app.get_with_cookie("/keys", &owner).await.text().await.unwrap();
    assert!(listed.contains("backend") && !listed.contains(&key), "listed without its secret");

    let whoami = app.client.get(format!("{}/v1/tenant", app.address)).bearer_auth(&key).send().await.unwrap();
    assert_eq!(whoami.status(), 200);
    assert_eq!(whoami.json::<Value>().await.unwrap()["name"], "Acme");
    for bad in ["", "cvn_wrong", "not-even-a-key"] {
        let response = app.client.get(format!("{}/v1/tenant", app.address)).bearer_auth(bad).send().await.unwrap();
        assert_eq!(response.status(), 401);
        assert_eq!(response.json::<Value>().await.unwrap()["error"], "unauthorized");
    }
    let missing = app.client.get(format!("{}/v1/tenant", app.address)).send().await.unwrap();
    assert_eq!(missing.status(), 401);
    let unknown_path =
        app.client.get(format!("{}/v1/nothing-here", app.address)).bearer_auth(&key).send().await.unwrap();
    assert_eq!(unknown_path.status(), 404);
    assert_eq!(unknown_path.json::<Value>().await.unwrap()["error"], "not_found");

    let key_id = listed.split("/keys/").nth(1).and_then(|rest| rest.split('/').next()).unwrap().to_owned();
    let page = post_and_follow(&app, &format!("/keys/{key_id}/revoke"), &[], &owner).await;
    assert!(page.contains("revoked"), "{page}");
    let after = app.client.get(format!("{}/v1/tenant", app.address)).bearer_auth(&key).send().await.unwrap();
    assert_eq!(after.status(), 401, "a revoked key stops working");

    let audit = app.get_with_cookie("/audit", &owner).await.text().await.unwrap();
    assert!(
        audit.contains("api_key_created") && audit.contains("api_key_revoked") && audit.contains("signup"),
        "{audit}"
    );
    app.stop().await;
}

/// Every form route that takes an id, read from the handlers' route attributes so a new route is covered
/// (or must say why it is exempt) without editing this list.
fn form_routes_with_ids() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http/routes");
    let mut routes = Vec::new();
    // Files only: `/v1` (the `v1/` folder) is checked operation by operation from the OpenAPI document
    // (openapi.rs).
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            continue;
        }
        let source = std::fs::read_to_string(&path).unwrap();
        for line in source.lines().map(str::trim) {
            let Some(route) = line.strip_prefix("#[post(\"").and_then(|rest| rest.strip_suffix("\")]")) else {
                continue;
            };
            if route.contains('{') {
                routes.push(route.to_owned());
            }
        }
    }
    routes.sort();
    routes
}

#[tokio::test]
async fn another_tenants_ids_answer_404_everywhere() {
    let app = spawn_app().await;
    let acme = sign_up(&app, "Acme", "owner@acme.example").await;
    let globex = sign_up(&app, "Globex", "owner@globex.example").await;
    crate::helpers::verify_email(&app, "owner@globex.example").await;
    // Globex has a member, a pending invitation, a key and a meeting: ids Acme's owner must never reach.
    let globex_moderator = invite_and_accept(&app, &globex, "mo@globex.example", "moderator").await;
    post_and_follow(&app, "/team/invite", &[("email", "later@globex.example"), ("role", "participant")], &globex).await;
    let keys_page = post_and_follow(&app, "/keys", &[("name", "globex key")], &globex).await;
    let key_id = keys_page.split("/keys/").nth(1).and_then(|rest| rest.split('/').next()).unwrap().to_owned();
    let db = app.db().await;
    let member_id = member_with_role(&app, "moderator").await.to_string();
    let invitation_id = invitation::Entity::find()
        .filter(invitation::Column::AcceptedAt.is_null())
        .one(&db)
        .await
        .unwrap()
        .unwrap()
        .id
        .to_string();
    let year = crate::helpers::next_year();
    let (starts, ends) = (format!("{year}-03-23T10:00"), format!("{year}-03-23T11:00"));
    let meeting = [
        ("title", "Globex board"),
        ("room", ""),
        ("starts_at", starts.as_str()),
        ("ends_at", ends.as_str()),
        ("time_zone", "Europe/Berlin"),
        ("weekly_occurrences", "1"),
        ("invitees", ""),
    ];
    let scheduled = app.post_form("/meetings", &meeting, Some(&globex)).await;
    let location = scheduled.headers()["location"].to_str().unwrap().to_owned();
    let meeting_id = location.strip_prefix("/meetings/").unwrap().to_owned();
    let globex_id =
        tenant::Entity::find().filter(tenant::Column::Name.eq("Globex")).one(&db).await.unwrap().unwrap().id;
    let recording_id = uuid::Uuid::now_v7();
    crate::recordings::insert_ready_recording(&app, recording_id, globex_id).await;
    let recording_id = recording_id.to_string();
    let hook = [("url", "https://hooks.globex.example/in"), ("events", "meeting.started")];
    let added = app.post_form("/webhook-endpoints", &hook, Some(&globex)).await;
    let webhook_page = added.headers()["location"].to_str().unwrap().to_owned();
    let webhook_id = webhook_page.strip_prefix("/webhooks/").unwrap().to_owned();
    app.post_form(&format!("/webhook-endpoints/{webhook_id}/test"), &[], Some(&globex)).await;
    let delivery_id = webhook_delivery::Entity::find().one(&db).await.unwrap().unwrap().id.to_string();
    // Webhooks are for owners and admins: a moderator of the same organisation is refused.
    assert_eq!(app.get_with_cookie("/webhooks", &globex_moderator).await.status(), 403);
    assert_eq!(app.post_form("/webhook-endpoints", &hook, Some(&globex_moderator)).await.status(), 403);
    let delete = format!("/webhook-endpoints/{webhook_id}/delete");
    assert_eq!(app.post_form(&delete, &[], Some(&globex_moderator)).await.status(), 403);

    // Each id-taking form route, called by Acme's owner with Globex's id of its kind.
    let routes = form_routes_with_ids();
    assert!(routes.len() >= 9, "{routes:?}");
    for route in &routes {
        let id = match route.split('/').nth(1) {
            Some("team") if route.starts_with("/team/members/") => &member_id,
            Some("team") if route.starts_with("/team/invitations/") => &invitation_id,
            Some("keys") => &key_id,
            Some("meetings") => &meeting_id,
            Some("recordings") => &recording_id,
            Some("webhook-endpoints") => &webhook_id,
            // A participant link is a capability: whoever holds one may follow it, from any organisation.
            Some("join") => continue,
            _ => panic!("{route} takes an id: say here which of another tenant's ids to try, or why it is exempt"),
        };
        let concrete = route.replace("{id}", id);
        // A body each route accepts, so only the id can be the reason for a refusal.
        let fields = match route.split('/').nth(1) {
            Some("meetings") => meeting.to_vec(),
            Some("webhook-endpoints") => {
                vec![("delivery", delivery_id.as_str()), ("url", "https://evil.example/in"), ("paused", "on"), hook[1]]
            }
            _ => vec![("role", "owner")],
        };
        let response = app.post_form(&concrete, &fields, Some(&acme)).await;
        assert_eq!(response.status(), 404, "{route}");
    }
    let response = app.post_form("/team/members/not-a-uuid/remove", &[], Some(&acme)).await;
    assert_eq!(response.status(), 404, "a malformed id is not found either");
    assert_eq!(app.get_with_cookie(&location, &acme).await.status(), 404, "the meeting page too");

    // Nothing changed on Globex's side.
    let globex_team = app.get_with_cookie("/team", &globex).await.text().await.unwrap();
    assert!(globex_team.contains("mo@globex.example") && globex_team.contains("later@globex.example"));
    let globex_keys = app.get_with_cookie("/keys", &globex).await.text().await.unwrap();
    assert!(globex_keys.contains("Revoke"), "the key is still live");
    let globex_meeting = app.get_with_cookie(&location, &globex).await.text().await.unwrap();
    assert!(globex_meeting.contains("Globex board") && !globex_meeting.contains("Cancelled"), "{globex_meeting}");
    let globex_recordings = app.get_with_cookie("/recordings", &globex).await.text().await.unwrap();
    assert!(globex_recordings.contains(&recording_id), "the recording is still there");
    assert_eq!(app.get_with_cookie(&webhook_page, &acme).await.status(), 404, "the webhook's page too");
    let globex_webhook = app.get_with_cookie(&webhook_page, &globex).await.text().await.unwrap();
    assert!(globex_webhook.contains("hooks.globex.example") && !globex_webhook.contains("evil"), "{globex_webhook}");
    let acme_team = app.get_with_cookie("/team", &acme).await.text().await.unwrap();
    assert!(!acme_team.contains("globex"), "pages show only one's own tenant");
    app.stop().await;
}

#[tokio::test]
async fn an_owner_disables_and_enables_a_member() {
    let app = spawn_app().await;
    let owner = sign_up(&app, "Acme", "owner@acme.example").await;
    let moderator = invite_and_accept(&app, &owner, "mo@acme.example", "moderator").await;
    let mo_id = member_with_role(&app, "moderator").await;
    let owner_id = member_with_role(&app, "owner").await;

    assert_eq!(
        app.post_form(&format!("/team/members/{owner_id}/disable"), &[], Some(&owner)).await.status(),
        403,
        "not oneself"
    );
    let page = post_and_follow(&app, &format!("/team/members/{mo_id}/disable"), &[], &owner).await;
    assert!(page.contains("Member disabled.") && page.contains(">disabled<"), "{page}");
    let locked_out = app.get_with_cookie("/dashboard", &moderator).await.text().await.unwrap();
    assert!(locked_out.contains("You do not belong to any organisation yet."), "{locked_out}");
    let login = app.post_form("/auth/login", &[("email", "mo@acme.example"), ("password", PASSWORD)], None).await;
    assert_eq!(login.headers()["location"], "/login", "a disabled member cannot sign in");

    let page = post_and_follow(&app, &format!("/team/members/{mo_id}/enable"), &[], &owner).await;
    assert!(page.contains("Member enabled again."), "{page}");
    let login = app.post_form("/auth/login", &[("email", "mo@acme.example"), ("password", PASSWORD)], None).await;
    assert_eq!(login.headers()["location"], "/dashboard");
    app.stop().await;
}
