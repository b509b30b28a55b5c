//! The operators' files, checked by the real tools: `promtool` (Prometheus's own checker,
//! built from the Go module proxy by scripts/tools.sh) checks deploy/prometheus/ and runs
//! the alerts' unit tests; the Grafana dashboard is checked for structure, its every query
//! is parsed by promtool, and every metric it or an alert names is one the code exports;
//! docker-compose.yml runs both, wired to these files and to the replicas' /metrics.
//!
//! `AGORA_PROMTOOL` names promtool (default: ~/.cache/agora/go/bin/promtool). Without it
//! the test fails, it never skips.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_path_buf()
}

/// `$AGORA_PROMTOOL` (scripts/test.sh sets it), else `promtool` on the PATH (Debian's
/// prometheus package), else the Go build scripts/tools.sh caches as a fallback.
fn promtool() -> PathBuf {
    if let Some(path) = std::env::var_os("AGORA_PROMTOOL") {
        return PathBuf::from(path);
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("promtool"))
            .find(|candidate| candidate.is_file())
    });
    on_path.unwrap_or_else(|| {
        let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
        Path::new(&home).join(".cache/agora/go/bin/promtool")
    })
}

/// Runs promtool in `dir`; panics with its output unless it succeeds.
fn run_promtool(dir: &Path, args: &[&str]) -> String {
    let tool = promtool();
    let output = Command::new(&tool)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|error| {
            panic!(
                "cannot run {} ({error}): scripts/tools.sh promtool builds it",
                tool.display()
            )
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "promtool {args:?}:\n{text}");
    text
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(root().join(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

/// The metric names a PromQL expression uses (identifiers of Agora's naming forms).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut word = String::new();
    for c in expr.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
            continue;
        }
        let metric = [
            "_total",
            "_seconds",
            "_bucket",
            "_events",
            "_leader",
            "_commands",
        ]
        .iter()
        .any(|suffix| word.ends_with(suffix));
        // Label matchers (`status=`) and `by (...)` lists hold label names, not metrics.
        if metric && c != '=' && c != '!' {
            names.insert(word.trim_end_matches("_bucket").to_owned());
        }
        word.clear();
    }
    names
}

/// Every Rust source of the workspace, for "does the code export this metric".
fn sources() -> String {
    let mut text = String::new();
    let mut dirs = vec![root()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("a directory").flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().to_string();
            if path.is_dir() && !name.starts_with('.') && name != "target" && name != "tests" {
                dirs.push(path);
            } else if name.ends_with(".rs") && path.to_string_lossy().contains("/src/") {
                text.push_str(&std::fs::read_to_string(&path).unwrap_or_default());
            }
        }
    }
    text
}

fn assert_exported(names: &BTreeSet<String>, sources: &str, what: &str) {
    for name in names {
        assert!(
            is_exported(name, sources),
            "{what} uses {name}, which no service exports"
        );
    }
}

/// Whether `name` appears as a metric name literal, or is made of a prefix literal and a
/// `format!("{prefix}_…")` suffix (the log follower's metrics: `relay_lag_seconds`, …).
fn is_exported(name: &str, sources: &str) -> bool {
    if sources.contains(&format!("\"{name}\"")) {
        return true;
    }
    name.match_indices('_').any(|(at, _)| {
        let (prefix, rest) = name.split_at(at);
        sources.contains(&format!("\"{prefix}\"")) && sources.contains(&format!("{{prefix}}{rest}"))
    })
}

#[test]
fn prometheus_config_and_alerts_pass_promtool_and_their_unit_tests() {
    let dir = root().join("deploy/prometheus");
    let rules = run_promtool(&dir, &["check", "rules", "alerts.yml"]);
    assert!(rules.contains("SUCCESS"), "{rules}");
    run_promtool(&dir, &["check", "config", "prometheus.yml"]);
    let tests = run_promtool(&dir, &["test", "rules", "alerts.test.yml"]);
    assert!(tests.contains("SUCCESS"), "{tests}");

    // Every alert has a severity and says what happened; its metrics exist.
    let alerts: serde_yaml::Value =
        serde_yaml::from_str(&read("deploy/prometheus/alerts.yml")).expect("YAML");
    let sources = sources();
    let mut names = BTreeSet::new();
    for group in alerts["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            let alert = rule["alert"].as_str().expect("an alerting rule");
            names.insert(alert.to_owned());
            let severity = rule["labels"]["severity"].as_str().unwrap_or_default();
            assert!(
                ["critical", "warning", "info"].contains(&severity),
                "{alert}: severity {severity:?}"
            );
            for annotation in ["summary", "description"] {
                assert!(
                    rule["annotations"][annotation].is_string(),
                    "{alert}: {annotation}"
                );
            }
            let expr = rule["expr"].as_str().expect("expr");
            assert_exported(&metric_names(expr), &sources, alert);
        }
    }
    for needed in [
        "AgoraServiceDown",
        "AgoraHighServerErrorRate",
        "AgoraCommandsFailing",
        "AgoraRelayLagging",
        "AgoraProjectionLagging",
        "AgoraPoisonEvents",
        "AgoraLongOpenTransaction",
        "AgoraNoSequencer",
    ] {
        assert!(names.contains(needed), "no alert {needed}");
    }
}

