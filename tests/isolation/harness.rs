//! The harness: a world of handles on one file and a model per device,
//! each operation compared with the acting device's model and full reads
//! of the others; one case (random phase, fill, wipe, reopen).

use std::path::{Path, PathBuf};

use whatsapp_rust_redb_storage::RedbStore;

use crate::diff_util::*;
use crate::model::Model;
use crate::ops::{fill_ops, full_reads, wipe_ops};
use crate::{FIXED_ID_SETS, ID_POOL};

struct World {
    path: PathBuf,
    ids: Vec<i32>,
    handles: Vec<RedbStore>,
    models: Vec<Model>,
    /// Context for failure messages.
    label: String,
    log: Vec<String>,
}

/// Handles for `ids` on the file at `path`: even positions via
/// `for_device` on the first handle, odd ones via their own
/// `new_for_device`.
pub(crate) async fn open_handles(path: &Path, ids: &[i32]) -> Vec<RedbStore> {
    let first = RedbStore::new_for_device(path, ids[0])
        .await
        .expect("open store");
    let mut handles = vec![first];
    for (i, &id) in ids.iter().enumerate().skip(1) {
        let h = if i % 2 == 0 {
            handles[0].for_device(id)
        } else {
            RedbStore::new_for_device(path, id)
                .await
                .expect("open second handle")
        };
        handles.push(h);
    }
    handles
}

impl World {
    fn fail(&self, what: &str, dev: usize, op: &Op, store: &Out, model: &Out) -> ! {
        let tail: Vec<&String> = self.log.iter().rev().take(25).collect();
        let tail: String = tail
            .into_iter()
            .rev()
            .map(|l| format!("    {l}\n"))
            .collect();
        panic!(
            "{}: {what}\n  device #{dev} (id {}), op: {op:?}\n  RedbStore: {store:?}\n  model:     {model:?}\n  last ops:\n{tail}",
            self.label, self.ids[dev]
        );
    }

    /// Runs `op` on device `dev` and compares with its model.
    async fn step(&mut self, dev: usize, op: &Op) {
        self.log.push(format!(
            "#{} dev {dev} (id {}): {op:?}",
            self.log.len(),
            self.ids[dev]
        ));
        if let Op::Reopen = op {
            self.reopen().await;
            return;
        }
        let h = &self.handles[dev];
        let store = apply(h, Some(h), self.models[dev].created(), op).await;
        let model = self.models[dev].apply(op);
        if let Some(kind) = difference(&store, &model) {
            self.fail(kind, dev, op, &store, &model);
        }
    }

    /// Reads everything of device `dev` and compares with its model.
    async fn check_device(&mut self, dev: usize, after: &str) {
        let h = &self.handles[dev];
        let created = self.models[dev].created();
        for op in full_reads() {
            let store = apply(h, Some(h), created, &op).await;
            let model = self.models[dev].apply(&op);
            if let Some(kind) = difference(&store, &model) {
                self.fail(
                    &format!("full read after {after}: {kind}"),
                    dev,
                    &op,
                    &store,
                    &model,
                );
            }
        }
        // Sent messages have no plain read: take each, then put it back.
        for &chat in CHATS {
            for &id in MSG_IDS {
                let op = Op::TakeSentMessage { chat, id };
                let store = apply(h, Some(h), created, &op).await;
                let model = self.models[dev].apply(&op);
                if let Some(kind) = difference(&store, &model) {
                    self.fail(
                        &format!("full read after {after}: {kind}"),
                        dev,
                        &op,
                        &store,
                        &model,
                    );
                }
                if let Ok(s) = &store.res
                    && s != "None"
                {
                    // Re-store the payload the model had.
                    let payload: Vec<u8> = parse_some_bytes(s);
                    let restore = Op::StoreSentMessage { chat, id, payload };
                    apply(h, Some(h), created, &restore).await;
                    self.models[dev].apply(&restore);
                }
            }
        }
    }

    async fn check_all_but(&mut self, skip: Option<usize>, after: &str) {
        for dev in 0..self.ids.len() {
            if Some(dev) != skip {
                self.check_device(dev, after).await;
            }
        }
    }

    async fn reopen(&mut self) {
        let mut handles = std::mem::take(&mut self.handles);
        let last = handles.pop().expect("handles");
        drop(handles);
        last.close().await.expect("close");
        self.handles = open_handles(&self.path, &self.ids).await;
    }
}

/// Parses `Some([1, 2])` (the rendering of an `Option<Vec<u8>>`).
fn parse_some_bytes(s: &str) -> Vec<u8> {
    let inner = s
        .strip_prefix("Some([")
        .and_then(|r| r.strip_suffix("])"))
        .unwrap_or_else(|| panic!("not Some([..]): {s}"));
    inner
        .split(", ")
        .filter(|x| !x.is_empty())
        .map(|x| x.parse().expect("byte"))
        .collect()
}

fn case_ids(case_no: u64, rng: &mut Rng) -> Vec<i32> {
    if let Some(ids) = FIXED_ID_SETS.get(case_no as usize) {
        return ids.to_vec();
    }
    let mut ids: Vec<i32> = Vec::new();
    while ids.len() < 3 {
        let id = rng.pick(ID_POOL);
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids
}

pub(crate) async fn run_case(case_no: u64, seed: u64, n_ops: usize) {
    let mut rng = Rng::new(seed);
    let ids = case_ids(case_no, &mut rng);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store.redb");
    let handles = open_handles(&path, &ids).await;
    let mut world = World {
        path,
        models: ids.iter().map(|&id| Model::new(id)).collect(),
        ids: ids.clone(),
        handles,
        label: format!("isolation: seed {seed:#x} (case {case_no}), device ids {ids:?}"),
        log: Vec::new(),
    };
    let n = ids.len();

    // Random phase.
    let mut uniq = 0;
    for i in 0..n_ops {
        let dev = rng.below(n);
        let op = Op::generate(&mut rng, USERS, &mut uniq);
        world.step(dev, &op).await;
        if op.is_destructive() || matches!(op, Op::Reopen) {
            world
                .check_all_but(Some(dev), &format!("{op:?} on device #{dev}"))
                .await;
        }
        if i % 100 == 99 {
            world.check_all_but(None, "a round of random ops").await;
        }
    }
    world.check_all_but(None, "the random phase").await;

    // Fill every device, wipe the first, check everyone.
    for dev in 0..n {
        for op in fill_ops(dev) {
            world.step(dev, &op).await;
        }
    }
    world.check_all_but(None, "filling every device").await;
    let victim = (seed % n as u64) as usize;
    for op in wipe_ops() {
        world.step(victim, &op).await;
    }
    world
        .check_all_but(None, &format!("wiping device #{victim}"))
        .await;

    // Everything survives closing and reopening the file.
    world.reopen().await;
    world.check_all_but(None, "reopening").await;
}
