//! Signup, email verification, sign-in and sign-out, sessions, the tenant switcher and CSRF, through the
//! real forms and pages, on Postgres.

use chrono::{TimeDelta, Utc};
use convene_api::entities::{audit_event, email_token, membership, tenant, user};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait, PaginatorTrait};

use crate::helpers::{TestApp, set_cookie, shown, spawn_app};

const PASSWORD: &str = "correct horse battery";

/// Signs up through the form and signs in with the password; returns the session cookie header.
async fn sign_up(app: &TestApp, organisation: &str, email: &str) -> String {
    crate::helpers::sign_up_as(app, organisation, "Ann Example", email).await
}

/// Posts a form, follows the redirect with the flash cookie, and returns the page it lands on.
async fn post_and_follow(app: &TestApp, path: &str, fields: &[(&str, &str)], cookie: Option<&str>) -> (String, String) {
    let response = app.post_form(path, fields, cookie).await;
    assert_eq!(response.status(), 303, "{path}");
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let flash = set_cookie(&response, "convene_flash").map(|value| format!("convene_flash={value}"));
    let cookies = [cookie.map(str::to_owned), flash].into_iter().flatten().collect::<Vec<_>>().join("; ");
    let page = app.get_with_cookie(&location, &cookies).await.text().await.unwrap();
    (location, page)
}

