//! `spawn_app()`: a running `convene` role on ports chosen by the OS, with a database of its own.

use std::{collections::BTreeMap, time::Duration};

use convene_api::{
    platform::envelope::SecretKey,
    platform::settings::Settings,
    roles::{self, Serve, Started},
};
use convene_e2e::mail::{Mail, Mailbox};
use reqwest::Method;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use secrecy::ExposeSecret;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// Where tests create their databases; `cargo xtask test` sets it, and the default suits a local server.
fn server_url() -> String {
    std::env::var("CONVENE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres:postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A Postgres database that exists for one test and is dropped after it.
pub struct TestDatabase {
    pub url: String,
    name: String,
}

impl TestDatabase {
    pub async fn create() -> Self {
        let name = format!("convene_test_{}", uuid::Uuid::new_v4().simple());
        let admin = Database::connect(server_url()).await.expect("the test Postgres server answers");
        admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.expect("create test database");
        let mut url = url::Url::parse(&server_url()).expect("CONVENE_TEST_DATABASE_URL is a URL");
        url.set_path(&name);
        Self { url: url.to_string(), name }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop runs outside async context: a throwaway runtime on its own thread does the cleanup.
        let name = self.name.clone();
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async {
                if let Ok(admin) = Database::connect(server_url()).await {
                    let _ = admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// Which database a test app runs on.
pub enum Store {
    Postgres,
    Sqlite,
}

pub struct TestApp {
    pub address: String,
    /// The internal listener (metrics).
    pub metrics_address: String,
    pub started: Option<Started>,
    pub shutdown: CancellationToken,
    pub client: reqwest::Client,
    pub database_url: String,
    pub data_dir: tempfile::TempDir,
    mailbox: Mailbox,
    settings: Settings,
    _database: Option<TestDatabase>,
}

impl TestApp {
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(format!("{}{path}", self.address)).send().await.expect("request sent")
    }

    /// The metrics text from the internal listener.
    pub async fn metrics(&self) -> String {
        let url = format!("{}/metrics", self.metrics_address);
        let response = self.client.get(url).send().await.expect("request sent");
        assert_eq!(response.status(), 200);
        response.text().await.expect("metrics text")
    }

    /// A GET as a browser on another host (`meet.localhost`) would send it.
    pub async fn get_on_host(&self, host: &str, path: &str) -> reqwest::Response {
        self.client.get(format!("{}{path}", self.address)).header("host", host).send().await.expect("request sent")
    }

    /// A form post as the browser sends it from our own pages, with an optional cookie header.
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)], cookie: Option<&str>) -> reqwest::Response {
        let body: String = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
        let mut request = self
            .client
            .post(format!("{}{path}", self.address))
            .header("origin", "http://localhost:3000")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        request.send().await.expect("request sent")
    }

    /// A GET with a cookie header.
    pub async fn get_with_cookie(&self, path: &str, cookie: &str) -> reqwest::Response {
        self.client.get(format!("{}{path}", self.address)).header("cookie", cookie).send().await.expect("sent")
    }

    /// The newest mail this app sent to `address` about `subject`, waiting for it to arrive.
    pub async fn mail_to(&self, address: &str, subject: &str) -> Mail {
        self.mailbox.wait_for(address, subject).await
    }

    /// The SIP gateway's address.
    pub fn sip_addr(&self) -> std::net::SocketAddr {
        self.started.as_ref().and_then(|started| started.sip_addr).expect("the app runs the SIP gateway")
    }

    /// A connection of the test's own to the app's database.
    pub async fn db(&self) -> DatabaseConnection {
        Database::connect(&self.database_url).await.expect("test connects to the app database")
    }

    /// Stops the app the way SIGTERM does and waits for it to finish.
    pub async fn stop(mut self) {
        self.halt().await;
    }

    async fn halt(&mut self) {
        self.shutdown.cancel();
        if let Some(started) = self.started.take() {
            tokio::time::timeout(Duration::from_secs(30), started.wait())
                .await
                .expect("the app stops in time")
                .expect("the app stops cleanly");
        }
    }

    /// Stops the app and starts it again on the same database and data directory, as after a deploy.
    pub async fn restart(&mut self) {
        self.restart_with(|_| {}).await.expect("the app starts again");
    }

    /// Stops the app and starts it again with settings changed by `change` (kept for later restarts when
    /// it starts), as after a deploy with new configuration.
    pub async fn restart_with(&mut self, change: impl FnOnce(&mut Settings)) -> anyhow::Result<()> {
        self.halt().await;
        self.shutdown = CancellationToken::new();
        let mut settings = self.settings.clone();
        change(&mut settings);
        // The same port, so links and cookies stay valid.
        settings.http_addr = self.address.trim_start_matches("http://").parse().expect("an address");
        let started = roles::start(Serve::All, &settings, self.shutdown.clone()).await?;
        self.metrics_address = format!("http://{}", started.metrics_addr);
        self.started = Some(started);
        self.settings = settings;
        Ok(())
    }

    /// Another control plane (`convene api`) on this app's database and settings, with an address and a data
    /// directory of its own, as a second replica behind a load balancer.
    pub async fn replica(&self) -> TestApp {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let mut settings = self.settings.clone();
        settings.http_addr = "127.0.0.1:0".parse().expect("an address");
        settings.metrics_addr = "127.0.0.1:0".parse().expect("an address");
        settings.data_dir = data_dir.path().to_owned();
        let shutdown = CancellationToken::new();
        let started = roles::start(Serve::Api, &settings, shutdown.clone()).await.expect("the replica starts");
        TestApp {
            address: format!("http://{}", started.http_addr),
            metrics_address: format!("http://{}", started.metrics_addr),
            started: Some(started),
            shutdown,
            client: browser_like_client(),
            database_url: self.database_url.clone(),
            data_dir,
            mailbox: self.mailbox.clone(),
            settings,
            _database: None,
        }
    }

    /// The settings the app runs with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }
}

/// The value of cookie `name` set by a response, if any (an empty value means "deleted").
pub fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(|header| header.split(';').next()?.trim().strip_prefix(&format!("{name}=")).map(str::to_owned))
}

/// A page's markup as a browser shows it: without the empty comments (`<!>`) Leptos leaves after dynamic
/// text as anchors for hydration, so tests read text as people do.
pub fn shown(html: &str) -> String {
    html.replace("<!>", "")
}

/// A client that, like a browser, accepts HTML and does not follow redirects (tests inspect them).
fn browser_like_client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("accept", reqwest::header::HeaderValue::from_static("text/html,application/xhtml+xml,*/*"));
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(headers)
        .build()
        .expect("client")
}

