//! Least privilege, in the database itself: `events` is append-only for every role (its
//! owner included), and the roles of deploy/postgres/roles.sql can do their job and no
//! more — the command API runs as a writer, its sequencer as a role of its own (the only
//! one that may number the log, grow its tree and store checkpoints), the audit endpoints
//! as an auditor and the query API's reads as a reader; none of them can change the log.

mod support;

use std::time::Duration;

use platform::Role;
use reqwest::StatusCode;
use serde_json::{json, Value};
use support::Stack;
use tokio_postgres::{Client, NoTls};
use uuid::Uuid;

const ROLES_SQL: &str = include_str!("../../deploy/postgres/roles.sql");

async fn session(url: &str) -> anyhow::Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// `url` with its user replaced by `user` (the test server trusts local connections).
fn as_user(url: &str, user: &str) -> String {
    let rest = url
        .strip_prefix("postgres://")
        .and_then(|rest| rest.split_once('@'))
        .map(|(_, host)| host)
        .unwrap_or_default();
    format!("postgres://{user}@{rest}")
}

/// The SQLSTATE `sql` fails with on `client` (it must fail).
async fn refusal(client: &Client, sql: &str) -> String {
    let error = client
        .batch_execute(sql)
        .await
        .expect_err(&format!("{sql} must be refused"));
    error
        .code()
        .map(|code| code.code().to_owned())
        .unwrap_or_else(|| error.to_string())
}

/// Login roles for one test, members of the group roles, dropped at the end.
struct LoginRoles {
    admin: Client,
    names: Vec<String>,
}

impl LoginRoles {
    async fn create(admin: Client, groups: &[&str]) -> anyhow::Result<(LoginRoles, Vec<String>)> {
        let suffix = Uuid::new_v4().simple().to_string();
        let mut names = Vec::new();
        for group in groups {
            let name = format!("{group}_{}", &suffix[..12]);
            admin
                .batch_execute(&format!("CREATE ROLE {name} LOGIN IN ROLE {group}"))
                .await?;
            names.push(name);
        }
        Ok((
            LoginRoles {
                admin,
                names: names.clone(),
            },
            names,
        ))
    }

