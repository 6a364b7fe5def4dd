//! The operations API: backups under load, compaction, deleting an account,
//! checking damaged files.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use wacore::appstate::processor::AppStateMutationMAC;
use wacore::store::Device;
use wacore::store::traits::*;
use whatsapp_rust_redb_storage::{RedbStore, RedbStoreConfig};

/// Writes at least one row in every table for account `s.device_id()`.
async fn fill(s: &RedbStore, n: u32) {
    let d = s.device_id();
    let v = |tag: &str, i: u32| format!("{tag}-{d}-{i}").into_bytes();
    s.save(&Device::new()).await.unwrap();
    let ids: Vec<(Arc<str>, [u8; 32])> = (0..n)
        .map(|i| (Arc::from(format!("{i}@c.us.0")), [d as u8; 32]))
        .collect();
    s.put_identities_batch(&ids).await.unwrap();
    let sessions: Vec<(Arc<str>, Bytes)> = (0..n)
        .map(|i| (Arc::from(format!("{i}@c.us.0")), Bytes::from(v("s", i))))
        .collect();
    s.put_sessions_batch(&sessions).await.unwrap();
    let prekeys: Vec<(u32, Bytes)> = (1..=n).map(|i| (i, Bytes::from(v("p", i)))).collect();
    s.store_prekeys_batch(&prekeys, true).await.unwrap();
    s.store_signed_prekey(1, &v("sp", 1)).await.unwrap();
    s.put_sender_key("g@g.us:1@c.us.0", &v("sk", 0))
        .await
        .unwrap();
    let key = AppStateSyncKey {
        key_data: vec![d as u8; 32],
        fingerprint: vec![1],
        timestamp: 5,
    };
    s.set_sync_key(b"k1", key).await.unwrap();
    s.set_version("regular", Default::default()).await.unwrap();
    let macs: Vec<AppStateMutationMAC> = (0..n)
        .map(|i| AppStateMutationMAC {
            index_mac: i.to_be_bytes().to_vec(),
            value_mac: v("m", i),
        })
        .collect();
    s.put_mutation_macs("regular", 1, &macs).await.unwrap();
    s.set_sender_key_status("g@g.us", &[("1:1@lid", true), ("2:1@lid", false)])
        .await
        .unwrap();
    let lids: Vec<LidPnMappingEntry> = (0..n)
        .map(|i| LidPnMappingEntry {
            lid: format!("1000{i}"),
            phone_number: format!("55{i}"),
            created_at: 1,
            updated_at: 2,
            learning_source: "usync".into(),
        })
        .collect();
    s.put_lid_mappings(&lids).await.unwrap();
    s.save_base_key("1@c.us.0", "m1", &v("bk", 0))
        .await
        .unwrap();
    s.update_device_list(DeviceListRecord {
        user: "55".into(),
        devices: vec![DeviceInfo::new(0, None)],
        timestamp: 1,
        phash: None,
        raw_id: None,
    })
    .await
    .unwrap();
    s.put_group_metadata("g@g.us", &v("gm", 0)).await.unwrap();
    s.put_tc_token(
        "55",
        &TcTokenEntry {
            token: v("tc", 0),
            token_timestamp: 1,
            sender_timestamp: None,
        },
    )
    .await
    .unwrap();
    s.store_sent_message("c@s.whatsapp.net", "M1", &v("sent", 0))
        .await
        .unwrap();
    s.store_pending_inbound("c@s.whatsapp.net", "a@s.whatsapp.net", "S1", &v("in", 0))
        .await
        .unwrap();
    s.put_msg_secret("c@s.whatsapp.net", "a@s.whatsapp.net", "M1", &[d as u8; 32])
        .await
        .unwrap();
}

/// Writer `w`'s batch `b`: `ROWS` sessions plus a counter row, in one
/// transaction, every value naming the batch.
const ROWS: u32 = 50;

fn batch(w: u32, b: u64) -> Vec<(Arc<str>, Bytes)> {
    let value = Bytes::from(format!("batch-{b}"));
    (0..ROWS)
        .map(|i| (Arc::from(format!("w{w}-{i}@c.us.0")), value.clone()))
        .chain([(Arc::from(format!("w{w}-counter@c.us.0")), value.clone())])
        .collect()
}

