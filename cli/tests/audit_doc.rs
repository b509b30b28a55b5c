//! docs/AUDIT.md's worked examples are true: each example envelope's canonical document and
//! hash, its leaf bytes and leaf hash, the tree's root and the example checkpoint's
//! signature are what the store's code computes, and both verifiers accept the example
//! export against the example checkpoint.

mod support;

use std::path::Path;

use eventstore::checkpoint::{Checkpoint, LogSigningKey};
use eventstore::envelope::leaf_bytes;
use eventstore::hashchain::{canonical_document, chain_hash, HashedFields};
use eventstore::merkle::{leaf_hash, node_hash};
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

    // The tree: leaf bytes, leaf hashes, root.
    let leaves = examples(&doc, "leaf");
    let leaf_hashes = examples(&doc, "leaf-hash");
    assert_eq!((leaves.len(), leaf_hashes.len()), (2, 2));
    let mut hashes = Vec::new();
    for ((line, leaf), hash_line) in envelopes.iter().zip(&leaves).zip(&leaf_hashes) {
        let event = serde_json::from_str::<Envelope>(line)?
            .to_recorded()
            .map_err(anyhow::Error::msg)?;
        assert_eq!(String::from_utf8(leaf_bytes(&event)?)?, *leaf);
        let hash = leaf_hash(leaf.as_bytes());
        assert!(hash_line.ends_with(&format!("= {hash}")), "{hash_line}");
        hashes.push(hash);
    }
    let first_leaf_size = format!("{} bytes", leaves[0].len());
    assert!(doc.contains(&first_leaf_size), "the leaf's size is stated");
    let root = node_hash(&hashes[0], &hashes[1]);
    let root_line = &examples(&doc, "root")[0];
    assert!(root_line.ends_with(&format!("= {root}")), "{root_line}");

    // The checkpoint: signed with the example key, as stated, and the key's published form.
    let key = LogSigningKey::from_pem(&examples(&doc, "key")[0]).map_err(anyhow::Error::msg)?;
    let public = &examples(&doc, "public-key")[0];
    assert_eq!(key.public_key().to_base64(), *public);
    let checkpoint: Checkpoint = serde_json::from_str(&examples(&doc, "checkpoint")[0])?;
    assert_eq!(checkpoint.root_hash, root.to_hex());
    assert!(doc.contains(&format!("`{}`", checkpoint.key_id)));
    let at = chrono::DateTime::parse_from_rfc3339(&checkpoint.timestamp)?.to_utc();
    assert_eq!(key.sign(2, root, at), checkpoint);

    let scratch = Scratch::new();
    let file = scratch.path("example.ndjson");
    std::fs::write(&file, format!("{}\n", envelopes.join("\n")))?;
    let kept = scratch.path("checkpoint.json");
    std::fs::write(&kept, &examples(&doc, "checkpoint")[0])?;
    let expected = serde_json::json!({"ok": true, "streams_checked": 1, "events_checked": 2,
        "failures": [], "tree_size": 2, "root_hash": root.to_hex()});
    let file_arg = file.to_str().expect("utf-8");
    let kept_arg = kept.to_str().expect("utf-8");
    let rust = agora(&["audit", "verify", "--file", file_arg]);
    assert_eq!((exit_code(&rust), report(&rust)), (0, expected.clone()));
    let rust = agora(&[
        "audit",
        "verify",
        "--file",
        file_arg,
        "--checkpoint",
        kept_arg,
        "--public-key",
        public,
    ]);
    assert_eq!((exit_code(&rust), report(&rust)), (0, expected.clone()));
    let python = python_verify(&file);
    assert_eq!((exit_code(&python), report(&python)), (0, expected.clone()));
    let python = std::process::Command::new("python3")
        .arg(support::verifier_script())
        .args([file_arg, "--checkpoint", kept_arg, "--public-key", public])
        .output()?;
    assert_eq!((exit_code(&python), report(&python)), (0, expected));
    Ok(())
}
