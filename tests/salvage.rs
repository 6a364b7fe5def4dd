//! Salvage: damaged copies of a store (verified and encrypted), each with
//! one 4 KiB block zeroed, salvaged into new stores: what comes back is
//! exactly what was written (never a damaged value), the report matches
//! what the new store holds, and the device record and identity keys come
//! back whenever their pages are intact — in particular when the damage is
//! in another table, whose rows on both sides of the damaged page still
//! come back.

#[path = "util/dataset.rs"]
mod dataset;

use std::path::Path;

use wacore::store::traits::*;
use whatsapp_rust_redb_storage::{RedbStore, RedbStoreConfig, SalvageReport};

use dataset::{addr, blob, bytes32};

const ACCOUNTS: [i32; 2] = [1, 2];
const ROWS: u32 = 60;

fn store_config(encrypted: bool) -> RedbStoreConfig {
    match encrypted {
        true => RedbStoreConfig::default().with_encryption_key([0x5A; 32]),
        false => RedbStoreConfig::default(),
    }
}

async fn good_store(path: &Path, config: &RedbStoreConfig) -> Vec<u8> {
    let s = RedbStore::with_config(path, config.clone()).await.unwrap();
    for d in ACCOUNTS {
        dataset::populate(&s.for_device(d), ROWS).await;
    }
    s.close().await.unwrap();
    std::fs::read(path).unwrap()
}

/// What a salvaged store holds of the data set, checked row by row: every
/// row present has its original value. Returns (device records, identities,
/// sessions) present.
async fn present(s: &RedbStore) -> (usize, usize, usize) {
    let (mut devices, mut identities, mut sessions) = (0, 0, 0);
    for d in ACCOUNTS {
        let a = s.for_device(d);
        if let Some(dev) = a.load().await.unwrap() {
            let want = dataset::device(d);
            assert_eq!(dev.push_name, want.push_name, "a damaged device record");
            assert!(
                dev.identity_key.private_key.serialize()
                    == want.identity_key.private_key.serialize(),
                "a damaged identity key pair"
            );
            devices += 1;
        }
        for i in 0..ROWS {
            if let Some(k) = a.load_identity(&addr(i)).await.unwrap() {
                assert_eq!(k, bytes32(d, "identity", i), "a damaged identity");
                identities += 1;
            }
            if let Some(v) = a.get_session(&addr(i)).await.unwrap() {
                assert_eq!(v.to_vec(), blob(d, "session", i), "a damaged session");
                sessions += 1;
            }
        }
    }
    (devices, identities, sessions)
}

fn table<'a>(r: &'a SalvageReport, name: &str) -> &'a whatsapp_rust_redb_storage::TableSalvage {
    r.tables.iter().find(|t| t.table == name).unwrap()
}

