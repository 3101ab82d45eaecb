//! The administration console in a real headless browser: Debian's
//! chromium driven through chromedriver (WebDriver), against the real
//! `coffer serve`. Every page visited is saved as a screenshot under
//! `artifacts/console/` at the workspace root.

mod common;
mod service_harness;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::random_file;
use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::StatusCode;
use serde_json::json;
use service_harness::{scratch, Server, ADMIN_PASSWORD};

/// chromedriver on a port of its own; killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Driver {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is missing: run scripts/install-test-servers.sh");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn browser(driver: &Driver, profile: &std::path::Path) -> Client {
    // Another test thread may have installed it already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1366,900", format!("--user-data-dir={}", profile.display())]
        }),
    );
    ClientBuilder::rustls()
        .unwrap()
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .unwrap()
}

fn artifacts() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../artifacts/console");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    std::fs::write(artifacts().join(format!("{name}.png")), png).unwrap();
}

/// Waits until the element's text contains `needle`.
async fn wait_text(c: &Client, css: &str, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(el) = c.find(Locator::Css(css)).await {
            if let Ok(text) = el.text().await {
                if text.contains(needle) {
                    return text;
                }
                if Instant::now() > deadline {
                    panic!("{css} never showed {needle:?}; it shows {text:?}");
                }
            }
        }
        assert!(Instant::now() < deadline, "{css} never appeared");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn log_in_and_see_the_dashboard() {
    let dir = scratch();
    let server = Server::start(&dir.path().join("data"));
    let api = server.admin();
    api.create_vault("main", &dir.path().join("vault"));
    let src = dir.path().join("src");
    random_file(&src.join("a.bin"), 20_000, 2);
    api.create_item("docs", "main", &src, 0);
    let job = api.post("/items/docs/backup", json!({}), StatusCode::ACCEPTED);
    api.wait_job(job["id"].as_i64().unwrap());
    // A failing item, so that an alert with remediation is open.
    api.create_item("gone", "main", &dir.path().join("missing"), 0);
    let job = api.post("/items/gone/backup", json!({}), StatusCode::ACCEPTED);
    api.wait_job(job["id"].as_i64().unwrap());
    let root = server.base.trim_end_matches("/api/v1").to_string();
    let driver = Driver::start();
    // The API calls above block; the browser is driven asynchronously.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(dashboard_in_browser(
            &driver,
            &dir.path().join("profile"),
            &root,
        ));
}

async fn dashboard_in_browser(driver: &Driver, profile: &std::path::Path, root: &str) {
    let c = browser(driver, profile).await;
    c.goto(&format!("{root}/")).await.unwrap();
    let name = c
        .wait()
        .for_element(Locator::Id("login-name"))
        .await
        .unwrap();
    screenshot(&c, "login").await;

    // A wrong password is announced in the alert region, with the API's words.
    name.send_keys("admin").await.unwrap();
    let password = c.find(Locator::Id("login-password")).await.unwrap();
    password.send_keys("not the password").await.unwrap();
    c.find(Locator::Css("form.login button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let said = wait_text(&c, "#status", "password").await;
    screenshot(&c, "login-refused").await;
    assert!(!said.is_empty());

    // The right one, submitted with the keyboard.
    let password = c.find(Locator::Id("login-password")).await.unwrap();
    password
        .send_keys(&format!("{ADMIN_PASSWORD}\u{E007}"))
        .await
        .unwrap();
    wait_text(&c, "main h1", "Dashboard").await;
    let page = wait_text(&c, "main", "docs").await;
    screenshot(&c, "dashboard").await;
    for expected in ["main", "Succeeded", "gone", "Failed", "Logged in as"] {
        let text = if expected == "Logged in as" {
            c.find(Locator::Id("who"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        } else {
            page.clone()
        };
        assert!(text.contains(expected), "{expected:?} missing from {text}");
    }
    // The open alert shows its remediation steps.
    let alerts = c
        .find(Locator::Css("section[aria-labelledby=alerts-title]"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(alerts.contains("gone"), "{alerts}");
    let steps = c
        .find_all(Locator::Css("section[aria-labelledby=alerts-title] ol li"))
        .await
        .unwrap();
    assert!(!steps.is_empty(), "no remediation steps shown");

    // Log out: back to the login form.
    c.find(Locator::Id("logout"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .for_element(Locator::Id("login-name"))
        .await
        .unwrap();
    c.close().await.unwrap();
}
