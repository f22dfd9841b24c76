//! The workbench in a real browser: Debian's headless Chromium, driven through ChromeDriver
//! (WebDriver) on the real app after a simulated stream. A safety officer signs in, sees the
//! planted harms among the signals, opens one, opens a contributing case, records a transition
//! with a rationale, finds it in the audit trail, and signs out; the browser logs no error.
//! Screenshots of every step go to `target/browser-screenshots/` (CI artefacts).
//!
//! Needs `chromium` and `chromium-driver` (installed by `deploy/local/install.sh --browser`,
//! which `deploy/local/test.sh` runs); `PV_CHROMEDRIVER` / `PV_CHROMIUM` override the paths.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::TestEnv;
use common::workbench::{fill, serve, users_file};
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use pv_dashboard::DashboardConfig;
use serde_json::{Value, json};

/// ChromeDriver's log endpoint (not in the W3C protocol, served by ChromeDriver).
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(json!({"type": "browser"}).to_string()))
    }
}

struct Driver {
    process: tokio::process::Child,
    url: String,
}

async fn chromedriver() -> Driver {
    let bin = std::env::var("PV_CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
    let port =
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
    let process = tokio::process::Command::new(&bin)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{bin}: {e} (run deploy/local/install.sh --browser)"));
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while reqwest::get(format!("{url}/status")).await.is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not answer on {url}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Driver { process, url }
}

async fn browser(driver: &Driver, profile: &std::path::Path) -> Client {
    let chromium = std::env::var("PV_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let args = [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,1000",
    ];
    let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    args.push(format!("--user-data-dir={}", profile.display()));
    let mut caps = serde_json::Map::new();
    caps.insert("goog:chromeOptions".into(), json!({"binary": chromium, "args": args}));
    caps.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a chromium session")
}

struct Steps {
    dir: PathBuf,
    n: u32,
}

impl Steps {
    async fn shot(&mut self, c: &Client, name: &str) {
        self.n += 1;
        let png = c.screenshot().await.expect("screenshot");
        std::fs::write(self.dir.join(format!("{:02}-{name}.png", self.n)), png).expect("write screenshot");
    }
}

/// The text of the first element matching `css`, once the page that has it has loaded (a
/// click that navigates returns before the next page is there).
async fn text(c: &Client, css: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let found = c.wait().at_most(Duration::from_secs(15)).for_element(Locator::Css(css)).await;
        match found {
            Ok(e) => match e.text().await {
                Ok(t) => return t,
                Err(e) if Instant::now() < deadline => eprintln!("{css}: {e}; retrying"),
                Err(e) => panic!("{css}: {e}"),
            },
            Err(e) => panic!("{css}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the browser is at `path`.
async fn wait_path(c: &Client, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while c.current_url().await.expect("url").path() != path {
        assert!(Instant::now() < deadline, "never reached {path}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_safety_officer_walks_from_a_signal_to_a_case_to_a_decision_in_chromium() {
    let env = TestEnv::new("browser").await;
    fill(&env).await;
    let cfg = DashboardConfig {
        users_file: users_file(&env),
        workflow_topic: env.workflow_topic(),
        ..DashboardConfig::default()
    };
    let wb = serve(&env, cfg).await;
    let driver = chromedriver().await;
    let c = browser(&driver, &env.dir.join("chromium-profile")).await;
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/browser-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    let mut steps = Steps { dir, n: 0 };
    let base = wb.base.clone();

    // Not signed in: the workbench sends the browser to the sign-in page.
    c.goto(&format!("{base}/signals")).await.expect("goto");
    wait_path(&c, "/signin").await;
    steps.shot(&c, "sign-in").await;
    // A wrong password is refused on the page itself.
    c.find(Locator::Css("#user")).await.expect("user").send_keys("officer").await.expect("type");
    c.find(Locator::Css("#password"))
        .await
        .expect("password")
        .send_keys("not-the-password")
        .await
        .expect("type");
    c.find(Locator::Css("#signin")).await.expect("button").click().await.expect("click");
    assert_eq!(text(&c, "#signin-error").await, "unknown user or wrong password");
    c.find(Locator::Css("#user")).await.expect("user").send_keys("officer").await.expect("type");
    c.find(Locator::Css("#password"))
        .await
        .expect("password")
        .send_keys("officer-officer-officer")
        .await
        .expect("type");
    c.find(Locator::Css("#signin")).await.expect("button").click().await.expect("click");
    wait_path(&c, "/").await;
    assert_eq!(text(&c, "h1").await, "Overview");
    assert!(text(&c, "#denominators").await.contains("administrations"));
    steps.shot(&c, "overview").await;

    // The planted harms are among the signals.
    c.goto(&format!("{base}/signals?signal=1&sort=n")).await.expect("goto");
    let table = text(&c, "#signals").await;
    assert!(table.contains("sequential test") && table.contains("urological"), "{table}");
    assert!(table.contains("dependence"), "{table}");
    steps.shot(&c, "signals").await;
    let rows = c.find_all(Locator::Css("#signals tbody tr")).await.expect("rows");
    let mut planted = None;
    for row in rows {
        let t = row.text().await.expect("row text");
        if t.starts_with("sequential test") && t.contains("urological") && t.contains("ketamine") {
            planted = Some(row);
            break;
        }
    }
    let planted = planted.expect("the urological sequential-test signal of ketamine is listed");
    planted.find(Locator::Css("a.detail")).await.expect("link").click().await.expect("open signal");
    wait_path(&c, "/signals/detail").await;
    let heading = text(&c, "h1").await;
    assert!(heading.starts_with("urological"), "{heading}");
    assert!(text(&c, "#contributing h2").await.starts_with("Contributing cases"));
    assert!(c.find_all(Locator::Css("figure svg")).await.expect("charts").len() >= 4, "charts drawn");
    steps.shot(&c, "signal-detail").await;
    let detail_url = c.current_url().await.expect("url");

    // A contributing case, with its versions, reactions and narrative.
    c.find(Locator::Css("a.case")).await.expect("a case").click().await.expect("open case");
    c.wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css("#reactions"))
        .await
        .expect("case page");
    assert!(text(&c, "h1").await.starts_with("Case "));
    assert!(!text(&c, "#reactions").await.is_empty());
    assert!(!text(&c, "#narrative").await.contains("not shown"));
    assert!(c.find(Locator::Css("svg g.dose")).await.is_ok(), "the dosing timeline is drawn");
    steps.shot(&c, "case").await;

    // A decision with its rationale.
    c.goto(detail_url.as_str()).await.expect("back to the signal");
    let form = c.form(Locator::Css("#transition")).await.expect("transition form");
    form.set(Locator::Css("select[name=to_state]"), "validation").await.expect("state");
    form.set(
        Locator::Css("textarea[name=rationale]"),
        "Dose-response across bands; validate against the clinics' records",
    )
    .await
    .expect("why");
    form.submit().await.expect("submit");
    wait_path(&c, "/signals/act").await;
    assert!(text(&c, "#notice").await.starts_with("Recorded: transition"), "{}", text(&c, "#notice").await);
    assert_eq!(text(&c, "#state").await, "Validation");
    steps.shot(&c, "decision").await;

    // The audit trail shows who, what and why.
    c.find(Locator::LinkText("Audit")).await.expect("audit link").click().await.expect("audit");
    wait_path(&c, "/audit").await;
    let audit = text(&c, "#audit").await;
    assert!(audit.contains("officer") && audit.contains("detected → validation"), "{audit}");
    assert!(audit.contains("validate against the clinics' records"), "{audit}");
    steps.shot(&c, "audit").await;

    c.find(Locator::Css("#signout")).await.expect("sign out").click().await.expect("click");
    wait_path(&c, "/signin").await;
    c.goto(&format!("{base}/")).await.expect("goto");
    assert_eq!(c.current_url().await.expect("url").path(), "/signin", "signed out");
    steps.shot(&c, "signed-out").await;

    let log = c.issue_cmd(BrowserLog).await.expect("browser log");
    let errors: Vec<&Value> =
        log.as_array().map(|l| l.iter().filter(|e| e["level"] == "SEVERE").collect()).unwrap_or_default();
    assert!(errors.is_empty(), "the browser logged errors: {errors:?}");
    c.close().await.expect("close");
    let mut process = driver.process;
    process.kill().await.ok();
    wb.shutdown.trigger();
    env.cleanup().await;
}
