//! The administration console in a real headless browser: Debian's
//! chromium driven through chromedriver (WebDriver), against the real
//! `coffer serve`. Every page visited is saved as a screenshot under
//! `artifacts/console/` at the workspace root.

mod agent_harness;
mod common;
mod service_harness;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{random_file, BIN};
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
    browser_with_downloads(driver, profile, &profile.join("downloads")).await
}

async fn browser_with_downloads(
    driver: &Driver,
    profile: &std::path::Path,
    downloads: &std::path::Path,
) -> Client {
    // Another test thread may have installed it already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1366,900", format!("--user-data-dir={}", profile.display())],
            "prefs": {
                "download.default_directory": downloads.to_str().unwrap(),
                "download.prompt_for_download": false
            }
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

/// Every control on the page has a name a screen reader can announce:
/// a label, or an aria-label on controls inside table rows.
async fn all_labelled(c: &Client, page: &str) {
    let unlabelled = c
        .execute(
            "return [...document.querySelectorAll('input, select, textarea, button')]
               .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                             && !(el.tagName === 'BUTTON' && el.textContent.trim()))
               .map(el => el.id || el.outerHTML.slice(0, 80));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(unlabelled, json!([]), "unlabelled controls on {page}");
}

/// Scrolls an element into view, for the screenshot that follows.
async fn show(c: &Client, css: &str) {
    let el = c.find(Locator::Css(css)).await.unwrap();
    let arg = serde_json::to_value(&el).unwrap();
    c.execute("arguments[0].scrollIntoView({block: 'center'})", vec![arg])
        .await
        .unwrap();
}

async fn screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    std::fs::write(artifacts().join(format!("{name}.png")), png).unwrap();
}

/// Keeps the page as it was when a wait failed, with what the page said.
async fn failed(c: &Client) {
    let when = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    screenshot(c, &format!("failed-{when}")).await;
    if let Ok(status) = c.find(Locator::Id("status")).await {
        eprintln!("the page's alert region: {:?}", status.text().await);
    }
}

/// Waits until the element's text contains `needle`.
async fn wait_text(c: &Client, css: &str, needle: &str) -> String {
    wait_text_for(c, css, needle, 20).await
}

