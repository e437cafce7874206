//! The first customer journey in a real browser: sign up, confirm the address from the received mail (which
//! signs in), sign in again, invite a moderator, create an API key, and the moderator accepts; and an owner
//! manages a webhook endpoint on the site. Screenshots of each page are kept in
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

/// What the test's webhook receiver got, in order, and the statuses it answers with (200 when they run out).
#[derive(Clone, Default)]
struct Receiver {
    received: std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
    answers: std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<u16>>>,
}

async fn receive(
    request: actix_web::HttpRequest,
    body: String,
    inbox: actix_web::web::Data<Receiver>,
) -> actix_web::HttpResponse {
    let header =
        |name: &str| request.headers().get(name).and_then(|value| value.to_str().ok()).unwrap_or_default().to_owned();
    let delivery = serde_json::json!({
        "id": header("webhook-id"), "timestamp": header("webhook-timestamp"),
        "signature": header("webhook-signature"), "body": body,
    });
    inbox.received.lock().unwrap().push(delivery);
    let status = inbox.answers.lock().unwrap().pop_front().unwrap_or(200);
    actix_web::HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).body("received")
}

/// Whether the Standard Webhooks reference library (PyPI's `standardwebhooks`) accepts `delivery` under
/// `secret`: the secret the page showed is the one that signs.
fn signed_with(secret: &str, delivery: &serde_json::Value) -> bool {
    let script = "
import json, sys
from standardwebhooks.webhooks import Webhook
delivery = json.load(sys.stdin)
headers = {'webhook-id': delivery['id'], 'webhook-timestamp': delivery['timestamp'], 'webhook-signature': delivery['signature']}
try:
    Webhook(sys.argv[1]).verify(delivery['body'], headers)
except Exception:
    sys.exit(1)
";
    let mut child = std::process::Command::new("python3")
        .args(["-c", script, secret])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), delivery.to_string().as_bytes()).unwrap();
    child.wait().unwrap().success()
}

