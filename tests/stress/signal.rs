//! The task's Signal operations: identities, sessions (one at a time and
//! in batches), pre-keys, signed pre-keys and sender keys, each checked
//! against the model.

use std::sync::Arc;

use bytes::Bytes;
use wacore::store::traits::*;

use crate::dataset::chain;
use crate::{KEYS, Task};

impl Task {
    pub(crate) async fn identities(&mut self) {
        let n = self.n;
        let k = n.addr(self.r(KEYS));
        match self.r(3) {
            0 => {
                let key: [u8; 32] = self.rng.bytes(32).try_into().unwrap();
                ok!(self, self.s.put_identity(&k, key), "put_identity");
                self.m.identities.insert(k.clone(), key);
                self.wrote();
            }
            1 => {
                ok!(self, self.s.delete_identity(&k), "delete_identity");
                self.m.identities.remove(&k);
                self.wrote();
            }
            _ => {
                let batch: Vec<(Arc<str>, [u8; 32])> = (0..1 + self.r(4))
                    .map(|_| {
                        let k = n.addr(self.r(KEYS));
                        (Arc::from(k), self.rng.bytes(32).try_into().unwrap())
                    })
                    .collect();
                ok!(
                    self,
                    self.s.put_identities_batch(&batch),
                    "put_identities_batch"
                );
                for (k, v) in batch {
                    self.m.identities.insert(k.to_string(), v);
                }
                self.wrote();
            }
        }
        let got = ok!(self, self.s.load_identity(&k), "load_identity");
        same!(self, got, self.m.identities.get(&k).copied(), "identity");
    }

    pub(crate) async fn sessions(&mut self) {
        let n = self.n;
        let k = n.addr(self.r(KEYS));
        if self.bool() {
            let v = self.bytes();
            ok!(self, self.s.put_session(&k, &v), "put_session");
            self.m.sessions.insert(k.clone(), v);
        } else {
            ok!(self, self.s.delete_session(&k), "delete_session");
            self.m.sessions.remove(&k);
        }
        self.wrote();
        let got = ok!(self, self.s.get_session(&k), "get_session");
        same!(
            self,
            got.map(|b| b.to_vec()),
            self.m.sessions.get(&k).cloned(),
            "session"
        );
        let has = ok!(self, self.s.has_session(&k), "has_session");
        same!(self, has, self.m.sessions.contains_key(&k), "has_session");
    }

    pub(crate) async fn session_batches(&mut self) {
        let n = self.n;
        let batch: Vec<(Arc<str>, Bytes)> = (0..1 + self.r(6))
            .map(|_| {
                let k = n.addr(self.r(KEYS));
                (Arc::from(k), Bytes::from(self.bytes()))
            })
            .collect();
        ok!(
            self,
            self.s.put_sessions_batch(&batch),
            "put_sessions_batch"
        );
        for (k, v) in batch {
            self.m.sessions.insert(k.to_string(), v.to_vec());
        }
        self.wrote();
    }

