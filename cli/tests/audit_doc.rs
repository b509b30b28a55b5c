//! docs/AUDIT.md's worked example is true: each example envelope's canonical document and
//! hash are what the store's code computes, and both verifiers accept the example export.

mod support;

use std::path::Path;

use eventstore::hashchain::{canonical_document, chain_hash, HashedFields};
use eventstore::Envelope;
use support::{agora, exit_code, python_verify, report, Scratch};

/// The fenced blocks that follow `<!-- example:{kind} -->` markers, in order.
fn examples(doc: &str, kind: &str) -> Vec<String> {
    let marker = format!("<!-- example:{kind} -->");
    doc.split(&marker)
        .skip(1)
        .map(|after| {
            let block = after
                .split_once("```")
                .and_then(|(_, rest)| rest.split_once('\n'))
                .and_then(|(_, rest)| rest.split_once("```"))
                .map(|(body, _)| body)
                .expect("a fenced block after the marker");
            block.trim_end().to_owned()
        })
        .collect()
}

#[test]
fn the_worked_example_is_what_the_code_computes() -> anyhow::Result<()> {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/AUDIT.md"))?;
    let envelopes = examples(&doc, "envelope");
    let documents = examples(&doc, "document");
    let hashes = examples(&doc, "hash");
    assert_eq!(envelopes.len(), 2);
    assert_eq!(documents.len(), 2);
    assert_eq!(hashes.len(), 2);

    for ((line, document), hash_line) in envelopes.iter().zip(&documents).zip(&hashes) {
        let envelope: Envelope = serde_json::from_str(line)?;
        let event = envelope.to_recorded().map_err(anyhow::Error::msg)?;
        let fields = HashedFields::from(&event);
        assert_eq!(String::from_utf8(canonical_document(&fields)?)?, *document);
        let hash = chain_hash(&event.prev_hash, &fields)?;
        assert_eq!(hash, event.hash);
        assert!(
            hash_line.ends_with(&format!("= {}", hash.to_hex())),
            "{hash_line}"
        );
    }
    let first_len = documents[0].len();
    assert!(
        doc.contains(&format!("{first_len} bytes")),
        "the byte count is stated"
    );

    let scratch = Scratch::new();
    let file = scratch.path("example.ndjson");
    std::fs::write(&file, format!("{}\n", envelopes.join("\n")))?;
    let expected =
        serde_json::json!({"ok": true, "streams_checked": 1, "events_checked": 2, "failures": []});
    let rust = agora(&["audit", "verify", "--file", file.to_str().expect("utf-8")]);
    assert_eq!((exit_code(&rust), report(&rust)), (0, expected.clone()));
    let python = python_verify(&file);
    assert_eq!((exit_code(&python), report(&python)), (0, expected));
    Ok(())
}
