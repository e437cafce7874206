//! `spawn_app()`: a running `convene` role on ports chosen by the OS, with a database of its own.

use std::{collections::BTreeMap, time::Duration};

use convene_api::{
    roles::{self, Serve, Started},
    settings::Settings,
};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
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
    pub started: Option<Started>,
    pub shutdown: CancellationToken,
    pub client: reqwest::Client,
    pub database_url: String,
    pub data_dir: tempfile::TempDir,
    mail_tag: String,
    _database: Option<TestDatabase>,
}

impl TestApp {
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(format!("{}{path}", self.address)).send().await.expect("request sent")
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

    /// The newest mail to `address` whose subject contains `subject`, waiting for it to arrive (up to 10 s):
    /// from the SMTP sink's maildir under `cargo xtask test`, otherwise from the app's mail folder.
    pub async fn mail_to(&self, address: &str, subject: &str) -> Mail {
        let folder = match std::env::var("CONVENE_TEST_MAILDIR") {
            Ok(maildir) => std::path::PathBuf::from(maildir).join("new"),
            Err(_) => self.data_dir.path().join("mail"),
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let mut found: Vec<Mail> = std::fs::read_dir(&folder)
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|entry| std::fs::read(entry.path()).ok())
                .filter_map(|raw| Mail::parse(&raw))
                .filter(|mail| mail.to.contains(address) && mail.from.contains(&self.mail_tag))
                .filter(|mail| mail.subject.contains(subject))
                .collect();
            found.sort_by_key(|mail| mail.date);
            if let Some(mail) = found.pop() {
                return mail;
            }
            assert!(std::time::Instant::now() < deadline, "no mail to {address} in {}", folder.display());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A connection of the test's own to the app's database.
    pub async fn db(&self) -> DatabaseConnection {
        Database::connect(&self.database_url).await.expect("test connects to the app database")
    }

    /// Stops the app the way SIGTERM does and waits for it to finish.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(started) = self.started.take() {
            tokio::time::timeout(Duration::from_secs(30), started.wait())
                .await
                .expect("the app stops in time")
                .expect("the app stops cleanly");
        }
    }
}

/// A received mail, parsed.
pub struct Mail {
    pub from: String,
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub date: i64,
}

impl Mail {
    fn parse(raw: &[u8]) -> Option<Self> {
        use mailparse::MailHeaderMap;
        let parsed = mailparse::parse_mail(raw).ok()?;
        let header = |name: &str| parsed.headers.get_first_value(name).unwrap_or_default();
        let part = |mime: &str| {
            parsed.subparts.iter().find(|part| part.ctype.mimetype == mime).and_then(|part| part.get_body().ok())
        };
        Some(Self {
            from: header("From"),
            to: header("To"),
            subject: header("Subject"),
            text: part("text/plain")?,
            html: part("text/html")?,
            date: mailparse::dateparse(&header("Date")).unwrap_or_default(),
        })
    }

    /// The first link in the text part that starts with `prefix`.
    pub fn link(&self, prefix: &str) -> String {
        let start = self.text.find(prefix).unwrap_or_else(|| panic!("no {prefix} link in:\n{}", self.text));
        self.text[start..].split_whitespace().next().unwrap_or_default().to_owned()
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
pub fn settings(data_dir: &std::path::Path, database_url: Option<&str>, mail_tag: &str) -> Settings {
    let mut env = BTreeMap::from([
        // A sender unique to this app tells its mail apart in the SMTP sink that all tests share.
        ("CONVENE_MAIL_FROM".to_owned(), format!("Convene <{mail_tag}@convene.test>")),
        ("CONVENE_HTTP_ADDR".to_owned(), "127.0.0.1:0".to_owned()),
        ("CONVENE_MEDIA_UDP_ADDR".to_owned(), "127.0.0.1:0".to_owned()),
        ("CONVENE_DATA_DIR".to_owned(), data_dir.display().to_string()),
        ("CONVENE_SHUTDOWN_TIMEOUT_SECS".to_owned(), "10".to_owned()),
    ]);
    if let Some(url) = database_url {
        env.insert("CONVENE_DATABASE_URL".to_owned(), url.to_owned());
    }
    // `cargo xtask test` runs a real SMTP sink; without it, mail goes to files in the data dir.
    if let Ok(smtp) = std::env::var("CONVENE_TEST_SMTP_URL") {
        env.insert("CONVENE_SMTP_URL".to_owned(), smtp);
    }
    Settings::load(&env).expect("test settings load").settings
}

/// `convene up` on Postgres.
pub async fn spawn_app() -> TestApp {
    spawn(Serve::All, Store::Postgres).await
}

/// Any role on any store.
pub async fn spawn(role: Serve, store: Store) -> TestApp {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = convene_api::telemetry::init("info", convene_api::settings::LogFormat::Text);
    }
    let data_dir = tempfile::tempdir().expect("temp dir");
    let database = match store {
        Store::Postgres => Some(TestDatabase::create().await),
        Store::Sqlite => None,
    };
    let mail_tag = format!("app-{}", uuid::Uuid::new_v4().simple());
    let settings = settings(data_dir.path(), database.as_ref().map(|database| database.url.as_str()), &mail_tag);
    let shutdown = CancellationToken::new();
    let started = roles::start(role, &settings, shutdown.clone()).await.expect("the app starts");
    TestApp {
        address: format!("http://{}", started.http_addr),
        started: Some(started),
        shutdown,
        client: browser_like_client(),
        database_url: settings.database_url.expose().to_owned(),
        data_dir,
        mail_tag,
        _database: database,
    }
}
