//! The report of `scripts/bench-peers.sh`: reads the JSON lines every run printed (the
//! in-process contenders', and the ones the script writes for pgbench and wrk) and prints
//! every round's figures, the medians, the ratios to raw INSERT and to the peers, the
//! budgets of DESIGN.md, the stream-length curve and the memory samples.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::support::{budget_line, group, info_line, median, Goal};

/// The contenders in report order: (name in the JSON lines, what it is).
pub const CONTENDERS: &[(&str, &str)] = &[
    ("raw-insert", "raw single-row INSERT commits (pgbench)"),
    (
        "raw-insert10",
        "raw 10-row INSERT commits (pgbench; transactions/s, 10 rows each)",
    ),
    (
        "message-db",
        "Message DB: get_stream_messages + write_message(expected_version)",
    ),
    (
        "message-db-known",
        "Message DB: write_message at a known version",
    ),
    ("cqrs-es", "cqrs-es + postgres-es: CqrsFramework::execute"),
    (
        "agora-append",
        "Agora: EventStore::append at a known version",
    ),
    (
        "agora-append-grouped",
        "Agora: EventStore::append at a known version, group commit",
    ),
    (
        "agora-command",
        "Agora: command path in-process (cache, decide, append; group commit)",
    ),
    (
        "agora-command-solo",
        "Agora: command path in-process, one commit per command",
    ),
    ("agora-http", "Agora: command-api over HTTP (wrk)"),
];

/// One contender's run in one round.
#[derive(Debug, Clone, PartialEq)]
pub struct RunFigures {
    pub round: u64,
    pub contender: String,
    pub rate: f64,
    pub p50: f64,
    pub p99: f64,
    /// Anything worth a note (conflicts, non-2xx answers, CPU).
    pub notes: String,
}

impl RunFigures {
    /// The figures of a `"bench": "peers"` line.
    pub fn parse(line: &Value) -> Option<RunFigures> {
        if line.get("bench")?.as_str()? != "peers" {
            return None;
        }
        let number = |path: &[&str]| {
            path.iter()
                .try_fold(line, |v, key| v.get(key))
                .and_then(Value::as_f64)
        };
        let mut notes = Vec::new();
        for (key, label) in [
            ("conflicts", "conflicts"),
            ("non_2xx", "non-2xx"),
            ("socket_errors", "socket errors"),
        ] {
            if let Some(n) = number(&[key]).filter(|n| *n > 0.0) {
                notes.push(format!("{n:.0} {label}"));
            }
        }
        for (key, label) in [
            ("wrk_cpu_seconds", "wrk CPU"),
            ("server_cpu_seconds", "command-api CPU"),
            ("bench_process_cpu_seconds", "client process CPU"),
        ] {
            if let Some(s) = number(&[key]).filter(|s| s.is_finite()) {
                notes.push(format!("{label} {s:.1} s"));
            }
        }
        Some(RunFigures {
            round: number(&["round"])? as u64,
            contender: line.get("contender")?.as_str()?.to_owned(),
            rate: number(&["commands_per_sec"])?,
            p50: number(&["latency_ms", "p50"]).unwrap_or(f64::NAN),
            p99: number(&["latency_ms", "p99"]).unwrap_or(f64::NAN),
            notes: notes.join(", "),
        })
    }
}

/// Every `"bench": "peers"` run in `lines` (one JSON document per line; others skipped).
pub fn runs(lines: &[Value]) -> Vec<RunFigures> {
    lines.iter().filter_map(RunFigures::parse).collect()
}

/// `a / b` per round where both ran, in round order.
pub fn ratios(runs: &[RunFigures], a: &str, b: &str) -> Vec<f64> {
    let rate = |name: &str| -> BTreeMap<u64, f64> {
        runs.iter()
            .filter(|r| r.contender == name)
            .map(|r| (r.round, r.rate))
            .collect()
    };
    let (a, b) = (rate(a), rate(b));
    a.iter()
        .filter_map(|(round, x)| b.get(round).filter(|y| **y > 0.0).map(|y| x / y))
        .collect()
}

