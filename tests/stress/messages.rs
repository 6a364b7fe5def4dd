//! The task's message operations: sent messages, pending inbound
//! messages and message secrets, each checked against the model.

use wacore::store::traits::*;

use crate::dataset::chain;
use crate::{K3, KEYS, Secret, Task};

impl Task {
    pub(crate) async fn sent_messages(&mut self) {
        let n = self.n;
        let (chat, id) = (n.chat(self.r(KEYS)), n.id(self.r(KEYS)));
        match self.r(5) {
            0 | 1 => {
                let v = self.bytes();
                ok!(
                    self,
                    self.s.store_sent_message(&chat, &id, &v),
                    "store_sent_message"
                );
                self.m.sent.insert((chat, id), v);
            }
            2 | 3 => {
                let got = ok!(
                    self,
                    self.s.take_sent_message(&chat, &id),
                    "take_sent_message"
                );
                same!(
                    self,
                    got,
                    self.m.sent.remove(&(chat, id)),
                    "take_sent_message"
                );
            }
            _ => {
                let all = self.owner && self.bool();
                let cutoff = if all { i64::MAX } else { 0 };
                let n = ok!(
                    self,
                    self.s.delete_expired_sent_messages(cutoff),
                    "delete_expired_sent_messages"
                );
                let want = if all {
                    std::mem::take(&mut self.m.sent).len()
                } else {
                    0
                };
                same!(self, n as usize, want, "delete_expired_sent_messages");
            }
        }
        self.wrote();
    }

    pub(crate) async fn pending_inbound(&mut self) {
        let n = self.n;
        let k = (n.chat(self.r(KEYS)), n.addr(self.r(4)), n.id(self.r(KEYS)));
        match self.r(6) {
            0 => {
                let v = self.bytes();
                ok!(
                    self,
                    self.s.store_pending_inbound(&k.0, &k.1, &k.2, &v),
                    "store_pending_inbound"
                );
                self.m.inbound.insert(k.clone(), v);
            }
            1 => {
                let rows: Vec<(K3, Vec<u8>)> = (0..1 + self.r(4))
                    .map(|_| {
                        (
                            (n.chat(self.r(KEYS)), n.addr(self.r(4)), n.id(self.r(KEYS))),
                            self.bytes(),
                        )
                    })
                    .collect();
                let refs: Vec<PendingInboundRow<'_>> = rows
                    .iter()
                    .map(|((c, s, i), m)| PendingInboundRow {
                        chat: c,
                        sender: s,
                        id: i,
                        message: m,
                    })
                    .collect();
                ok!(
                    self,
                    self.s.store_pending_inbound_batch(&refs),
                    "store_pending_inbound_batch"
                );
                drop(refs);
                for (k, v) in rows {
                    self.m.inbound.insert(k, v);
                }
            }
            2 => {
                ok!(
                    self,
                    self.s.delete_pending_inbound(&k.0, &k.1, &k.2),
                    "delete_pending_inbound"
                );
                self.m.inbound.remove(&k);
            }
            3 => {
                let keys: Vec<K3> = std::iter::once(k.clone())
                    .chain(self.m.inbound.keys().take(2).cloned())
                    .collect();
                let refs: Vec<PendingInboundKey<'_>> = keys
                    .iter()
                    .map(|(c, s, i)| PendingInboundKey {
                        chat: c,
                        sender: s,
                        id: i,
                    })
                    .collect();
                ok!(
                    self,
                    self.s.delete_pending_inbound_batch(&refs),
                    "delete_pending_inbound_batch"
                );
                drop(refs);
                for k in keys {
                    self.m.inbound.remove(&k);
                }
            }
            4 => {
                let all = self.owner && self.r(3) == 0;
                let n = ok!(
                    self,
                    self.s
                        .delete_expired_pending_inbound(if all { i64::MAX } else { 0 }),
                    "delete_expired_pending_inbound"
                );
                let want = if all {
                    std::mem::take(&mut self.m.inbound).len()
                } else {
                    0
                };
                same!(self, n as usize, want, "delete_expired_pending_inbound");
            }
            _ => {}
        }
        self.wrote();
        let got = ok!(
            self,
            self.s.get_pending_inbound(&k.0, &k.1, &k.2),
            "get_pending_inbound"
        );
        same!(
            self,
            got,
            self.m.inbound.get(&k).cloned(),
            "pending inbound"
        );
    }

    pub(crate) async fn msg_secrets(&mut self) {
        let n = self.n;
        let k = (n.chat(self.r(KEYS)), n.addr(self.r(3)), n.id(self.r(KEYS)));
        if self.r(5) > 0 {
            let entries: Vec<MsgSecretEntry> = (0..1 + self.r(4))
                .map(|j| {
                    let key = if j == 0 {
                        k.clone()
                    } else {
                        (n.chat(self.r(KEYS)), n.addr(self.r(3)), n.id(self.r(KEYS)))
                    };
                    // Owners' deadlines are swept below; the shared
                    // device's are far out of reach of its sweeps.
                    let expires = match (self.r(3), self.owner) {
                        (0, _) => 0,
                        (_, true) => 1 + self.r(300) as i64,
                        (_, false) => 5_000 + self.r(300) as i64,
                    };
                    MsgSecretEntry {
                        chat: key.0.into(),
                        sender: key.1.into(),
                        msg_id: key.2.into(),
                        secret: self.rng.bytes(32).try_into().unwrap(),
                        expires_at: expires,
                        message_ts: self.r(3) as i64 * self.timestamp(),
                    }
                })
                .collect();
            let n = entries.len();
            let got = ok!(
                self,
                self.s.put_msg_secrets(entries.clone()),
                "put_msg_secrets"
            );
            same!(self, got, n, "put_msg_secrets count");
            for e in entries {
                let key = (
                    e.chat.to_string(),
                    e.sender.to_string(),
                    e.msg_id.to_string(),
                );
                let row = match self.m.secrets.get(&key) {
                    Some(old) => Secret {
                        secret: e.secret,
                        expires: merge_msg_secret_expiry(old.expires, e.expires_at),
                        ts: merge_msg_secret_message_ts(old.ts, e.message_ts),
                    },
                    None => Secret {
                        secret: e.secret,
                        expires: e.expires_at,
                        ts: e.message_ts,
                    },
                };
                self.m.secrets.insert(key, row);
            }
        } else {
            let cutoff = if self.owner { self.r(300) as i64 } else { 1000 };
            let n = ok!(
                self,
                self.s.delete_expired_msg_secrets(cutoff),
                "delete_expired_msg_secrets"
            );
            let before = self.m.secrets.len();
            self.m
                .secrets
                .retain(|_, r| !(r.expires != 0 && r.expires <= cutoff));
            same!(
                self,
                n as usize,
                before - self.m.secrets.len(),
                "delete_expired_msg_secrets count"
            );
        }
        self.wrote();
        let got = ok!(
            self,
            self.s.get_msg_secret_with_ts(&k.0, &k.1, &k.2),
            "get_msg_secret_with_ts"
        );
        same!(
            self,
            got,
            self.m.secrets.get(&k).map(|r| (r.secret.to_vec(), r.ts)),
            "msg secret"
        );
    }
}
