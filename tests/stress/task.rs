//! Driving one task: the random choice of the next operation, the device
//! record, device-wide operations (deletes, clears, row counts), read-backs
//! of a slice of the model, and backups checked against the model.

use std::sync::atomic::Ordering;

use wacore::store::Device;
use wacore::store::traits::*;
use whatsapp_rust_redb_storage::RedbStore;

use crate::dataset::chain;
use crate::{Model, Task, verify_model};

impl Task {
    pub(crate) fn r(&mut self, n: u64) -> u64 {
        self.rng.below(n)
    }

    pub(crate) fn bytes(&mut self) -> Vec<u8> {
        let len = 1 + self.r(200) as usize;
        self.rng.bytes(len)
    }

    pub(crate) fn bool(&mut self) -> bool {
        self.r(2) == 0
    }

    pub(crate) fn timestamp(&mut self) -> i64 {
        1_700_000_000 + self.r(100) as i64
    }

    /// One random operation, checked against the model.
    pub(crate) async fn step(&mut self) {
        self.ops += 1;
        self.stats.ops.fetch_add(1, Ordering::Relaxed);
        let pick = self.r(1000);
        if pick < 4 {
            return self.device_wide().await;
        }
        if pick < 6 {
            self.stats.checkpoints.fetch_add(1, Ordering::Relaxed);
            return ok!(self, self.s.checkpoint(), "checkpoint");
        }
        if pick < 7 && self.stats.backups.load(Ordering::Relaxed) < 6 {
            return self.backup().await;
        }
        match self.r(24) {
            0 => self.identities().await,
            1 => self.sessions().await,
            2 => self.session_batches().await,
            3 => self.prekeys().await,
            4 => self.signed_prekeys().await,
            5 => self.sender_keys().await,
            6 => self.sync_keys().await,
            7 => self.versions().await,
            8 => self.macs().await,
            9 => self.sender_key_devices().await,
            10 => self.legacy_skdm().await,
            11 => self.lids().await,
            12 => self.base_keys().await,
            13 => self.device_lists().await,
            14 => self.group_metadata().await,
            15 | 16 => self.tc_tokens().await,
            17 => self.sent_messages().await,
            18 => self.pending_inbound().await,
            19 => self.msg_secrets().await,
            20 => self.device().await,
            _ => self.read_back_something().await,
        }
    }

    pub(crate) fn wrote(&self) {
        self.stats.writes.fetch_add(1, Ordering::Relaxed);
    }

    async fn device(&mut self) {
        if !self.owner {
            return self.read_back_something().await;
        }
        match self.r(4) {
            0 => {
                let mut d = Device::new();
                d.push_name = format!("t{}-{}", self.t, self.ops);
                ok!(self, self.s.save(&d), "save");
                self.m.device = Some(d.push_name);
                self.wrote();
            }
            1 => {
                let r = self.s.create().await;
                match (&r, &self.m.device) {
                    (Ok(id), None) => {
                        same!(self, *id, self.s.device_id(), "create");
                        self.m.device = Some(Device::new().push_name);
                        self.wrote();
                    }
                    (Err(e), Some(_)) => assert!(
                        chain(e).contains("already exists"),
                        "task {}: {}",
                        self.t,
                        chain(e)
                    ),
                    _ => panic!(
                        "task {} op {}: create with record {:?}: {:?}",
                        self.t,
                        self.ops,
                        self.m.device,
                        r.map_err(|e| chain(&e))
                    ),
                }
            }
            _ => {}
        }
        let got = ok!(self, self.s.load(), "load");
        same!(
            self,
            got.map(|d| d.push_name),
            self.m.device.clone(),
            "device"
        );
        let exists = ok!(self, self.s.exists(), "exists");
        same!(self, exists, self.m.device.is_some(), "exists");
    }

    /// Device-wide operations; on the shared device only the harmless ones.
    async fn device_wide(&mut self) {
        self.stats.device_wide.fetch_add(1, Ordering::Relaxed);
        if !self.owner {
            return self.verify_some().await;
        }
        match self.r(3) {
            0 => {
                let rows = ok!(
                    self,
                    self.s.delete_device(self.s.device_id()),
                    "delete_device"
                );
                same!(self, rows, self.m.rows(), "delete_device row count");
                let seq = self.m.lid_seq;
                self.m = Model {
                    lid_seq: seq,
                    ..Model::default()
                };
            }
            1 => {
                ok!(
                    self,
                    self.s.clear_all_sender_key_devices(),
                    "clear_all_sender_key_devices"
                );
                self.m.skd.clear();
            }
            _ => {
                let rows = self
                    .s
                    .accounts()
                    .await
                    .unwrap()
                    .into_iter()
                    .find(|a| a.device_id == self.s.device_id())
                    .map_or(0, |a| a.rows);
                same!(self, rows, self.m.rows(), "accounts() row count");
            }
        }
        self.wrote();
    }

    async fn read_back_something(&mut self) {
        let n = self.n;
        match self.r(4) {
            0 => self.check_all_lids().await,
            3 => {
                let report = self.s.resource_report().await;
                assert!(
                    report.memory_bytes.is_some() && report.io_write_bytes.is_some(),
                    "task {}: {report:?}",
                    self.t
                );
            }
            1 => {
                let g = n.group(self.r(4));
                self.check_skd(&g).await
            }
            _ => self.verify_some().await,
        }
    }

    /// A cheap slice of the full verification.
    async fn verify_some(&mut self) {
        let m = self.m.clone();
        verify_model(&self.s, &m, &self.n, self.owner, false)
            .await
            .unwrap_or_else(|e| panic!("task {} op {}: {e}", self.t, self.ops));
    }

    /// Backs the store up and checks that the copy holds this task's model.
    async fn backup(&mut self) {
        self.stats.backups.fetch_add(1, Ordering::Relaxed);
        let target = self
            .backup_dir
            .join(format!("backup-{}-{}.redb", self.t, self.ops));
        ok!(self, self.s.backup_to(&target), "backup_to");
        let copy = RedbStore::new_for_device(&target, self.s.device_id())
            .await
            .unwrap();
        let m = self.m.clone();
        verify_model(&copy, &m, &self.n, self.owner, true)
            .await
            .unwrap_or_else(|e| panic!("task {} op {}: backup: {e}", self.t, self.ops));
        copy.close().await.unwrap();
    }
}
