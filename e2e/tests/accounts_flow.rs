//! The first customer journey in a real browser: sign up, confirm the address from the received mail (which
//! signs in), sign in again, invite a moderator, create an API key, and the moderator accepts. Screenshots of each page are kept in
//! `<target>/e2e-artifacts/`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use convene_e2e::{Convene, browser::Browser};

const OWNER: &str = "owner@acme.example";
const MODERATOR: &str = "mo@acme.example";
const PASSWORD: &str = "correct horse battery";

#[tokio::test]
async fn sign_up_confirm_sign_in_invite_and_accept() {
    let convene = Convene::up().await.expect("convene up starts");
    let browser = Browser::start().await.expect("a browser session");

    browser.open(&convene.site("/")).await.unwrap();
    browser.screenshot("01-landing").await.unwrap();
    let signup = browser.href("header a.button").await.unwrap();
    browser.open(&convene.site(&signup)).await.unwrap();
    assert_eq!(browser.path().await.unwrap(), "/signup");
    browser.fill("organisation", "Acme").await.unwrap();
    browser.fill("name", "Olivia Owner").await.unwrap();
    browser.fill("email", OWNER).await.unwrap();
    browser.fill("password", "short").await.unwrap();
    browser.submit("form[action='/auth/signup'] button").await.unwrap();
    let refused = browser.main_text().await.unwrap();
    assert!(refused.contains("The password is too short"), "{refused}");
    browser.screenshot("02-signup-refused").await.unwrap();
    browser.fill("password", PASSWORD).await.unwrap();
    browser.submit("form[action='/auth/signup'] button").await.unwrap();
    // The same answer as for an address that has an account: no session until the mail proves the address.
    assert_eq!(browser.path().await.unwrap(), "/signup");
    let sent = browser.main_text().await.unwrap();
    assert!(sent.contains("Check your inbox") && sent.contains(&format!("We sent a link to {OWNER}")), "{sent}");
    browser.screenshot("03-check-your-inbox").await.unwrap();
    // The answer fits a desktop and a phone: no sideways scrolling, both links inside the viewport.
    for (width, height, name) in [(1280, 800, "03-check-your-inbox-desktop"), (390, 844, "03-check-your-inbox-phone")] {
        browser.client.set_window_size(width, height).await.unwrap();
        let facts = browser
            .client
            .execute(
                "const inside = [...document.querySelectorAll('main a')].every(link => { \
                   const box = link.getBoundingClientRect(); \
                   return box.left >= 0 && box.right <= window.innerWidth && box.bottom <= window.innerHeight; }); \
                 return [document.documentElement.scrollWidth <= window.innerWidth, inside];",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(facts, serde_json::json!([true, true]), "{width}x{height}");
        browser.screenshot(name).await.unwrap();
    }
    browser.client.set_window_size(1280, 800).await.unwrap();

    let confirm = convene.mailbox.wait_for(OWNER, "Confirm your email address").await;
    browser.open(&confirm.link(&convene.site("/verify?token="))).await.unwrap();
    browser.screenshot("04-confirm-email").await.unwrap();
    browser.submit("form[action='/auth/verify'] button").await.unwrap();
    assert_eq!(browser.path().await.unwrap(), "/dashboard", "the link signs its owner in");
    let confirmed = browser.main_text().await.unwrap();
    assert!(
        confirmed.contains("Your email address is confirmed.") && confirmed.contains("Hello, Olivia Owner"),
        "{confirmed}"
    );

    browser.submit("form[action='/auth/logout'] button").await.unwrap();
    browser.open(&convene.site("/login")).await.unwrap();
    browser.fill("email", OWNER).await.unwrap();
    browser.fill("password", PASSWORD).await.unwrap();
    browser.screenshot("05-sign-in").await.unwrap();
    browser.submit("form[action='/auth/login'] button").await.unwrap();
    assert_eq!(browser.path().await.unwrap(), "/dashboard");

    assert_eq!(browser.href("nav.tabs a[href='/team']").await.unwrap(), "/team");
    browser.open(&convene.site("/team")).await.unwrap();
    browser.fill("email", MODERATOR).await.unwrap();
    browser.select("role", "moderator").await.unwrap();
    browser.submit("form[action='/team/invite'] button").await.unwrap();
    let team = browser.main_text().await.unwrap();
    assert!(team.contains(&format!("Invitation sent to {MODERATOR}.")), "{team}");
    browser.screenshot("06-team-invited").await.unwrap();

    browser.open(&convene.site("/keys")).await.unwrap();
    browser.fill("name", "backend").await.unwrap();
    browser.submit("form[action='/keys'] button").await.unwrap();
    let key = browser.client.find(fantoccini::Locator::Css("#new-key")).await.unwrap().text().await.unwrap();
    assert!(key.starts_with("cvn_"), "{key}");
    browser.press(".new-key button").await.unwrap();
    assert!(browser.main_text().await.unwrap().contains("Copied"), "the hydrated copy button answers");
    browser.screenshot("07-api-key-created").await.unwrap();
    // Every signed-in page fits a phone: no sideways scrolling, the header's links and the tabs' row inside
    // the viewport (the tabs may scroll within their row).
    for path in ["/", "/dashboard", "/team", "/keys", "/meetings", "/meetings/new", "/audit", "/billing", "/account"] {
        for (width, height) in [(390, 844), (360, 800)] {
            browser.client.set_window_size(width, height).await.unwrap();
            browser.open(&convene.site(path)).await.unwrap();
            let facts = browser
                .client
                .execute(
                    "const inside = element => { const box = element.getBoundingClientRect(); \
                       return box.left >= 0 && box.right <= window.innerWidth; }; \
                     return [document.documentElement.scrollWidth <= window.innerWidth, \
                       [...document.querySelectorAll('header a, header button, nav.tabs')].every(inside)];",
                    vec![],
                )
                .await
                .unwrap();
            assert_eq!(facts, serde_json::json!([true, true]), "{path} at {width}x{height}");
        }
        let page = if path == "/" { "-landing".to_owned() } else { path.replace('/', "-") };
        browser.screenshot(&format!("07-phone{page}")).await.unwrap();
    }
    browser.client.set_window_size(1280, 800).await.unwrap();
    browser.submit("form[action='/auth/logout'] button").await.unwrap();

    let invitation = convene.mailbox.wait_for(MODERATOR, "invited you to Acme").await;
    browser.open(&invitation.link(&convene.site("/invitations/accept?token="))).await.unwrap();
    let offer = browser.main_text().await.unwrap();
    assert!(offer.contains("Join Acme on Convene") && offer.contains("as moderator"), "{offer}");
    browser.fill("name", "Max Moderator").await.unwrap();
    browser.fill("password", PASSWORD).await.unwrap();
    browser.screenshot("08-accept-invitation").await.unwrap();
    browser.submit("form[action='/invitations/accept'] button").await.unwrap();
    assert_eq!(browser.path().await.unwrap(), "/dashboard");
    let joined = browser.main_text().await.unwrap();
    assert!(joined.contains("Hello, Max Moderator") && joined.contains("as Moderator"), "{joined}");
    browser.screenshot("09-moderator-dashboard").await.unwrap();

    browser.open(&convene.site("/team")).await.unwrap();
    let members = browser.main_text().await.unwrap();
    assert!(members.contains("Olivia Owner") && members.contains("Max Moderator"), "{members}");
    browser.screenshot("10-team-as-moderator").await.unwrap();

    browser.close().await.unwrap();
    convene.stop().await.expect("convene stops cleanly");
}
