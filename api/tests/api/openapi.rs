//! `/v1/openapi.json`: generated from the handlers, compared with the committed snapshot (so every change to
//! the public API shows in review), valid OpenAPI 3.1 by an independent validator, and matching the routes
//! actually served.

use std::path::PathBuf;

use serde_json::Value;

use crate::helpers::spawn_app;

fn snapshot_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/api/openapi.snapshot.json")
}

#[tokio::test]
async fn the_document_matches_the_snapshot_validates_and_describes_served_routes() {
    let app = spawn_app().await;
    let response = app.get("/v1/openapi.json").await;
    assert_eq!(response.status(), 200, "served without a key");
    let document: Value = response.json().await.unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1."), "{}", document["openapi"]);
    let pretty = serde_json::to_string_pretty(&document).unwrap() + "\n";

    let snapshot = snapshot_path();
    if std::env::var_os("CONVENE_TEST_ACCEPT_SNAPSHOT").is_some() {
        std::fs::write(&snapshot, &pretty).unwrap();
    }
    let committed = std::fs::read_to_string(&snapshot).unwrap_or_default();
    if committed != pretty {
        let fresh = snapshot.with_extension("json.new");
        std::fs::write(&fresh, &pretty).unwrap();
        panic!(
            "the OpenAPI document changed; review {} and accept it with CONVENE_TEST_ACCEPT_SNAPSHOT=1",
            fresh.display()
        );
    }

    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &pretty).unwrap();
    let validated = std::process::Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(file.path())
        .output()
        .expect("python3 runs (cargo xtask test installs openapi-spec-validator)");
    assert!(
        validated.status.success(),
        "openapi-spec-validator refuses the document:\n{}{}",
        String::from_utf8_lossy(&validated.stdout),
        String::from_utf8_lossy(&validated.stderr)
    );

    // Every documented operation is routed: without a key it answers 401 (or 404 for an unknown tenant's
    // JWKS), never the fallback's 404 for an unknown path.
    let paths = document["paths"].as_object().unwrap();
    assert!(paths.len() >= 10, "{:?}", paths.keys());
    for (path, operations) in paths {
        let concrete = path.replace("{id}", "00000000-0000-7000-8000-000000000000").replace("{name}", "some-room");
        for method in operations.as_object().unwrap().keys() {
            let request =
                app.client.request(method.to_uppercase().parse().unwrap(), format!("{}{concrete}", app.address));
            let response = request.header("content-type", "application/json").body("{}").send().await.unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            let expected = if path.contains("jwks") { ("not_found", 404) } else { ("unauthorized", 401) };
            assert_eq!((body["error"].as_str(), status), (Some(expected.0), expected.1), "{method} {path}");
        }
    }
    app.stop().await;
}
