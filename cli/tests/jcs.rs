//! The Python verifier's JCS canonicalization (scripts/verify_chain.py) gives the same bytes
//! as Rust's `serde_jcs`, which the store hashes with, on tricky documents.

mod support;

use std::process::Command;

use serde_json::{json, Value};
use support::{verifier_script, Scratch};

fn tricky_documents() -> Vec<Value> {
    let controls: String = (0u8..0x20).map(char::from).collect();
    vec![
        json!({"b": 1, "a": 2, "c": {"z": [], "y": {}}}),
        json!({"text": controls}),
        json!({"quote": "\"", "backslash": "\\", "slash": "/", "del": "\u{7f}", "nul": "\u{0}"}),
        json!({"é": 1, "e": 2, "z": 3, "É": 4, "ε": 5, "€": 6, "😀": 7, "\u{ff61}": 8, "\u{10000}": 9}),
        json!({"line separators": "\u{2028}\u{2029}", "bom": "\u{feff}", "nbsp": "\u{a0}"}),
        json!({"emoji": "🍵😀👩‍👩‍👧", "cjk": "日本語", "rtl": "مرحبا", "combining": "e\u{301}"}),
        json!({"nested": {"ключ": {"日本": [1, {"β": null, "α": true, "a": false}]}}}),
        json!({"ints": [0, -1, 1, 9007199254740991_i64, -9007199254740991_i64, i64::MAX, u64::MAX]}),
        json!({"floats": [0.5, -2.25, 1e21, 1e20, 1.5e-7, 1e-6, 123.456, 5e-324, 0.1, 1e300]}),
        json!([]),
        json!({}),
        json!("just a string\twith a tab"),
        json!({"": "empty key", " ": "space key", "\u{1}": "control key"}),
    ]
}

#[test]
fn python_jcs_matches_serde_jcs() -> anyhow::Result<()> {
    let scratch = Scratch::new();
    let input = scratch.path("documents.ndjson");
    let documents = tricky_documents();
    let mut text = String::new();
    for document in &documents {
        text.push_str(&serde_json::to_string(document)?);
        text.push('\n');
    }
    std::fs::write(&input, text)?;
    let script = verifier_script();
    let program = "import json, sys\n\
                   sys.path.insert(0, sys.argv[1])\n\
                   from verify_chain import jcs\n\
                   with open(sys.argv[2], encoding='utf-8') as f:\n\
                   \x20   print(json.dumps([jcs(json.loads(line)).encode('utf-8').hex() for line in f]))\n";
    let output = Command::new("python3")
        .arg("-c")
        .arg(program)
        .arg(script.parent().expect("scripts dir"))
        .arg(&input)
        .output()?;
    assert!(
        output.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let python: Vec<String> = serde_json::from_slice(&output.stdout)?;
    assert_eq!(python.len(), documents.len());
    for (document, python_hex) in documents.iter().zip(python) {
        let rust = serde_jcs::to_vec(document)?;
        let python_bytes = hex_decode(&python_hex);
        assert_eq!(
            String::from_utf8_lossy(&python_bytes),
            String::from_utf8_lossy(&rust),
            "for {document}"
        );
        assert_eq!(python_bytes, rust);
    }
    Ok(())
}

fn hex_decode(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}
