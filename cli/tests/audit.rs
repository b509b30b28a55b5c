//! `agora audit export` and `agora audit verify` against a real PostgreSQL, with the
//! independent Python verifier (scripts/verify_chain.py) checked against the same exports.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use eventstore::envelope::to_json_line;
use eventstore::LogCheckpoint;
use serde_json::{json, Value};
use support::{agora, exit_code, filled_log, python_verify, report, Scratch};
use uuid::Uuid;

fn export(url: &str, extra: &[&str], out: &Path) -> Vec<u8> {
    let out_arg = out.to_str().expect("utf-8 path");
    let mut args = vec!["audit", "export", "--database-url", url, "--out", out_arg];
    args.extend_from_slice(extra);
    let output = agora(&args);
    assert_eq!(
        exit_code(&output),
        0,
        "export failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.stdout.is_empty(), "--out leaves stdout empty");
    std::fs::read(out).expect("the export file exists")
}

fn verify_file(file: &Path, extra: &[&str]) -> (i32, Value) {
    let mut args = vec![
        "audit",
        "verify",
        "--file",
        file.to_str().expect("utf-8 path"),
    ];
    args.extend_from_slice(extra);
    let output = agora(&args);
    (exit_code(&output), report(&output))
}

fn verify_live(url: &str, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["audit", "verify", "--database-url", url];
    args.extend_from_slice(extra);
    let output = agora(&args);
    (exit_code(&output), report(&output))
}

fn verify_python(file: &Path) -> (i32, Value) {
    let output = python_verify(file);
    (exit_code(&output), report(&output))
}

fn last_position(export: &[u8]) -> i64 {
    let text = std::str::from_utf8(export).expect("utf-8 export");
    let last = text.lines().last().expect("a non-empty page");
    serde_json::from_str::<Value>(last).expect("a JSON line")["position"]
        .as_i64()
        .expect("a position")
}

/// The report of an intact log none of whose events was sequenced yet (no sequencer runs
/// here: the tree is empty).
fn ok_report(streams: u64, events: u64) -> Value {
    json!({"ok": true, "streams_checked": streams, "events_checked": events, "failures": [],
           "tree_size": 0, "root_hash": EMPTY_ROOT})
}

/// The report of one intact stream (`--stream-id`: the chain only, no tree).
fn ok_stream_report(events: u64) -> Value {
    json!({"ok": true, "streams_checked": 1, "events_checked": events, "failures": []})
}

/// SHA-256 of nothing: the root of the empty tree.
const EMPTY_ROOT: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

#[tokio::test]
async fn export_pages_verify_and_detect_a_tampered_payload() -> anyhow::Result<()> {
    let log = filled_log().await?;
    let url = log.db.url.as_str();
    let scratch = Scratch::new();

    // The whole log, exactly the API's lines in log order.
    let whole = export(url, &[], &scratch.path("whole.ndjson"));
    let events = log.db.store.read_log(LogCheckpoint::START, 10_000).await?;
    let mut expected = String::new();
    for event in &events {
        expected.push_str(&to_json_line(event)?);
        expected.push('\n');
    }
    assert_eq!(events.len() as u64, log.events);
    assert_eq!(String::from_utf8(whole.clone())?, expected);

    // To stdout, and with tiny database pages: the same bytes.
    let stdout = agora(&["audit", "export", "--database-url", url, "--page-size", "3"]);
    assert_eq!(exit_code(&stdout), 0);
    assert_eq!(stdout.stdout, whole);
    let dash = agora(&["audit", "export", "--database-url", url, "--out", "-"]);
    assert_eq!(exit_code(&dash), 0);
    assert_eq!(dash.stdout, whole, "--out - is stdout");
    assert!(!Path::new("-.partial").exists() && !Path::new("-").exists());

    // Piped into the verifier, which reads stdin with --file -.
    let mut exporting = Command::new(env!("CARGO_BIN_EXE_agora"))
        .args(["audit", "export", "--database-url", url, "--out", "-"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let piped = exporting.stdout.take().expect("the export's stdout");
    let verified = Command::new(env!("CARGO_BIN_EXE_agora"))
        .args(["audit", "verify", "--file", "-"])
        .stdin(piped)
        .output()?;
    assert_eq!(
        (exit_code(&verified), report(&verified)),
        (0, ok_report(log.streams, log.events))
    );
    assert!(exporting.wait()?.success());

    // Paged with --after/--limit: the pages concatenate to the whole.
    let mut paged = Vec::new();
    let mut after: Option<i64> = None;
    for page_number in 0.. {
        assert!(page_number < 100, "paging does not end");
        let after_arg = after.map(|p| p.to_string()).unwrap_or_else(|| "0".into());
        let page = export(
            url,
            &["--after", &after_arg, "--limit", "4"],
            &scratch.path(&format!("page-{page_number}.ndjson")),
        );
        if page.is_empty() {
            break;
        }
        assert!(page.iter().filter(|b| **b == b'\n').count() <= 4);
        after = Some(last_position(&page));
        paged.extend_from_slice(&page);
    }
    assert_eq!(paged, whole);

    // The chain holds: file, live store and the independent verifier agree.
    let file = scratch.path("whole.ndjson");
    let ok = ok_report(log.streams, log.events);
    assert_eq!(verify_file(&file, &[]), (0, ok.clone()));
    assert_eq!(verify_live(url, &[]), (0, ok.clone()));
    assert_eq!(verify_python(&file), (0, ok));

    // One stream only.
    let order = log.order.to_string();
    assert_eq!(
        verify_file(&file, &["--stream-id", &order]),
        (0, ok_stream_report(2))
    );
    assert_eq!(
        verify_live(url, &["--stream-id", &order]),
        (0, ok_stream_report(2))
    );

    // Alter one stored payload behind the store's back.
    let tampered_stream = log.products[1];
    let tampered_version = 3_i64;
    let client = eventstore::testing::attacker_session(url).await?;
    let changed = client
        .execute(
            "UPDATE events SET payload = jsonb_set(payload, '{quantity}', '500') \
             WHERE stream_id = $1 AND version = $2",
            &[&tampered_stream, &tampered_version],
        )
        .await?;
    assert_eq!(changed, 1);

    let tampered = scratch.path("tampered.ndjson");
    let tampered_bytes = export(url, &[], &tampered);
    assert_ne!(tampered_bytes, whole);
    for (code, report) in [
        verify_file(&tampered, &[]),
        verify_live(url, &[]),
        verify_python(&tampered),
    ] {
        assert_eq!(code, 1, "{report}");
        assert_eq!(report["ok"], false);
        assert_eq!(report["streams_checked"], log.streams);
        assert_eq!(report["events_checked"], log.events);
        let failures = report["failures"].as_array().expect("failures");
        assert_eq!(failures.len(), 1, "{report}");
        assert_eq!(failures[0]["stream_id"], tampered_stream.to_string());
        assert_eq!(failures[0]["version"], tampered_version);
        let reason = failures[0]["reason"].as_str().expect("a reason");
        assert!(reason.contains("does not match the recomputed"), "{reason}");
    }
    // Another stream still verifies on its own.
    assert_eq!(
        verify_file(&tampered, &["--stream-id", &order]),
        (0, ok_stream_report(2))
    );
    Ok(())
}

#[tokio::test]
async fn damaged_export_lines_are_failures_with_their_line_number() -> anyhow::Result<()> {
    let log = filled_log().await?;
    let scratch = Scratch::new();
    let whole = export(&log.db.url, &[], &scratch.path("whole.ndjson"));
    let lines: Vec<&[u8]> = whole.split_inclusive(|b| *b == b'\n').collect();
    let count = lines.len();

    let mut cases: Vec<(&str, Vec<u8>, usize)> = Vec::new();
    // The last line cut in the middle (an interrupted copy).
    let mut truncated: Vec<u8> = lines[..count - 1].concat();
    truncated.extend_from_slice(&lines[count - 1][..lines[count - 1].len() / 2]);
    cases.push(("truncated", truncated, count));
    // A line replaced by garbage.
    let mut garbled = lines.clone();
    garbled[4] = b"{\"stream_id\": oops this is not json\n";
    cases.push(("garbled", garbled.concat(), 5));
    // A line that is not UTF-8.
    let mut binary = lines.clone();
    binary[2] = b"\xff\xfe\x00 binary\n";
    cases.push(("not utf-8", binary.concat(), 3));
    // Valid JSON, but not an envelope (a field missing).
    let mut partial_line: Value = serde_json::from_slice(lines[6])?;
    partial_line
        .as_object_mut()
        .expect("an object")
        .remove("metadata");
    let partial_line = format!("{partial_line}\n").into_bytes();
    let mut missing = lines.clone();
    missing[6] = &partial_line;
    cases.push(("missing field", missing.concat(), 7));

    // The same instant, spelled differently from what was hashed.
    let respelled_line = String::from_utf8(lines[8].to_vec())?.replacen("Z\",", "+00:00\",", 1);
    assert_ne!(respelled_line.as_bytes(), lines[8]);
    let mut respelled = lines.clone();
    respelled[8] = respelled_line.as_bytes();
    cases.push(("respelled occurred_at", respelled.concat(), 9));

    for (name, bytes, line_number) in cases {
        let file = scratch.path(&format!("{}.ndjson", name.replace(' ', "-")));
        std::fs::write(&file, &bytes)?;
        for (verifier, (code, report)) in [
            ("agora", verify_file(&file, &[])),
            ("python", verify_python(&file)),
        ] {
            assert_eq!(code, 1, "{name}, {verifier}: {report}");
            assert_eq!(report["ok"], false, "{name}, {verifier}");
            let failures = report["failures"].as_array().expect("failures");
            let prefix = format!("line {line_number}: ");
            assert!(
                failures
                    .iter()
                    .any(|f| f["reason"].as_str().is_some_and(|r| r.starts_with(&prefix))),
                "{name}, {verifier}: no failure names line {line_number}: {report}"
            );
        }
    }

    // An export that is not even there is an error (exit 2), not a report.
    let missing_file = agora(&["audit", "verify", "--file", "/nonexistent/export.ndjson"]);
    assert_eq!(exit_code(&missing_file), 2);
    Ok(())
}

#[tokio::test]
async fn reordered_or_dropped_events_break_the_chain() -> anyhow::Result<()> {
    let log = filled_log().await?;
    let scratch = Scratch::new();
    let whole = export(&log.db.url, &[], &scratch.path("whole.ndjson"));
    let lines: Vec<&[u8]> = whole.split_inclusive(|b| *b == b'\n').collect();
    let versions: Vec<(String, i64)> = lines
        .iter()
        .map(|line| {
            let value: Value = serde_json::from_slice(line).expect("json");
            (
                value["stream_id"].as_str().expect("id").to_owned(),
                value["version"].as_i64().expect("version"),
            )
        })
        .collect();
    // Drop the first event of the order's stream that is not its last.
    let order = log.order.to_string();
    let dropped = versions
        .iter()
        .position(|(id, v)| *id == order && *v == 1)
        .expect("the order's first event");
    let mut without = lines.clone();
    without.remove(dropped);
    let file = scratch.path("dropped.ndjson");
    std::fs::write(&file, without.concat())?;
    for (code, report) in [verify_file(&file, &[]), verify_python(&file)] {
        assert_eq!(code, 1, "{report}");
        let failures = report["failures"].as_array().expect("failures");
        assert_eq!(failures.len(), 1, "{report}");
        assert_eq!(failures[0]["stream_id"], order);
        assert_eq!(failures[0]["version"], 2);
        let reason = failures[0]["reason"].as_str().expect("reason");
        assert!(reason.contains("expected version 1, found 2"), "{reason}");
    }
    Ok(())
}

#[tokio::test]
async fn an_unknown_after_position_is_a_clear_error() -> anyhow::Result<()> {
    let log = filled_log().await?;
    let output = agora(&[
        "audit",
        "export",
        "--database-url",
        &log.db.url,
        "--after",
        "987654321",
    ]);
    assert_eq!(exit_code(&output), 2);
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no event at position 987654321"),
        "{stderr}"
    );
    Ok(())
}

#[tokio::test]
async fn export_ends_while_writers_keep_appending() -> anyhow::Result<()> {
    let log = filled_log().await?;
    let store = log.db.store.clone();
    let stream = Uuid::new_v4();
    let writer = tokio::spawn(async move {
        loop {
            let events = (0..20)
                .map(|n| ("StockAdded", json!({ "quantity": n })))
                .collect();
            if support::append(&store, &[(stream, "product", events)], None)
                .await
                .is_err()
            {
                break;
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let url = log.db.url.clone();
    let export = tokio::task::spawn_blocking(move || {
        agora(&[
            "audit",
            "export",
            "--database-url",
            &url,
            "--page-size",
            "10",
        ])
    });
    let output = tokio::time::timeout(Duration::from_secs(60), export).await??;
    writer.abort();
    assert_eq!(exit_code(&output), 0);
    let exported = output.stdout.iter().filter(|b| **b == b'\n').count() as u64;
    assert!(exported >= log.events, "{exported} events");
    // Taken while the log grew, it is still a gap-free prefix of every stream.
    let scratch = Scratch::new();
    let file = scratch.path("moving.ndjson");
    std::fs::write(&file, &output.stdout)?;
    let (code, report) = verify_file(&file, &[]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["events_checked"], exported);
    Ok(())
}

#[test]
fn a_failed_export_leaves_no_file() {
    let scratch = Scratch::new();
    let out = scratch.path("never.ndjson");
    let output = agora(&[
        "audit",
        "export",
        "--database-url",
        "postgres://postgres@127.0.0.1:1/nowhere",
        "--out",
        out.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(exit_code(&output), 2);
    assert!(String::from_utf8_lossy(&output.stderr).contains("error:"));
    assert_eq!(
        std::fs::read_dir(&scratch.0).map(|d| d.count()).ok(),
        Some(0)
    );
}

#[tokio::test]
async fn an_unwritable_out_file_is_an_error() -> anyhow::Result<()> {
    let log = filled_log().await?;
    let output = agora(&[
        "audit",
        "export",
        "--database-url",
        &log.db.url,
        "--out",
        "/nonexistent-dir/export.ndjson",
    ]);
    assert_eq!(exit_code(&output), 2);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot create /nonexistent-dir/export.ndjson"),
        "{stderr}"
    );
    Ok(())
}

#[tokio::test]
async fn file_mode_ignores_a_database_url_in_the_environment() -> anyhow::Result<()> {
    let log = filled_log().await?;
    let scratch = Scratch::new();
    let file = scratch.path("whole.ndjson");
    export(&log.db.url, &[], &file);
    let output = support::agora_with_env(
        &[
            "audit",
            "verify",
            "--file",
            file.to_str().expect("utf-8 path"),
        ],
        &[("DATABASE_URL", "postgres://postgres@127.0.0.1:1/nowhere")],
    );
    assert_eq!(exit_code(&output), 0);
    assert_eq!(report(&output), ok_report(log.streams, log.events));
    // Without --file, the environment's URL is the store to verify.
    let output = support::agora_with_env(&["audit", "verify"], &[("DATABASE_URL", &log.db.url)]);
    assert_eq!(exit_code(&output), 0);
    assert_eq!(report(&output), ok_report(log.streams, log.events));
    Ok(())
}
