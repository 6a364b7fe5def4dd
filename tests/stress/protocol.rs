//! The task's protocol operations: sender key devices (and the legacy
//! SKDM calls), LID/phone mappings, base keys, device lists, group
//! metadata and tc tokens, each checked against the model.

use wacore::store::traits::*;
use whatsapp_rust_redb_storage::SkdmTracking;

use crate::dataset::chain;
use crate::{KEYS, Lid, Task, Tc};

impl Task {
    fn skd_of(&self, group: &str) -> Vec<(String, bool)> {
        self.m
            .skd
            .iter()
            .filter(|((g, _), _)| g == group)
            .map(|((_, j), k)| (j.clone(), *k))
            .collect()
    }

    pub(crate) async fn check_skd(&mut self, group: &str) {
        let got = ok!(
            self,
            self.s.get_sender_key_devices(group),
            "get_sender_key_devices"
        );
        same!(self, got, self.skd_of(group), "sender key devices");
    }

    pub(crate) async fn sender_key_devices(&mut self) {
        let n = self.n;
        let group = n.group(self.r(4));
        match self.r(4) {
            0 | 1 => {
                let entries: Vec<(String, bool)> = (0..1 + self.r(4))
                    .map(|_| (n.jid(self.r(KEYS)), self.bool()))
                    .collect();
                let refs: Vec<(&str, bool)> =
                    entries.iter().map(|(j, k)| (j.as_str(), *k)).collect();
                ok!(
                    self,
                    self.s.set_sender_key_status(&group, &refs),
                    "set_sender_key_status"
                );
                for (j, k) in entries {
                    self.m.skd.insert((group.clone(), j), k);
                }
            }
            2 => {
                ok!(
                    self,
                    self.s.clear_sender_key_devices(&group),
                    "clear_sender_key_devices"
                );
                self.m.skd.retain(|(g, _), _| *g != group);
            }
            _ => {
                let jids: Vec<String> = (0..1 + self.r(2)).map(|_| n.jid(self.r(KEYS))).collect();
                let refs: Vec<&str> = jids.iter().map(String::as_str).collect();
                ok!(
                    self,
                    self.s.delete_sender_key_device_rows(&refs),
                    "delete_sender_key_device_rows"
                );
                self.m.skd.retain(|(_, j), _| !jids.contains(j));
            }
        }
        self.wrote();
        self.check_skd(&group).await;
    }

    pub(crate) async fn legacy_skdm(&mut self) {
        let n = self.n;
        let group = n.group(self.r(4));
        match self.r(4) {
            0 => {
                let jids: Vec<String> = (0..1 + self.r(3)).map(|_| n.jid(self.r(KEYS))).collect();
                ok!(
                    self,
                    self.s.add_skdm_recipients(&group, &jids),
                    "add_skdm_recipients"
                );
                for j in jids {
                    self.m.skd.insert((group.clone(), j), true);
                }
            }
            1 => {
                let j = n.jid(self.r(KEYS));
                ok!(
                    self,
                    self.s.mark_forget_sender_key(&group, &j),
                    "mark_forget_sender_key"
                );
                self.m.skd.insert((group.clone(), j), false);
            }
            2 => {
                let got = ok!(
                    self,
                    self.s.consume_forget_marks(&group),
                    "consume_forget_marks"
                );
                let want: Vec<String> = self
                    .skd_of(&group)
                    .into_iter()
                    .filter(|(_, k)| !k)
                    .map(|(j, _)| j)
                    .collect();
                same!(self, got, want.clone(), "consume_forget_marks");
                for j in want {
                    self.m.skd.remove(&(group.clone(), j));
                }
            }
            _ => {
                let got = ok!(
                    self,
                    self.s.get_skdm_recipients(&group),
                    "get_skdm_recipients"
                );
                let want: Vec<String> = self
                    .skd_of(&group)
                    .into_iter()
                    .filter(|(_, k)| *k)
                    .map(|(j, _)| j)
                    .collect();
                same!(self, got, want, "get_skdm_recipients");
            }
        }
        self.wrote();
        self.check_skd(&group).await;
    }

    fn lid_entry(&mut self) -> LidPnMappingEntry {
        let n = self.n;
        LidPnMappingEntry {
            lid: n.lid(self.r(KEYS)),
            phone_number: n.phone(self.r(4)),
            created_at: self.timestamp(),
            updated_at: self.timestamp(),
            learning_source: ["usync", "peer", "other"][self.r(3) as usize].into(),
        }
    }

    fn model_lid(&mut self, e: &LidPnMappingEntry) {
        let seq = &mut self.m.lid_seq;
        let lid = self.m.lids.entry(e.lid.clone()).or_insert_with(|| {
            *seq += 1;
            Lid {
                phone: String::new(),
                created: e.created_at,
                updated: 0,
                source: String::new(),
                seq: *seq,
            }
        });
        lid.phone = e.phone_number.clone();
        lid.updated = e.updated_at;
        lid.source = e.learning_source.clone();
    }

