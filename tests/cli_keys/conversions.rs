//! The key commands that write a new file or a new key: `rekey` (rewrap or
//! a new data key), `encrypt` and `decrypt`, and what they refuse.

use super::*;

#[tokio::test]
async fn rekey_changes_the_key_by_rewrap_or_new_data_key() {
    for new_data_key in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let file = store_with(dir.path(), "store.redb", passphrase_config()).await;
        let f = s(&file);
        let old = key_file(dir.path(), "old.key", PASSPHRASE.as_bytes());
        let new = key_file(dir.path(), "new.key", "7c".repeat(32).as_bytes());
        let how: &[&str] = if new_data_key {
            &["--new-data-key"]
        } else {
            &[]
        };
        let r = wa(&[
            &["rekey", f, "--key-file", s(&old), "--new-key-file", s(&new)],
            how,
        ]
        .concat());
        assert_eq!(r.code, 0, "{new_data_key}: {r:?}");
        assert!(r.stdout.starts_with("rekeyed "), "{r:?}");
        assert!(r.stdout.contains("a raw key"), "{r:?}");
        let r = wa(&["info", f, "--key-file", s(&old)]);
        assert_key_refusal(&r, "the old key after a rekey", &[]);
        let r = wa(&["check", f, "--key-file", s(&new)]);
        assert_eq!(r.code, 0, "{new_data_key}: {r:?}");
        let new_config = RedbStoreConfig::default().with_encryption_key([0x7C; 32]);
        assert!(!holds_session(&file, passphrase_config()).await);
        assert!(holds_session(&file, new_config).await);

        // Back to a passphrase, both keys from the environment, as JSON.
        let r = wa_env(
            &[&["rekey", f, "--json"], how].concat(),
            &[
                ("WA_REDB_KEY_FILE", new.as_os_str()),
                ("WA_REDB_NEW_PASSPHRASE", OsStr::new("a third one")),
            ],
        );
        assert_eq!(r.code, 0, "{r:?}");
        let v = json(&r.stdout);
        let how = ["rewrap", "new-data-key"][usize::from(new_data_key)];
        assert_eq!(v["rekey"], how, "{v}");
        assert_eq!(v["new_key"], "a passphrase", "{v}");
        assert_eq!(v["new_key_from"], "WA_REDB_NEW_PASSPHRASE", "{v}");
        let third = RedbStoreConfig::default().with_passphrase("a third one");
        assert!(holds_session(&file, third).await);
        let r = wa(&["info", f, "--key-file", s(&new)]);
        assert_key_refusal(&r, "the second key after the second rekey", &[]);
    }
}

#[tokio::test]
async fn rekey_without_a_new_key_or_of_a_plain_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = store_with(dir.path(), "store.redb", passphrase_config()).await;
    let before = std::fs::read(&file).unwrap();
    let f = s(&file);
    let key = key_file(dir.path(), "pass.key", PASSPHRASE.as_bytes());
    let r = wa(&["rekey", f, "--key-file", s(&key)]);
    let texts = [
        "no new key given",
        "--new-key-file",
        "WA_REDB_NEW_PASSPHRASE",
    ];
    assert_key_refusal(&r, "no new key", &texts);
    unchanged(&file, &before, "a refusal");

    let plain = store_with(dir.path(), "plain.redb", RedbStoreConfig::default()).await;
    let plain_before = std::fs::read(&plain).unwrap();
    let env = [("WA_REDB_NEW_PASSPHRASE", OsStr::new("new"))];
    // Without a current key, and with one.
    for args in [
        vec!["rekey", s(&plain)],
        vec!["rekey", s(&plain), "--key-file", s(&key)],
    ] {
        let r = wa_env(&args, &env);
        let texts = ["is not encrypted", "wa-redb encrypt"];
        assert_key_refusal(&r, "rekey of a plain store", &texts);
        unchanged(&plain, &plain_before, "a refusal");
    }
}