async fn wait_text_for(c: &Client, css: &str, needle: &str, secs: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Ok(el) = c.find(Locator::Css(css)).await {
            if let Ok(text) = el.text().await {
                if text.contains(needle) {
                    return text;
                }
                if Instant::now() > deadline {
                    failed(c).await;
                    panic!("{css} never showed {needle:?}; it shows {text:?}");
                }
            }
        }
        if Instant::now() > deadline {
            failed(c).await;
            panic!("{css} never appeared");
        }
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

// ---- the operator's journeys ------------------------------------------------

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn click(c: &Client, css: &str) {
    let el = c
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"));
    el.click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

async fn fill(c: &Client, id: &str, text: &str) {
    let el = c
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("#{id}: {e}"));
    el.clear().await.unwrap();
    if !text.is_empty() {
        el.send_keys(text).await.unwrap();
    }
}

async fn choose(c: &Client, id: &str, value: &str) {
    c.find(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("#{id}: {e}"))
        .select_by_value(value)
        .await
        .unwrap_or_else(|e| panic!("#{id} has no option {value}: {e}"));
}

/// Fills the login form shown on the page and submits it with Enter.
async fn log_in_as(c: &Client, name: &str, password: &str) {
    wait_text(c, "main h1", "Log in").await;
    fill(c, "login-name", name).await;
    c.find(Locator::Id("login-password"))
        .await
        .unwrap()
        .send_keys(&format!("{password}\u{E007}"))
        .await
        .unwrap();
    wait_text(c, "#who", name).await;
}

async fn open(c: &Client, root: &str, hash: &str, heading: &str) {
    c.goto(&format!("{root}/{hash}")).await.unwrap();
    wait_text(c, "main h1", heading).await;
}

async fn log_in(c: &Client, root: &str) {
    c.goto(&format!("{root}/")).await.unwrap();
    log_in_as(c, "admin", ADMIN_PASSWORD).await;
    wait_text(c, "main h1", "Dashboard").await;
}

/// Waits for the job page to show an ended state and returns it.
async fn job_ends(c: &Client, secs: u64) -> String {
    wait_text(c, "main h1", "Job #").await;
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        // The page redraws the element while it polls: read it afresh.
        let state = match c.find(Locator::Id("job-state")).await {
            Ok(el) => el.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if !state.is_empty() && !["Queued", "Running"].contains(&state.as_str()) {
            return state;
        }
        assert!(Instant::now() < deadline, "the job is still {state}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Whether `key` opens the vault at `location`, asked of the real CLI.
fn key_opens(location: &str, key: &str, env: &[(String, String)]) -> bool {
    let cache = scratch();
    Command::new(BIN)
        .args(["points", "list", "--vault", location])
        .env("COFFER_KEY", key)
        .env("COFFER_CACHE_DIR", cache.path())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .unwrap()
        .status
        .success()
}

/// Runs the real CLI on a vault with its key; asserts success.
fn cli_with_key(key: &str, args: &[&str]) {
    let cache = scratch();
    let out = Command::new(BIN)
        .args(args)
        .env("COFFER_KEY", key)
        .env("COFFER_CACHE_DIR", cache.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "coffer {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Confirms the key dialog and returns the key it showed; checks that it
/// cannot be dismissed without the confirmation and leaves no trace.
async fn take_key_once(c: &Client, shot: &str) -> String {
    let key = c
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Id("generated-key"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(key.len() >= 16, "{key:?}");
    screenshot(c, shot).await;
    let confirm = c.find(Locator::Id("key-confirm")).await.unwrap();
    assert!(
        !confirm.is_enabled().await.unwrap(),
        "Continue before the confirmation"
    );
    // Escape does not close it.
    c.find(Locator::Id("key-stored"))
        .await
        .unwrap()
        .send_keys("\u{E00C}")
        .await
        .unwrap();
    assert!(c
        .find(Locator::Css("dialog#key-dialog[open]"))
        .await
        .is_ok());
    click(c, "#key-stored").await;
    assert!(confirm.is_enabled().await.unwrap());
    confirm.click().await.unwrap();
    // Gone from the page for good.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !c.source().await.unwrap().contains(&key),
        "the key is still in the page"
    );
    key
}

/// Ancestors to click through, from the point's root to `dir`.
fn components(dir: &std::path::Path) -> Vec<String> {
    dir.components()
        .filter_map(|c| match c {
            std::path::Component::Normal(n) => Some(n.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect()
}

#[test]
fn enable_back_up_browse_restore_and_rotate_the_key_in_the_browser() {
    let dir = scratch();
    let server = Server::start(&dir.path().join("data"));
    let src = dir.path().join("src");
    random_file(&src.join("a.bin"), 300_000, 3);
    random_file(&src.join("sub/b.txt"), 5_000, 4);
    let hook = coffer_testservers::HttpReceiver::start(&[]);
    let downloads = dir.path().join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    let root = server.base.trim_end_matches("/api/v1").to_string();
    let driver = Driver::start();
    runtime().block_on(async {
        let c = browser_with_downloads(&driver, &dir.path().join("profile"), &downloads).await;
        log_in(&c, &root).await;
        let vault = dir.path().join("vault");
        let vault_loc = vault.to_str().unwrap().to_string();

        // Enable backup: the location test, then a generated key shown once.
        click(&c, "nav a[href='#/enable']").await;
        wait_text(&c, "main h1", "Enable backup").await;
        all_labelled(&c, "enable backup").await;
        screenshot(&c, "enable-backup").await;
        fill(&c, "enable-vault", "main").await;
        fill(&c, "enable-location", &vault_loc).await;
        click(&c, "#enable-test").await;
        let tested = wait_text(&c, "#enable-test-result", "The location works").await;
        assert!(tested.contains("write"), "{tested}");
        fill(&c, "enable-item", "docs").await;
        fill(&c, "enable-paths", src.to_str().unwrap()).await;
        screenshot(&c, "enable-backup-filled").await;
        click(&c, "#enable-submit").await;
        let key = take_key_once(&c, "enable-backup-key-once").await;
        wait_text(&c, "#notice", "Backup is enabled: docs in vault main").await;
        wait_text(&c, "main h1", "Items and sets").await;
        assert!(
            key_opens(&vault_loc, &key, &[]),
            "the key shown does not open the vault"
        );

        // Back up now, and watch the job succeed.
        screenshot(&c, "items").await;
        click(&c, "button.backup-now[data-item='docs']").await;
        assert_eq!(job_ends(&c, 60).await, "Succeeded");
        let log = wait_text(&c, "#job-log", "").await;
        assert!(!log.is_empty(), "the job has no log");
        screenshot(&c, "job").await;

        // Browse the point down to the source directory.
        click(&c, "#job-point").await;
        wait_text(&c, "main h1", "Recovery point of docs").await;
        for name in components(&src) {
            let link = c
                .wait()
                .at_most(Duration::from_secs(20))
                .for_element(Locator::LinkText(&format!("{name}/")))
                .await
                .unwrap_or_else(|e| panic!("no folder {name}: {e}"));
            link.click().await.unwrap();
            wait_text(&c, ".crumbs [aria-current=page]", &name).await;
        }
        let listing = wait_text(&c, "section[aria-labelledby=point-files] table", "a.bin").await;
        assert!(listing.contains("sub/"), "{listing}");
        all_labelled(&c, "point").await;
        screenshot(&c, "point-browse").await;

        // Download one file: the bytes arrive whole.
        let a = src.join("a.bin");
        click(
            &c,
            &format!("a.download[aria-label='Download {}']", a.display()),
        )
        .await;
        let got = downloads.join("a.bin");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::fs::metadata(&got).map(|m| m.len()).unwrap_or(0) != 300_000 {
            assert!(Instant::now() < deadline, "the download did not arrive");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(std::fs::read(&got).unwrap(), std::fs::read(&a).unwrap());

        // Restore that one file to another place.
        click(&c, &format!("input.pick[value='{}']", a.display())).await;
        let restored = dir.path().join("restored");
        fill(&c, "restore-target", restored.to_str().unwrap()).await;
        click(&c, "#restore-start").await;
        assert_eq!(job_ends(&c, 60).await, "Succeeded");
        screenshot(&c, "restore-job").await;
        let back = common::under(&restored, &a);
        assert_eq!(std::fs::read(&back).unwrap(), std::fs::read(&a).unwrap());
        assert!(
            !common::under(&restored, &src.join("sub")).exists(),
            "more than the chosen file came back"
        );

        // Back over the original place: a changed file comes back as it
        // was, and only once "Replace existing files" is ticked.
        std::fs::write(&a, b"changed after the backup").unwrap();
        c.back().await.unwrap();
        wait_text(&c, "main h1", "Recovery point of docs").await;
        click(&c, &format!("input.pick[value='{}']", a.display())).await;
        click(&c, "#restore-original").await;
        click(&c, "#restore-start").await;
        wait_text(&c, "#status", "overwrite").await;
        click(&c, "#restore-overwrite").await;
        click(&c, "#restore-start").await;
        assert_eq!(job_ends(&c, 60).await, "Succeeded");
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&got).unwrap());

        // Two more points, then a policy preview. DefaultPolicy keeps one
        // point a day, so two of today's three expire; keep-last 3 would
        // keep them, and the preview says which fates differ.
        for _ in 0..2 {
            open(&c, &root, "#/items", "Items and sets").await;
            click(&c, "button.backup-now[data-item='docs']").await;
            assert_eq!(job_ends(&c, 60).await, "Succeeded");
        }
        open(&c, &root, "#/policies", "Policies").await;
        click(&c, "button[aria-label='Edit DefaultPolicy']").await;
        fill(&c, "policy-keep-last", "3").await;
        fill(&c, "policy-daily-days", "").await;
        click(&c, "#policy-preview").await;
        let preview = wait_text(
            &c,
            "#policy-preview-result",
            "3 point(s) are kept and 0 expire",
        )
        .await;
        assert_eq!(preview.matches("expire — differs").count(), 2, "{preview}");
        all_labelled(&c, "policies").await;
        show(&c, "#policy-preview-result").await;
        screenshot(&c, "policy-preview").await;
        // A new policy, saved from the editor.
        fill(&c, "policy-name", "Weekly").await;
        fill(&c, "policy-schedule", "weekly sun 04:00").await;
        fill(&c, "policy-keep-last", "4").await;
        click(&c, "#policy-save").await;
        wait_text(&c, "#notice", "Policy Weekly saved").await;
        wait_text(&c, "section[aria-labelledby=policies-list]", "Weekly").await;
        screenshot(&c, "policies").await;
        open(&c, &root, "#/items", "Items and sets").await;
        wait_text(&c, "select#policy-of-docs", "Weekly").await;
        choose(&c, "policy-of-docs", "Weekly").await;
        click(&c, "button[aria-label='Assign the policy to docs']").await;
        wait_text(&c, "#notice", "docs now follows Weekly").await;

        // A replica added on the command line shows with its lag.
        let replica = dir.path().join("replica");
        let replica_loc = replica.to_str().unwrap().to_string();
        cli_with_key(
            &key,
            &[
                "vault",
                "replica",
                "add",
                "--vault",
                &vault_loc,
                &replica_loc,
                "--mode",
                "async",
            ],
        );
        // The service opens it only once an administrator allows it.
        std::thread::scope(|t| {
            t.spawn(|| {
                let (status, body) = server.admin().call(
                    "PUT",
                    "/vaults/main/locations",
                    Some(serde_json::json!({"location": replica_loc})),
                );
                assert_eq!(status, reqwest::StatusCode::OK, "{body}");
            })
            .join()
            .unwrap()
        });
        open(&c, &root, "#/vault/main", "Vault main").await;
        let replicas = wait_text(&c, "section[aria-labelledby=vault-replicas]", &replica_loc).await;
        assert!(replicas.contains("async"), "{replicas}");
        assert!(replicas.contains(" s"), "no lag shown: {replicas}");
        // A new point puts the replica behind; replication brings it level.
        open(&c, &root, "#/items", "Items and sets").await;
        click(&c, "button.backup-now[data-item='docs']").await;
        assert_eq!(job_ends(&c, 60).await, "Succeeded");
        open(&c, &root, "#/vault/main", "Vault main").await;
        click(&c, "#replicate-now").await;
        assert_eq!(job_ends(&c, 60).await, "Succeeded");
        let log = wait_text(&c, "#job-log", "verified").await;
        assert!(log.contains(&replica_loc), "{log}");
        let behind = Command::new(BIN)
            .args(["vault", "replica", "list", "--json", "--vault", &vault_loc])
            .env("COFFER_KEY", &key)
            .env("COFFER_CACHE_DIR", dir.path().join("cli-cache"))
            .output()
            .unwrap();
        let listed: serde_json::Value = serde_json::from_slice(&behind.stdout).unwrap();
        assert_eq!(listed["replicas"][0]["location"], replica_loc.as_str());
        assert_eq!(listed["replicas"][0]["missing_points"], 0, "{listed}");
        assert_eq!(listed["replicas"][0]["missing_objects"], 0, "{listed}");

        // The vault: delete a point, then undelete it.
        open(&c, &root, "#/vault/main", "Vault main").await;
        click(&c, "button[aria-label^='Delete docs of']").await;
        click(&c, "#ask-dialog button[data-choice=delete]").await;
        wait_text(&c, "#notice", "is soft-deleted").await;
        let points = wait_text(&c, "section[aria-labelledby=vault-points]", "soft-deleted").await;
        assert!(points.contains("Undelete"), "{points}");
        click(&c, "button[aria-label^='Undelete docs of']").await;
        wait_text(&c, "#notice", "is back, on hold").await;

        // A host with a write-only credential adds a point: the table says
        // which credential wrote it.
        let cli = |secret: &str, args: &[&str]| {
            let out = Command::new(BIN)
                .args(args)
                .env("COFFER_KEY", secret)
                .env("COFFER_CACHE_DIR", dir.path().join("host-cache"))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        let credential = cli(
            &key,
            &[
                "key",
                "add",
                "--write-only",
                "--name",
                "web-1",
                "--vault",
                &vault_loc,
            ],
        );
        cli(
            &credential,
            &[
                "backup",
                "--vault",
                &vault_loc,
                "--item",
                "web",
                src.to_str().unwrap(),
            ],
        );
        let slot = cli(&key, &["key", "list", "--vault", &vault_loc]);
        // Away and back: opening the page it shows does not reload it.
        open(&c, &root, "#/items", "Items and sets").await;
        open(&c, &root, "#/vault/main", "Vault main").await;
        let points = wait_text(
            &c,
            "section[aria-labelledby=vault-points]",
            "write-only credential",
        )
        .await;
        let written = points
            .lines()
            .find(|l| l.contains("write-only credential"))
            .unwrap_or_default();
        let slot_id: String = written
            .split("write-only credential ")
            .nth(1)
            .unwrap_or_default()
            .chars()
            .take(16)
            .collect();
        assert!(
            written.starts_with("web") && slot_id.len() == 16 && slot.contains(&slot_id),
            "{points}\n{slot}"
        );
        assert!(points.contains("vault key"), "{points}");

        // A webhook target, so that the security alerts below are sent.
        open(&c, &root, "#/notifications", "Notifications").await;
        fill(&c, "target-name", "hook").await;
        fill(&c, "target-url", &hook.url("/coffer")).await;
        fill(&c, "target-secret", "a webhook signing key").await;
        click(&c, "#target-add").await;
        wait_text(&c, "#notice", "Target hook added").await;
        open(&c, &root, "#/vault/main", "Vault main").await;

        // Rotate the key: a new one, shown once; the old one stops working.
        let before = c
            .find(Locator::Id("key-fingerprint"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        click(&c, "#rotate-key").await;
        click(&c, "#ask-dialog button[data-choice=rotate]").await;
        let new_key = take_key_once(&c, "vault-key-rotated-once").await;
        assert_ne!(new_key, key);
        wait_text(&c, "#notice", "was rotated").await;
        let after = wait_text(&c, "#key-fingerprint", "").await;
        assert_ne!(after, before);
        all_labelled(&c, "vault").await;
        screenshot(&c, "vault").await;
        assert!(
            key_opens(&vault_loc, &new_key, &[]),
            "the new key does not open the vault"
        );
        assert!(
            !key_opens(&vault_loc, &key, &[]),
            "the old key still opens the vault"
        );

        // Immutability on: deleting an unexpired point is refused, and the
        // page says why.
        choose(&c, "vault-immutability", "enabled").await;
        click(&c, "#vault-immutability-apply").await;
        wait_text(&c, "#notice", "Immutability of main is now enabled").await;
        wait_text(
            &c,
            "section[aria-labelledby=vault-immutability-title]",
            "Now: enabled",
        )
        .await;
        click(&c, "button[aria-label^='Delete docs of']").await;
        click(&c, "#ask-dialog button[data-choice=delete]").await;
        let refused = wait_text(&c, "#status", "expired").await;
        assert!(refused.contains("enabled"), "{refused}");
        assert!(
            refused.contains("wait for them to expire"),
            "no hint: {refused}"
        );
        screenshot(&c, "vault-immutable-refusal").await;

        // The security alerts reached the webhook, and the target's
        // deliveries say so.
        let deadline = Instant::now() + Duration::from_secs(30);
        while hook.received().is_empty() {
            assert!(Instant::now() < deadline, "nothing reached the webhook");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        open(&c, &root, "#/notifications", "Notifications").await;
        click(&c, "a[aria-label='Deliveries to hook']").await;
        wait_text(&c, "section[aria-labelledby=deliveries-title]", "sent").await;
        all_labelled(&c, "notifications").await;
        screenshot(&c, "notifications").await;

        // The rotation and the deletion raised security alerts; resolve one.
        open(&c, &root, "#/alerts", "Alerts").await;
        let alerts = wait_text(&c, "main table", "deleted").await;
        assert!(alerts.to_lowercase().contains("key"), "{alerts}");
        screenshot(&c, "alerts").await;
        let open_before = c
            .find_all(Locator::Css("main tbody tr"))
            .await
            .unwrap()
            .len();
        click(&c, "main tbody tr button").await;
        wait_text(&c, "#notice", "Alert resolved").await;
        let open_after = c
            .find_all(Locator::Css("main tbody tr"))
            .await
            .unwrap()
            .len();
        assert_eq!(open_after + 1, open_before);

        // Stop protection, retaining data; then resume.
        open(&c, &root, "#/items", "Items and sets").await;
        click(&c, "button[aria-label='Stop protection of docs']").await;
        click(&c, "#ask-dialog button[data-choice=retain]").await;
        wait_text(&c, "#notice", "data retained").await;
        wait_text(
            &c,
            "section[aria-labelledby=items-list]",
            "protection stopped, data retained",
        )
        .await;
        click(&c, "button[aria-label='Resume protection of docs']").await;
        wait_text(&c, "#notice", "resumed").await;

        // A long job: its progress moves while it runs, and it can be
        // cancelled. The item is added with the page's form.
        open(&c, &root, "#/items", "Items and sets").await;
        fill(&c, "item-name", "slow").await;
        choose(&c, "item-kind", "command").await;
        fill(
            &c,
            "item-command",
            "for i in $(seq 1 600); do head -c 200000 /dev/urandom; sleep 0.1; done",
        )
        .await;
        click(&c, "#item-add").await;
        wait_text(&c, "#notice", "Item slow added").await;
        click(&c, "button.backup-now[data-item='slow']").await;
        wait_text(&c, "#job-state", "Running").await;
        let first = wait_text(&c, "#job-progress", "read").await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let later = wait_text(&c, "#job-progress", "read").await;
        assert_ne!(first, later, "the progress does not move");
        screenshot(&c, "job-running").await;
        click(&c, "#job-cancel").await;
        assert_eq!(job_ends(&c, 60).await, "Cancelled");

        // Users and roles: an operator with a role on the vault.
        open(&c, &root, "#/users", "Users and roles").await;
        fill(&c, "user-name", "operator").await;
        fill(&c, "user-password", "operator password 1").await;
        click(&c, "#user-add").await;
        wait_text(&c, "#notice", "User operator added").await;
        choose(&c, "role-user", "operator").await;
        choose(&c, "role-vault", "main").await;
        choose(&c, "role-role", "backup_operator").await;
        click(&c, "#role-add").await;
        wait_text(&c, "section[aria-labelledby=roles-list]", "backup_operator").await;
        all_labelled(&c, "users").await;
        screenshot(&c, "users").await;
        // A new password for the operator; a too short one is refused
        // with the reason.
        click(&c, "button[aria-label='Set the password of operator']").await;
        fill(&c, "new-password", "short").await;
        click(&c, "#password-save").await;
        let said = wait_text(&c, "#status", "password").await;
        assert!(!said.contains("null"), "{said}");
        click(&c, "button[aria-label='Set the password of operator']").await;
        fill(&c, "new-password", "operator password 2").await;
        click(&c, "#password-save").await;
        wait_text(&c, "#notice", "password of operator was changed").await;

        // The remaining pages, for the record.
        for (hash, heading, shot) in [
            ("#/dashboard", "Dashboard", "dashboard-after"),
            ("#/vaults", "Vaults", "vaults"),
            ("#/jobs", "Jobs", "jobs"),
            ("#/points", "Recovery points", "points"),
            ("#/items", "Items and sets", "items-after"),
        ] {
            open(&c, &root, hash, heading).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            all_labelled(&c, hash).await;
            screenshot(&c, shot).await;
        }

        // The operator sees the vault but may not rotate its key: the
        // refusal is shown with the API's words.
        click(&c, "#logout").await;
        log_in_as(&c, "operator", "operator password 2").await;
        open(&c, &root, "#/vault/main", "Vault main").await;
        click(&c, "#rotate-key").await;
        click(&c, "#ask-dialog button[data-choice=rotate]").await;
        let refused = wait_text(&c, "#status", "role").await;
        assert!(!refused.contains("null"), "{refused}");
        screenshot(&c, "forbidden").await;
        c.close().await.unwrap();
    });
}

#[test]
fn an_unreachable_location_shows_its_alert_with_remediation() {
    let dir = scratch();
    let server = Server::start(&dir.path().join("data"));
    let mut s3 = coffer_testservers::Server::start(coffer_testservers::Kind::S3);
    let src = dir.path().join("src");
    random_file(&src.join("c.bin"), 50_000, 5);
    let root = server.base.trim_end_matches("/api/v1").to_string();
    let driver = Driver::start();
    runtime().block_on(async {
        let c = browser(&driver, &dir.path().join("profile")).await;
        log_in(&c, &root).await;
        open(&c, &root, "#/enable", "Enable backup").await;

        // An error from the API names the field and says what to do.
        fill(&c, "enable-vault", "no spaces allowed").await;
        fill(&c, "enable-location", &s3.location).await;
        fill(&c, "enable-item", "etc").await;
        fill(&c, "enable-paths", src.to_str().unwrap()).await;
        click(&c, "#enable-key-enter").await;
        fill(&c, "enable-key", "a key typed by the operator, long enough").await;
        click(&c, "#enable-submit").await;
        wait_text(&c, "#status", "name:").await;
        assert!(c
            .find(Locator::Css("#enable-vault[aria-invalid=true]"))
            .await
            .is_ok());
        screenshot(&c, "enable-backup-error").await;

        // S3 with credentials, tested live; a policy of its own; a set.
        fill(&c, "enable-vault", "offsite").await;
        let creds: String = s3
            .credentials
            .iter()
            .map(|(k, v)| format!("{k}={v}\n"))
            .collect();
        fill(&c, "enable-credentials", &creds).await;
        click(&c, "#enable-test").await;
        wait_text(&c, "#enable-test-result", "The location works (S3)").await;
        click(&c, "#enable-policy-custom").await;
        fill(&c, "enable-schedule", "daily 03:00").await;
        fill(&c, "enable-time-zone", "UTC").await;
        click(&c, "#enable-what-set").await;
        fill(&c, "enable-set", "infra").await;
        click(&c, "#enable-submit").await;
        wait_text(&c, "#notice", "in set infra").await;
        assert!(key_opens(
            &s3.location,
            "a key typed by the operator, long enough",
            &s3.credentials
        ));
        let sets = wait_text(&c, "section[aria-labelledby=sets-list]", "infra").await;
        assert!(sets.contains("etc"), "{sets}");
        let items = wait_text(&c, "section[aria-labelledby=items-list]", "etc").await;
        assert!(items.contains("etc"), "{items}");
        click(&c, "button.backup-now[data-item='etc']").await;
        assert_eq!(job_ends(&c, 60).await, "Succeeded");

        // A second item joins the set; the set is backed up as one point,
        // ready for cloud recovery.
        open(&c, &root, "#/items", "Items and sets").await;
        fill(&c, "item-name", "etc2").await;
        fill(&c, "item-paths", src.to_str().unwrap()).await;
        click(&c, "#item-add").await;
        wait_text(&c, "#notice", "Item etc2 added").await;
        click(&c, "button[aria-label='Change the items of set infra']").await;
        click(&c, "#pick-item-etc2").await;
        click(&c, "#pick-save").await;
        wait_text(&c, "#notice", "Set infra now backs up etc, etc2").await;
        click(&c, "button[aria-label='Back up set infra now']").await;
        assert_eq!(job_ends(&c, 120).await, "Succeeded");
        open(&c, &root, "#/vault/offsite", "Vault offsite").await;
        let set_points = wait_text(&c, "section[aria-labelledby=vault-set-points]", "ready").await;
        assert!(set_points.contains("etc2"), "{set_points}");
        assert!(!set_points.contains("not ready"), "{set_points}");
        show(&c, "section[aria-labelledby=vault-set-points]").await;
        screenshot(&c, "vault-set-points").await;

        // The storage goes away; the next backup fails and says why.
        s3.kill();
        open(&c, &root, "#/items", "Items and sets").await;
        click(&c, "button.backup-now[data-item='etc']").await;
        assert_eq!(job_ends(&c, 180).await, "Failed");
        let error = wait_text(&c, "#job-error", "").await;
        assert!(!error.is_empty());
        screenshot(&c, "job-failed").await;
        open(&c, &root, "#/alerts", "Alerts").await;
        let alert = wait_text(&c, "main table", "cannot be reached").await;
        assert!(alert.contains("storage_unreachable"), "{alert}");
        let steps = c
            .find_all(Locator::Css("main table ol.remediation li"))
            .await
            .unwrap();
        assert!(!steps.is_empty(), "no remediation steps");
        screenshot(&c, "alerts-unreachable").await;
        open(&c, &root, "#/dashboard", "Dashboard").await;
        wait_text(
            &c,
            "section[aria-labelledby=alerts-title]",
            "cannot be reached",
        )
        .await;
        screenshot(&c, "dashboard-unreachable").await;
        c.close().await.unwrap();
    });
}

/// The fleet journey: a registration token made in the console, the host
/// registered with it (the real `coffer agent register` and `agent run`)
/// and shown as it joins, an item added on it and backed up, the host
/// stopped so the next backup fails with an alert, and one file restored
/// onto the host from the point's page.
#[test]
fn a_host_joins_the_fleet_is_backed_up_fails_while_stopped_and_gets_a_file_back() {
    let dir = scratch();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("coffer.toml"),
        "agent_unreachable_secs = 3\nagent_claim_secs = 10\n",
    )
    .unwrap();
    let server = Server::start(&data);
    let api = server.admin();
    api.create_vault("v", &dir.path().join("vault"));
    let src = dir.path().join("web1-src");
    random_file(&src.join("etc/app.conf"), 5_000, 7);
    random_file(&src.join("var/data.bin"), 200_000, 8);
    let state = dir.path().join("web1-state");
    let root = server.origin();
    let driver = Driver::start();
    runtime().block_on(async {
        let c = browser(&driver, &dir.path().join("profile")).await;
        log_in(&c, &root).await;

        // A token for vault v, shown once with the command to run.
        open(&c, &root, "#/fleet", "Fleet").await;
        all_labelled(&c, "fleet").await;
        choose(&c, "token-vault", "v").await;
        click(&c, "#token-create").await;
        wait_text(&c, "#token-command", "agent register --token").await;
        screenshot(&c, "fleet-token").await;
        let text = c
            .execute(
                "return document.querySelector('#token-text').textContent",
                vec![],
            )
            .await
            .unwrap();
        let out = agent_harness::register(&server, text.as_str().unwrap(), "web1", &state);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let agent = agent_harness::AgentProcess::start(&state);
        // The page follows the fleet: the host appears, in contact.
        wait_text_for(&c, "tr[data-agent='web1'] .agent-status", "In contact", 40).await;
        wait_text(&c, "tr[data-agent='web1']", env!("CARGO_PKG_VERSION")).await;
        screenshot(&c, "fleet").await;

        // An item on the host, backed up from the items page.
        open(&c, &root, "#/items", "Items and sets").await;
        fill(&c, "item-name", "web1-files").await;
        choose(&c, "item-host", "web1").await;
        fill(&c, "item-paths", src.to_str().unwrap()).await;
        click(&c, "#item-add").await;
        wait_text(&c, "#notice", "Item web1-files added").await;
        click(&c, "button[data-item='web1-files']").await;
        assert_eq!(job_ends(&c, 60).await, "Succeeded");

        // The host stops: the next backup fails, with an alert that says
        // what to do.
        drop(agent);
        let deadline = Instant::now() + Duration::from_secs(40);
        while tokio::task::block_in_place(|| api.get("/agents/web1"))["unreachable"] != true {
            assert!(Instant::now() < deadline, "web1 never became unreachable");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        open(&c, &root, "#/items", "Items and sets").await;
        click(&c, "button[data-item='web1-files']").await;
        assert_eq!(job_ends(&c, 60).await, "Failed");
        open(&c, &root, "#/alerts", "Alerts").await;
        wait_text(&c, "main", "agent_unreachable").await;
        wait_text(&c, "main", "web1").await;
        screenshot(&c, "fleet-alert").await;
        open(&c, &root, "#/fleet", "Fleet").await;
        wait_text(&c, "tr[data-agent='web1'] .agent-status", "Unreachable").await;

        // Back, and one file restored onto the host, elsewhere.
        let _agent = agent_harness::AgentProcess::start(&state);
        wait_text_for(&c, "tr[data-agent='web1'] .agent-status", "In contact", 40).await;
        // The backup it missed runs once it is back; a restore waits for it.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let jobs = tokio::task::block_in_place(|| api.get("/jobs?item=web1-files"));
            // The retry of the failed run, brought forward, is that backup.
            let caught_up = jobs.as_array().unwrap().iter().any(|j| {
                (j["trigger"] == "missed" || j["trigger"] == "retry") && j["state"] == "Succeeded"
            });
            if caught_up {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the missed backup never ran: {jobs}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let points = tokio::task::block_in_place(|| api.get("/vaults/v/points"));
        let point = points
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["item"] == "web1-files")
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let conf = src.join("etc/app.conf");
        let folder = src.join("etc");
        open(
            &c,
            &root,
            &format!("#/point/v/{point}?path={}", folder.display()),
            "Recovery point of web1-files",
        )
        .await;
        all_labelled(&c, "point on an agent").await;
        click(&c, &format!("input.pick[value='{}']", conf.display())).await;
        let restored = dir.path().join("restored-on-web1");
        fill(&c, "restore-target", restored.to_str().unwrap()).await;
        let host = c
            .find(Locator::Id("restore-host"))
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap();
        assert_eq!(
            host.as_deref(),
            Some("web1"),
            "the item's own host is chosen"
        );
        screenshot(&c, "fleet-restore").await;
        click(&c, "#restore-start").await;
        assert_eq!(job_ends(&c, 60).await, "Succeeded");
        let back = common::under(&restored, &conf);
        assert_eq!(std::fs::read(&back).unwrap(), std::fs::read(&conf).unwrap());
        assert!(!common::under(&restored, &src.join("var")).exists());

        // The dashboard shows the fleet: hosts, their items, last success.
        open(&c, &root, "#/dashboard", "Dashboard").await;
        let fleet = wait_text(&c, "section[aria-labelledby='fleet-title']", "web1-files").await;
        assert!(fleet.contains("In contact"), "{fleet}");
        show(&c, "#fleet-title").await;
        screenshot(&c, "dashboard-fleet").await;
    });
}