    async fn drop_all(self) -> anyhow::Result<()> {
        for name in &self.names {
            self.admin
                .batch_execute(&format!("DROP ROLE IF EXISTS {name}"))
                .await?;
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_role_does_its_job_and_no_role_can_change_the_log() -> anyhow::Result<()> {
    // The stack's own command API runs as the owner without a sequencer: the log is
    // numbered and signed by the sequencer started below, as its own role.
    let stack = Stack::start_with(false, |settings| settings.sequencer = false).await?;
    // Some history, written as the owner.
    let (mug, version) = stack
        .ok(
            "/v1/products",
            &stack.admin,
            json!({"sku": "ROLE-1", "name": "Mug", "price_cents": 900, "currency": "EUR",
                   "initial_stock": 5}),
        )
        .await?;
    let viewer = stack.token("vera", &[Role::Viewer]);
    stack
        .read_at(&format!("/v1/products/{mug}"), &viewer, version)
        .await?;

    // The owner itself cannot change the log: the table refuses it.
    let owner = session(&stack.db.url).await?;
    for sql in [
        "UPDATE events SET payload = '{}'::jsonb",
        "DELETE FROM events",
        "TRUNCATE events",
    ] {
        assert_eq!(refusal(&owner, sql).await, "42501", "the owner: {sql}");
    }
    owner.batch_execute(ROLES_SQL).await?;
    owner.batch_execute(ROLES_SQL).await?; // idempotent

    let (roles, names) = LoginRoles::create(
        session(&stack.db.url).await?,
        &[
            "agora_writer",
            "agora_auditor",
            "agora_reader",
            "agora_sequencer",
        ],
    )
    .await?;
    let [writer, auditor, reader, sequencer] =
        [0, 1, 2, 3].map(|i| as_user(&stack.db.url, &names[i]));

    // The writer may append but never change or delete.
    let writer_session = session(&writer).await?;
    for sql in [
        "UPDATE events SET payload = '{}'::jsonb",
        "DELETE FROM events",
        "TRUNCATE events",
        "DROP TABLE events",
        "ALTER TABLE events DISABLE TRIGGER USER",
        "SET session_replication_role = replica",
    ] {
        assert_eq!(
            refusal(&writer_session, sql).await,
            "42501",
            "the writer: {sql}"
        );
    }
    // The auditor reads and writes nothing.
    let auditor_session = session(&auditor).await?;
    let count: i64 = auditor_session
        .query_one("SELECT count(*) FROM events", &[])
        .await?
        .get(0);
    assert!(count >= 1);
    for sql in [
        "INSERT INTO events (event_id, stream_type, stream_id, version, event_type, \
         schema_version, payload, metadata, occurred_at, prev_hash, hash) \
         SELECT gen_random_uuid(), stream_type, stream_id, version + 100, event_type, \
         schema_version, payload, metadata, occurred_at, prev_hash, hash FROM events LIMIT 1",
        "UPDATE events SET payload = '{}'::jsonb",
        "DELETE FROM events",
        "INSERT INTO unique_claims VALUES ('sku', 'X', gen_random_uuid())",
    ] {
        assert_eq!(
            refusal(&auditor_session, sql).await,
            "42501",
            "the auditor: {sql}"
        );
    }
    // The reader sees read models, not the log.
    let reader_session = session(&reader).await?;
    assert_eq!(
        refusal(&reader_session, "SELECT * FROM events").await,
        "42501"
    );
    assert_eq!(
        refusal(&reader_session, "DELETE FROM read_model.products_v1").await,
        "42501"
    );
    // It records admins' requests on parked streams (the query API's one write), and can
    // neither change nor delete one, nor park or unpark a stream itself.
    reader_session
        .batch_execute(
            "INSERT INTO read_model.parked_actions (projection, stream_id, action, reason, \
             requested_by) VALUES ('products', gen_random_uuid(), 'retry', 'roles test', 'root')",
        )
        .await?;
    for sql in [
        "UPDATE read_model.parked_actions SET outcome = 'done'",
        "DELETE FROM read_model.parked_actions",
        "DELETE FROM read_model.parked_streams",
        "INSERT INTO read_model.held_events SELECT * FROM read_model.held_events",
    ] {
        assert_eq!(
            refusal(&reader_session, sql).await,
            "42501",
            "the reader: {sql}"
        );
    }

    // The command API as the writer, its sequencer (the only holder of the log's key) as a
    // role of agora_sequencer: commands are accepted, the log numbered and signed.
    let key_dir = std::env::temp_dir().join(format!("agora-roles-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&key_dir)?;
    let key_file = key_dir.join("log-signing-key.pem");
    std::fs::write(
        &key_file,
        eventstore::checkpoint::LogSigningKey::generate()
            .to_pem()
            .map_err(anyhow::Error::msg)?,
    )?;
    let command = command_api::startup::Application::build(command_api::config::Settings {
        sequencer_database_url: Some(sequencer.clone()),
        log_signing_key: Some(key_file),
        checkpoint_interval: Duration::from_millis(200),
        ..support::command_settings(&writer, None, "agora".into())
    })
    .await?;
    let command_url = format!("http://127.0.0.1:{}", command.port());
    tokio::spawn(command.run_until_stopped());
    let response = stack
        .http
        .post(format!("{command_url}/v1/products/{mug}/restock"))
        .bearer_auth(&stack.admin)
        .json(&json!({"quantity": 3}))
        .send()
        .await?;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "{}",
        response.text().await?
    );
    let response = stack
        .http
        .post(format!("{command_url}/v1/products"))
        .bearer_auth(&stack.admin)
        .json(&json!({"sku": "ROLE-2", "name": "Cup", "price_cents": 500, "currency": "EUR"}))
        .send()
        .await?;
    assert_eq!(
        response.status(),
        StatusCode::CREATED,
        "{}",
        response.text().await?
    );

    // As the writer, it makes a customer's data key and destroys it at erasure.
    let ana = stack.token("ana", &[Role::Customer]);
    let response = stack
        .http
        .put(format!("{command_url}/v1/me"))
        .bearer_auth(&ana)
        .json(&json!({"email": "ana@example.org", "name": "Ana"}))
        .send()
        .await?;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "{}",
        response.text().await?
    );
    let response = stack
        .http
        .post(format!("{command_url}/v1/customers/ana/erasure"))
        .bearer_auth(&ana)
        .json(&json!({"reason": "asked"}))
        .send()
        .await?;
    assert_eq!(
        response.status(),
        StatusCode::ACCEPTED,
        "{}",
        response.text().await?
    );
    // The data keys: the query API's reader may read them; an auditor never; the writer
    // never deletes or truncates them (erasure keeps a tombstone).
    let keys: i64 = reader_session
        .query_one("SELECT count(*) FROM pii_keys", &[])
        .await?
        .get(0);
    assert_eq!(keys, 1);
    assert_eq!(
        refusal(&auditor_session, "SELECT * FROM pii_keys").await,
        "42501"
    );
    for sql in ["DELETE FROM pii_keys", "TRUNCATE pii_keys"] {
        assert_eq!(
            refusal(&writer_session, sql).await,
            "42501",
            "the writer: {sql}"
        );
    }

    // The sequencer, as its own role, numbers every event and signs a checkpoint of them.
    let events: i64 = owner
        .query_one("SELECT count(*) FROM events", &[])
        .await?
        .get(0);
    stack
        .eventually(
            "the sequencer to number and sign the log",
            Duration::from_secs(30),
            || async {
                let row = owner
                    .query_one(
                        "SELECT (SELECT count(*) FROM events \
                                 WHERE position NOT IN (SELECT event_position FROM event_sequence)), \
                                (SELECT COALESCE(max(tree_size), 0) FROM log_checkpoints)",
                        &[],
                    )
                    .await?;
                let (unsequenced, signed): (i64, i64) = (row.get(0), row.get(1));
                Ok(unsequenced == 0 && signed >= events)
            },
        )
        .await?;
    // The writer (every command API request) reads the log's sequence, tree and checkpoints
    // and writes none of them: the forgery of a tree the signer did not build (a node high
    // up, a size to match) cannot even be written.
    let count: i64 = writer_session
        .query_one("SELECT count(*) FROM merkle_nodes", &[])
        .await?
        .get(0);
    assert!(count >= 1);
    for sql in [
        "INSERT INTO merkle_nodes (level, idx, hash) VALUES (20, 0, decode(repeat('ab', 32), 'hex'))",
        "UPDATE log_sequencer SET tree_size = 1048576",
        "INSERT INTO merkle_nodes (level, idx, hash) \
         SELECT 0, tree_size, decode(repeat('cd', 32), 'hex') FROM log_sequencer",
        "INSERT INTO event_sequence (sequence, event_position) VALUES (1000000, 1)",
        "UPDATE event_sequence SET sequence = sequence + 1000",
        "DELETE FROM event_sequence",
        "TRUNCATE event_sequence",
        "UPDATE merkle_nodes SET hash = hash",
        "DELETE FROM merkle_nodes",
        "INSERT INTO log_signing_keys (key_id, public_key) \
         VALUES ('writer', decode(repeat('00', 32), 'hex'))",
        "INSERT INTO log_checkpoints (tree_size, root_hash, signed_at, key_id, signature) \
         SELECT 1, root_hash, now(), key_id, signature FROM log_checkpoints LIMIT 1",
    ] {
        assert_eq!(
            refusal(&writer_session, sql).await,
            "42501",
            "the writer cannot number the log, grow or change its tree, or sign: {sql}"
        );
    }
    // The sequencer's role may append to them, never change what is there, nor the events.
    let sequencer_session = session(&sequencer).await?;
    for sql in [
        "UPDATE events SET payload = '{}'::jsonb",
        "INSERT INTO unique_claims VALUES ('sku', 'X', gen_random_uuid())",
        "UPDATE merkle_nodes SET hash = hash",
        "DELETE FROM event_sequence",
        "TRUNCATE merkle_nodes",
        "DELETE FROM log_checkpoints",
        "SELECT * FROM pii_keys",
    ] {
        assert_eq!(
            refusal(&sequencer_session, sql).await,
            "42501",
            "the sequencer: {sql}"
        );
    }
    for sql in [
        "UPDATE event_sequence SET sequence = sequence + 1000",
        "DELETE FROM merkle_nodes",
        "TRUNCATE merkle_nodes",
    ] {
        assert_eq!(
            refusal(&owner, sql).await,
            "42501",
            "not even the owner changes the sequence or the tree: {sql}"
        );
    }
    // Nor the signed checkpoints and their keys: a key and a checkpoint are written in a
    // transaction (rows for the change to be refused on), which the refusal rolls back.
    let rows = "BEGIN; \
        INSERT INTO log_signing_keys (key_id, public_key) \
        VALUES ('roles-test', decode(repeat('00', 32), 'hex')); \
        INSERT INTO log_checkpoints (tree_size, root_hash, signed_at, key_id, signature) \
        VALUES (1, decode(repeat('00', 32), 'hex'), now(), 'roles-test', \
                decode(repeat('00', 64), 'hex'));";
    for sql in [
        "UPDATE log_checkpoints SET tree_size = tree_size + 1",
        "DELETE FROM log_checkpoints",
        "TRUNCATE log_checkpoints",
        "UPDATE log_signing_keys SET public_key = public_key",
        "DELETE FROM log_signing_keys",
        "TRUNCATE log_signing_keys CASCADE",
    ] {
        let refused = refusal(&owner, &format!("{rows} {sql}; COMMIT;")).await;
        owner.batch_execute("ROLLBACK").await?;
        assert_eq!(
            refused, "42501",
            "not even the owner changes the checkpoints or the keys: {sql}"
        );
    }

    // The query API with the auditor for the log and the reader for the read models: the
    // audit endpoints and the reads work.
    let query = query_api::startup::Application::build(support::query_settings(
        Some(reader.clone()),
        Some(auditor.clone()),
    ))
    .await?;
    let query_url = format!("http://127.0.0.1:{}", query.port());
    tokio::spawn(query.run_until_stopped());
    let auditor_token = stack.token("audrey", &[Role::Auditor]);
    let verify: Value = stack
        .http
        .get(format!("{query_url}/v1/audit/verify"))
        .bearer_auth(&auditor_token)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(verify["ok"], true, "{verify}");
    assert!(verify["events_checked"].as_i64() >= Some(3), "{verify}");
    // The log export, gap-free: it shows the events once every older transaction on the
    // server has finished.
    stack
        .eventually(
            "the audit export to show the log",
            Duration::from_secs(30),
            || async {
                let export = stack
                    .http
                    .get(format!("{query_url}/v1/audit/events"))
                    .bearer_auth(&auditor_token)
                    .send()
                    .await?;
                anyhow::ensure!(export.status() == StatusCode::OK, "{}", export.status());
                Ok(export.text().await?.lines().count() >= 3)
            },
        )
        .await?;
    let product = stack
        .http
        .get(format!("{query_url}/v1/products/{mug}"))
        .bearer_auth(&viewer)
        .send()
        .await?;
    assert_eq!(product.status(), StatusCode::OK);

    roles.drop_all().await?;
    let _ = std::fs::remove_dir_all(&key_dir);
    stack.stop().await
}