#[tokio::test]
async fn encrypt_then_decrypt_keeps_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let plain = store_with(dir.path(), "plain.redb", RedbStoreConfig::default()).await;
    let encrypted = dir.path().join("encrypted.redb");
    let decrypted = dir.path().join("decrypted.redb");
    let key = key_file(
        dir.path(),
        "pass.key",
        format!("{PASSPHRASE}\r\n").as_bytes(),
    );

    let r = wa(&["encrypt", s(&plain), s(&encrypted), "--key-file", s(&key)]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("encrypted copy of"), "{r:?}");
    // IN keeps its rows, unencrypted (the copy opened it as its owner, so
    // its bytes may differ: a clean close rewrites redb's allocator state).
    assert!(holds_session(&plain, RedbStoreConfig::default()).await);
    // The copy needs the key; the plain bytes of the session are not in it.
    assert!(
        RedbStore::open_to_look(&encrypted).is_err(),
        "opens without a key"
    );
    let bytes = std::fs::read(&encrypted).unwrap();
    assert!(!bytes.windows(SESSION.len()).any(|w| w == SESSION));
    assert!(holds_session(&encrypted, passphrase_config()).await);

    let r = wa_env(
        &["decrypt", s(&encrypted), s(&decrypted), "--json"],
        &[("WA_REDB_PASSPHRASE", OsStr::new(PASSPHRASE))],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let v = json(&r.stdout);
    assert_eq!(v["encrypted"], false, "{v}");
    assert_eq!(v["copy"], s(&decrypted), "{v}");
    let r = wa(&["check", s(&decrypted), "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = wa(&["info", s(&decrypted), "--json"]);
    assert_eq!(json(&r.stdout)["schema_version"], 2, "{r:?}");
    assert!(holds_session(&decrypted, RedbStoreConfig::default()).await);
}

#[tokio::test]
async fn encrypt_and_decrypt_refuse_what_they_cannot_do() {
    let dir = tempfile::tempdir().unwrap();
    let plain = store_with(dir.path(), "plain.redb", RedbStoreConfig::default()).await;
    let encrypted = store_with(dir.path(), "enc.redb", passphrase_config()).await;
    let out = dir.path().join("out.redb");
    let key = key_file(dir.path(), "pass.key", PASSPHRASE.as_bytes());
    let (p, e, o, k) = (s(&plain), s(&encrypted), s(&out), s(&key));

    let r = wa(&["encrypt", p, o]);
    assert_key_refusal(&r, "encrypt without a key", &["no key given", "--key-file"]);
    assert!(!out.exists());

    let r = wa(&["encrypt", e, o, "--key-file", k]);
    assert_key_refusal(
        &r,
        "encrypt an encrypted store",
        &["already encrypted", "wa-redb rekey"],
    );
    assert!(!out.exists());

    for args in [
        vec!["decrypt", p, o],
        vec!["decrypt", p, o, "--key-file", k],
    ] {
        let r = wa(&args);
        assert_key_refusal(&r, "decrypt a plain store", &["is not encrypted"]);
        assert!(!out.exists());
    }

    // OUT must not exist; IN must.
    std::fs::write(&out, b"precious").unwrap();
    for args in [
        vec!["encrypt", p, o, "--key-file", k],
        vec!["decrypt", e, o, "--key-file", k],
    ] {
        let r = wa(&args);
        assert_eq!(r.code, 1, "{args:?}: {r:?}");
        says(&r, &["already exists"]);
        assert!(
            std::fs::read(&out).unwrap() == b"precious",
            "{args:?} wrote OUT"
        );
    }
    let missing = dir.path().join("missing.redb");
    let r = wa(&[
        "decrypt",
        s(&missing),
        s(&dir.path().join("x.redb")),
        "--key-file",
        k,
    ]);
    assert_eq!(r.code, 1, "{r:?}");
    says(&r, &["missing.redb"]);
}
