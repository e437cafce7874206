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

    // The bundle every meeting page downloads stays small: what travels is the compressed module.
    let module = reqwest::Client::new()
        .get(format!("http://localhost:{port}/pkg/convene_bg.wasm"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(module.headers().get("content-encoding").and_then(|value| value.to_str().ok()), Some("gzip"));
    let sent = module.bytes().await.unwrap().len();
    println!("the wasm bundle travels as {sent} bytes gzipped");
    // 0.96 MB when this check came (2.16 MB uncompressed, without its name section); a tenth to spare.
    assert!(sent < 1_060_000, "the wasm bundle grew to {sent} bytes gzipped");

    convene.stop().await.expect("convene stops cleanly");
}