/// Settings for a test: ports 0, the given data dir and database, every other value at its default.
pub fn settings(
    data_dir: &std::path::Path,
    database_url: Option<&str>,
    mailbox: &Mailbox,
    smtp: Option<String>,
    extra: &[(&str, String)],
) -> Settings {
    let mut env = BTreeMap::from([
        // A sender unique to this app tells its mail apart in the SMTP sink that all tests share.
        ("CONVENE_MAIL_FROM".to_owned(), mailbox.sender()),
        ("CONVENE_HTTP_ADDR".to_owned(), "127.0.0.1:0".to_owned()),
        ("CONVENE_METRICS_ADDR".to_owned(), "127.0.0.1:0".to_owned()),
        ("CONVENE_MEDIA_UDP_ADDR".to_owned(), "127.0.0.1:0".to_owned()),
        ("CONVENE_SIP_ADDR".to_owned(), "127.0.0.1:0".to_owned()),
        ("CONVENE_DATA_DIR".to_owned(), data_dir.display().to_string()),
        ("CONVENE_SHUTDOWN_TIMEOUT_SECS".to_owned(), "10".to_owned()),
    ]);
    if let Some(url) = database_url {
        env.insert("CONVENE_DATABASE_URL".to_owned(), url.to_owned());
        // Postgres deployments must bring the key that seals signing keys; each app has its own.
        let key = SecretKey::generate().expect("randomness");
        env.insert("CONVENE_SECRET_KEY".to_owned(), key.to_base64().expose_secret().to_owned());
    }
    // `cargo xtask test` runs a real SMTP sink; without it, mail goes to files in the data dir.
    if let Some(smtp) = smtp {
        env.insert("CONVENE_SMTP_URL".to_owned(), smtp);
    }
    env.extend(extra.iter().map(|(name, value)| ((*name).to_owned(), value.clone())));
    Settings::load(&env).expect("test settings load").settings
}

/// `convene up` on Postgres.
pub async fn spawn_app() -> TestApp {
    spawn(Serve::All, Store::Postgres).await
}

/// Any role on any store.
pub async fn spawn(role: Serve, store: Store) -> TestApp {
    spawn_with(role, store, &[]).await
}

/// `convene up` on Postgres with `extra` settings (Stripe, plans).
pub async fn spawn_configured(extra: &[(&str, String)]) -> TestApp {
    spawn_with(Serve::All, Store::Postgres, extra).await
}

/// Any role on Postgres, with `extra` settings over the test defaults.
pub async fn spawn_role(role: Serve, extra: &[(&str, String)]) -> TestApp {
    spawn_with(role, Store::Postgres, extra).await
}

/// Any role on any store, with `extra` settings over the test defaults.
pub async fn spawn_with(role: Serve, store: Store, extra: &[(&str, String)]) -> TestApp {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = convene_api::platform::telemetry::init("info", convene_api::platform::settings::LogFormat::Text);
    }
    let data_dir = tempfile::tempdir().expect("temp dir");
    let database = match store {
        Store::Postgres => Some(TestDatabase::create().await),
        Store::Sqlite => None,
    };
    let (mailbox, smtp) = Mailbox::for_app(data_dir.path().join("mail"));
    let database_url = database.as_ref().map(|database| database.url.as_str());
    let settings = settings(data_dir.path(), database_url, &mailbox, smtp, extra);
    let shutdown = CancellationToken::new();
    let started = roles::start(role, &settings, shutdown.clone()).await.expect("the app starts");
    TestApp {
        address: format!("http://{}", started.http_addr),
        metrics_address: format!("http://{}", started.metrics_addr),
        started: Some(started),
        shutdown,
        client: browser_like_client(),
        database_url: settings.database_url.expose().to_owned(),
        data_dir,
        mailbox,
        settings,
        _database: database,
    }
}

