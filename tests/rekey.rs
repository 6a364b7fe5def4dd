//! Changing an encrypted store's key: a rekey (a rewrap, or a rewrite
//! under a new data key) killed with SIGKILL at any moment leaves a store
//! that opens with the old key or the new one, with every row; copies with
//! another keying (`encrypt`, `decrypt`, and the conversion of a plain v1
//! store to v2) hold every row, and one killed at any moment leaves its
//! source as it was and no half-written copy.

#[path = "util/dataset.rs"]
mod dataset;
#[path = "util/process.rs"]
mod process;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;

use wacore::store::traits::*;
use whatsapp_rust_redb_storage::{EncryptionKey, RedbStore, RedbStoreConfig, Rekey};

const ADDRESS: &str = "rekey@s.whatsapp.net.0";
const SESSION: &[u8] = b"a session that must survive every rekey";

/// The two keys a store alternates between: a passphrase and a raw key.
fn key(which: usize) -> EncryptionKey {
    match which {
        0 => EncryptionKey::passphrase("first passphrase"),
        _ => EncryptionKey::raw([0xB2; 32]),
    }
}

fn config(which: usize) -> RedbStoreConfig {
    RedbStoreConfig::default().with_encryption(key(which))
}

/// Which of the two keys opens the store (the first that does).
fn current_key(path: &Path) -> Option<usize> {
    (0..2).find(|&k| RedbStore::open_to_look_with(path, &config(k)).is_ok())
}

/// The child: rekeys back and forth forever, saying so after each.
#[test]
#[ignore]
fn rekey_child() {
    let (Some(path), Ok(how)) = (
        std::env::var_os("WA_REDB_REKEY_FILE"),
        std::env::var("WA_REDB_REKEY_HOW"),
    ) else {
        return;
    };
    let how = match how.as_str() {
        "new" => Rekey::NewDataKey,
        _ => Rekey::Rewrap,
    };
    let path = Path::new(&path);
    let mut current = current_key(path).expect("a key opens the store");
    for n in 0.. {
        let next = 1 - current;
        RedbStore::rekey_file(path, &config(current), key(next), how).unwrap();
        println!("REKEYED {n}");
        current = next;
    }
}

