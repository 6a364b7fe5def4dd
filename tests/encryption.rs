//! Encryption at rest: an encrypted store leaves nothing it was given in
//! the clear in any file it writes (store, journal while open, backup,
//! snapshot and its sidecar), opens only with its key, and refuses every
//! mismatch — no key, another key, the other kind of key, a key for a plain
//! store, a second handle with another key — with an error that says so,
//! changing nothing on disk.

#[path = "util/dataset.rs"]
mod dataset;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use wacore::store::error::StoreError;
use wacore::store::traits::*;
use whatsapp_rust_redb_storage::{
    Error, KeyProblem, PageProtection, RedbStore, RedbStoreConfig, Synchronous,
};

const KEY: [u8; 32] = [0x42; 32];
const PUSH_NAME: &str = "MARKER-PUSH-NAME-7f3a";
const ADDRESS: &str = "4915550000001-MARKER-ADDR@s.whatsapp.net.0";
const SESSION: &[u8] = b"MARKER-SESSION-RECORD-0123456789abcdef";
const SIDECAR: &[u8] = b"{\"MARKER-SIDECAR-JSON\": 1}";

/// The key problem behind a store error, if that is what it is.
fn key_problem(e: &StoreError) -> Option<KeyProblem> {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = src {
        if let Some(Error::Key { problem, .. }) = s.downcast_ref::<Error>() {
            return Some(problem.clone());
        }
        src = s.source();
    }
    None
}

/// An error and its sources, as an application that prints them shows it.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        out += &format!(": {s}");
        src = s.source();
    }
    out
}

/// Every file in `dir` and its contents.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

/// The recognisable things the store was given, as they would appear in
/// the clear.
fn needles() -> Vec<(&'static str, Vec<u8>)> {
    let device = dataset::device(1);
    vec![
        ("push name", PUSH_NAME.as_bytes().to_vec()),
        ("address (a key)", ADDRESS.as_bytes()[..24].to_vec()),
        ("session record", SESSION[..24].to_vec()),
        ("sidecar", SIDECAR[4..24].to_vec()),
        (
            "identity private key",
            device.identity_key.private_key.serialize().to_vec(),
        ),
        (
            "identity public key",
            device.identity_key.public_key.public_key_bytes().to_vec(),
        ),
    ]
}

/// What of [`needles`] each file of `dir` shows.
fn plaintext_in(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for (path, bytes) in files(dir) {
        for (what, needle) in needles() {
            if bytes.windows(needle.len()).any(|w| w == needle) {
                found.push(format!("{what} in {}", path.display()));
            }
        }
    }
    found
}

async fn fill(store: &RedbStore) {
    let mut device = dataset::device(1);
    device.push_name = PUSH_NAME.into();
    store.save(&device).await.unwrap();
    store.put_session(ADDRESS, SESSION).await.unwrap();
    store.put_identity(ADDRESS, [0xEE; 32]).await.unwrap();
    dataset::populate(&store.for_device(2), 40).await;
}