/// The batch every row of writer `w` holds in `s`; panics if the rows
/// disagree (a torn batch).
async fn batch_of(s: &RedbStore, w: u32) -> Option<u64> {
    let counter = s
        .get_session(&format!("w{w}-counter@c.us.0"))
        .await
        .unwrap();
    let mut seen = Vec::new();
    for i in 0..ROWS {
        seen.push(s.get_session(&format!("w{w}-{i}@c.us.0")).await.unwrap());
    }
    assert!(
        seen.iter().all(|v| *v == counter),
        "writer {w}: the rows of one batch disagree with its counter {counter:?}: {seen:?}"
    );
    counter.map(|c| {
        std::str::from_utf8(&c)
            .unwrap()
            .strip_prefix("batch-")
            .unwrap()
            .parse()
            .unwrap()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_taken_under_writers_restores_to_a_consistent_state() {
    const WRITERS: u32 = 3;
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::new(dir.path().join("live.redb")).await.unwrap();
    store.create().await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Vec<AtomicU64>> = Arc::new((0..WRITERS).map(|_| AtomicU64::new(0)).collect());
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let (store, stop, acked) = (store.clone(), stop.clone(), acked.clone());
        tasks.push(tokio::spawn(async move {
            let mut b = 0u64;
            while !stop.load(Ordering::Relaxed) {
                b += 1;
                store.put_sessions_batch(&batch(w, b)).await.unwrap();
                acked[w as usize].store(b, Ordering::SeqCst);
            }
            b
        }));
    }
    // Backups while the writers run, each after at least one more batch.
    let mut backups = Vec::new();
    for k in 0..4 {
        let floor: Vec<u64> = loop {
            let now: Vec<u64> = acked.iter().map(|a| a.load(Ordering::SeqCst)).collect();
            if now.iter().all(|&b| b > k * 3) {
                break now;
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        };
        let path = dir.path().join(format!("backup-{k}.redb"));
        store.backup_to(&path).await.unwrap();
        backups.push((path, floor));
    }
    stop.store(true, Ordering::Relaxed);
    let mut last = Vec::new();
    for t in tasks {
        last.push(t.await.unwrap());
    }
    // Refuses to overwrite.
    assert!(store.backup_to(&backups[0].0).await.is_err());
    store.close().await.unwrap();

    let target = dir.path().join("restored.redb");
    for (path, floor) in &backups {
        assert!(RedbStore::check_file(path).unwrap().is_ok());
        RedbStore::restore_file(path, &target).unwrap();
        let restored = RedbStore::new(&target).await.unwrap();
        assert!(restored.exists().await.unwrap());
        for w in 0..WRITERS {
            let b = batch_of(&restored, w).await.expect("a batch");
            assert!(
                b >= floor[w as usize] && b <= last[w as usize],
                "writer {w}: backup holds batch {b}, acknowledged before it: {}",
                floor[w as usize]
            );
        }
        restored.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compact_gives_space_back_after_most_rows_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.redb");
    // Explicit compaction only: `maintenance()` would otherwise compact
    // (see `maintenance_compacts_a_mostly_free_file_and_a_close_never_does`).
    let manual = || RedbStoreConfig::default().with_auto_compact(None);
    {
        let s = RedbStore::with_config(&path, manual()).await.unwrap();
        s.create().await.unwrap();
        let big = vec![0xAB_u8; 2048];
        for chunk in 0..8u32 {
            let items: Vec<(Arc<str>, Bytes)> = (0..500u32)
                .map(|i| {
                    (
                        Arc::from(format!("{chunk}-{i}@c.us.0")),
                        Bytes::from(big.clone()),
                    )
                })
                .collect();
            s.put_sessions_batch(&items).await.unwrap();
        }
        s.close().await.unwrap();
    }
    {
        let s = RedbStore::with_config(&path, manual()).await.unwrap();
        for chunk in 0..8u32 {
            for i in 0..500u32 {
                // Keep every 40th row: the free space is spread through
                // the file, not a tail the file could just drop.
                if i % 40 != 0 {
                    s.delete_session(&format!("{chunk}-{i}@c.us.0"))
                        .await
                        .unwrap();
                }
            }
        }
        s.close().await.unwrap();
    }
    let report = RedbStore::compact_file(&path).unwrap();
    assert!(report.bytes_before > 6 << 20, "{report:?}");
    assert!(
        report.bytes_after * 4 < report.bytes_before,
        "compaction should give most of the file back: {report:?}"
    );
    assert_eq!(report.bytes_after, std::fs::metadata(&path).unwrap().len());
    assert!(RedbStore::check_file(&path).unwrap().is_ok());
    let s = RedbStore::new(&path).await.unwrap();
    for chunk in 0..8u32 {
        for i in (0..500u32).step_by(40) {
            assert!(s.has_session(&format!("{chunk}-{i}@c.us.0")).await.unwrap());
        }
        assert!(!s.has_session(&format!("{chunk}-1@c.us.0")).await.unwrap());
    }
}

/// Every row of the other accounts, as a digest that differs if any row
/// does.
async fn digest(s: &RedbStore) -> BTreeMap<i32, u64> {
    s.accounts()
        .await
        .unwrap()
        .into_iter()
        .map(|a| (a.device_id, a.rows))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_device_leaves_no_row_of_it_and_keeps_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let s = RedbStore::new(dir.path().join("multi.redb")).await.unwrap();
    for d in [1, 2, 3] {
        fill(&s.for_device(d), 20).await;
    }
    let before = digest(&s).await;
    assert_eq!(before.len(), 3);
    // Every table but `meta` has rows of device 2.
    let info = s.info().await.unwrap();
    for t in &info.tables {
        assert!(
            t.rows > 0,
            "the test fills every table: {} is empty",
            t.name
        );
    }
    #[cfg(feature = "cli")]
    let other_rows = dump_lines(&s, None, |row| row.device != Some(2));

    let deleted = s.delete_device(2).await.unwrap();
    assert_eq!(deleted, before[&2]);
    let after = digest(&s).await;
    assert_eq!(after.get(&2), None);
    assert_eq!(after[&1], before[&1]);
    assert_eq!(after[&3], before[&3]);
    let tables_after: u64 = s
        .info()
        .await
        .unwrap()
        .tables
        .iter()
        .filter(|t| t.name != "meta")
        .map(|t| t.rows)
        .sum();
    assert_eq!(tables_after, after.values().sum::<u64>());
    assert!(!s.for_device(2).exists().await.unwrap());
    assert!(s.for_device(1).exists().await.unwrap());
    assert_eq!(
        s.for_device(3)
            .get_session("0@c.us.0")
            .await
            .unwrap()
            .unwrap(),
        &b"s-3-0"[..]
    );
    // Deleting again deletes nothing.
    assert_eq!(s.delete_device(2).await.unwrap(), 0);

    #[cfg(feature = "cli")]
    {
        // No row of device 2 anywhere; every other row exactly as before
        // (except the meta table's counters).
        assert!(dump_lines(&s, Some(2), |_| true).is_empty());
        let now = dump_lines(&s, None, |row| row.device.is_some());
        let want: Vec<String> = other_rows
            .into_iter()
            .filter(|l| !l.starts_with(r#"{"table":"meta""#))
            .collect();
        assert_eq!(now, want);
    }
}

#[cfg(feature = "cli")]
fn dump_lines(
    s: &RedbStore,
    device: Option<i32>,
    keep: impl Fn(&whatsapp_rust_redb_storage::DumpRow) -> bool,
) -> Vec<String> {
    let mut options = whatsapp_rust_redb_storage::DumpOptions::default().with_reveal(true);
    options.device = device;
    let mut out = Vec::new();
    s.dump(&options, &mut |row| {
        if keep(&row) {
            out.push(serde_json::to_string(&row).unwrap());
        }
        std::ops::ControlFlow::Continue(())
    })
    .unwrap();
    out
}

/// A closed store file with data in every table of two accounts.
async fn good_file(path: &Path) {
    let s = RedbStore::new(path).await.unwrap();
    fill(&s, 200).await;
    fill(&s.for_device(2), 200).await;
    s.close().await.unwrap();
}

/// `check_file` on a damaged copy: never a panic; `true` if it reported the
/// damage (an error, or a report that is not ok).
fn check_reports_damage(path: &Path) -> bool {
    let result = std::panic::catch_unwind(|| RedbStore::check_file(path));
    match result {
        Err(_) => panic!("check_file panicked on {}", path.display()),
        Ok(Err(_)) => true,
        Ok(Ok(report)) => !report.is_ok(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_passes_a_good_file_and_reports_damaged_copies() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.redb");
    good_file(&good).await;
    let report = RedbStore::check_file(&good).unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert!(report.rows_checked > 2000, "{report:?}");
    let bytes = std::fs::read(&good).unwrap();
    let copy = |name: &str, data: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, data).unwrap();
        p
    };

    // Truncated to half, and to a few bytes.
    assert!(check_reports_damage(&copy(
        "half.redb",
        &bytes[..bytes.len() / 2]
    )));
    assert!(check_reports_damage(&copy("stub.redb", &bytes[..100])));
    // Everything after the first page overwritten with garbage.
    let mut garbage = bytes.clone();
    for (i, b) in garbage.iter_mut().enumerate().skip(4096) {
        *b = (i as u8).wrapping_mul(31) ^ 0x5A;
    }
    assert!(check_reports_damage(&copy("garbage.redb", &garbage)));
    // Bytes flipped across the whole data area.
    let mut flipped = bytes.clone();
    for i in (4096..flipped.len()).step_by(509) {
        flipped[i] ^= 0xFF;
    }
    assert!(check_reports_damage(&copy("flipped.redb", &flipped)));
    // Single flips here and there: never a panic (a flip in free space
    // cannot be seen).
    let mut seen = 0;
    for k in 1..12usize {
        let mut one = bytes.clone();
        let at = (k * 7919 * 13) % (one.len() - 4096) + 4096;
        one[at] ^= 0x01;
        seen += check_reports_damage(&copy(&format!("flip-{k}.redb"), &one)) as usize;
    }
    eprintln!("single flips reported: {seen} of 11");
    // The original is untouched by all this.
    assert!(RedbStore::check_file(&good).unwrap().is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_refuses_a_target_open_in_this_process() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.redb"), dir.path().join("b.redb"));
    let s = RedbStore::new(&a).await.unwrap();
    s.create().await.unwrap();
    s.backup_to(&b).await.unwrap();
    let err = RedbStore::restore_file(&b, &a).unwrap_err();
    assert!(err.to_string().contains("open in this process"), "{err}");
    assert!(s.exists().await.unwrap());
}

#[test]
fn whole_file_operations_do_not_create_a_missing_store() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.redb");
    let err = RedbStore::check_file(&missing).unwrap_err();
    assert!(err.to_string().contains("no such file"), "{err}");
    let err = RedbStore::compact_file(&missing).unwrap_err();
    assert!(err.to_string().contains("no such file"), "{err}");
    assert!(!missing.exists());
}

#[tokio::test]
async fn maintenance_compacts_a_mostly_free_file_and_a_close_never_does() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("auto.redb");
    let s = RedbStore::new(&path).await.unwrap();
    let big = Bytes::from(vec![0xCD_u8; 2048]);
    let items: Vec<(Arc<str>, Bytes)> = (0..4000u32)
        .map(|i| (Arc::from(format!("{i}@c.us.0")), big.clone()))
        .collect();
    s.put_sessions_batch(&items).await.unwrap();
    s.checkpoint().await.unwrap();
    let full = std::fs::metadata(&path).unwrap().len();
    for (i, (key, _)) in items.iter().enumerate() {
        if i % 20 != 0 {
            s.delete_session(key).await.unwrap();
        }
    }
    s.close().await.unwrap();
    let closed = std::fs::metadata(&path).unwrap().len();
    assert!(closed * 2 > full, "compacted at close: {full} -> {closed}");
    let s = RedbStore::new(&path).await.unwrap();
    let report = s.maintenance().await.unwrap();
    let compaction = report.compaction.expect("compacted");
    let after = std::fs::metadata(&path).unwrap().len();
    assert_eq!(compaction.bytes_after, after);
    assert!(after * 3 < full, "compacted: {full} -> {after}");
    // Nothing left to give back: the next maintenance does not compact.
    assert_eq!(s.maintenance().await.unwrap().compaction, None);
    s.put_session("new@c.us.0", b"after").await.unwrap();
    drop(s);
    let s = RedbStore::new(&path).await.unwrap();
    assert!(s.has_session("0@c.us.0").await.unwrap());
    assert!(!s.has_session("1@c.us.0").await.unwrap());
    assert!(s.has_session("new@c.us.0").await.unwrap());
}

/// Offline compaction packing the B-tree pages full leaves a smaller file
/// than the balanced one, with every row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maximum_packing_leaves_the_smallest_file_with_every_row() {
    use whatsapp_rust_redb_storage::Packing;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let s = RedbStore::new(&path).await.unwrap();
    let value = Bytes::from(vec![0x5A_u8; 300]);
    let items: Vec<(Arc<str>, Bytes)> = (0..6000u32)
        .map(|i| (Arc::from(format!("{i:05}@c.us.0")), value.clone()))
        .collect();
    s.put_sessions_batch(&items).await.unwrap();
    // Two thirds deleted one by one: half-empty leaves all over the tree.
    for (i, (key, _)) in items.iter().enumerate() {
        if i % 3 != 0 {
            s.delete_session(key).await.unwrap();
        }
    }
    s.close().await.unwrap();
    let mut sizes = Vec::new();
    for packing in [Packing::Balanced, Packing::Maximum] {
        let copy = dir.path().join(format!("{packing:?}.redb"));
        std::fs::copy(&path, &copy).unwrap();
        let config = RedbStoreConfig::default();
        let report = RedbStore::compact_file_packing(&copy, &config, packing).unwrap();
        sizes.push(report.bytes_after);
        let c = RedbStore::new(&copy).await.unwrap();
        for (i, (key, _)) in items.iter().enumerate() {
            assert_eq!(c.has_session(key).await.unwrap(), i % 3 == 0, "{key}");
        }
        c.close().await.unwrap();
    }
    assert!(
        sizes[1] < sizes[0],
        "balanced {} maximum {}",
        sizes[0],
        sizes[1]
    );
}