#[tokio::test]
async fn signup_creates_an_unverified_owner_whose_link_confirms_and_signs_in() {
    let app = spawn_app().await;
    let fields =
        [("organisation", "Acme"), ("name", "Ann Example"), ("email", "ann@acme.example"), ("password", PASSWORD)];
    let response = app.post_form("/auth/signup", &fields, None).await;
    assert_eq!((response.status().as_u16(), response.headers()["location"].to_str().unwrap()), (303, "/signup"));
    assert!(set_cookie(&response, "convene_session").is_none(), "the mail proves the address first");
    let flash = set_cookie(&response, "convene_flash").unwrap();
    let answer = app.get_with_cookie("/signup", &format!("convene_flash={flash}")).await.text().await.unwrap();
    assert!(answer.contains("Check your inbox") && answer.contains("We sent a link to ann@acme.example"), "{answer}");
    assert!(!answer.contains(r#"action="/auth/signup""#), "the form is done");

    let mail = app.mail_to("ann@acme.example", "Confirm your email address for Convene").await;
    assert_eq!(mail.subject, "Confirm your email address for Convene");
    assert!(mail.html.contains("Confirm my email address"), "the mail has an HTML part");
    let link = mail.link("http://localhost:3000/verify?token=");
    let token = link.split("token=").nth(1).unwrap().to_owned();

    let confirm_page = app.get(&format!("/verify?token={token}")).await.text().await.unwrap();
    assert!(confirm_page.contains(&format!(r#"value="{token}""#)), "the page asks before using the link");
    let confirmed = app.post_form("/auth/verify", &[("token", &token)], None).await;
    assert_eq!(confirmed.headers()["location"], "/dashboard");
    let cookie_header = confirmed
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.starts_with("convene_session="))
        .expect("the link signs its owner in")
        .to_owned();
    assert!(cookie_header.contains("HttpOnly") && cookie_header.contains("SameSite=Lax"), "{cookie_header}");
    assert!(!cookie_header.contains("Secure"), "plain-HTTP localhost cannot use Secure cookies");
    let session = format!("convene_session={}", set_cookie(&confirmed, "convene_session").unwrap());
    let flash = set_cookie(&confirmed, "convene_flash").unwrap();
    let page =
        app.get_with_cookie("/dashboard", &format!("{session}; convene_flash={flash}")).await.text().await.unwrap();
    assert!(page.contains("Your email address is confirmed.") && page.contains("Hello, Ann Example"), "{page}");
    let page = shown(&page);
    assert!(page.contains("<strong>Acme</strong>") && page.contains(">owner<"), "{page}");
    assert!(!page.contains("Confirm your email address to schedule meetings"));

    let (_, reused) = post_and_follow(&app, "/auth/verify", &[("token", &token)], None).await;
    assert!(reused.contains("This link has already been used."), "{reused}");
    let (_, unknown) = post_and_follow(&app, "/auth/verify", &[("token", "nonsense")], None).await;
    assert!(unknown.contains("This link is not valid"), "{unknown}");

    let db = app.db().await;
    let events: Vec<String> =
        audit_event::Entity::find().all(&db).await.unwrap().into_iter().map(|e| e.event).collect();
    assert!(events.contains(&"signup".to_owned()) && events.contains(&"email_verified".to_owned()), "{events:?}");
    app.stop().await;
}

#[tokio::test]
async fn an_unconfirmed_owner_who_signs_in_with_the_password_is_asked_to_confirm() {
    let app = spawn_app().await;
    let session = sign_up(&app, "Acme", "ann@acme.example").await;
    let dashboard = app.get_with_cookie("/dashboard", &session).await.text().await.unwrap();
    assert!(dashboard.contains("Hello, Ann Example"), "{dashboard}");
    assert!(dashboard.contains("Confirm your email address to schedule meetings"), "{dashboard}");
    app.stop().await;
}

#[tokio::test]
async fn signing_up_with_a_known_address_answers_alike_and_tells_its_owner() {
    let app = spawn_app().await;
    // The flash page for a sign-up, with the typed address taken out.
    let answer = |email: &'static str, organisation: &'static str| {
        let app = &app;
        async move {
            let fields = [("organisation", organisation), ("name", "Ann"), ("email", email), ("password", PASSWORD)];
            let response = app.post_form("/auth/signup", &fields, None).await;
            let status = response.status().as_u16();
            let location = response.headers()["location"].to_str().unwrap().to_owned();
            assert!(set_cookie(&response, "convene_session").is_none());
            let flash = set_cookie(&response, "convene_flash").unwrap();
            let page = app.get_with_cookie(&location, &format!("convene_flash={flash}")).await.text().await.unwrap();
            // What people see; the rest of the page differs in each answer's script nonce.
            let shown = page.split("<main>").nth(1).and_then(|rest| rest.split("</main>").next()).unwrap_or_default();
            (status, location, shown.replace(email, "<address>"))
        }
    };
    let fresh = answer("ann@acme.example", "Acme").await;
    crate::helpers::verify_email(&app, "ann@acme.example").await;
    let known = answer("ANN@acme.example", "Acme Two").await;
    assert_eq!(known, fresh, "a known address gets the very same answer");
    let mail = app.mail_to("ann@acme.example", "You already have a Convene account").await;
    assert!(mail.text.contains("nothing was created") && mail.text.contains("/login"), "{}", mail.text);

    // An address that never confirmed gets a new confirmation link instead.
    let unconfirmed = answer("bo@globex.example", "Globex").await;
    assert_eq!(unconfirmed.0, 303);
    answer("bo@globex.example", "Globex Two").await;
    let db = app.db().await;
    let links = email_token::Entity::find().all(&db).await.unwrap();
    let bo = user::Entity::find().all(&db).await.unwrap().into_iter().find(|u| u.email == "bo@globex.example").unwrap();
    assert_eq!(links.iter().filter(|link| link.user_id == bo.id && link.purpose == "verify_email").count(), 2);
    assert_eq!(tenant::Entity::find().count(&db).await.unwrap(), 2, "Acme and Globex, nothing more");
    app.stop().await;
}

#[tokio::test]
async fn an_expired_verification_link_says_so() {
    let app = spawn_app().await;
    let session = sign_up(&app, "Acme", "ann@acme.example").await;
    let token = app
        .mail_to("ann@acme.example", "Confirm your email address for Convene")
        .await
        .link("http://localhost:3000/verify?token=");
    let token = token.split("token=").nth(1).unwrap().to_owned();
    let db = app.db().await;
    let row = email_token::Entity::find_by_id(convene_api::platform::secrets::token_hash(&token))
        .one(&db)
        .await
        .unwrap()
        .unwrap();
    let mut expired: email_token::ActiveModel = row.into();
    expired.expires_at = Set(Utc::now() - TimeDelta::minutes(1));
    expired.update(&db).await.unwrap();

    let (_, page) = post_and_follow(&app, "/auth/verify", &[("token", &token)], Some(&session)).await;
    assert!(page.contains("This link has expired; ask for a new one."), "{page}");
    app.stop().await;
}

#[tokio::test]
async fn bad_signups_explain_each_field_and_create_nothing() {
    let app = spawn_app().await;
    sign_up(&app, "Acme", "taken@acme.example").await;
    let cases = [
        (("", "Ann", "new@acme.example", PASSWORD), "Enter your organisation"),
        (("Acme", "", "new@acme.example", PASSWORD), "Enter your name."),
        (("Acme", "Ann", "not-an-email", PASSWORD), "is not a valid email address"),
        (("Acme", "Ann", "new@acme.example", "short"), "The password is too short: use at least 8 characters."),
        (("Acme", "Ann", "new@acme.example", "password"), "one of the most common passwords"),
    ];
    for ((organisation, name, email, password), expected) in cases {
        let fields = [("organisation", organisation), ("name", name), ("email", email), ("password", password)];
        let (location, page) = post_and_follow(&app, "/auth/signup", &fields, None).await;
        assert_eq!(location, "/signup");
        assert!(page.contains(expected), "{expected}: {page}");
        assert!(page.contains(r#"aria-invalid="true""#), "the field is marked");
        if !email.is_empty() {
            assert!(page.contains(&format!(r#"value="{email}""#)), "typed values come back");
        }
        assert!(!page.contains(&format!(r#"value="{password}""#)) || password.is_empty(), "never the password");
    }
    // An empty form marks every field at once, not one per attempt.
    let empty = [("organisation", ""), ("name", ""), ("email", ""), ("password", "")];
    let (_, page) = post_and_follow(&app, "/auth/signup", &empty, None).await;
    for expected in
        ["Enter your organisation", "Enter your name.", "Enter your email address.", "The password is too short"]
    {
        assert!(page.contains(expected), "{expected}: {page}");
    }
    assert_eq!(page.matches(r#"aria-invalid="true""#).count(), 4, "{page}");
    let db = app.db().await;
    assert_eq!(tenant::Entity::find().count(&db).await.unwrap(), 1, "only the first signup created anything");
    assert_eq!(user::Entity::find().count(&db).await.unwrap(), 1);
    app.stop().await;
}

#[tokio::test]
async fn sign_in_refuses_alike_limits_attempts_across_replicas_and_sign_out_ends_the_session() {
    let app = spawn_app().await;
    // Signed up, but not signed in: every sign-in attempt below counts towards the account's limit.
    let fields = [("organisation", "Acme"), ("name", "Ann"), ("email", "ann@acme.example"), ("password", PASSWORD)];
    assert_eq!(app.post_form("/auth/signup", &fields, None).await.headers()["location"], "/signup");

    let (_, wrong_password) =
        post_and_follow(&app, "/auth/login", &[("email", "ann@acme.example"), ("password", "wrong password")], None)
            .await;
    let (_, unknown) =
        post_and_follow(&app, "/auth/login", &[("email", "nobody@acme.example"), ("password", PASSWORD)], None).await;
    for page in [&wrong_password, &unknown] {
        assert!(page.contains("The email address or password is not right."), "{page}");
    }

    let response = app.post_form("/auth/login", &[("email", "ANN@acme.example"), ("password", PASSWORD)], None).await;
    assert_eq!(response.headers()["location"], "/dashboard");
    let session = format!("convene_session={}", set_cookie(&response, "convene_session").unwrap());
    assert_eq!(app.get_with_cookie("/dashboard", &session).await.status(), 200);

    let logout = app.post_form("/auth/logout", &[], Some(&session)).await;
    assert_eq!(logout.status(), 303);
    assert_eq!(set_cookie(&logout, "convene_session").as_deref(), Some(""), "the cookie is removed");
    let after = app.get_with_cookie("/dashboard", &session).await;
    assert_eq!(after.status(), 302, "a revoked session is signed out");
    assert_eq!(after.headers()["location"], "/login?next=%2Fdashboard", "and comes back after signing in");

    // Five attempts per account per window, counted by every replica: one failure and one success above,
    // three more failures on a second replica behind the same load balancer, and the sixth attempt, back
    // on the first, is refused even with the right password.
    let replica = app.replica().await;
    for _ in 0..3 {
        let fields = [("email", "ann@acme.example"), ("password", "nope nope")];
        let (_, page) = post_and_follow(&replica, "/auth/login", &fields, None).await;
        assert!(page.contains("The email address or password is not right."), "{page}");
    }
    replica.stop().await;
    let (_, limited) =
        post_and_follow(&app, "/auth/login", &[("email", "ann@acme.example"), ("password", PASSWORD)], None).await;
    assert!(limited.contains("Too many sign-in attempts"), "{limited}");

    let db = app.db().await;
    let failed =
        audit_event::Entity::find().all(&db).await.unwrap().into_iter().filter(|e| e.event == "login_failed").count();
    assert_eq!(failed, 4, "failed sign-ins to a real account are audited");
    app.stop().await;
}

#[tokio::test]
async fn the_dashboard_needs_a_session_and_the_switcher_stays_within_ones_tenants() {
    let app = spawn_app().await;
    let anonymous = app.get("/dashboard").await;
    assert_eq!(anonymous.status(), 302);
    assert_eq!(anonymous.headers()["location"], "/login?next=%2Fdashboard");

    let session = sign_up(&app, "Acme", "ann@acme.example").await;
    sign_up(&app, "Globex", "bo@globex.example").await;
    let db = app.db().await;
    let tenants = tenant::Entity::find().all(&db).await.unwrap();
    let acme = tenants.iter().find(|t| t.name == "Acme").unwrap().id;
    let globex = tenants.iter().find(|t| t.name == "Globex").unwrap().id;
    let ann = user::Entity::find().all(&db).await.unwrap().into_iter().find(|u| u.email == "ann@acme.example").unwrap();

    let (_, refused) =
        post_and_follow(&app, "/auth/switch-tenant", &[("tenant_id", &globex.to_string())], Some(&session)).await;
    assert!(refused.contains("You do not belong to that organisation."), "{refused}");

    membership::ActiveModel {
        tenant_id: Set(globex),
        user_id: Set(ann.id),
        role: Set("moderator".to_owned()),
        created_at: Set(Utc::now()),
        disabled_at: Set(None),
    }
    .insert(&db)
    .await
    .unwrap();
    let page = app.get_with_cookie("/dashboard", &session).await.text().await.unwrap();
    assert!(page.contains(&format!(r#"<option value="{acme}" selected"#)), "{page}");
    let (_, switched) =
        post_and_follow(&app, "/auth/switch-tenant", &[("tenant_id", &globex.to_string())], Some(&session)).await;
    let switched = shown(&switched);
    assert!(switched.contains("<strong>Globex</strong>") && switched.contains(">moderator<"), "{switched}");
    let (_, garbage) =
        post_and_follow(&app, "/auth/switch-tenant", &[("tenant_id", "not-a-uuid")], Some(&session)).await;
    assert!(garbage.contains("You do not belong to that organisation."));
    app.stop().await;
}

#[tokio::test]
async fn cross_origin_posts_with_a_session_are_refused() {
    let app = spawn_app().await;
    let session = sign_up(&app, "Acme", "ann@acme.example").await;
    let post = |headers: Vec<(&'static str, &'static str)>| {
        let mut request = app.client.post(format!("{}/auth/logout", app.address)).header("cookie", &session);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request.send()
    };
    assert_eq!(post(vec![("origin", "http://evil.example")]).await.unwrap().status(), 403);
    assert_eq!(post(vec![("origin", "null")]).await.unwrap().status(), 403);
    assert_eq!(post(vec![("sec-fetch-site", "cross-site")]).await.unwrap().status(), 403);
    assert_eq!(post(vec![]).await.unwrap().status(), 403, "no origin evidence and a cookie: refused");
    assert_eq!(app.get_with_cookie("/dashboard", &session).await.status(), 200, "the session survived");
    assert_eq!(post(vec![("sec-fetch-site", "same-origin")]).await.unwrap().status(), 303);
    app.stop().await;
}

#[tokio::test]
async fn oversized_and_malformed_form_bodies_are_refused() {
    let app = spawn_app().await;
    let huge = "x".repeat(300 * 1024);
    let response = app.post_form("/auth/login", &[("email", &huge), ("password", "x")], None).await;
    assert_eq!(response.status(), 413);
    let response = app.post_form("/auth/login", &[("email", "only-an-email")], None).await;
    assert_eq!(response.status(), 400, "a missing field is a bad request");
    app.stop().await;
}

#[tokio::test]
async fn verification_mail_can_be_resent_a_few_times_an_hour() {
    let app = spawn_app().await;
    let session = sign_up(&app, "Acme", "ann@acme.example").await;
    for _ in 0..3 {
        let (_, page) = post_and_follow(&app, "/auth/resend-verification", &[], Some(&session)).await;
        assert!(page.contains("We sent a new confirmation link."), "{page}");
    }
    let (_, page) = post_and_follow(&app, "/auth/resend-verification", &[], Some(&session)).await;
    assert!(page.contains("A verification mail was sent recently"), "{page}");
    let db = app.db().await;
    assert_eq!(email_token::Entity::find().count(&db).await.unwrap(), 4, "signup plus three resends");
    app.stop().await;
}

#[tokio::test]
async fn a_password_reset_by_mail_sets_a_new_password_once_and_ends_every_session() {
    let app = spawn_app().await;
    let session = sign_up(&app, "Acme", "ann@acme.example").await;
    let (_, page) = post_and_follow(&app, "/auth/forgot-password", &[("email", "ann@acme.example")], None).await;
    assert!(page.contains("If an account uses this address"), "{page}");
    let (_, unknown) = post_and_follow(&app, "/auth/forgot-password", &[("email", "nobody@acme.example")], None).await;
    assert!(unknown.contains("If an account uses this address"), "the same answer for unknown addresses");

    let mail = app.mail_to("ann@acme.example", "Reset your Convene password").await;
    assert_eq!(mail.subject, "Reset your Convene password");
    let token = mail.link("http://localhost:3000/reset-password?token=").split("token=").nth(1).unwrap().to_owned();
    // A second request mails a second link; using either one uses up both. Mail dates have whole seconds,
    // so the second request waits one out to be the newest.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    post_and_follow(&app, "/auth/forgot-password", &[("email", "ann@acme.example")], None).await;
    let mut second = token.clone();
    for _ in 0..100 {
        let mail = app.mail_to("ann@acme.example", "Reset your Convene password").await;
        second = mail.link("http://localhost:3000/reset-password?token=").split("token=").nth(1).unwrap().to_owned();
        if second != token {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_ne!(second, token, "a second reset mail arrived");
    let (_, weak) =
        post_and_follow(&app, "/auth/reset-password", &[("token", &token), ("password", "short")], None).await;
    assert!(weak.contains("The password is too short"), "{weak}");
    let (location, done) = post_and_follow(
        &app,
        "/auth/reset-password",
        &[("token", &token), ("password", "a brand new passphrase")],
        None,
    )
    .await;
    assert_eq!(location, "/login");
    assert!(done.contains("Your password is changed."), "{done}");
    let (_, reused) = post_and_follow(
        &app,
        "/auth/reset-password",
        &[("token", &token), ("password", "yet another passphrase")],
        None,
    )
    .await;
    assert!(reused.contains("This link has already been used."), "{reused}");
    let (_, older) = post_and_follow(
        &app,
        "/auth/reset-password",
        &[("token", &second), ("password", "yet another passphrase")],
        None,
    )
    .await;
    assert!(older.contains("This link has already been used."), "the other link went with the reset: {older}");

    assert_eq!(app.get_with_cookie("/dashboard", &session).await.status(), 302, "old sessions ended");
    let old = app.post_form("/auth/login", &[("email", "ann@acme.example"), ("password", PASSWORD)], None).await;
    assert_eq!(old.headers()["location"], "/login", "the old password no longer works");
    let new = app
        .post_form("/auth/login", &[("email", "ann@acme.example"), ("password", "a brand new passphrase")], None)
        .await;
    assert_eq!(new.headers()["location"], "/dashboard");
    app.stop().await;
}

#[tokio::test]
async fn the_account_page_changes_password_and_address_and_signs_out_everywhere() {
    let app = spawn_app().await;
    let first = sign_up(&app, "Acme", "ann@acme.example").await;
    let second = app.post_form("/auth/login", &[("email", "ann@acme.example"), ("password", PASSWORD)], None).await;
    let second = format!("convene_session={}", set_cookie(&second, "convene_session").unwrap());

    let fields = [("current_password", "wrong one!"), ("new_password", "a brand new passphrase")];
    let (_, wrong) = post_and_follow(&app, "/account/password", &fields, Some(&first)).await;
    assert!(wrong.contains("The current password is not right."), "{wrong}");
    let fields = [("current_password", PASSWORD), ("new_password", "a brand new passphrase")];
    let (_, changed) = post_and_follow(&app, "/account/password", &fields, Some(&first)).await;
    assert!(changed.contains("Password changed."), "{changed}");
    assert_eq!(app.get_with_cookie("/dashboard", &first).await.status(), 200, "this session stays");
    assert_eq!(app.get_with_cookie("/dashboard", &second).await.status(), 302, "the other one ended");

    let fields = [("email", "ann@new.example"), ("current_password", "a brand new passphrase")];
    let (_, requested) = post_and_follow(&app, "/account/email", &fields, Some(&first)).await;
    assert!(requested.contains("We sent a confirmation link to ann@new.example"), "{requested}");
    let token = app
        .mail_to("ann@new.example", "Confirm your new email address")
        .await
        .link("http://localhost:3000/verify?token=");
    let token = token.split("token=").nth(1).unwrap().to_owned();
    // Followed in a browser with no session (the new mailbox may be a stranger's): it confirms, signs no one in.
    let confirmed = app.post_form("/auth/verify", &[("token", &token)], None).await;
    assert_eq!(confirmed.headers()["location"], "/dashboard");
    assert!(set_cookie(&confirmed, "convene_session").is_none(), "a change of address signs no one in");
    let account = app.get_with_cookie("/account", &first).await.text().await.unwrap();
    assert!(shown(&account).contains("Signed in as <strong>ann@new.example</strong>"), "{account}");

    let everywhere = app.post_form("/account/sign-out-everywhere", &[], Some(&first)).await;
    assert_eq!(everywhere.headers()["location"], "/login");
    assert_eq!(app.get_with_cookie("/dashboard", &first).await.status(), 302);
    let db = app.db().await;
    let events: Vec<String> =
        audit_event::Entity::find().all(&db).await.unwrap().into_iter().map(|e| e.event).collect();
    for expected in ["password_changed", "email_changed", "sessions_revoked"] {
        assert!(events.contains(&expected.to_owned()), "{expected} in {events:?}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_disabled_member_is_told_so_at_sign_in() {
    let app = spawn_app().await;
    sign_up(&app, "Acme", "ann@acme.example").await;
    let db = app.db().await;
    let member = membership::Entity::find().one(&db).await.unwrap().unwrap();
    let mut disabled: membership::ActiveModel = member.into();
    disabled.disabled_at = Set(Some(Utc::now()));
    disabled.update(&db).await.unwrap();
    let (location, page) =
        post_and_follow(&app, "/auth/login", &[("email", "ann@acme.example"), ("password", PASSWORD)], None).await;
    assert_eq!(location, "/login");
    assert!(
        page.contains("Your access has been disabled; ask your organisation&#x27;s owner.")
            || page.contains("Your access has been disabled"),
        "{page}"
    );
    app.stop().await;
}

#[tokio::test]
async fn server_functions_are_covered_by_the_origin_check() {
    use leptos::server_fn::ServerFn;
    let app = spawn_app().await;
    let session = sign_up(&app, "Acme", "ann@acme.example").await;
    let path = <convene_app::layout::GetViewer as ServerFn>::PATH;
    let call = |origin: &'static str| {
        app.client
            .post(format!("{}{path}", app.address))
            .header("cookie", &session)
            .header("origin", origin)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .send()
    };
    assert_eq!(call("http://evil.example").await.unwrap().status(), 403);
    let own = call("http://localhost:3000").await.unwrap();
    assert_eq!(own.status(), 200);
    assert!(own.text().await.unwrap().contains("ann@acme.example"), "the server function answers our own pages");
    app.stop().await;
}

#[tokio::test]
async fn sign_ups_and_invitations_are_limited_per_client_and_organisation() {
    let app = spawn_app().await;
    let signup = |index: usize| {
        let email = format!("owner{index}@acme{index}.example");
        let app = &app;
        async move {
            let fields = [
                ("organisation", "Acme"),
                ("name", "Owner"),
                ("email", email.as_str()),
                ("password", crate::helpers::PASSWORD),
            ];
            app.post_form("/auth/signup", &fields, None).await
        }
    };
    for index in 0..10 {
        let response = signup(index).await;
        let flash = set_cookie(&response, "convene_flash").unwrap_or_default();
        let page = app.get_with_cookie("/signup", &format!("convene_flash={flash}")).await.text().await.unwrap();
        assert!(page.contains("Check your inbox"), "sign-up {index} goes through: {page}");
    }
    let owner = crate::helpers::sign_in(&app, "owner9@acme9.example").await;
    let password = crate::helpers::PASSWORD;
    let fields = [("organisation", "Acme"), ("name", "Owner"), ("email", "late@late.example"), ("password", password)];
    let page = crate::helpers::post_and_follow(&app, "/auth/signup", &fields, "").await;
    assert!(page.contains("Too many sign-ups"), "the eleventh sign-up from one client waits: {page}");

    crate::helpers::verify_email(&app, "owner9@acme9.example").await;
    for index in 0..30 {
        let email = format!("person{index}@acme9.example");
        let page = crate::helpers::post_and_follow(
            &app,
            "/team/invite",
            &[("email", &email), ("role", "participant")],
            &owner,
        )
        .await;
        assert!(page.contains("Invitation sent"), "invitation {index}: {page}");
    }
    let page = crate::helpers::post_and_follow(
        &app,
        "/team/invite",
        &[("email", "one-more@acme9.example"), ("role", "participant")],
        &owner,
    )
    .await;
    assert!(page.contains("Too many invitations"), "{page}");
    app.stop().await;
}

#[tokio::test]
async fn password_reset_requests_are_limited_per_client() {
    let app = spawn_app().await;
    for index in 0..10 {
        let email = format!("person{index}@acme.example");
        let (_, page) = post_and_follow(&app, "/auth/forgot-password", &[("email", &email)], None).await;
        assert!(page.contains("If an account uses this address"), "request {index}: {page}");
    }
    let (_, page) = post_and_follow(&app, "/auth/forgot-password", &[("email", "late@acme.example")], None).await;
    assert!(page.contains("Too many reset requests from your network"), "the eleventh waits: {page}");
    app.stop().await;
}
