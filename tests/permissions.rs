//! Every file the store creates holds private keys, so it is created
//! readable and writable by its owner only (0600), whatever the process's
//! umask: the store file, its journal, snapshots (`DeviceStore::snapshot_db`,
//! and the extra content beside them), backups (`RedbStore::backup_to`) and
//! restored files (`RedbStore::restore_file`).
//!
//! The umask is process-wide: this file is its own test binary, and its
//! tests take `UMASK_LOCK` so they never run with each other's umask.
#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use wacore::store::traits::{DeviceStore, SignalStore};
use whatsapp_rust_redb_storage::RedbStore;

#[cfg(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "openbsd",
    target_os = "netbsd",
    target_os = "dragonfly"
))]
type ModeT = u16;
#[cfg(not(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "openbsd",
    target_os = "netbsd",
    target_os = "dragonfly"
)))]
type ModeT = u32;

unsafe extern "C" {
    fn umask(mask: ModeT) -> ModeT;
}

static UMASK_LOCK: Mutex<()> = Mutex::new(());

/// Sets the process umask until dropped.
struct Umask {
    old: ModeT,
    _lock: std::sync::MutexGuard<'static, ()>,
}

impl Umask {
    fn set(mask: ModeT) -> Umask {
        let lock = UMASK_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        // SAFETY: umask(2) cannot fail; it only swaps the process's mask.
        let old = unsafe { umask(mask) };
        Umask { old, _lock: lock }
    }
}

impl Drop for Umask {
    fn drop(&mut self) {
        // SAFETY: as above.
        unsafe { umask(self.old) };
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn assert_private(path: &Path, mask: ModeT) {
    let m = mode(path);
    assert_eq!(
        m,
        0o600,
        "{} is {m:03o} under umask {mask:03o}, expected 600",
        path.display()
    );
}

fn journal_of(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}.journal", path.display()))
}

/// Files in `dir` whose name starts with `prefix`.
fn files_starting(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn every_file_the_store_creates_is_owner_only_under_a_permissive_umask() {
    for mask in [0o022, 0o002, 0o000] {
        let _umask = Umask::set(mask);
        let dir = tempfile::tempdir().unwrap();
        // The umask is in effect: an ordinary file is group/world readable.
        let control = dir.path().join("control");
        std::fs::write(&control, b"x").unwrap();
        // mode_t is u16 on some platforms.
        #[allow(clippy::unnecessary_cast)]
        let mask32 = mask as u32;
        assert_eq!(mode(&control), 0o666 & !mask32, "umask not applied");

        let path = dir.path().join("store.redb");
        let s = RedbStore::new(&path).await.unwrap();
        assert_private(&path, mask);
        // The journal appears at the first write.
        s.create().await.unwrap();
        assert_private(&journal_of(&path), mask);
        s.put_session("a@c.us.0", b"secret session").await.unwrap();

        s.snapshot_db("before-crash", Some(b"{\"why\":\"test\"}"))
            .await
            .unwrap();
        s.snapshot_db("no-extra", None).await.unwrap();
        let snapshots = files_starting(dir.path(), "store.redb.snapshot-");
        assert_eq!(snapshots.len(), 3, "{snapshots:?}");
        assert!(
            snapshots
                .iter()
                .any(|p| p.extension().is_some_and(|e| e == "json"))
        );
        for p in &snapshots {
            assert_private(p, mask);
        }

        let backup = dir.path().join("backup.redb");
        s.backup_to(&backup).await.unwrap();
        assert_private(&backup, mask);
        s.close().await.unwrap();
        assert!(!journal_of(&path).exists());

        // Reopening, compacting and restoring keep the file owner-only.
        let s = RedbStore::new(&path).await.unwrap();
        s.put_session("b@c.us.0", b"another").await.unwrap();
        assert_private(&journal_of(&path), mask);
        s.close().await.unwrap();
        RedbStore::compact_file(&path).unwrap();
        assert_private(&path, mask);
        let restored = dir.path().join("restored.redb");
        RedbStore::restore_file(&backup, &restored).unwrap();
        assert_private(&restored, mask);
        RedbStore::restore_file(&backup, &path).unwrap();
        assert_private(&path, mask);

        // A snapshot and a backup open as stores and hold the data.
        for p in snapshots.iter().filter(|p| p.extension().is_none()) {
            let copy = RedbStore::new(p).await.unwrap();
            assert!(copy.has_session("a@c.us.0").await.unwrap());
            copy.close().await.unwrap();
        }
        let copy = RedbStore::new(&restored).await.unwrap();
        assert!(copy.has_session("a@c.us.0").await.unwrap());
        copy.close().await.unwrap();
    }
}

#[tokio::test]
async fn a_store_restored_from_a_world_readable_backup_is_owner_only() {
    let mask = 0o022;
    let _umask = Umask::set(mask);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let s = RedbStore::new(&path).await.unwrap();
    s.put_session("a@c.us.0", b"secret session").await.unwrap();
    let backup = dir.path().join("backup.redb");
    s.backup_to(&backup).await.unwrap();
    s.close().await.unwrap();
    // The backup was copied around (scp, cloud sync...) and lost its mode.
    std::fs::set_permissions(&backup, std::fs::Permissions::from_mode(0o644)).unwrap();
    let target = dir.path().join("restored.redb");
    RedbStore::restore_file(&backup, &target).unwrap();
    assert_private(&target, mask);
    RedbStore::restore_file(&backup, &path).unwrap();
    assert_private(&path, mask);
}
