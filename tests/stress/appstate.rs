//! The task's app state operations: sync keys, collection versions and
//! mutation MACs, each checked against the model.

use std::collections::BTreeMap;

use wacore::appstate::hash::HashState;
use wacore::appstate::processor::AppStateMutationMAC;
use wacore::store::traits::*;

use crate::dataset::chain;
use crate::{KEYS, Task};

impl Task {
    pub(crate) async fn sync_keys(&mut self) {
        let n = self.n;
        let id = n.sync_key(self.r(KEYS));
        let (data, ts) = (self.rng.bytes(32), self.timestamp());
        let key = AppStateSyncKey {
            key_data: data.clone(),
            fingerprint: self.bytes(),
            timestamp: ts,
        };
        ok!(self, self.s.set_sync_key(&id, key), "set_sync_key");
        self.m.sync_keys.insert(id.clone(), (data, ts));
        self.wrote();
        let got = ok!(self, self.s.get_sync_key(&id), "get_sync_key");
        same!(
            self,
            got.map(|k| (k.key_data, k.timestamp)),
            self.m.sync_keys.get(&id).cloned(),
            "sync key"
        );
        if self.owner {
            let latest = ok!(
                self,
                self.s.get_latest_sync_key_id(),
                "get_latest_sync_key_id"
            );
            same!(
                self,
                latest,
                self.m.sync_keys.keys().next_back().cloned(),
                "latest sync key"
            );
        }
    }

    pub(crate) async fn versions(&mut self) {
        let n = self.n;
        let name = n.coll(self.r(4));
        let version = self.r(1 << 20);
        let state = HashState {
            version,
            hash: [version as u8; 128],
            ..Default::default()
        };
        ok!(self, self.s.set_version(&name, state), "set_version");
        self.m.versions.insert(name.clone(), version);
        self.wrote();
        let other = n.coll(self.r(4));
        let got = ok!(self, self.s.get_version(&other), "get_version");
        same!(
            self,
            got.version,
            self.m.versions.get(&other).copied().unwrap_or(0),
            "version"
        );
    }

    pub(crate) async fn macs(&mut self) {
        let n = self.n;
        let name = n.coll(self.r(3));
        match self.r(5) {
            0 | 1 => {
                let macs: Vec<AppStateMutationMAC> = (0..1 + self.r(4))
                    .map(|_| AppStateMutationMAC {
                        index_mac: n.mac(self.r(KEYS)).to_vec(),
                        value_mac: self.rng.bytes(32),
                    })
                    .collect();
                let version = self.r(100);
                ok!(
                    self,
                    self.s.put_mutation_macs(&name, version, &macs),
                    "put_mutation_macs"
                );
                for m in macs {
                    self.m
                        .macs
                        .insert((name.clone(), m.index_mac.try_into().unwrap()), m.value_mac);
                }
            }
            2 => {
                let idx: Vec<Vec<u8>> = (0..1 + self.r(3))
                    .map(|_| n.mac(self.r(KEYS)).to_vec())
                    .collect();
                ok!(
                    self,
                    self.s.delete_mutation_macs(&name, &idx),
                    "delete_mutation_macs"
                );
                for i in idx {
                    self.m.macs.remove(&(name.clone(), i.try_into().unwrap()));
                }
            }
            3 => {
                ok!(
                    self,
                    self.s.clear_mutation_macs(&name),
                    "clear_mutation_macs"
                );
                self.m.macs.retain(|(n, _), _| *n != name);
            }
            _ => {}
        }
        self.wrote();
        let mac = n.mac(self.r(KEYS));
        let got = ok!(
            self,
            self.s.get_mutation_mac(&name, &mac),
            "get_mutation_mac"
        );
        same!(
            self,
            got,
            self.m.macs.get(&(name.clone(), mac)).cloned(),
            "mutation mac"
        );
        let all: Vec<[u8; 32]> = (0..KEYS).map(|i| n.mac(i)).collect();
        let got = ok!(
            self,
            self.s.get_mutation_macs(&name, &all),
            "get_mutation_macs"
        );
        let got: BTreeMap<[u8; 32], Vec<u8>> = got.into_iter().collect();
        let want: BTreeMap<[u8; 32], Vec<u8>> = self
            .m
            .macs
            .iter()
            .filter(|((n, _), _)| *n == name)
            .map(|((_, i), v)| (*i, v.clone()))
            .collect();
        same!(self, got, want, "get_mutation_macs");
    }
}