/// Runs the child `cmd` and SIGKILLs it right after it printed a line
/// starting with `marker` `n` times: inside its next step, at a point that
/// varies from run to run. Returns `n`.
fn kill_after(mut cmd: std::process::Command, marker: &str, n: u64, round: u32) -> u64 {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let (mut seen, mut line) = (0, String::new());
    while seen < n {
        line.clear();
        if out.read_line(&mut line).unwrap() == 0 {
            break;
        }
        seen += line.starts_with(marker) as u64;
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert_eq!(seen, n, "child {round} stopped on its own: {status:?}");
    seen
}

async fn verify(path: &Path, round: u32) {
    let k = current_key(path).unwrap_or_else(|| panic!("round {round}: no key opens the store"));
    let s = RedbStore::with_config(path, config(k)).await.unwrap();
    assert_eq!(
        s.get_session(ADDRESS).await.unwrap().as_deref(),
        Some(SESSION)
    );
    let check = dataset::check(&s.for_device(2), 30, false).await;
    assert!(check.is_clean(), "round {round}: {:?}", check.diffs);
    s.close().await.unwrap();
}

async fn killed_rekeys(how: &str, seed: u64) {
    let rounds: u32 = std::env::var("WA_REDB_REKEY_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rekey.redb");
    let s = RedbStore::with_config(&path, config(0)).await.unwrap();
    s.put_session(ADDRESS, SESSION).await.unwrap();
    dataset::populate(&s.for_device(2), 30).await;
    s.close().await.unwrap();
    let mut rng = dataset::Rng(seed);
    let mut rekeys = 0;
    for round in 0..rounds {
        let mut child = process::self_command("rekey_child");
        child
            .env("WA_REDB_REKEY_FILE", &path)
            .env("WA_REDB_REKEY_HOW", how);
        let seen = kill_after(child, "REKEYED", 1 + rng.below(3), round);
        rekeys += seen;
        verify(&path, round).await;
    }
    eprintln!("{how}: {rounds} kills, {rekeys} completed rekeys, the store opened after each");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewrap_killed_at_any_moment_leaves_a_store_that_opens() {
    killed_rekeys("rewrap", 0x4E3A).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewrite_under_a_new_data_key_killed_at_any_moment_leaves_a_store_that_opens() {
    killed_rekeys("new", 0x4E3B).await;
}

/// `encrypt` and `decrypt`: copies of a plain (v1), a verified and an
/// encrypted store with another keying hold every row; the old key no
/// longer opens a store rewritten under a new data key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_with_another_keying_hold_every_row() {
    use whatsapp_rust_redb_storage::PageProtection;
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.redb");
    let v1 = RedbStoreConfig::default().with_page_protection(PageProtection::Off);
    let s = RedbStore::with_config(&plain, v1.clone()).await.unwrap();
    s.put_session(ADDRESS, SESSION).await.unwrap();
    dataset::populate(&s.for_device(2), 30).await;
    s.close().await.unwrap();

    let encrypted = dir.path().join("encrypted.redb");
    let before = std::fs::read(&plain).unwrap();
    RedbStore::copy_file(&plain, &v1, &encrypted, &config(1)).unwrap();
    assert_eq!(
        std::fs::read(&plain).unwrap(),
        before,
        "the source is only looked at"
    );
    verify(&encrypted, 0).await;
    assert!(
        RedbStore::open_to_look(&encrypted).is_err(),
        "needs its key"
    );
    let decrypted = dir.path().join("decrypted.redb");
    RedbStore::copy_file(
        &encrypted,
        &config(1),
        &decrypted,
        &RedbStoreConfig::default(),
    )
    .unwrap();
    let s = RedbStore::new(&decrypted).await.unwrap();
    assert_eq!(s.config().page_protection, PageProtection::Verified);
    assert_eq!(
        s.get_session(ADDRESS).await.unwrap().as_deref(),
        Some(SESSION)
    );
    s.close().await.unwrap();
    // The target must not exist.
    assert!(RedbStore::copy_file(&plain, &v1, &decrypted, &RedbStoreConfig::default()).is_err());

    // A rewrite under a new data key: only the new key opens it.
    RedbStore::rekey_file(&encrypted, &config(1), key(0), Rekey::NewDataKey).unwrap();
    assert_eq!(current_key(&encrypted), Some(0));
    assert!(RedbStore::open_to_look_with(&encrypted, &config(1)).is_err());
    verify(&encrypted, 1).await;
    // Rekeying a store that is not encrypted is refused, with a key or
    // without one; an encrypted store needs its key.
    assert!(RedbStore::rekey_file(&decrypted, &config(0), key(1), Rekey::Rewrap).is_err());
    let none = RedbStoreConfig::default();
    let e = RedbStore::rekey_file(&decrypted, &none, key(1), Rekey::Rewrap).unwrap_err();
    assert!(format!("{e:?}").contains("NotEncrypted"), "{e:?}");
    let e = RedbStore::rekey_file(&encrypted, &none, key(1), Rekey::Rewrap).unwrap_err();
    assert!(format!("{e:?}").contains("Required"), "{e:?}");
}

/// The child: converts the plain (v1) store to encrypted v2 copies, one
/// after the other (`<file>.v2-<n>`), saying so after each.
#[test]
#[ignore]
fn convert_child() {
    let Some(path) = std::env::var_os("WA_REDB_CONVERT_FILE") else {
        return;
    };
    let path = Path::new(&path);
    let v1 = RedbStoreConfig::default()
        .with_page_protection(whatsapp_rust_redb_storage::PageProtection::Off);
    for n in 0.. {
        let out = path.with_extension(format!("v2-{n}"));
        RedbStore::copy_file(path, &v1, &out, &config(1)).unwrap();
        println!("CONVERTED {n}");
    }
}

/// A v1 to v2 conversion killed at any moment: the v1 store is untouched
/// and every copy that exists under its name is complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversion_killed_at_any_moment_leaves_the_source_and_whole_copies() {
    use whatsapp_rust_redb_storage::PageProtection;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.redb");
    let v1 = RedbStoreConfig::default().with_page_protection(PageProtection::Off);
    let s = RedbStore::with_config(&path, v1).await.unwrap();
    s.put_session(ADDRESS, SESSION).await.unwrap();
    dataset::populate(&s.for_device(2), 30).await;
    s.close().await.unwrap();
    let before = std::fs::read(&path).unwrap();
    let mut rng = dataset::Rng(0xC0471);
    for round in 0..3 {
        let mut child = process::self_command("convert_child");
        child.env("WA_REDB_CONVERT_FILE", &path);
        kill_after(child, "CONVERTED", 1 + rng.below(3), round);
        assert_eq!(
            std::fs::read(&path).unwrap(),
            before,
            "round {round}: the source changed"
        );
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let copy = entry.unwrap().path();
            let name = copy.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with("v1.v2-") && !name.ends_with(".tmp") {
                verify(&copy, round).await;
                std::fs::remove_file(&copy).unwrap();
            }
        }
    }
}
