//! The production files of `deploy/production/`: `pv` loads their configuration (secrets from
//! the environment, never shown), and every Kubernetes manifest and the compose file parse and
//! fit together: each container runs a `pv` subcommand that exists with the mounted
//! configuration, gets every secret variable that configuration reads, and every file the
//! kustomization names exists.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::pv_binary;
use serde_norway::Value;

fn production() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/production")
}

/// The environment variables the production configuration reads its secrets from.
fn secret_variables(config: &str) -> BTreeSet<String> {
    config
        .lines()
        .filter_map(|l| l.split_once("{ env = \"")?.1.split_once('"').map(|(v, _)| v.to_owned()))
        .chain(config.lines().filter_map(|l| {
            let v = l.trim().strip_prefix("secret_env = \"")?;
            v.split_once('"').map(|(v, _)| v.to_owned())
        }))
        .collect()
}

#[test]
fn pv_loads_the_production_configuration_without_showing_its_secrets() {
    let config = production().join("pv.toml");
    let text = std::fs::read_to_string(&config).expect("pv.toml");
    let variables = secret_variables(&text);
    assert_eq!(
        variables.iter().map(String::as_str).collect::<Vec<_>>(),
        ["PV_CLICKHOUSE_PASSWORD", "PV_KAFKA_PASSWORD", "PV_PSEUDONYM_SECRET"]
    );
    let mut pv = Command::new(pv_binary());
    pv.arg("--config").arg(&config).arg("config");
    for v in &variables {
        pv.env(v, format!("secret-value-of-{v}"));
    }
    let out = pv.output().expect("pv runs");
    let shown = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{shown}");
    assert!(!shown.contains("secret-value-of-"), "a secret was shown:\n{shown}");
    for expected in [
        "replication_factor: 3",
        "min_insync_replicas: 2",
        "cluster: Some(\n            \"pv\"",
        "mechanism: ScramSha512",
        "secure_cookies: true",
    ] {
        assert!(shown.contains(expected), "`{expected}` not in:\n{shown}");
    }
    // Without its variables the configuration is refused, naming the variable.
    let out = Command::new(pv_binary()).arg("--config").arg(&config).arg("config").output().expect("pv runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains("`password`")
            && err.contains("PV_CLICKHOUSE_PASSWORD is not set"),
        "{err}"
    );
}

/// Every YAML document of `path`.
fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .collect()
}

use serde::Deserialize as _;

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

/// The subcommand words of a `pv` container's arguments (after `--config FILE`).
fn subcommand(args: &[Value]) -> Vec<String> {
    let args: Vec<&str> = args.iter().map(text).collect();
    assert_eq!(args.get(..2), Some(&["--config", "/etc/pv/pv.toml"][..]), "{args:?}");
    args[2..].iter().map(|s| (*s).to_owned()).collect()
}

/// `pv WORDS --help` succeeds: the subcommand exists.
fn assert_pv_subcommand(words: &[String]) {
    let out = Command::new(pv_binary()).args(words).arg("--help").output().expect("pv runs");
    assert!(out.status.success(), "`pv {}` is not a subcommand", words.join(" "));
}

#[test]
fn the_kubernetes_manifests_parse_and_fit_the_configuration() {
    let root = production();
    let config = std::fs::read_to_string(root.join("pv.toml")).expect("pv.toml");
    let kustomization = documents(&root.join("kustomization.yaml")).remove(0);
    let resources = kustomization["resources"].as_sequence().expect("resources");
    for generated in kustomization["configMapGenerator"].as_sequence().expect("generator") {
        for file in generated["files"].as_sequence().expect("files") {
            let file = text(file).rsplit('=').next().unwrap_or_default();
            assert!(root.join(file).is_file(), "the ConfigMap's {file} exists");
        }
    }
    let mut kinds = Vec::new();
    for resource in resources {
        for doc in documents(&root.join(text(resource))) {
            let (kind, name) = (text(&doc["kind"]), text(&doc["metadata"]["name"]));
            assert!(!text(&doc["apiVersion"]).is_empty() && !name.is_empty(), "{doc:?}");
            kinds.push(format!("{kind}/{name}"));
            let pod = &doc["spec"]["template"]["spec"];
            let containers = pod["containers"].as_sequence().into_iter().flatten();
            for container in containers.chain(pod["initContainers"].as_sequence().into_iter().flatten()) {
                assert_eq!(text(&container["image"]), "pv", "{name}: the image the kustomization pins");
                let words = subcommand(container["args"].as_sequence().expect("args"));
                assert_pv_subcommand(&words);
                let env: BTreeSet<&str> =
                    container["env"].as_sequence().expect("env").iter().map(|e| text(&e["name"])).collect();
                let needed: BTreeSet<String> = secret_variables(&config)
                    .into_iter()
                    .filter(|v| v != "PV_PSEUDONYM_SECRET" || words[0] == "enrich")
                    .collect();
                for v in &needed {
                    assert!(env.contains(v.as_str()), "{name}/{}: {v} is not set", text(&container["name"]));
                }
                let mounts: Vec<&str> = container["volumeMounts"]
                    .as_sequence()
                    .expect("mounts")
                    .iter()
                    .map(|m| text(&m["mountPath"]))
                    .collect();
                assert!(
                    mounts.contains(&"/etc/pv/pv.toml") && mounts.contains(&"/etc/pv/tls"),
                    "{name}: {mounts:?}"
                );
            }
        }
    }
    for expected in [
        "Deployment/pv-gateway",
        "StatefulSet/pv-enrich",
        "Deployment/pv-sink",
        "Deployment/pv-signals",
        "Deployment/pv-dashboard",
        "Job/pv-setup",
    ] {
        assert!(kinds.iter().any(|k| k == expected), "{expected} in {kinds:?}");
    }
}

#[test]
fn the_compose_file_parses_and_runs_pv_subcommands() {
    let root = production();
    let compose = documents(&root.join("compose.yaml")).remove(0);
    let services = compose["services"].as_mapping().expect("services");
    let mut names = Vec::new();
    for (name, service) in services {
        let name = text(name);
        names.push(name.to_owned());
        if let Some(command) = service["command"].as_sequence() {
            assert_pv_subcommand(&command.iter().map(|c| text(c).to_owned()).collect::<Vec<_>>());
        }
    }
    assert_eq!(names, ["setup", "gateway", "enrich", "sink", "signals", "dashboard"]);
    // Every service mounts the one production configuration (through the shared anchor).
    let anchor = &compose["x-pv"];
    let volumes: Vec<&str> = anchor["volumes"].as_sequence().expect("volumes").iter().map(text).collect();
    assert!(volumes.contains(&"./pv.toml:/etc/pv/pv.toml:ro"), "{volumes:?}");
    assert!(root.join("Dockerfile").is_file());
}