/// Writes the same workload to a store of `config` in `dir` and returns
/// what plaintext its files showed while it was open and after it closed.
async fn scan(dir: &Path, config: RedbStoreConfig) -> (Vec<String>, Vec<String>) {
    let path = dir.join("s.redb");
    // A long checkpoint interval: the rows stay in the journal while open.
    let config = config
        .with_synchronous(Synchronous::Normal)
        .with_checkpoint_interval(Duration::from_secs(3600));
    let store = RedbStore::with_config(&path, config.clone()).await.unwrap();
    fill(&store).await;
    assert!(
        dir.join("s.redb.journal").exists(),
        "the journal holds the rows"
    );
    store.backup_to(dir.join("backup.redb")).await.unwrap();
    store.snapshot_db("snap", Some(SIDECAR)).await.unwrap();
    let open = plaintext_in(dir);
    store.close().await.unwrap();
    let closed = plaintext_in(dir);
    (open, closed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_store_leaves_no_plaintext_in_any_file_it_writes() {
    // The control: the scan finds what a store that is not encrypted holds.
    let plain = tempfile::tempdir().unwrap();
    let (open, closed) = scan(plain.path(), RedbStoreConfig::default()).await;
    for what in [
        "push name",
        "session record",
        "identity private key",
        "sidecar",
    ] {
        assert!(open.iter().any(|f| f.starts_with(what)), "{what}: {open:?}");
        assert!(closed.iter().any(|f| f.starts_with(what)), "{what}");
    }

    for config in [
        RedbStoreConfig::default().with_encryption_key(KEY),
        RedbStoreConfig::default().with_passphrase("correct horse battery staple"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (open, closed) = scan(dir.path(), config.clone()).await;
        assert_eq!(open, Vec::<String>::new(), "plaintext while open");
        assert_eq!(closed, Vec::<String>::new(), "plaintext after close");

        // Everything reads back with the key: the store, its backup, its
        // snapshot and the sidecar.
        let snapshot = files(dir.path())
            .into_keys()
            .find(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                name.contains(".snapshot-") && !name.ends_with(".json")
            })
            .expect("a snapshot");
        for file in [
            dir.path().join("s.redb"),
            dir.path().join("backup.redb"),
            snapshot.clone(),
        ] {
            let s = RedbStore::with_config(&file, config.clone()).await.unwrap();
            assert_eq!(
                s.get_session(ADDRESS).await.unwrap().as_deref(),
                Some(SESSION)
            );
            assert_eq!(s.load().await.unwrap().unwrap().push_name, PUSH_NAME);
            let check = dataset::check(&s.for_device(2), 40, false).await;
            assert!(check.is_clean(), "{}: {:?}", file.display(), check.diffs);
            s.close().await.unwrap();
            let e = RedbStore::new(&file).await.unwrap_err();
            assert_eq!(key_problem(&e), Some(KeyProblem::Required), "{e}");
        }
        let sidecar = PathBuf::from(format!("{}.json", snapshot.display()));
        assert_eq!(
            RedbStore::read_snapshot_sidecar(&sidecar, &config).unwrap(),
            SIDECAR
        );
        let e = RedbStore::read_snapshot_sidecar(&sidecar, &RedbStoreConfig::default());
        assert_eq!(key_problem(&e.unwrap_err()), Some(KeyProblem::Required));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_opens_only_with_its_key_and_a_refusal_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.redb");
    let pass = || RedbStoreConfig::default().with_passphrase("pass-1");
    let store = RedbStore::with_config(&path, pass()).await.unwrap();
    store.put_session(ADDRESS, SESSION).await.unwrap();
    store.close().await.unwrap();

    let before = files(dir.path());
    let refusals = [
        (RedbStoreConfig::default(), KeyProblem::Required),
        (
            RedbStoreConfig::default().with_passphrase("pass-2"),
            KeyProblem::Wrong,
        ),
        (
            RedbStoreConfig::default().with_encryption_key(KEY),
            KeyProblem::WrongKind {
                file_uses: "a passphrase",
                given: "a raw key",
            },
        ),
    ];
    for (config, problem) in &refusals {
        let e = RedbStore::with_config(&path, config.clone())
            .await
            .unwrap_err();
        assert_eq!(key_problem(&e).as_ref(), Some(problem), "{e}");
        let chain = chain(&e);
        assert!(
            chain.contains("k.redb"),
            "the error names the file: {chain}"
        );
        let e = RedbStore::open_to_look_with(&path, config).unwrap_err();
        assert_eq!(key_problem(&e).as_ref(), Some(problem), "look: {e}");
        assert_eq!(files(dir.path()), before, "a refused open changed a file");
    }
    // The key opens it, to use and to look.
    let look = RedbStore::open_to_look_with(&path, &pass()).unwrap();
    assert_eq!(
        look.get_session(ADDRESS).await.unwrap().as_deref(),
        Some(SESSION)
    );
    drop(look);

    // A second handle in the same process must bring the same key.
    let first = RedbStore::with_config(&path, pass()).await.unwrap();
    for (config, problem) in &refusals {
        let e = RedbStore::with_config(&path, config.clone())
            .await
            .unwrap_err();
        assert_eq!(
            key_problem(&e).as_ref(),
            Some(problem),
            "second handle: {e}"
        );
    }
    let second = RedbStore::with_config(&path, pass()).await.unwrap();
    assert_eq!(
        second.get_session(ADDRESS).await.unwrap().as_deref(),
        Some(SESSION)
    );
    drop(second);
    first.close().await.unwrap();

    // A key for a store that is not encrypted is refused, both formats.
    for protection in [PageProtection::Verified, PageProtection::Off] {
        let plain = dir.path().join(format!("plain-{protection:?}.redb"));
        let config = RedbStoreConfig::default().with_page_protection(protection);
        RedbStore::with_config(&plain, config)
            .await
            .unwrap()
            .close()
            .await
            .unwrap();
        let before = std::fs::read(&plain).unwrap();
        let e = RedbStore::with_config(&plain, RedbStoreConfig::default().with_encryption_key(KEY))
            .await
            .unwrap_err();
        assert_eq!(
            key_problem(&e),
            Some(KeyProblem::NotEncrypted),
            "{protection:?}: {e}"
        );
        assert_eq!(std::fs::read(&plain).unwrap(), before);
    }
    // Encryption needs protected pages.
    let e = RedbStore::with_config(
        dir.path().join("never.redb"),
        RedbStoreConfig::default()
            .with_encryption_key(KEY)
            .with_page_protection(PageProtection::Off),
    )
    .await
    .unwrap_err();
    assert!(
        chain(&e).contains("encryption needs page protection"),
        "{e}"
    );
    assert!(!dir.path().join("never.redb").exists());
}
