//! The workbench against the real servers: a simulated stream with planted harms goes through
//! the real broker, enricher and sink into ClickHouse, the signals service runs once, and the
//! workbench is served on a loopback port and spoken to over HTTP as each role.
//!
//! - every role rule, including clinic isolation through every route, filter, export and id;
//! - unauthenticated requests get nothing; CSRF on every state-changing request; sessions
//!   expire; failed sign-ins are rate-limited;
//! - workflow transitions valid, invalid and stale; the audit trail; the workflow state rebuilt
//!   from the topic equals the live one, and a table that lost rows is rebuilt from the log.

mod common;

use std::time::Duration;

use common::TestEnv;
use common::workbench::{fill, serve, users_file};
use pv_dashboard::DashboardConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// An HTTP client holding one session cookie by hand (what a browser would do).
struct Client {
    http: reqwest::Client,
    base: String,
    cookie: Option<String>,
    csrf: String,
}

impl Client {
    fn new(base: &str) -> Client {
        Client::from(base, std::net::Ipv4Addr::LOCALHOST)
    }

    /// A client connecting from `address` (any of 127.0.0.0/8 on Linux's loopback).
    fn from(base: &str, address: std::net::Ipv4Addr) -> Client {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .local_address(std::net::IpAddr::V4(address))
            .build()
            .expect("client");
        Client { http, base: base.into(), cookie: None, csrf: String::new() }
    }

    async fn sign_in(base: &str, user: &str) -> Client {
        let mut c = Client::new(base);
        let (status, body) = c.try_sign_in(user, &format!("{user}-{user}-{user}")).await;
        assert_eq!(status, StatusCode::OK, "{user}: {body}");
        c
    }

    async fn try_sign_in(&mut self, user: &str, password: &str) -> (StatusCode, Value) {
        let res = self
            .http
            .post(format!("{}/api/v1/session", self.base))
            .json(&json!({"user": user, "password": password}))
            .send()
            .await
            .expect("sign in");
        let status = res.status();
        if let Some(set) = res.headers().get("set-cookie") {
            let set = set.to_str().expect("ascii");
            assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"), "{set}");
            self.cookie = set.split(';').next().map(str::to_string);
        }
        let body: Value = res.json().await.unwrap_or(Value::Null);
        self.csrf = body["csrf"].as_str().unwrap_or_default().to_string();
        (status, body)
    }

    fn with_cookie(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.cookie {
            Some(c) => rb.header("cookie", c),
            None => rb,
        }
    }

    async fn get(&self, path: &str) -> (StatusCode, String) {
        let res = self.with_cookie(self.http.get(format!("{}{path}", self.base))).send().await.expect("get");
        (res.status(), res.text().await.expect("body"))
    }

    async fn json(&self, path: &str) -> (StatusCode, Value) {
        let (status, text) = self.get(path).await;
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, body: &Value, csrf: Option<&str>) -> (StatusCode, Value) {
        let mut rb = self.with_cookie(self.http.post(format!("{}{path}", self.base))).json(body);
        if let Some(t) = csrf {
            rb = rb.header("x-csrf-token", t);
        }
        let res = rb.send().await.expect("post");
        (res.status(), res.json().await.unwrap_or(Value::Null))
    }

    async fn act(&self, body: &Value) -> (StatusCode, Value) {
        self.post("/api/v1/signals/actions", body, Some(&self.csrf)).await
    }
}

fn rows(v: &Value) -> &Vec<Value> {
    v["page"]["rows"].as_array().or_else(|| v["rows"].as_array()).expect("rows")
}

