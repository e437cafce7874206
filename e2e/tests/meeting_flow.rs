//! A scheduled meeting in a real browser: a moderator schedules it and invites someone; the invitee gets
//! the mail, follows the participant link, signs in, and lands on the meet host with a valid participant
//! token. Screenshots are kept in `<target>/e2e-artifacts/` as `meeting-*.png`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use convene_e2e::{Convene, browser::Browser};

const ORGANISER: &str = "olivia@acme.example";
const INVITEE: &str = "bob@studio.example";
/// Invited with no account: joins through the personal link in the mail.
const NEWCOMER: &str = "nia.new@elsewhere.example";
const PASSWORD: &str = "correct horse battery";

/// Signs up through the pages, confirms the address from the mail, and signs out.
async fn sign_up_and_confirm(convene: &Convene, browser: &Browser, organisation: &str, name: &str, email: &str) {
    browser.open(&convene.site("/signup")).await.unwrap();
    browser.fill("organisation", organisation).await.unwrap();
    browser.fill("name", name).await.unwrap();
    browser.fill("email", email).await.unwrap();
    browser.fill("password", PASSWORD).await.unwrap();
    browser.submit("form[action='/auth/signup'] button").await.unwrap();
    let confirm = convene.mailbox.wait_for(email, "Confirm your email address").await;
    browser.open(&confirm.link(&convene.site("/verify?token="))).await.unwrap();
    browser.submit("form[action='/auth/verify'] button").await.unwrap();
    assert!(browser.main_text().await.unwrap().contains("Your email address is confirmed."));
}