#[test]
fn the_grafana_dashboard_is_well_formed_and_its_queries_parse() {
    let dashboard: Value =
        serde_json::from_str(&read("deploy/grafana/dashboards/agora.json")).expect("JSON");
    assert_eq!(dashboard["uid"], "agora-overview");
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    let mut cells = BTreeSet::new();
    let mut exprs = Vec::new();
    for panel in panels {
        let id = panel["id"].as_u64().expect("a numeric id");
        assert!(ids.insert(id), "panel id {id} twice");
        let grid = &panel["gridPos"];
        let [x, y, w, h] = ["x", "y", "w", "h"].map(|k| grid[k].as_u64().expect("gridPos"));
        assert!(w > 0 && h > 0 && x + w <= 24, "panel {id}: {grid}");
        for cx in x..x + w {
            for cy in y..y + h {
                assert!(
                    cells.insert((cx, cy)),
                    "panel {id} overlaps another at {cx},{cy}"
                );
            }
        }
        if panel["type"] == "row" {
            continue;
        }
        assert!(panel["title"].as_str().is_some_and(|t| !t.is_empty()));
        assert_eq!(panel["datasource"]["uid"], "agora-prometheus", "panel {id}");
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {id} has no query");
        for target in targets {
            exprs.push(target["expr"].as_str().expect("expr").to_owned());
        }
    }
    let titles: Vec<&str> = panels.iter().filter_map(|p| p["title"].as_str()).collect();
    for needed in [
        "Request rate by route",
        "Latency p99 by route",
        "Command outcomes",
        "Relay lag",
        "Projection lag",
        "Projected events and poison events",
        "Oldest open transaction",
    ] {
        assert!(titles.contains(&needed), "no panel {needed}");
    }

    // The datasource it names is the provisioned one.
    let datasources = read("deploy/grafana/provisioning/datasources/prometheus.yml");
    assert!(datasources.contains("uid: agora-prometheus"));
    assert!(datasources.contains("url: http://prometheus:9090"));

    // Every query parses (Prometheus's own parser, through promtool on recording rules
    // made of them, with Grafana's variables filled in), and names exported metrics.
    let sources = sources();
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (index, expr) in exprs.iter().enumerate() {
        assert_exported(&metric_names(expr), &sources, "the dashboard");
        let concrete = expr.replace("$__rate_interval", "5m").replace("$job", ".*");
        rules.push_str(&format!(
            "      - record: dashboard:query_{index}\n        expr: {}\n",
            serde_json::to_string(&concrete).expect("a JSON string is a YAML string")
        ));
    }
    let dir = std::env::temp_dir().join(format!("agora-dashboard-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    std::fs::write(dir.join("dashboard-rules.yml"), rules).expect("written");
    let checked = run_promtool(&dir, &["check", "rules", "dashboard-rules.yml"]);
    assert!(
        checked.contains(&format!("SUCCESS: {} rules found", exprs.len())),
        "{checked}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn compose_runs_prometheus_and_grafana_wired_to_the_replicas() {
    let compose: serde_yaml::Value =
        serde_yaml::from_str(&read("docker-compose.yml")).expect("YAML");
    let services = &compose["services"];
    let mounts = |service: &str| -> Vec<String> {
        services[service]["volumes"]
            .as_sequence()
            .map(|v| {
                v.iter()
                    .filter_map(|m| m.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert!(mounts("prometheus").contains(&"./deploy/prometheus:/etc/prometheus:ro".into()));
    let grafana = mounts("grafana");
    assert!(grafana.contains(&"./deploy/grafana/provisioning:/etc/grafana/provisioning:ro".into()));
    assert!(grafana.contains(&"./deploy/grafana/dashboards:/var/lib/grafana/dashboards:ro".into()));

    // Each scrape target is a service listening on that port.
    let prometheus: serde_yaml::Value =
        serde_yaml::from_str(&read("deploy/prometheus/prometheus.yml")).expect("YAML");
    let mut scraped = BTreeSet::new();
    for job in prometheus["scrape_configs"].as_sequence().expect("jobs") {
        for target in job["static_configs"][0]["targets"]
            .as_sequence()
            .expect("targets")
        {
            let target = target.as_str().expect("host:port");
            let (host, port) = target.split_once(':').expect("host:port");
            let service = &services[host];
            assert!(service.is_mapping(), "{target}: no such service");
            let environment = serde_yaml::to_string(&service["environment"]).unwrap_or_default();
            let listens = format!("0.0.0.0:{port}");
            assert!(
                environment.contains(&listens),
                "{target}: the service does not listen on {port}"
            );
            scraped.insert(host.to_owned());
        }
    }
    for replica in [
        "command-api-1",
        "command-api-2",
        "query-api-1",
        "query-api-2",
        "projector-1",
        "projector-2",
    ] {
        assert!(scraped.contains(replica), "{replica} is not scraped");
    }
}

#[test]
fn metric_names_are_found_in_expressions() {
    let names = metric_names(
        "sum by (job, route, le) (rate(http_request_duration_seconds_bucket{route!~\"x\"}[5m])) / max(relay_lag_seconds)",
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["http_request_duration_seconds", "relay_lag_seconds"]
    );
}
