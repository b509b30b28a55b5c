//! `agora customers reapply-erasures` after a key table restored from a backup older than
//! an erasure, and `agora customers rewrap-keys` after the master key rotated.

mod support;

use domain::customer::{field, stream_id};
use domain::CustomerId;
use eventstore::testing::TestDatabase;
use platform::pii::{generate_master_key, Keyring, MasterKey, PiiSettings, Vault};
use serde_json::json;
use support::{agora, agora_with_env, append, exit_code, report};

fn vault(db: &TestDatabase, current: &str, retired: &[&str]) -> Vault {
    let settings = PiiSettings {
        pii_key: Some(current.to_owned()),
        pii_retired_keys: retired.iter().map(|k| (*k).to_owned()).collect(),
    };
    Vault::new(
        settings.keyring().expect("valid keys"),
        db.store.pool().clone(),
    )
}

/// Gives `customer` a profile whose email is sealed under their key (made by `vault`).
async fn profile(db: &TestDatabase, vault: &Vault, customer: &str) -> String {
    let id = CustomerId::parse(customer).unwrap();
    let key = vault.key_for_writing(customer).await.expect("a key");
    let email = key
        .seal(
            stream_id(&id),
            field::EMAIL,
            format!("{customer}@example.org").as_bytes(),
        )
        .unwrap();
    let name = key.seal(stream_id(&id), field::NAME, b"Someone").unwrap();
    append(
        &db.store,
        &[(
            stream_id(&id),
            "customer",
            vec![(
                "CustomerProfileSet",
                json!({"customer_id": customer, "email": email.as_str(),
                       "name": name.as_str(), "address": null, "email_updates": true}),
            )],
        )],
        None,
    )
    .await
    .expect("appended");
    email.into_inner()
}

async fn live_keys(db: &TestDatabase) -> Vec<String> {
    let client = db.store.pool().get().await.unwrap();
    client
        .query(
            "SELECT customer_id FROM pii_keys WHERE wrapped_key IS NOT NULL ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

#[tokio::test]
async fn erasures_recorded_in_the_log_are_reapplied_to_a_restored_key_table() {
    let db = TestDatabase::create().await.unwrap();
    let master = generate_master_key();
    let vault = vault(&db, &master, &[]);
    profile(&db, &vault, "ana").await;
    profile(&db, &vault, "bob").await;
    // The nightly backup of the key table, taken before ana's erasure.
    let client = db.store.pool().get().await.unwrap();
    client
        .batch_execute("CREATE TABLE pii_keys_backup AS SELECT * FROM pii_keys")
        .await
        .unwrap();

    // ana is erased: key destroyed, erasure recorded.
    assert!(vault.destroy("ana").await.unwrap());
    let ana = CustomerId::parse("ana").unwrap();
    append(
        &db.store,
        &[(
            stream_id(&ana),
            "customer",
            vec![(
                "CustomerErased",
                json!({"customer_id": "ana", "erased_by": "root", "reason": "asked"}),
            )],
        )],
        None,
    )
    .await
    .unwrap();
    assert_eq!(live_keys(&db).await, ["bob"]);

    // The key table is restored from the backup: ana's key is back.
    client
        .batch_execute(
            "DELETE FROM pii_keys; INSERT INTO pii_keys SELECT * FROM pii_keys_backup; \
             DROP TABLE pii_keys_backup",
        )
        .await
        .unwrap();
    assert_eq!(live_keys(&db).await, ["ana", "bob"]);

    let output = agora(&["customers", "reapply-erasures", "--database-url", &db.url]);
    assert_eq!(exit_code(&output), 0, "{output:?}");
    assert_eq!(
        report(&output),
        json!({"erased_in_log": 1, "keys_destroyed_now": ["ana"]})
    );
    assert_eq!(live_keys(&db).await, ["bob"]);
    assert!(vault.key_for_reading("ana").await.unwrap().is_none());
    // Again: nothing left to do.
    let output = agora(&["customers", "reapply-erasures", "--database-url", &db.url]);
    assert_eq!(
        report(&output),
        json!({"erased_in_log": 1, "keys_destroyed_now": []})
    );
}

#[tokio::test]
async fn keys_are_rewrapped_under_a_new_master_key_and_still_open_what_they_sealed() {
    let db = TestDatabase::create().await.unwrap();
    let old = generate_master_key();
    let new = generate_master_key();
    let sealed = profile(&db, &vault(&db, &old, &[]), "bob").await;
    let bob = CustomerId::parse("bob").unwrap();

    // With only the new key, bob's key does not unwrap.
    assert!(vault(&db, &new, &[]).key_for_reading("bob").await.is_err());

    // Without the new key the command refuses; with the old one retired it re-wraps.
    let refused = agora(&["customers", "rewrap-keys", "--database-url", &db.url]);
    assert_eq!(exit_code(&refused), 2, "{refused:?}");
    let env = [
        ("AGORA_PII_KEY", new.as_str()),
        ("AGORA_PII_RETIRED_KEYS", old.as_str()),
    ];
    let output = agora_with_env(
        &["customers", "rewrap-keys", "--database-url", &db.url],
        &env,
    );
    assert_eq!(exit_code(&output), 0, "{output:?}");
    let new_id = MasterKey::from_hex("k", &new).unwrap().id().to_owned();
    assert_eq!(
        report(&output),
        json!({"master_key_id": new_id, "rewrapped": 1})
    );

    // Now the new key alone opens what bob's key sealed before the rotation.
    let key = Vault::new(
        Some(Keyring::new(MasterKey::from_hex("k", &new).unwrap())),
        db.store.pool().clone(),
    )
    .key_for_reading("bob")
    .await
    .unwrap()
    .expect("bob's key");
    let email = key
        .open(
            stream_id(&bob),
            field::EMAIL,
            &domain::Sealed::parse(sealed).unwrap(),
        )
        .unwrap();
    assert_eq!(email, b"bob@example.org");
    let again = agora_with_env(
        &["customers", "rewrap-keys", "--database-url", &db.url],
        &env,
    );
    assert_eq!(report(&again)["rewrapped"], 0);
}