    pub(crate) async fn lids(&mut self) {
        let n = self.n;
        let entries: Vec<LidPnMappingEntry> =
            (0..1 + self.r(3)).map(|_| self.lid_entry()).collect();
        let result = if entries.len() == 1 && self.bool() {
            self.s.put_lid_mapping(&entries[0]).await
        } else {
            self.s.put_lid_mappings(&entries).await
        };
        match (result, self.owner && self.m.device.is_none()) {
            (Ok(()), false) => {
                for e in &entries {
                    self.model_lid(e);
                }
                self.wrote();
            }
            (Err(e), true) => {
                // No device record: refused, like SqliteStore's foreign key.
                assert!(
                    chain(&e).contains("has no device record"),
                    "task {}: {}",
                    self.t,
                    chain(&e)
                );
            }
            (r, _) => panic!(
                "task {} op {} put_lid_mappings without device record = {}: {:?}",
                self.t,
                self.ops,
                self.m.device.is_none(),
                r.map_err(|e| chain(&e))
            ),
        }
        let lid = n.lid(self.r(KEYS));
        let got = ok!(self, self.s.get_lid_mapping(&lid), "get_lid_mapping");
        same!(
            self,
            got.map(|e| (
                e.phone_number,
                e.created_at,
                e.updated_at,
                e.learning_source
            )),
            self.m.lids.get(&lid).map(|l| (
                l.phone.clone(),
                l.created,
                l.updated,
                l.source.clone()
            )),
            "lid mapping"
        );
        let phone = n.phone(self.r(4));
        let got = ok!(self, self.s.get_pn_mapping(&phone), "get_pn_mapping");
        same!(
            self,
            got.map(|e| e.lid),
            self.m.best_lid_for(&phone),
            "pn mapping"
        );
        if self.r(4) == 0 {
            self.check_all_lids().await;
        }
    }

    pub(crate) async fn check_all_lids(&mut self) {
        let mut got = ok!(self, self.s.get_all_lid_mappings(), "get_all_lid_mappings");
        let own = format!("t{}-", self.t);
        got.retain(|e| self.owner || e.lid.starts_with(&own));
        let mut want: Vec<(&String, &Lid)> = self.m.lids.iter().collect();
        want.sort_by_key(|(_, l)| l.seq);
        same!(
            self,
            got.into_iter().map(|e| e.lid).collect::<Vec<_>>(),
            want.into_iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
            "get_all_lid_mappings (insertion order)"
        );
    }

    pub(crate) async fn base_keys(&mut self) {
        let n = self.n;
        let (a, id) = (n.addr(self.r(KEYS)), n.id(self.r(4)));
        if self.r(3) > 0 {
            let v = self.bytes();
            ok!(self, self.s.save_base_key(&a, &id, &v), "save_base_key");
            self.m.base_keys.insert((a.clone(), id.clone()), v);
        } else {
            ok!(self, self.s.delete_base_key(&a, &id), "delete_base_key");
            self.m.base_keys.remove(&(a.clone(), id.clone()));
        }
        self.wrote();
        let use_stored = self.bool();
        let probe = match self.m.base_keys.get(&(a.clone(), id.clone())) {
            Some(v) if use_stored => v.clone(),
            _ => b"other".to_vec(),
        };
        let got = ok!(
            self,
            self.s.has_same_base_key(&a, &id, &probe),
            "has_same_base_key"
        );
        same!(
            self,
            got,
            self.m.base_keys.get(&(a, id)) == Some(&probe),
            "has_same_base_key"
        );
    }

    fn device_list(&mut self) -> DeviceListRecord {
        let n = self.n;
        DeviceListRecord {
            user: n.addr(self.r(KEYS)),
            devices: vec![DeviceInfo::new(self.r(5) as u32, None)],
            timestamp: self.timestamp(),
            phash: None,
            raw_id: None,
        }
    }

    pub(crate) async fn device_lists(&mut self) {
        let n = self.n;
        let user = match self.r(3) {
            0 => {
                let r = self.device_list();
                let user = r.user.clone();
                self.m
                    .device_lists
                    .insert(user.clone(), (r.devices[0].device_id, r.timestamp));
                ok!(self, self.s.update_device_list(r), "update_device_list");
                user
            }
            1 => {
                let rs: Vec<DeviceListRecord> =
                    (0..1 + self.r(3)).map(|_| self.device_list()).collect();
                for r in &rs {
                    self.m
                        .device_lists
                        .insert(r.user.clone(), (r.devices[0].device_id, r.timestamp));
                }
                let user = rs[0].user.clone();
                ok!(self, self.s.update_device_lists(rs), "update_device_lists");
                user
            }
            _ => {
                let user = n.addr(self.r(KEYS));
                ok!(self, self.s.delete_devices(&user), "delete_devices");
                self.m.device_lists.remove(&user);
                user
            }
        };
        self.wrote();
        let got = ok!(self, self.s.get_devices(&user), "get_devices");
        same!(
            self,
            got.map(|r| (r.devices[0].device_id, r.timestamp)),
            self.m.device_lists.get(&user).copied(),
            "device list"
        );
    }