/// Salvages `bytes` (written to `dir`) and checks the result against the
/// report; `None` if the store could not be opened at all.
async fn salvage(
    dir: &Path,
    name: &str,
    bytes: &[u8],
    config: &RedbStoreConfig,
) -> Option<(SalvageReport, (usize, usize, usize))> {
    let damaged = dir.join(format!("{name}.redb"));
    let out = dir.join(format!("{name}.salvaged.redb"));
    std::fs::write(&damaged, bytes).unwrap();
    let report = match RedbStore::salvage_file(&damaged, config, &out, config) {
        Ok(r) => r,
        Err(e) => {
            let shown = format!(
                "{e} {:?}",
                std::error::Error::source(&e).map(|s| s.to_string())
            );
            assert!(shown.contains("damaged"), "{name}: unclear error: {shown}");
            assert!(!out.exists(), "{name}: a failed salvage left its output");
            return None;
        }
    };
    assert_eq!(
        std::fs::read(&damaged).unwrap(),
        bytes,
        "salvage wrote to its source"
    );
    let s = RedbStore::with_config(&out, config.clone()).await.unwrap();
    let got = present(&s).await;
    s.close().await.unwrap();
    // The report tells the truth about what came back.
    let (devices, identities, sessions) = got;
    assert_eq!(
        table(&report, "devices").recovered as usize,
        devices,
        "{name}"
    );
    assert_eq!(
        table(&report, "identities").recovered as usize,
        identities,
        "{name}"
    );
    assert_eq!(
        table(&report, "sessions").recovered as usize,
        sessions,
        "{name}"
    );
    assert_eq!(report.accounts.len(), devices, "{name}");
    for t in ["devices", "identities", "sessions"] {
        if table(&report, t).complete() {
            let want = if t == "devices" { 2 } else { 2 * ROWS as usize };
            let have = [devices, identities, sessions][["devices", "identities", "sessions"]
                .iter()
                .position(|x| *x == t)
                .unwrap()];
            assert_eq!(have, want, "{name}: {t} reported complete");
        }
    }
    Some((report, got))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_zeroed_block_salvages_what_is_intact() {
    for encrypted in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let config = store_config(encrypted);
        let good = good_store(&dir.path().join("good.redb"), &config).await;

        // Undamaged: everything comes back.
        let (report, got) = salvage(dir.path(), "intact", &good, &config).await.unwrap();
        assert!(report.complete(), "{report:?}");
        assert_eq!(got, (2, 2 * ROWS as usize, 2 * ROWS as usize));

        // Every block with `WA_REDB_SALVAGE_BLOCKS=all`; by default 60 of
        // them, evenly spread.
        let blocks = good.len() / 4096;
        let wanted = match std::env::var("WA_REDB_SALVAGE_BLOCKS").as_deref() {
            Ok("all") => blocks,
            Ok(n) => n.parse().expect("a number or `all`"),
            Err(_) => 60,
        };
        let stride = (blocks / wanted.max(1)).max(1);
        let (mut cases, mut opened, mut paired) = (0, 0, 0);
        for b in (1..blocks).step_by(stride) {
            let mut bytes = good.clone();
            bytes[b * 4096..(b + 1) * 4096].fill(0);
            if bytes == good {
                continue;
            }
            cases += 1;
            if let Some((_, (devices, _, _))) =
                salvage(dir.path(), &format!("zero-{b}"), &bytes, &config).await
            {
                opened += 1;
                paired += (devices == 2) as u32;
            }
        }
        eprintln!(
            "salvage (encrypted: {encrypted}): {cases} blocks zeroed one at a time; \
             {opened} salvaged, both device records back in {paired}"
        );
        assert!(paired > cases / 2, "{paired} of {cases}");
    }
}

/// Damage inside the sessions table: the device records, the identities and
/// every other table come back in full; of the sessions, those on both sides
/// of the damaged page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_in_one_table_costs_only_the_rows_under_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = store_config(false);
    let good = good_store(&dir.path().join("good.redb"), &config).await;
    // A verified file shows its values: find a block of session records of
    // the middle of the key range that holds nothing else of the data set.
    let needle = |d: i32, i: u32| blob(d, "session", i);
    let holds = |block: &[u8], n: &[u8]| block.windows(n.len()).any(|w| w == n);
    let target = (1..good.len() / 4096)
        .find(|&b| {
            let block = &good[b * 4096..(b + 1) * 4096];
            holds(block, &needle(1, ROWS / 2))
                && !holds(block, &needle(1, 0))
                && !holds(block, &needle(2, ROWS - 1))
                && !holds(block, dataset::device(1).push_name.as_bytes())
                && !holds(block, &bytes32(1, "identity", 0))
        })
        .expect("a block of sessions");
    let mut bytes = good.clone();
    bytes[target * 4096..(target + 1) * 4096].fill(0);
    let (report, (devices, identities, sessions)) =
        salvage(dir.path(), "sessions", &bytes, &config)
            .await
            .unwrap();
    assert_eq!((devices, identities), (2, 2 * ROWS as usize));
    let s = table(&report, "sessions");
    assert!(s.unreadable.is_some(), "{s:?}");
    assert!(sessions > 0 && sessions < 2 * ROWS as usize, "{sessions}");
    // Every session but those in the damaged page came back: the rows
    // before it (the forward pass) and after it (the backward pass).
    let block = &good[target * 4096..(target + 1) * 4096];
    let lost = ACCOUNTS
        .iter()
        .flat_map(|&d| (0..ROWS).map(move |i| (d, i)))
        .filter(|&(d, i)| holds(block, &needle(d, i)))
        .count();
    assert_eq!(
        sessions,
        2 * ROWS as usize - lost,
        "{lost} sessions in the page"
    );
    for t in &report.tables {
        if t.table != "sessions" {
            assert!(t.complete(), "{t:?}");
        }
    }
}
