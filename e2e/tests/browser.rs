//! The site in a real browser: both hosts render and hydrate, served by the real binary.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use convene_e2e::{Convene, rendered_dom};

#[tokio::test]
async fn both_hosts_hydrate_in_chromium() {
    let convene = Convene::up().await.expect("convene up starts");
    let port = convene.port().to_owned();

    let landing = rendered_dom(&format!("http://localhost:{port}/")).await.unwrap();
    assert!(landing.contains(r#"data-surface="site""#), "{landing}");
    assert!(landing.contains(r#"data-hydrated="true""#), "the landing page hydrates: {landing}");
    assert!(landing.contains("Video meetings your company runs"));

    // Chromium resolves *.localhost to loopback itself, so host-based routing works without DNS.
    let link = rendered_dom(&format!("http://meet.localhost:{port}/weekly-sync?jwt=broken")).await.unwrap();
    assert!(link.contains(r#"data-surface="meet""#), "{link}");
    assert!(link.contains(r#"data-hydrated="true""#), "the meet page hydrates: {link}");
    assert!(link.contains(r#"data-problem="unreadable_token""#), "{link}");

    convene.stop().await.expect("convene stops cleanly");
}