    pub(crate) async fn group_metadata(&mut self) {
        let n = self.n;
        let g = n.group(self.r(KEYS));
        if self.r(3) > 0 {
            let v = self.bytes();
            ok!(
                self,
                self.s.put_group_metadata(&g, &v),
                "put_group_metadata"
            );
            self.m.group_meta.insert(g.clone(), v);
        } else {
            ok!(
                self,
                self.s.delete_group_metadata(&g),
                "delete_group_metadata"
            );
            self.m.group_meta.remove(&g);
        }
        self.wrote();
        let got = ok!(self, self.s.get_group_metadata(&g), "get_group_metadata");
        same!(
            self,
            got,
            self.m.group_meta.get(&g).cloned(),
            "group metadata"
        );
    }

    pub(crate) async fn tc_tokens(&mut self) {
        let n = self.n;
        let jid = n.lid(self.r(KEYS));
        match self.r(6) {
            0 => {
                // An empty token without a sender timestamp is expired
                // for every cutoff: only owners, whose sweeps are modeled,
                // write one.
                let empty = self.owner && self.r(4) == 0;
                let tc = Tc {
                    token: if empty { vec![] } else { self.bytes() },
                    token_ts: self.timestamp(),
                    sender_ts: self.bool().then(|| self.timestamp()),
                };
                let entry = TcTokenEntry {
                    token: tc.token.clone(),
                    token_timestamp: tc.token_ts,
                    sender_timestamp: tc.sender_ts,
                };
                ok!(self, self.s.put_tc_token(&jid, &entry), "put_tc_token");
                self.m.tc.insert(jid.clone(), tc);
            }
            1 => {
                ok!(self, self.s.delete_tc_token(&jid), "delete_tc_token");
                self.m.tc.remove(&jid);
            }
            2 => {
                let ts = self.timestamp();
                ok!(
                    self,
                    self.s.touch_tc_token_sender_timestamp(&jid, ts),
                    "touch_tc_token_sender_timestamp"
                );
                let row = self.m.tc.entry(jid.clone()).or_insert(Tc {
                    token: vec![],
                    token_ts: ts,
                    sender_ts: None,
                });
                row.sender_ts = Some(row.sender_ts.map_or(ts, |s| s.max(ts)));
            }
            3 => {
                let (token, ts) = (self.bytes(), self.timestamp());
                ok!(
                    self,
                    self.s.store_received_tc_token(&jid, &token, ts),
                    "store_received_tc_token"
                );
                let old = self.m.tc.get(&jid).cloned();
                let keep = old
                    .as_ref()
                    .is_some_and(|o| !o.token.is_empty() && ts < o.token_ts);
                if !keep {
                    self.m.tc.insert(
                        jid.clone(),
                        Tc {
                            token,
                            token_ts: ts,
                            sender_ts: old.and_then(|o| o.sender_ts),
                        },
                    );
                }
            }
            _ => {
                // Owners sweep with real cutoffs. On the shared device the
                // cutoffs are the lowest possible, and no task writes a row
                // that is expired for every cutoff (an empty token without
                // a sender timestamp), so the sweep touches no other task's
                // rows.
                let (tc, sc) = if self.owner {
                    (
                        1_700_000_000 + self.r(110) as i64,
                        1_700_000_000 + self.r(110) as i64,
                    )
                } else {
                    (i64::MIN, i64::MIN)
                };
                let n = ok!(
                    self,
                    self.s.delete_expired_tc_tokens(tc, sc),
                    "delete_expired_tc_tokens"
                );
                let before = self.m.tc.len();
                self.m.tc.retain(|_, r| {
                    !((r.token.is_empty() || r.token_ts < tc) && r.sender_ts.is_none_or(|s| s < sc))
                });
                same!(
                    self,
                    n as usize,
                    before - self.m.tc.len(),
                    "delete_expired_tc_tokens count"
                );
                let mut all = ok!(
                    self,
                    self.s.get_all_tc_token_jids(),
                    "get_all_tc_token_jids"
                );
                let own = format!("t{}-", self.t);
                all.retain(|j| self.owner || j.starts_with(&own));
                same!(
                    self,
                    all,
                    self.m.tc.keys().cloned().collect::<Vec<_>>(),
                    "get_all_tc_token_jids"
                );
            }
        }
        self.wrote();
        let got = ok!(self, self.s.get_tc_token(&jid), "get_tc_token");
        same!(
            self,
            got.map(|e| Tc {
                token: e.token,
                token_ts: e.token_timestamp,
                sender_ts: e.sender_timestamp,
            }),
            self.m.tc.get(&jid).cloned(),
            "tc token"
        );
    }
}