    pub(crate) async fn prekeys(&mut self) {
        let n = self.n;
        let id = n.prekey(self.r(KEYS));
        match self.r(4) {
            0 => {
                let (v, up) = (self.bytes(), self.bool());
                ok!(self, self.s.store_prekey(id, &v, up), "store_prekey");
                self.m.prekeys.insert(id, v);
            }
            1 => {
                let batch: Vec<(u32, Bytes)> = (0..1 + self.r(5))
                    .map(|_| (n.prekey(self.r(KEYS)), Bytes::from(self.bytes())))
                    .collect();
                let up = self.bool();
                ok!(
                    self,
                    self.s.store_prekeys_batch(&batch, up),
                    "store_prekeys_batch"
                );
                for (id, v) in batch {
                    self.m.prekeys.insert(id, v.to_vec());
                }
            }
            2 => {
                ok!(self, self.s.remove_prekey(id), "remove_prekey");
                self.m.prekeys.remove(&id);
            }
            _ => {
                let ids: Vec<u32> = (0..3).map(|_| n.prekey(self.r(KEYS))).collect();
                ok!(
                    self,
                    self.s.mark_prekeys_uploaded(&ids),
                    "mark_prekeys_uploaded"
                );
            }
        }
        self.wrote();
        let got = ok!(self, self.s.load_prekey(id), "load_prekey");
        same!(
            self,
            got.map(|b| b.to_vec()),
            self.m.prekeys.get(&id).cloned(),
            "prekey"
        );
        let ids: Vec<u32> = (0..KEYS).map(|i| n.prekey(i)).collect();
        let mut got = ok!(self, self.s.load_prekeys_batch(&ids), "load_prekeys_batch");
        got.sort_by_key(|(id, _)| *id);
        let want: Vec<(u32, Vec<u8>)> = self
            .m
            .prekeys
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        same!(
            self,
            got.into_iter()
                .map(|(k, v)| (k, v.to_vec()))
                .collect::<Vec<_>>(),
            want,
            "load_prekeys_batch"
        );
        let max = ok!(self, self.s.get_max_prekey_id(), "get_max_prekey_id");
        let own = self.m.prekeys.keys().max().copied().unwrap_or(0);
        if self.owner {
            same!(self, max, own, "get_max_prekey_id");
        } else {
            assert!(
                max >= own,
                "task {}: max prekey id {max} < own {own}",
                self.t
            );
        }
    }

    pub(crate) async fn signed_prekeys(&mut self) {
        let n = self.n;
        let id = n.prekey(self.r(KEYS));
        if self.r(3) > 0 {
            let v = self.bytes();
            ok!(
                self,
                self.s.store_signed_prekey(id, &v),
                "store_signed_prekey"
            );
            self.m.signed.insert(id, v);
        } else {
            ok!(
                self,
                self.s.remove_signed_prekey(id),
                "remove_signed_prekey"
            );
            self.m.signed.remove(&id);
        }
        self.wrote();
        let got = ok!(self, self.s.load_signed_prekey(id), "load_signed_prekey");
        same!(self, got, self.m.signed.get(&id).cloned(), "signed prekey");
        let mut all = ok!(
            self,
            self.s.load_all_signed_prekeys(),
            "load_all_signed_prekeys"
        );
        let range = n.prekey(0)..=n.prekey(KEYS);
        all.retain(|(id, _)| self.owner || range.contains(id));
        all.sort();
        let want: Vec<(u32, Vec<u8>)> =
            self.m.signed.iter().map(|(k, v)| (*k, v.clone())).collect();
        same!(self, all, want, "load_all_signed_prekeys");
    }

    pub(crate) async fn sender_keys(&mut self) {
        let n = self.n;
        let k = format!("{}::{}", n.group(self.r(4)), n.addr(self.r(KEYS)));
        match self.r(3) {
            0 => {
                let v = self.bytes();
                ok!(self, self.s.put_sender_key(&k, &v), "put_sender_key");
                self.m.sender_keys.insert(k.clone(), v);
            }
            1 => {
                ok!(self, self.s.delete_sender_key(&k), "delete_sender_key");
                self.m.sender_keys.remove(&k);
            }
            _ => {
                let batch: Vec<(Arc<str>, Bytes)> = (0..1 + self.r(4))
                    .map(|_| {
                        let k = format!("{}::{}", n.group(self.r(4)), n.addr(self.r(KEYS)));
                        (Arc::from(k), Bytes::from(self.bytes()))
                    })
                    .collect();
                ok!(
                    self,
                    self.s.put_sender_keys_batch(&batch),
                    "put_sender_keys_batch"
                );
                for (k, v) in batch {
                    self.m.sender_keys.insert(k.to_string(), v.to_vec());
                }
            }
        }
        self.wrote();
        let got = ok!(self, self.s.get_sender_key(&k), "get_sender_key");
        same!(self, got, self.m.sender_keys.get(&k).cloned(), "sender key");
    }
}