/// The page's layout facts at one size: no sideways scrolling, every button and field of `<main>` inside the
/// viewport's width; the screenshot shows the part `focus` selects.
async fn fits(browser: &Browser, (width, height): (u32, u32), name: &str, focus: &str) {
    browser.set_viewport(width, height).await.unwrap();
    let show = "document.querySelector(arguments[0])?.scrollIntoView({ block: 'center' });";
    browser.client.execute(show, vec![serde_json::json!(focus)]).await.unwrap();
    let facts = browser
        .client
        .execute(
            "const inside = element => { const box = element.getBoundingClientRect(); \
               return box.left >= 0 && box.right <= window.innerWidth; }; \
             const outside = [...document.querySelectorAll('main button, main input:not([type=hidden]), nav.tabs')] \
               .filter(element => !element.closest('.table-scroll') && !inside(element)).map(element => element.outerHTML); \
             return [document.documentElement.scrollWidth <= window.innerWidth, outside];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(facts, serde_json::json!([true, []]), "{name} at {width}x{height}");
    browser.screenshot(&format!("{name}-{width}x{height}")).await.unwrap();
}

#[tokio::test]
async fn an_owner_adds_a_webhook_endpoint_tries_it_and_reads_its_delivery_log() {
    let convene = Convene::up_with_tenant_and(&[("CONVENE_WEBHOOKS_ALLOW_LOOPBACK", "1".to_owned())]).await.unwrap();
    let inbox = Receiver::default();
    // The receiver fails the first try, so the log shows a retry.
    inbox.answers.lock().unwrap().push_back(500);
    let data = actix_web::web::Data::new(inbox.clone());
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new().app_data(data.clone()).default_service(actix_web::web::to(receive))
    })
    .workers(1)
    .disable_signals()
    .bind(("127.0.0.1", 0))
    .unwrap();
    let receiver_url = format!("http://{}/convene/hooks", server.addrs()[0]);
    let server = server.run();
    let server_handle = server.handle();
    tokio::spawn(server);

    let browser = Browser::start().await.expect("a browser session");
    browser.open(&convene.site("/login")).await.unwrap();
    browser.fill("email", OWNER).await.unwrap();
    browser.fill("password", PASSWORD).await.unwrap();
    browser.submit("form[action='/auth/login'] button").await.unwrap();
    assert_eq!(browser.href("nav.tabs a[href='/webhooks']").await.unwrap(), "/webhooks");
    browser.open(&convene.site("/webhooks")).await.unwrap();
    assert!(browser.main_text().await.unwrap().contains("No endpoints yet."));
    for size in [(1280, 800), (390, 844)] {
        fits(&browser, size, "11-webhooks-empty", ".event-choices").await;
    }
    browser.set_viewport(1280, 800).await.unwrap();

    // Refused with reasons next to the fields, and what was typed kept.
    browser.fill("url", "ftp://files.example/in").await.unwrap();
    browser.submit("form[action='/webhook-endpoints'] button").await.unwrap();
    let refused = browser.main_text().await.unwrap();
    assert!(
        refused.contains("Please check the form.") && refused.contains("the URL must start with https://"),
        "{refused}"
    );
    browser.fill("url", &receiver_url).await.unwrap();
    browser.fill("description", "Our backend").await.unwrap();
    browser.submit("form[action='/webhook-endpoints'] button").await.unwrap();
    assert!(browser.main_text().await.unwrap().contains("name at least one event"), "no event chosen");
    browser.press("input[value='meeting.started']").await.unwrap();
    browser.press("input[value='dial_in.joined']").await.unwrap();
    browser.submit("form[action='/webhook-endpoints'] button").await.unwrap();

    // The endpoint's page, with its secret this once.
    let page = browser.path().await.unwrap();
    assert!(page.starts_with("/webhooks/"), "{page}");
    let secret = browser.client.find(fantoccini::Locator::Css("#new-secret")).await.unwrap().text().await.unwrap();
    assert!(secret.starts_with("whsec_"), "{secret}");
    let shown = browser.main_text().await.unwrap();
    assert!(shown.contains("Copy its signing secret now") && shown.contains("Nothing has been sent yet"), "{shown}");
    browser.screenshot("12-webhook-created").await.unwrap();
    browser.open(&convene.site(&page)).await.unwrap();
    assert!(!browser.main_text().await.unwrap().contains(&secret), "the secret is shown once");

    // A test event: the first try fails (500), the retry 5 s later is delivered; both are in the log.
    browser.submit("form[action$='/test'] button").await.unwrap();
    assert!(browser.main_text().await.unwrap().contains("queued"));
    let delivered = "return document.querySelector('table.deliveries tr[data-state=delivered]') !== null;";
    for _ in 0..60 {
        browser.open(&convene.site(&page)).await.unwrap();
        if browser.client.execute(delivered, vec![]).await.unwrap() == serde_json::json!(true) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let log = browser.main_text().await.unwrap();
    assert!(log.contains("webhook.test") && log.contains("500") && log.contains("200"), "{log}");
    let received = inbox.received.lock().unwrap().clone();
    assert_eq!(received.len(), 2, "{received:?}");
    assert_eq!(received[0]["id"], received[1]["id"], "a retry is the same message");
    assert!(received.iter().all(|delivery| signed_with(&secret, delivery)), "signed with the secret shown");
    for size in [(1280, 800), (390, 844)] {
        fits(&browser, size, "13-webhook-delivery-log", "table.deliveries").await;
    }
    browser.set_viewport(1280, 800).await.unwrap();

    // Send again: the same message once more.
    browser.submit("table.deliveries tr[data-state=delivered] button").await.unwrap();
    assert!(browser.main_text().await.unwrap().contains("The event is queued again."));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while inbox.received.lock().unwrap().len() < 3 {
        assert!(std::time::Instant::now() < deadline, "the delivery sent again never arrived");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(inbox.received.lock().unwrap()[2]["id"], received[0]["id"]);

    // A new secret signs from now on (and the old one beside it for a day).
    browser.submit("form[action$='/secret'] button").await.unwrap();
    let rotated = browser.client.find(fantoccini::Locator::Css("#new-secret")).await.unwrap().text().await.unwrap();
    assert!(rotated.starts_with("whsec_") && rotated != secret, "{rotated}");

    // Pause it: the list says so.
    browser.press("input[name='paused']").await.unwrap();
    browser.submit("form.webhook-form button[type=submit]").await.unwrap();
    assert!(browser.main_text().await.unwrap().contains("Endpoint saved."));
    browser.open(&convene.site("/webhooks")).await.unwrap();
    let listed = browser.main_text().await.unwrap();
    assert!(listed.contains(&receiver_url) && listed.contains("paused") && listed.contains("Our backend"), "{listed}");
    for size in [(1280, 800), (390, 844)] {
        fits(&browser, size, "14-webhooks-listed", ".webhooks").await;
    }
    browser.set_viewport(1280, 800).await.unwrap();

    // Another organisation's (or no) endpoint is not found; removing it takes it off the list.
    browser.open(&convene.site("/webhooks/0190f1a2-0000-7000-8000-000000000000")).await.unwrap();
    assert!(browser.main_text().await.unwrap().contains("There is nothing here"));
    browser.open(&convene.site(&page)).await.unwrap();
    browser.submit("form[action$='/delete'] button").await.unwrap();
    assert_eq!(browser.path().await.unwrap(), "/webhooks");
    let removed = browser.main_text().await.unwrap();
    assert!(removed.contains("removed") && removed.contains("No endpoints yet."), "{removed}");

    browser.close().await.unwrap();
    server_handle.stop(false).await;
    convene.stop().await.expect("convene stops cleanly");
}