fn list(values: &[f64], digits: usize) -> String {
    values
        .iter()
        .map(|v| format!("{v:.digits$}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Prints the peers' tables and budget lines.
pub fn print_peers(runs: &[RunFigures], load: &str) {
    if runs.is_empty() {
        return;
    }
    println!("== every run (commands/s; latency over the commands of the measured window)");
    println!("| round | contender | commands/s | p50 ms | p99 ms | vs raw INSERT | notes |");
    println!("|---|---|---:|---:|---:|---:|---|");
    let mut rounds: Vec<u64> = runs.iter().map(|r| r.round).collect();
    rounds.sort_unstable();
    rounds.dedup();
    for round in &rounds {
        let raw = runs
            .iter()
            .find(|r| r.round == *round && r.contender == "raw-insert")
            .map(|r| r.rate);
        for (name, _) in CONTENDERS {
            for run in runs
                .iter()
                .filter(|r| r.round == *round && r.contender == *name)
            {
                let vs_raw = raw
                    .filter(|raw| *raw > 0.0)
                    .map(|raw| format!("{:.2}", run.rate / raw))
                    .unwrap_or_else(|| "-".into());
                println!(
                    "| {round} | {name} | {} | {:.2} | {:.2} | {vs_raw} | {} |",
                    group(run.rate),
                    run.p50,
                    run.p99,
                    run.notes
                );
            }
        }
    }
    println!();
    println!("== medians over the rounds (ratios: the median of the per-round ratios)");
    println!("| contender | what | commands/s | p50 ms | p99 ms | vs raw INSERT |");
    println!("|---|---|---:|---:|---:|---:|");
    for (name, what) in CONTENDERS {
        let mine: Vec<&RunFigures> = runs.iter().filter(|r| r.contender == *name).collect();
        if mine.is_empty() {
            continue;
        }
        let pick =
            |f: fn(&RunFigures) -> f64| median(&mine.iter().map(|r| f(r)).collect::<Vec<_>>());
        let vs_raw = median(&ratios(runs, name, "raw-insert"));
        println!(
            "| {name} | {what} | {} | {:.2} | {:.2} | {} |",
            group(pick(|r| r.rate)),
            pick(|r| r.p50),
            pick(|r| r.p99),
            if vs_raw.is_nan() {
                "-".into()
            } else {
                format!("{vs_raw:.2}")
            }
        );
    }
    println!();
    println!("== Agora / peer, per round [..] and median");
    let peers = ["raw-insert", "message-db", "message-db-known", "cqrs-es"];
    for ours in [
        "agora-append",
        "agora-append-grouped",
        "agora-command",
        "agora-command-solo",
        "agora-http",
    ] {
        for peer in peers {
            let per_round = ratios(runs, ours, peer);
            if !per_round.is_empty() {
                println!(
                    "  {ours:<20} / {peer:<16} [{}]  median {:.2}",
                    list(&per_round, 2),
                    median(&per_round)
                );
            }
        }
    }
    println!();
    let budget = |what: &str, a: &str, b: &str, at_least: f64| {
        let per_round = ratios(runs, a, b);
        if !per_round.is_empty() {
            budget_line(what, median(&per_round), "x", Goal::AtLeast, at_least, load);
        }
    };
    budget(
        "command path (in-process) / cqrs-es + postgres-es",
        "agora-command",
        "cqrs-es",
        3.0,
    );
    budget(
        "command path (in-process) / Message DB write_message (load + write)",
        "agora-command",
        "message-db",
        2.0,
    );
    budget(
        "append at a known version / raw single-row INSERT",
        "agora-append",
        "raw-insert",
        0.5,
    );
    budget(
        "append through group commit / raw single-row INSERT",
        "agora-append-grouped",
        "raw-insert",
        2.0,
    );
    let http: Vec<f64> = runs
        .iter()
        .filter(|r| r.contender == "agora-http")
        .map(|r| r.rate)
        .collect();
    if !http.is_empty() {
        budget_line(
            "command API over HTTP, single-event restocks",
            median(&http),
            "commands/s",
            Goal::AtLeast,
            5_000.0,
            load,
        );
    }
    let known = ratios(runs, "agora-append", "message-db-known");
    if !known.is_empty() {
        info_line(
            "append at a known version / Message DB at a known version",
            &format!("{:.2} x", median(&known)),
            load,
        );
    }
}

/// Prints the stream-length curve and its budget line.
pub fn print_curve(lines: &[Value], load: &str) {
    let points: Vec<&Value> = lines
        .iter()
        .filter(|l| l.get("bench").and_then(Value::as_str) == Some("peers-curve"))
        .collect();
    if points.is_empty() {
        return;
    }
    let p50 = |v: &Value| {
        v.pointer("/latency_ms/p50")
            .and_then(Value::as_f64)
            .unwrap_or(f64::NAN)
    };
    let first = p50(points[0]);
    println!("== stream-length curve: sequential restocks through command-api (one client)");
    println!("| events in the stream | products | restocks | p50 ms | p90 ms | p99 ms | max ms | p50 / p50 at the shortest |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for point in &points {
        let f = |key: &str| {
            point
                .pointer(key)
                .and_then(Value::as_f64)
                .unwrap_or(f64::NAN)
        };
        println!(
            "| {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
            group(f("/length")),
            f("/products"),
            f("/restocks"),
            p50(point),
            f("/latency_ms/p90"),
            f("/latency_ms/p99"),
            f("/latency_ms/max"),
            p50(point) / first
        );
    }
    if let Some(last) = points.last() {
        let from = points[0].get("length").and_then(Value::as_u64).unwrap_or(0);
        let to = last.get("length").and_then(Value::as_u64).unwrap_or(0);
        println!();
        budget_line(
            &format!(
                "restock p50 at {} events / at {} events",
                group(to as f64),
                group(from as f64)
            ),
            p50(last) / first,
            "x",
            Goal::Below,
            1.5,
            load,
        );
    }
}

/// Prints the memory samples.
pub fn print_memory(lines: &[Value]) {
    for line in lines
        .iter()
        .filter(|l| l.get("bench").and_then(Value::as_str) == Some("peers-memory"))
    {
        let f = |v: &Value, key: &str| v.pointer(key).and_then(Value::as_f64).unwrap_or(f64::NAN);
        println!(
            "== memory: command-api's resident memory while it touched {} of {} streams ({:.0} s, {}/s, {} failed{})",
            group(f(line, "/touched")),
            group(f(line, "/streams")),
            f(line, "/seconds"),
            group(f(line, "/restocks_per_sec")),
            f(line, "/failed"),
            if line.get("cut_short").and_then(Value::as_bool) == Some(true) {
                ", stopped at the time limit"
            } else {
                ""
            }
        );
        println!("| when | VmRSS MiB | VmHWM MiB |");
        println!("|---|---:|---:|");
        let row = |when: &str, v: &Value| {
            println!(
                "| {when} | {:.1} | {:.1} |",
                f(v, "/rss_mib"),
                f(v, "/hwm_mib")
            );
        };
        if let Some(before) = line.get("before") {
            row("before (products created, idle)", before);
        }
        for sample in line
            .get("during")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            row(
                &format!(
                    "after {} restocks ({:.0} s)",
                    group(f(sample, "/touched")),
                    f(sample, "/seconds")
                ),
                sample,
            );
        }
        if let Some(after) = line.get("after") {
            row("right after the last", after);
        }
        if let Some(settled) = line.get("after_5s_idle") {
            row("5 s later", settled);
        }
        if let Some(cache) = line.get("cache_mb").and_then(Value::as_f64) {
            println!("(AGORA_STATE_CACHE_MB={cache:.0} in its environment)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(round: u64, contender: &str, rate: f64) -> Value {
        json!({ "bench": "peers", "round": round, "contender": contender,
                "commands_per_sec": rate, "latency_ms": { "p50": 1.0, "p99": 2.0 } })
    }

    #[test]
    fn per_round_ratios_pair_the_same_round() {
        let lines = vec![
            run(1, "raw-insert", 1000.0),
            run(1, "agora-append", 600.0),
            run(2, "raw-insert", 2000.0),
            run(2, "agora-append", 800.0),
            run(3, "agora-append", 900.0),
            json!({ "bench": "peers-curve", "length": 10 }),
        ];
        let runs = runs(&lines);
        assert_eq!(runs.len(), 5);
        assert_eq!(ratios(&runs, "agora-append", "raw-insert"), [0.6, 0.4]);
        assert!(ratios(&runs, "agora-append", "cqrs-es").is_empty());
    }

    #[test]
    fn notes_name_what_went_wrong_and_the_cpu() {
        let mut line = run(1, "agora-http", 5000.0);
        line["non_2xx"] = json!(3);
        line["wrk_cpu_seconds"] = json!(4.31);
        let figures = RunFigures::parse(&line).unwrap();
        assert_eq!(figures.notes, "3 non-2xx, wrk CPU 4.3 s");
    }
}