/// Next year: scheduled meetings in tests are always ahead.
pub fn next_year() -> i32 {
    use chrono::Datelike;
    chrono::Utc::now().year() + 1
}

/// The password every test account uses.
pub const PASSWORD: &str = "correct horse battery";

/// Signs up a new organisation with its owner ("Owner"), who then signs in with the password before
/// confirming the address; returns the owner's session cookie.
pub async fn sign_up(app: &TestApp, organisation: &str, email: &str) -> String {
    sign_up_as(app, organisation, "Owner", email).await
}

/// [`sign_up`] with the owner's name.
pub async fn sign_up_as(app: &TestApp, organisation: &str, name: &str, email: &str) -> String {
    let fields = [("organisation", organisation), ("name", name), ("email", email), ("password", PASSWORD)];
    let response = app.post_form("/auth/signup", &fields, None).await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/signup", "the answer says to check the inbox");
    assert!(set_cookie(&response, "convene_session").is_none(), "no session before a mail or a password proves it");
    sign_in(app, email).await
}

/// Signs in with [`PASSWORD`]; returns the session cookie.
pub async fn sign_in(app: &TestApp, email: &str) -> String {
    let response = app.post_form("/auth/login", &[("email", email), ("password", PASSWORD)], None).await;
    assert_eq!(response.headers()["location"], "/dashboard", "{email} signs in");
    format!("convene_session={}", set_cookie(&response, "convene_session").expect("session"))
}

/// Posts, then reads the page the redirect leads to with the flash.
pub async fn post_and_follow(app: &TestApp, path: &str, fields: &[(&str, &str)], cookie: &str) -> String {
    let response = app.post_form(path, fields, Some(cookie)).await;
    assert_eq!(response.status(), 303, "{path}: {:?}", response.text().await);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let flash =
        set_cookie(&response, "convene_flash").map(|value| format!("; convene_flash={value}")).unwrap_or_default();
    app.get_with_cookie(&location, &format!("{cookie}{flash}")).await.text().await.unwrap()
}

/// Confirms `email`'s address through the link in its verification mail.
pub async fn verify_email(app: &TestApp, email: &str) {
    let mail = app.mail_to(email, "Confirm your email address for Convene").await;
    let link = mail.link("http://localhost:3000/verify?token=");
    let token = link.split("token=").nth(1).unwrap().to_owned();
    let response = app.post_form("/auth/verify", &[("token", &token)], None).await;
    assert_eq!(response.headers()["location"], "/dashboard", "the address is confirmed");
}

/// Invites `email` as `role` and accepts as a new person; returns the newcomer's session.
pub async fn invite_and_accept(app: &TestApp, owner: &str, email: &str, role: &str) -> String {
    let page = post_and_follow(app, "/team/invite", &[("email", email), ("role", role)], owner).await;
    assert!(page.contains(&format!("Invitation sent to {email}.")), "{page}");
    let mail = app.mail_to(email, "invited you to").await;
    assert!(mail.subject.contains("invited you to"), "{}", mail.subject);
    let link = mail.link("http://localhost:3000/invitations/accept?token=");
    let token = link.split("token=").nth(1).unwrap().to_owned();
    let accept_page = app.get(&format!("/invitations/accept?token={token}")).await.text().await.unwrap();
    assert!(accept_page.contains(&format!("as {role} with the address {email}")), "{accept_page}");
    let response = app
        .post_form("/invitations/accept", &[("token", &token), ("name", "New Person"), ("password", PASSWORD)], None)
        .await;
    assert_eq!(response.headers()["location"], "/dashboard");
    format!("convene_session={}", set_cookie(&response, "convene_session").expect("signed in on accepting"))
}

/// A tenant ("Acme") with a verified owner at `email`; answers its first API key.
pub async fn tenant_key(app: &TestApp, email: &str) -> String {
    let created = convene_api::people::tenants::create_tenant(
        &app.db().await,
        convene_api::people::tenants::NewTenant {
            name: "Acme".to_owned(),
            owner_email: email.to_owned(),
            owner_password: secrecy::SecretString::from("correct horse battery".to_owned()),
            owner_name: None,
            email_verified: true,
            first_api_key: Some("backend".to_owned()),
        },
    )
    .await
    .unwrap();
    created.api_key.unwrap().api_key
}

/// A `/v1` call with a bearer key; answers the status and the JSON body (null when there is none).
pub async fn call(app: &TestApp, method: Method, path: &str, key: &str, body: Option<Value>) -> (u16, Value) {
    exchange(app.client.request(method, format!("{}{path}", app.address)).bearer_auth(key), body).await
}

/// Sends `request` with `body` as JSON; answers the status and the JSON body (null when there is none).
pub async fn exchange(mut request: reqwest::RequestBuilder, body: Option<Value>) -> (u16, Value) {
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Waits until `check` answers something, polling every 100 ms, or fails saying `what` after `patience`.
pub async fn eventually<T>(what: &str, patience: Duration, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + patience;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
