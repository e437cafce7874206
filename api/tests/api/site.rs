//! The Leptos site through the real server: host-based routing, the meet host's link explanations, status
//! codes, assets. (Hydration in a real browser is covered in `e2e`.)

use convene_api::roles::Serve;
use data_encoding::BASE64URL_NOPAD;

use crate::helpers::{Store, TestApp, shown, spawn};

async fn page(app: &TestApp, host: &str, path: &str) -> (u16, String) {
    let response = app.get_on_host(host, path).await;
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

fn token(claims: &str) -> String {
    let encode = |text: &str| BASE64URL_NOPAD.encode(text.as_bytes());
    format!("{}.{}.c2ln", encode(r#"{"alg":"RS256","typ":"JWT"}"#), encode(claims))
}

#[tokio::test]
async fn the_main_host_serves_the_landing_page_and_the_meet_host_its_own() {
    let app = spawn(Serve::All, Store::Sqlite).await;

    let (status, landing) = page(&app, "localhost:3000", "/").await;
    assert_eq!(status, 200);
    assert!(landing.contains(r#"data-surface="site""#), "{landing}");
    assert!(landing.contains("<title>Convene · video meetings for your company</title>"));
    assert!(landing.contains("/pkg/convene.js"), "the page loads the site's hydration bundle");
    // What has not landed is not promised.
    assert!(
        landing.contains("Coming: dial in by phone") && landing.contains("Recording on the media node"),
        "{landing}"
    );
    assert!(!landing.contains("Record what matters") && !landing.contains("the phone gateway."), "{landing}");

    let (status, meet_home) = page(&app, "meet.localhost:3000", "/").await;
    assert_eq!(status, 200);
    assert!(meet_home.contains(r#"data-surface="meet""#));
    assert!(meet_home.contains("Join a meeting"));
    assert!(meet_home.contains(r#"<meta name="robots" content="noindex">"#));
    assert!(meet_home.contains("/pkg/convene_meet.js") && !meet_home.contains("/pkg/convene.js"), "its own bundle");
    app.stop().await;
}

#[tokio::test]
async fn a_meeting_link_without_a_valid_token_explains_itself() {
    let app = spawn(Serve::All, Store::Sqlite).await;
    let host = "meet.localhost";
    let cases = [
        ("/weekly-sync".to_owned(), "missing_token", "This link needs an invitation"),
        ("/weekly-sync?jwt=".to_owned(), "missing_token", "This link needs an invitation"),
        ("/weekly-sync?jwt=not-a-token".to_owned(), "unreadable_token", "This invitation link is damaged"),
        // Unsigned claims prove nothing, whatever room they name: no key of any tenant vouches for them.
        (format!("/weekly-sync?jwt={}", token(r#"{"room":"board"}"#)), "unknown_issuer", "could not be verified"),
        (format!("/weekly-sync?jwt={}", token(r#"{"room":"weekly-sync"}"#)), "unknown_issuer", "could not be verified"),
    ];
    for (path, code, headline) in cases {
        let (status, html) = page(&app, host, &path).await;
        assert_eq!(status, 200, "{path}");
        assert!(html.contains(&format!(r#"data-problem="{code}""#)), "{path}: {html}");
        assert!(html.contains(headline), "{path}: {html}");
        assert!(shown(&html).contains("<code>weekly-sync</code>"), "{path} names the meeting");
        let explanation = html.split(r#"data-problem=""#).nth(1).unwrap_or_default();
        let explanation = explanation.split("</section>").next().unwrap_or_default();
        assert!(!explanation.contains('\\') && !explanation.contains(".."), "{path}: a clean sentence: {html}");
    }
    app.stop().await;
}

#[tokio::test]
async fn bad_paths_get_a_helpful_404_page() {
    let app = spawn(Serve::All, Store::Sqlite).await;
    for (host, path, expected) in [
        ("meet.localhost", "/Not_A_Room", "This is not a meeting address"),
        ("meet.localhost", "/a", "This is not a meeting address"),
        ("meet.localhost", "/a/b/c", "Page not found"),
        ("localhost", "/no-such-page", "Page not found"),
        ("localhost", "/pkg/missing.js", "Page not found"),
    ] {
        let (status, html) = page(&app, host, path).await;
        assert_eq!(status, 404, "{host}{path}");
        assert!(html.contains(expected), "{host}{path}: {html}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_room_path_on_the_main_host_is_not_a_meeting() {
    let app = spawn(Serve::All, Store::Sqlite).await;
    let (status, html) = page(&app, "localhost", "/weekly-sync").await;
    assert_eq!(status, 404, "meetings live on the meet host only");
    assert!(html.contains(r#"data-surface="site""#));
    app.stop().await;
}

#[tokio::test]
async fn the_stylesheet_and_icon_are_served_with_their_types() {
    let app = spawn(Serve::All, Store::Sqlite).await;
    for (path, content_type) in [("/assets/convene.css", "text/css"), ("/assets/favicon.svg", "image/svg+xml")] {
        let response = app.get_on_host("meet.localhost", path).await;
        assert_eq!(response.status(), 200, "{path}");
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with(content_type), "{path}");
        assert!(!response.text().await.unwrap().is_empty());
    }
    let compressed = app
        .client
        .get(format!("{}/assets/convene.css", app.address))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(compressed.headers()["content-encoding"], "gzip", "text assets are compressed when asked");
    app.stop().await;
}