#[tokio::test]
async fn the_workbench_enforces_roles_csrf_sessions_and_records_the_workflow() {
    let env = TestEnv::new("dashboard").await;
    fill(&env).await;
    let cfg = DashboardConfig {
        users_file: users_file(&env),
        workflow_topic: env.workflow_topic(),
        signin_max_failures: 3,
        ..DashboardConfig::default()
    };
    let wb = serve(&env, cfg.clone()).await;
    let base = wb.base.as_str();

    // Unauthenticated: nothing from any route; pages send the browser to sign in.
    let anonymous = Client::new(base);
    for path in [
        "/api/v1/overview",
        "/api/v1/signals",
        "/api/v1/cases",
        "/api/v1/audit",
        "/api/v1/session",
        "/api/v1/cases/clinic-01/x",
    ] {
        let (status, body) = anonymous.get(path).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert!(!body.contains("clinic-0"), "{path}: {body}");
    }
    for path in ["/", "/signals", "/cases", "/audit"] {
        let res = anonymous.http.get(format!("{base}{path}")).send().await.expect("get");
        assert_eq!(
            (res.status(), res.headers()["location"].to_str().ok()),
            (StatusCode::SEE_OTHER, Some("/signin")),
            "{path}"
        );
    }

    let officer = Client::sign_in(base, "officer").await;
    let regulator = Client::sign_in(base, "regulator").await;
    let north = Client::sign_in(base, "north").await;

    // The planted harms are among the signals.
    let (status, signals) = officer.json("/api/v1/signals?signal=1&limit=1000").await;
    assert_eq!(status, StatusCode::OK);
    let test = |event: &str| {
        rows(&signals).iter().find(|r| {
            r["result"]["analysis"] == "sequential_test"
                && r["result"]["event"] == event
                && r["result"]["product"] == "ketamine"
        })
    };
    let planted = test("urological").unwrap_or_else(|| panic!("no urological signal: {signals}")).clone();
    assert!(test("dependence").is_some(), "dependence in ketamine");
    let key = planted["key"].as_str().expect("key").to_string();
    assert_eq!(planted["status"]["state"], "detected");

    // Filters and the CSV are exactly what is shown.
    let (_, filtered) = officer.json("/api/v1/signals?product=esketamine&window=cumulative&limit=7").await;
    assert!(rows(&filtered).len() <= 7 && !rows(&filtered).is_empty());
    assert!(
        rows(&filtered)
            .iter()
            .all(|r| r["result"]["product"] == "esketamine" && r["result"]["time_window"] == "cumulative")
    );
    let (_, csv) =
        officer.get("/api/v1/signals?product=esketamine&window=cumulative&limit=7&format=csv").await;
    let keys: Vec<String> =
        csv.lines().skip(1).map(|l| l.split(',').next().unwrap_or("").to_string()).collect();
    let shown: Vec<String> =
        rows(&filtered).iter().map(|r| r["key"].as_str().unwrap_or("").to_string()).collect();
    assert_eq!(keys, shown, "the export holds the rows shown, in order");

    // The detail counts its contributing cases, each one of the result's N.
    let q = serde_urlencoded::to_string([("key", key.as_str())]).expect("query");
    let (status, detail) = officer.json(&format!("/api/v1/signals/detail?{q}")).await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    let n = detail["row"]["result"]["n"].as_u64().expect("n");
    assert_eq!(detail["contributing_total"].as_u64(), Some(n));
    let (_, listed) = officer.get(&format!("/api/v1/signals/cases?{q}&format=csv")).await;
    assert_eq!(listed.lines().count() as u64, 1 + n, "the export holds every contributing case");
    // The dose-response of the signal's product and harm, per band on person-time.
    assert!(detail["by_band"].as_array().expect("bands").len() >= 2);
    // The breakdowns of a result counted over administrations add up to its denominator.
    let (_, admin) = officer
        .json("/api/v1/signals?analysis=incidence_per_1000_administrations&product=ketamine&window=cumulative&limit=1000")
        .await;
    let admin = rows(&admin)
        .iter()
        .find(|r| r["result"]["event"] == "urological" && r["result"]["route"] == "iv")
        .unwrap_or_else(|| panic!("no ketamine IV urological incidence: {admin}"))
        .clone();
    let qa = serde_urlencoded::to_string([("key", admin["key"].as_str().expect("key"))]).expect("query");
    let (_, admin_detail) = officer.json(&format!("/api/v1/signals/detail?{qa}")).await;
    let admin_n = admin_detail["row"]["result"]["n"].as_u64().expect("n");
    assert_eq!(admin_detail["contributing_total"].as_u64(), Some(admin_n));
    // The breakdowns add up to the result's denominator (every band of the stratum).
    let administrations = |v: &Value| {
        v.as_array().expect("points").iter().map(|p| p["administrations"].as_u64().expect("n")).sum::<u64>()
    };
    let denominator = admin_detail["row"]["result"]["denominator"].as_f64().expect("denominator");
    assert_eq!(administrations(&admin_detail["by_month"]) as f64, denominator);
    assert_eq!(administrations(&admin_detail["by_clinic"]) as f64, denominator);
    let cases_by_clinic: u64 = admin_detail["by_clinic"]
        .as_array()
        .expect("clinics")
        .iter()
        .map(|p| p["cases"].as_u64().expect("n"))
        .sum();
    assert_eq!(cases_by_clinic, admin_n);
    let case = &detail["contributing"][0];
    let case_path = format!(
        "/api/v1/cases/{}/{}",
        case["clinic_id"].as_str().expect("c"),
        case["report_id"].as_str().expect("r")
    );

    // Regulator: reads signals and cases, never a narrative, never acts.
    let (status, reg_case) = regulator.json(&case_path).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(reg_case["narratives_shown"], false);
    assert!(reg_case["versions"].as_array().expect("v").iter().all(|v| v["report"]["narrative"].is_null()));
    let (_, officer_case) = officer.json(&case_path).await;
    assert!(
        officer_case["versions"].as_array().expect("v").iter().any(|v| v["report"]["narrative"].is_string()),
        "{officer_case}"
    );
    let (_, page) = regulator.get(&case_path.replace("/api/v1", "")).await;
    assert!(page.contains("Narratives are not shown to your role"));
    let attempt = json!({"signal_key": key, "expected_sequence": 0, "action": "comment", "rationale": "x"});
    assert_eq!(regulator.act(&attempt).await.0, StatusCode::FORBIDDEN);

    // Clinic user: own clinic only, through every route, filter, export and id.
    for path in [
        "/api/v1/signals",
        &format!("/api/v1/signals/detail?{q}"),
        &format!("/api/v1/signals/cases?{q}&format=csv"),
        &format!("/signals/detail?{q}"),
        "/api/v1/audit",
        "/signals",
        "/audit",
    ] {
        assert_eq!(north.get(path).await.0, StatusCode::FORBIDDEN, "{path}");
    }
    let (_, mine) = north.json("/api/v1/cases?limit=1000").await;
    assert!(!rows(&mine).is_empty());
    assert!(rows(&mine).iter().all(|c| c["clinic_id"] == "clinic-01"));
    let (_, theirs) = north.json("/api/v1/cases?clinic=clinic-02").await;
    assert_eq!(theirs["total"], 0, "a filter on another clinic finds nothing");
    let (status, csv) = north.get("/api/v1/cases?limit=1000&format=csv").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        csv.lines().count() as u64,
        1 + mine["total"].as_u64().expect("total"),
        "every own case exported"
    );
    assert!(csv.lines().skip(1).all(|l| l.starts_with("clinic-01,")), "{csv}");
    let (_, officer_cases) = officer.json("/api/v1/cases?clinic=clinic-02&limit=1").await;
    let other = &rows(&officer_cases)[0];
    let other_path = format!("/api/v1/cases/clinic-02/{}", other["report_id"].as_str().expect("r"));
    assert_eq!(north.get(&other_path).await.0, StatusCode::NOT_FOUND, "guessing another clinic's case id");
    assert_eq!(north.get(&other_path.replace("/api/v1", "")).await.0, StatusCode::NOT_FOUND);
    let (_, overview) = north.json("/api/v1/overview").await;
    assert_eq!(overview["cases_total"], mine["total"], "the clinic's overview counts its own cases");
    assert!(overview["last_events"].as_array().expect("last").iter().all(|d| d["clinic_id"] == "clinic-01"));
    assert!(!overview["last_events"].as_array().expect("last").is_empty());
    assert!(
        overview["health"].is_null() && overview["signal_changes"].as_array().expect("changes").is_empty()
    );
    assert!(
        overview["serious_since_visit"]
            .as_array()
            .expect("serious")
            .iter()
            .all(|c| c["clinic_id"] == "clinic-01")
    );
    // Events per day: the clinic sees its own, a filter on another clinic finds nothing.
    let events = |v: &Value| {
        v["events_per_day"]
            .as_array()
            .expect("days")
            .iter()
            .map(|d| d["events"].as_u64().expect("n"))
            .sum::<u64>()
    };
    let (_, own) = north.json("/api/v1/overview?to=2026-09-27").await;
    let (_, other) = north.json("/api/v1/overview?to=2026-09-27&clinic=clinic-02").await;
    assert!(events(&own) > 0 && events(&other) == 0, "{own}");
    let (_, one) = officer.json("/api/v1/overview?to=2026-09-27&clinic=clinic-01").await;
    let (_, every) = officer.json("/api/v1/overview?to=2026-09-27").await;
    assert_eq!(events(&one), events(&own), "the officer's view of clinic-01 is the clinic's own");
    assert!(events(&every) > 5 * events(&one));
    assert_eq!(officer.json("/api/v1/overview?to=27/09/2026").await.1["error"]["field"], "to");
    let (_, all) = officer.json("/api/v1/overview").await;
    assert!(all["cases_total"].as_u64().expect("n") > overview["cases_total"].as_u64().expect("n"));
    // A first visit: every serious case of the clinic is new to it.
    let (_, serious) = north.json("/api/v1/cases?serious=1").await;
    assert!(serious["total"].as_u64().expect("n") > 0);
    assert_eq!(overview["serious_since_visit_total"], serious["total"]);
    assert!(all["last_events"].as_array().expect("last").len() >= 10);
    assert!(
        all["signal_changes"].as_array().expect("changes").iter().any(|c| c["signal_key"] == key.as_str())
    );

    // CSRF: a state-changing request without the session's token is refused.
    let validate = json!({"signal_key": key, "expected_sequence": 0, "action": "transition", "to_state": "validation", "rationale": "dose-response across four bands"});
    assert_eq!(officer.post("/api/v1/signals/actions", &validate, None).await.0, StatusCode::FORBIDDEN);
    assert_eq!(
        officer.post("/api/v1/signals/actions", &validate, Some("forged")).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        officer.post("/api/v1/signals/actions", &validate, Some(&north.csrf)).await.0,
        StatusCode::FORBIDDEN,
        "another session's token"
    );

    // Workflow: valid, stale, invalid, unexplained.
    let (status, action) = officer.act(&validate).await;
    assert_eq!(status, StatusCode::CREATED, "{action}");
    assert_eq!((action["sequence"].as_i64(), action["to_state"].as_str()), (Some(1), Some("validation")));
    assert_eq!(action["evidence_n"].as_u64(), Some(n));
    let kept = action["evidence_cases"].as_array().expect("evidence");
    assert_eq!(kept.len() as u64, n, "every counted case is kept with the decision");
    assert!(kept.iter().any(|c| c.as_str()
        == Some(&format!(
            "{}/{}/v{}",
            case["clinic_id"].as_str().expect("c"),
            case["report_id"].as_str().expect("r"),
            case["version"]
        ))));
    let other_officer = Client::sign_in(base, "officer2").await;
    let (status, stale) = other_officer.act(&validate).await;
    assert_eq!(status, StatusCode::CONFLICT, "{stale}");
    assert!(stale["error"]["reason"].as_str().expect("reason").contains("changed since you loaded it"));
    let skip = json!({"signal_key": key, "expected_sequence": 1, "action": "transition", "to_state": "closed", "rationale": "done"});
    let (status, err) = officer.act(&skip).await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("to_state")),
        "{err}"
    );
    let silent = json!({"signal_key": key, "expected_sequence": 1, "action": "comment", "rationale": "  "});
    let (status, err) = officer.act(&silent).await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("rationale"))
    );
    let assign = json!({"signal_key": key, "expected_sequence": 1, "action": "assign", "assignee": "regulator", "rationale": "r"});
    assert_eq!(
        officer.act(&assign).await.1["error"]["field"],
        "assignee",
        "only safety officers are assignees"
    );
    for (seq, body) in [
        (1, json!({"action": "assign", "assignee": "officer2", "rationale": "urology background"})),
        (2, json!({"action": "prioritise", "priority": "high", "rationale": "serious outcomes"})),
        (
            3,
            json!({"action": "transition", "to_state": "validated", "rationale": "consistent across clinics"}),
        ),
    ] {
        let mut body = body;
        body["signal_key"] = json!(key);
        body["expected_sequence"] = json!(seq);
        assert_eq!(other_officer.act(&body).await.0, StatusCode::CREATED, "{body}");
    }
    let (_, after) = regulator.json("/api/v1/signals?status=validated").await;
    let row = rows(&after).iter().find(|r| r["key"] == key.as_str()).expect("validated signal listed");
    assert_eq!(
        (row["status"]["assignee"].as_str(), row["status"]["priority"].as_str()),
        (Some("officer2"), Some("high"))
    );

    // Audit: who did what, when and why; filterable and exported.
    let (_, audit) = regulator.json("/api/v1/audit?actor=officer2").await;
    assert_eq!(audit["total"], 3);
    assert!(rows(&audit).iter().any(|a| a["rationale"] == "urology background"));
    let (_, csv) = regulator.get("/api/v1/audit?format=csv").await;
    assert_eq!(csv.lines().count(), 1 + 4);
    assert!(csv.contains("dose-response across four bands"));
    let (_, with_evidence) = regulator.get("/api/v1/audit?format=csv&evidence=1").await;
    assert!(
        with_evidence.len() > csv.len()
            && with_evidence.contains(&format!("{}/", case["clinic_id"].as_str().expect("c")))
    );

    // The state rebuilt from the topic equals the live one; a table that lost rows is rebuilt.
    let live = pv_workflow::project(&pv_dashboard::reads::workflow(&wb.state.db, None).await.expect("rows"));
    let logged = wb.state.workflow.read_topic().expect("topic");
    assert_eq!(logged.len(), 4);
    assert_eq!(pv_workflow::project(&logged), live);
    wb.state.db.sql("TRUNCATE TABLE {signal_workflow}").execute().await.expect("truncate");
    assert_eq!(wb.state.workflow.catch_up().await.expect("catch up"), 4);
    let rebuilt =
        pv_workflow::project(&pv_dashboard::reads::workflow(&wb.state.db, None).await.expect("rows"));
    assert_eq!(rebuilt, live);
    assert_eq!(wb.state.workflow.catch_up().await.expect("again"), 0, "idempotent");

    // The forms carry the token as a field: a form without it is refused, with it recorded.
    let form = |csrf: &str| {
        vec![
            ("csrf", csrf.to_string()),
            ("signal_key", key.clone()),
            ("expected_sequence", "4".to_string()),
            ("action", "comment".to_string()),
            ("rationale", "seen on the form".to_string()),
        ]
    };
    let post_form = |fields: Vec<(&'static str, String)>| {
        officer.with_cookie(officer.http.post(format!("{base}/signals/act"))).form(&fields).send()
    };
    assert_eq!(post_form(form("forged")).await.expect("post").status(), StatusCode::FORBIDDEN);
    let res = post_form(form(&officer.csrf)).await.expect("post");
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.expect("page").contains("Recorded: comment"));

    // Sign-out ends the session (with its CSRF token).
    assert_eq!(officer.post("/api/v1/session/end", &json!({}), Some(&officer.csrf)).await.0, StatusCode::OK);
    assert_eq!(officer.get("/api/v1/session").await.0, StatusCode::UNAUTHORIZED);

    // Failed sign-ins are limited per user name and per address: after three failures for
    // `officer` from 127.0.0.2, the right password is refused from another address too, and
    // another user is refused from 127.0.0.2; a third address and user still sign in.
    let mut guesser = Client::from(base, std::net::Ipv4Addr::new(127, 0, 0, 2));
    for _ in 0..3 {
        assert_eq!(guesser.try_sign_in("officer", "wrong-password").await.0, StatusCode::UNAUTHORIZED);
    }
    let mut elsewhere = Client::from(base, std::net::Ipv4Addr::new(127, 0, 0, 3));
    let (status, body) = elsewhere.try_sign_in("officer", "officer-officer-officer").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "per user name: {body}");
    let (status, body) = guesser.try_sign_in("regulator", "regulator-regulator-regulator").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "per address: {body}");
    let mut third = Client::from(base, std::net::Ipv4Addr::new(127, 0, 0, 4));
    assert_eq!(third.try_sign_in("regulator", "regulator-regulator-regulator").await.0, StatusCode::OK);

    // A user removed from the users file loses their session at the next request.
    let mut users = pv_dashboard::Users::load(&cfg.users_file).expect("users");
    users.users.retain(|u| u.name != "officer2");
    users.save(&cfg.users_file).expect("save");
    assert_eq!(other_officer.get("/api/v1/session").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(regulator.get("/api/v1/session").await.0, StatusCode::OK);
    wb.shutdown.trigger();

    // Sessions end when idle.
    let short = serve(&env, DashboardConfig { session_idle_secs: 1, ..cfg }).await;
    let c = Client::sign_in(&short.base, "regulator").await;
    assert_eq!(c.get("/api/v1/session").await.0, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(c.get("/api/v1/session").await.0, StatusCode::UNAUTHORIZED);
    short.shutdown.trigger();
    env.cleanup().await;
}