#[tokio::test]
async fn a_moderator_schedules_and_the_invitee_signs_in_and_lands_in_the_meeting() {
    let convene = Convene::up().await.expect("convene up starts");
    let browser = Browser::start().await.expect("a browser session");

    sign_up_and_confirm(&convene, &browser, "Bob's Studio", "Bob Invitee", INVITEE).await;
    browser.submit("form[action='/auth/logout'] button").await.unwrap();
    sign_up_and_confirm(&convene, &browser, "Acme", "Olivia Organiser", ORGANISER).await;

    browser.open(&convene.site("/meetings/new")).await.unwrap();
    let year = {
        use chrono::Datelike;
        chrono::Utc::now().year() + 1
    };
    browser.fill("title", "Quarterly review").await.unwrap();
    browser.fill("room", "quarterly-review").await.unwrap();
    // A new meeting is in the browser's zone, and the end follows the start by an hour.
    let in_browser_zone = format!(
        "return document.querySelector(\"html[data-hydrated] [name='time_zone']\")?.value === '{}';",
        convene_e2e::browser::BROWSER_TIME_ZONE
    );
    browser.wait_for("the browser's time zone", &in_browser_zone, std::time::Duration::from_secs(10)).await.unwrap();
    browser
        .client
        .execute(
            "const start = document.querySelector(\"[name='starts_at']\"); start.value = arguments[0]; \
             start.dispatchEvent(new Event('change', { bubbles: true }));",
            vec![serde_json::json!(format!("{year}-06-01T15:00"))],
        )
        .await
        .unwrap();
    let end = browser.client.execute("return document.querySelector(\"[name='ends_at']\").value;", vec![]);
    assert_eq!(end.await.unwrap(), serde_json::json!(format!("{year}-06-01T16:00")));
    browser.fill("time_zone", "Europe/Paris").await.unwrap();
    browser.fill("invitees", &format!("{INVITEE}\n{NEWCOMER}")).await.unwrap();
    browser.screenshot("meeting-01-schedule").await.unwrap();
    browser.submit("form[action='/meetings'] button").await.unwrap();
    let page = browser.main_text().await.unwrap();
    assert!(page.contains("The meeting is scheduled.") && page.contains("Quarterly review"), "{page}");
    assert!(page.contains(INVITEE) && page.contains("(Europe/Paris)"), "{page}");
    browser.screenshot("meeting-02-scheduled").await.unwrap();
    // "Cancel the meeting" reads as a danger button (white on red), inside the viewport once scrolled to, at
    // desktop and phone sizes.
    for (width, height, name) in [(1280, 800, "meeting-02-cancel-desktop"), (390, 844, "meeting-02-cancel-phone")] {
        browser.client.set_window_size(width, height).await.unwrap();
        let facts = browser
            .client
            .execute(
                "const button = document.querySelector(\"form[action$='/cancel'] button\"); \
                 button.scrollIntoView({ block: 'center' }); \
                 const style = getComputedStyle(button), box = button.getBoundingClientRect(); \
                 return [style.backgroundColor, style.color, box.left >= 0 && box.right <= window.innerWidth, \
                   document.documentElement.scrollWidth <= window.innerWidth];",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(facts, serde_json::json!(["rgb(179, 38, 30)", "rgb(255, 255, 255)", true, true]), "{name}");
        browser.screenshot(name).await.unwrap();
    }
    browser.client.set_window_size(1280, 800).await.unwrap();
    browser.open(&convene.site("/meetings")).await.unwrap();
    assert!(browser.main_text().await.unwrap().contains("Quarterly review"));
    browser.screenshot("meeting-03-list").await.unwrap();
    browser.open(&convene.site("/dashboard")).await.unwrap();
    let dashboard = browser.main_text().await.unwrap();
    assert!(dashboard.contains("Upcoming meetings") && dashboard.contains("Quarterly review"), "{dashboard}");
    // Olivia starts it: the call shows the meeting's title and shares its link from inside; leaving leads
    // back to her dashboard.
    browser.open(&convene.site("/meetings")).await.unwrap();
    let meeting = browser.href("a[href^='/meetings/']:not([href='/meetings/new'])").await.unwrap();
    browser.open(&convene.site(&meeting)).await.unwrap();
    browser.submit("form[action$='/start'] button").await.unwrap();
    let ui = std::time::Duration::from_secs(30);
    browser
        .wait_for(
            "the pre-join",
            "return document.querySelector(\"html[data-hydrated] button[name='join']\") !== null;",
            ui,
        )
        .await
        .unwrap();
    browser.press("button[name='join']").await.unwrap();
    browser
        .wait_for("the meeting", "return document.querySelector(\".meeting[data-phase='meeting']\") !== null;", ui)
        .await
        .unwrap();
    assert_eq!(
        browser.client.find(fantoccini::Locator::Css(".room-name")).await.unwrap().text().await.unwrap(),
        "Quarterly review"
    );
    browser.press("button[name='invite']").await.unwrap();
    let shared = "return [...document.querySelectorAll('.notice-line')].some(n => n.textContent.includes('/join/'));";
    browser.wait_for("the meeting's link in a notice", shared, ui).await.unwrap();
    browser.screenshot("meeting-03-invite-from-the-call").await.unwrap();
    browser.press("button[name='leave']").await.unwrap();
    let over = "return document.querySelector(\".over-actions a[href$='/dashboard']\") !== null;";
    browser.wait_for("the way back to the dashboard", over, ui).await.unwrap();
    let back = browser.href(".over-actions a[href$='/dashboard']").await.unwrap();
    browser.screenshot("meeting-03-left").await.unwrap();
    browser.open(&back).await.unwrap();
    assert_eq!(browser.path().await.unwrap(), "/dashboard");
    browser.submit("form[action='/auth/logout'] button").await.unwrap();

    let invitation = convene.mailbox.wait_for(INVITEE, "Invitation: Quarterly review").await;
    assert_eq!(invitation.calendar.as_ref().map(|(method, _)| method.as_str()), Some("REQUEST"));
    browser.open(&invitation.link(&convene.site("/join/"))).await.unwrap();
    let offer = browser.main_text().await.unwrap();
    assert!(offer.contains("Acme invites you to") && offer.contains("Quarterly review"), "{offer}");
    browser.screenshot("meeting-04-link-signed-out").await.unwrap();
    let sign_in = browser.href("a.button[href^='/login?next=']").await.unwrap();
    browser.open(&convene.site(&sign_in)).await.unwrap();
    browser.fill("email", INVITEE).await.unwrap();
    browser.fill("password", PASSWORD).await.unwrap();
    browser.submit("form[action='/auth/login'] button").await.unwrap();
    assert!(browser.path().await.unwrap().starts_with("/join/"), "back to the link after signing in");
    browser.screenshot("meeting-05-link-signed-in").await.unwrap();
    browser.submit("form[action^='/join/'] button").await.unwrap();

    let landed = browser.client.current_url().await.unwrap();
    assert_eq!(landed.host_str(), Some("meet.localhost"), "{landed}");
    assert_eq!(landed.path(), "/quarterly-review");
    assert!(landed.query().unwrap_or_default().starts_with("jwt="), "{landed}");
    let meeting = browser.main_text().await.unwrap();
    assert!(meeting.contains("Bob Invitee") && meeting.contains("as a participant"), "{meeting}");
    browser.screenshot("meeting-06-meet-host").await.unwrap();
    browser.close().await.unwrap();

    // Nia has no account: her own link lets her in under her invited name.
    let browser = Browser::start().await.expect("a browser session");
    let invitation = convene.mailbox.wait_for(NEWCOMER, "Invitation: Quarterly review").await;
    browser.open(&invitation.link(&convene.site("/join/"))).await.unwrap();
    let offer = browser.main_text().await.unwrap();
    assert!(offer.contains("Join as Nia New") && offer.contains("no account needed"), "{offer}");
    browser.screenshot("meeting-07-personal-link").await.unwrap();
    browser.submit("form[action$='/invitee'] button").await.unwrap();
    let landed = browser.client.current_url().await.unwrap();
    assert_eq!((landed.host_str(), landed.path()), (Some("meet.localhost"), "/quarterly-review"), "{landed}");
    browser
        .wait_for(
            "the pre-join screen",
            "return document.querySelector(\"html[data-hydrated] button[name='join']\") !== null;",
            std::time::Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert!(browser.main_text().await.unwrap().contains("Welcome, Nia New"));
    browser.press("button[name='join']").await.unwrap();
    let named = "return [...document.querySelectorAll('.tile-name')].some(n => n.textContent === 'Nia New (you)');";
    browser.wait_for("Nia in the meeting under her name", named, std::time::Duration::from_secs(60)).await.unwrap();
    browser.screenshot("meeting-08-invitee-in-the-meeting").await.unwrap();
    browser.close().await.unwrap();
    convene.stop().await.unwrap();
}

#[tokio::test]
async fn the_meeting_page_and_the_call_offer_the_dial_in_numbers_with_the_pin() {
    let plans = concat!(env!("CARGO_MANIFEST_DIR"), "/../api/tests/recording-plans.toml");
    let convene = Convene::up_with_tenant_and(&[("CONVENE_PLANS", plans.to_owned())]).await.expect("convene up");
    let (_, tenant) = convene.call(reqwest::Method::GET, "/v1/tenant", None).await.unwrap();
    let tenant = tenant["id"].as_str().unwrap().to_owned();
    for (number, country, toll_free) in [("+18005550199", "US", true), ("+442079460958", "GB", false)] {
        let mut args = vec!["dial-in-numbers", "add", "--tenant", &tenant, "--number", number, "--country", country];
        if toll_free {
            args.push("--toll-free");
        }
        convene.admin(&args).await.unwrap();
    }
    let year = {
        use chrono::Datelike;
        chrono::Utc::now().year() + 1
    };
    let meeting = serde_json::json!({
        "organizer": "owner@acme.example", "title": "Board call", "room": "board-call",
        "starts_at": format!("{year}-06-01T15:00"), "ends_at": format!("{year}-06-01T16:00"),
        "time_zone": "Europe/London",
    });
    let (status, scheduled) =
        convene.call(reqwest::Method::POST, "/v1/scheduled-meetings", Some(meeting)).await.unwrap();
    assert_eq!(status, 201, "{scheduled}");
    let (_, dial_in) = convene.call(reqwest::Method::GET, "/v1/rooms/board-call/dial-in", None).await.unwrap();
    let pin = dial_in["pin"].as_str().unwrap().to_owned();
    let grouped = format!("{} {} {}", &pin[..3], &pin[3..6], &pin[6..]);

    let browser = Browser::start().await.expect("a browser session");
    browser.open(&convene.site("/login")).await.unwrap();
    browser.fill("email", "owner@acme.example").await.unwrap();
    browser.fill("password", PASSWORD).await.unwrap();
    browser.submit("form[action='/auth/login'] button").await.unwrap();
    browser.open(&convene.site(&format!("/meetings/{}", scheduled["id"].as_str().unwrap()))).await.unwrap();
    let page = browser.main_text().await.unwrap();
    assert!(
        page.contains("Join by phone") && page.contains(&format!("enter the PIN {grouped} followed by #")),
        "{page}"
    );
    // Each number dials the PIN too in one tap; the toll-free one comes first; nothing spills sideways.
    for (width, height, name) in [(1280, 800, "meeting-09-dial-in-desktop"), (390, 844, "meeting-09-dial-in-phone")] {
        browser.client.set_window_size(width, height).await.unwrap();
        let facts = browser
            .client
            .execute(
                "const links = [...document.querySelectorAll('.dial-in a')]; \
                 links[0].scrollIntoView({ block: 'center' }); \
                 const box = links[0].getBoundingClientRect(); \
                 return [links.map(a => a.getAttribute('href')), box.left >= 0 && box.right <= window.innerWidth \
                   && box.top >= 0 && box.bottom <= window.innerHeight, \
                   document.documentElement.scrollWidth <= window.innerWidth];",
                vec![],
            )
            .await
            .unwrap();
        let links = serde_json::json!([format!("tel:+18005550199,,{pin}%23"), format!("tel:+442079460958,,{pin}%23")]);
        assert_eq!(facts, serde_json::json!([links, true, true]), "{name}");
        browser.screenshot(name).await.unwrap();
    }
    browser.client.set_window_size(1280, 800).await.unwrap();

    // Inside the call, "Invite people" copies the link with the numbers and the PIN.
    browser.submit("form[action$='/start'] button").await.unwrap();
    let ui = std::time::Duration::from_secs(30);
    let ready = "return document.querySelector(\"html[data-hydrated] button[name='join']\") !== null;";
    browser.wait_for("the pre-join", ready, ui).await.unwrap();
    browser.press("button[name='join']").await.unwrap();
    let inside = "return document.querySelector(\".meeting[data-phase='meeting']\") !== null;";
    browser.wait_for("the meeting", inside, ui).await.unwrap();
    browser.press("button[name='invite']").await.unwrap();
    let shared = "return [...document.querySelectorAll('.notice-line')].some(n => n.textContent.includes('dial-in numbers are copied'));";
    browser.wait_for("the invitation with the numbers in a notice", shared, ui).await.unwrap();
    let copied = browser.client.execute_async(
        "const done = arguments[0]; navigator.clipboard.readText().then(done, () => done(null));",
        vec![],
    );
    if let Some(text) = copied.await.unwrap().as_str() {
        assert!(text.contains("/join/") && text.contains(&format!("PIN {grouped} followed by #")), "{text}");
    }
    // The notice wraps the long link inside its box, and the box stays on screen.
    let notice_fits = "const line = [...document.querySelectorAll('.notice-line')] \
        .find(n => n.textContent.includes('dial-in')); \
        const text = line.querySelector('span').getBoundingClientRect(), box = line.getBoundingClientRect(); \
        return text.right <= box.right && box.left >= 0 && box.right <= window.innerWidth;";
    let fits = browser.client.execute(notice_fits, vec![]).await.unwrap();
    assert_eq!(fits, serde_json::json!(true));
    browser.screenshot("meeting-10-invite-with-dial-in").await.unwrap();
    // On a phone the same notice wraps inside the narrower screen.
    browser.client.set_window_size(390, 844).await.unwrap();
    let fits_phone = browser.client.execute(notice_fits, vec![]).await.unwrap();
    assert_eq!(fits_phone, serde_json::json!(true));
    browser.screenshot("meeting-10-invite-with-dial-in-phone").await.unwrap();
    browser.close().await.unwrap();
    convene.stop().await.unwrap();
}
