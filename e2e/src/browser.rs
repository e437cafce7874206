//! A real browser driven over WebDriver: Debian's ChromeDriver and headless Chromium with fake camera and
//! microphone, through fantoccini. Screenshots go to `<target>/e2e-artifacts/` for people to look at.

use std::{
    net::TcpListener,
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use tokio::process::{Child, Command};

/// The time zone every test browser runs in.
pub const BROWSER_TIME_ZONE: &str = "America/New_York";

/// A browser session; ChromeDriver and the Chromium it started stop when this is dropped.
pub struct Browser {
    /// The WebDriver client.
    pub client: Client,
    driver: Child,
    artifacts: PathBuf,
}

impl Browser {
    /// Starts ChromeDriver on a free loopback port and opens a session.
    pub async fn start() -> anyhow::Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            // Browsers in tests live away from UTC, so a page that ignores the visitor's zone cannot pass.
            .env("TZ", BROWSER_TIME_ZONE)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // A process group of its own, which the Chromium it starts joins: see `Drop`.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .context("starting chromedriver (Debian package chromium-driver)")?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            if Instant::now() > deadline {
                bail!("chromedriver did not listen on {port}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("goog:chromeOptions".to_owned(), json!({ "args": crate::CHROMIUM_ARGS }));
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .context("opening a WebDriver session")?;
        Ok(Self { client, driver, artifacts: artifacts_dir()? })
    }

    /// Sizes the window so the page's viewport is `width` × `height` CSS pixels (the window's own frame
    /// takes some of its size, more or less with each Chromium).
    pub async fn set_viewport(&self, width: u32, height: u32) -> anyhow::Result<()> {
        self.client.set_window_size(width, height).await?;
        let inner = self.client.execute("return [innerWidth, innerHeight];", vec![]).await?;
        let inner: (u32, u32) = serde_json::from_value(inner)?;
        let frame = (width.saturating_sub(inner.0), height.saturating_sub(inner.1));
        if frame != (0, 0) {
            self.client.set_window_size(width + frame.0, height + frame.1).await?;
        }
        Ok(())
    }

    /// Opens a URL.
    pub async fn open(&self, url: &str) -> anyhow::Result<()> {
        Ok(self.client.goto(url).await?)
    }

    /// Types into the field named `name`.
    pub async fn fill(&self, name: &str, value: &str) -> anyhow::Result<()> {
        let field = self.client.find(Locator::Css(&format!("[name='{name}']"))).await?;
        field.clear().await?;
        // WebDriver's clear fires `change`, not `input`: a page keeping the field's text in a signal would still
        // hold the old text and could write it back before the keys arrive (a CI failure typed the address after
        // the old one). A person's delete key fires `input`.
        let emptied = "arguments[0].dispatchEvent(new Event('input', { bubbles: true }));";
        self.client.execute(emptied, vec![serde_json::to_value(&field)?]).await?;
        Ok(field.send_keys(value).await?)
    }

    /// Sets the value of the field named `name` directly: date and time inputs take typed keys in the
    /// browser's locale order, which a test should not depend on.
    pub async fn set_value(&self, name: &str, value: &str) -> anyhow::Result<()> {
        let script = "document.querySelector(`[name='${arguments[0]}']`).value = arguments[1];";
        self.client.execute(script, vec![json!(name), json!(value)]).await?;
        Ok(())
    }

    /// Picks `value` in the select named `name`.
    pub async fn select(&self, name: &str, value: &str) -> anyhow::Result<()> {
        let field = self.client.find(Locator::Css(&format!("select[name='{name}']"))).await?;
        Ok(field.select_by_value(value).await?)
    }

    /// Clicks a form's submit button (the first match of a CSS selector) and waits until the page the server
    /// answers with has loaded: WebDriver's click returns before the navigation ends. (Links are followed
    /// with [`Browser::open`]: the hydrated router handles their clicks without loading a new page.)
    pub async fn submit(&self, css: &str) -> anyhow::Result<()> {
        self.client.execute("window.__conveneOldPage = true;", vec![]).await?;
        self.client.find(Locator::Css(css)).await?.click().await?;
        let deadline = Instant::now() + Duration::from_secs(20);
        let loaded = "return window.__conveneOldPage === undefined && document.readyState === 'complete';";
        while self.client.execute(loaded, vec![]).await? != json!(true) {
            if Instant::now() > deadline {
                bail!("submitting with {css} did not load a new page");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// Clicks a control that acts within the page (no navigation), such as a hydrated button. A control
    /// another element covers for a moment (tiles reflowing as a pane closes) is tried again for up to 2 s,
    /// as a person waits for the page to settle; covered for longer, the click fails.
    pub async fn press(&self, css: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            match self.client.find(Locator::Css(css)).await?.click().await {
                Ok(()) => return Ok(()),
                Err(error) if error.to_string().contains("click intercepted") && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Runs `script` (a function body) every quarter second until it returns something other than `null`
    /// or `false`, and returns that; fails naming `what` after `timeout`.
    pub async fn wait_for(&self, what: &str, script: &str, timeout: Duration) -> anyhow::Result<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.client.execute(script, vec![]).await?;
            if !matches!(value, serde_json::Value::Null | serde_json::Value::Bool(false)) {
                return Ok(value);
            }
            if Instant::now() > deadline {
                bail!("waited {timeout:?} for {what}");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The `href` of the first element matching a CSS selector.
    pub async fn href(&self, css: &str) -> anyhow::Result<String> {
        self.client.find(Locator::Css(css)).await?.attr("href").await?.context("no href")
    }

    /// The visible text of the page's `<main>`.
    pub async fn main_text(&self) -> anyhow::Result<String> {
        Ok(self.client.find(Locator::Css("main")).await?.text().await?)
    }

    /// The current path.
    pub async fn path(&self) -> anyhow::Result<String> {
        Ok(self.client.current_url().await?.path().to_owned())
    }

    /// Saves a screenshot as `<name>.png` among the test artefacts.
    pub async fn screenshot(&self, name: &str) -> anyhow::Result<PathBuf> {
        let png = self.client.screenshot().await?;
        let path = self.artifacts.join(format!("{name}.png"));
        std::fs::write(&path, png)?;
        Ok(path)
    }

    /// ChromeDriver's process group, which the Chromium it started belongs to.
    pub fn process_group(&self) -> Option<u32> {
        self.driver.id()
    }

    /// Ends the session.
    pub async fn close(self) -> anyhow::Result<()> {
        Ok(self.client.clone().close().await?)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Chromium outlives a killed ChromeDriver: a test that fails before `close` would leave a browser
        // playing its fake camera through every later test. The whole group goes (it is gone already
        // after `close`, and then this finds nothing to stop).
        if let Some(group) = self.process_group() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{group}")])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// `<target>/e2e-artifacts`, beside the test binaries.
fn artifacts_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let target = exe.ancestors().nth(3).context("test binary outside a target dir")?;
    let dir = target.join("e2e-artifacts");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
