//! `MsgSecretStore`: per-message secrets (reactions, polls, edits...).

use async_trait::async_trait;
use wacore::reporting_token::MESSAGE_SECRET_SIZE;
use wacore::store::error::Result;
use wacore::store::traits::{
    MsgSecretEntry, MsgSecretStore, merge_msg_secret_expiry, merge_msg_secret_message_ts,
};

use crate::handle::RedbStore;
use crate::tables::MSG_SECRETS;
use crate::tables::codec::{MsgSecretRow, decode, encode_row, replaceable};

fn secret_row(bytes: &[u8]) -> crate::error::StorageResult<MsgSecretRow> {
    decode("message secret", bytes)
}

#[async_trait]
impl MsgSecretStore for RedbStore {
    /// A secret that never expires (and so makes an existing row never
    /// expire: 0 wins the deadline merge).
    async fn put_msg_secret(
        &self,
        chat: &str,
        sender: &str,
        msg_id: &str,
        secret: &[u8; MESSAGE_SECRET_SIZE],
    ) -> Result<()> {
        self.put_msg_secrets(vec![MsgSecretEntry {
            chat: chat.into(),
            sender: sender.into(),
            msg_id: msg_id.into(),
            secret: *secret,
            expires_at: 0,
            message_ts: 0,
        }])
        .await
        .map(drop)
    }

    /// Upserts in one transaction, merging each row with what is stored (and
    /// with earlier entries of the same batch): the secret is replaced, a
    /// deadline of 0 wins and otherwise the later one does, `message_ts`
    /// keeps the maximum. Returns `entries.len()`.
    async fn put_msg_secrets(&self, entries: Vec<MsgSecretEntry>) -> Result<usize> {
        self.timed("put_msg_secrets", async move {
            let count = entries.len();
            if count == 0 {
                return Ok(0);
            }
            let d = self.device_id;
            let weight = entries
                .iter()
                .map(|e| e.chat.len() + e.sender.len() + e.msg_id.len() + 48)
                .sum();
            self.write(weight, move |tx| {
                let mut t = tx.table(MSG_SECRETS)?;
                // Checked first, at the largest row a merge can give.
                for e in &entries {
                    let key = (d, &*e.chat, &*e.sender, &*e.msg_id);
                    t.check_len(key, MsgSecretRow::largest_encoding())?;
                }
                for e in &entries {
                    let key = (d, &*e.chat, &*e.sender, &*e.msg_id);
                    let fresh = MsgSecretRow {
                        secret: e.secret.into(),
                        expires_at: e.expires_at,
                        message_ts: e.message_ts,
                    };
                    let fresh = encode_row(&fresh);
                    t.put_merged(key, &fresh, |old| {
                        let shown = format_args!("device {d} {} {} {}", e.chat, e.sender, e.msg_id);
                        // A row that does not decode is replaced (`replaceable`
                        // fails on nothing else, and decoding gives nothing else).
                        match replaceable(MSG_SECRETS.name, shown, Some(secret_row(old))) {
                            Ok(Some(old)) => encode_row(&MsgSecretRow {
                                secret: e.secret.into(),
                                expires_at: merge_msg_secret_expiry(old.expires_at, e.expires_at),
                                message_ts: merge_msg_secret_message_ts(
                                    old.message_ts,
                                    e.message_ts,
                                ),
                            }),
                            Ok(None) | Err(_) => fresh.clone(),
                        }
                    })?;
                }
                Ok(())
            })
            .await?;
            Ok(count)
        })
        .await
    }

    async fn get_msg_secret(
        &self,
        chat: &str,
        sender: &str,
        msg_id: &str,
    ) -> Result<Option<Vec<u8>>> {
        self.timed("get_msg_secret", async move {
            Ok(self
                .get_msg_secret_with_ts(chat, sender, msg_id)
                .await?
                .map(|(secret, _)| secret))
        })
        .await
    }

    async fn get_msg_secret_with_ts(
        &self,
        chat: &str,
        sender: &str,
        msg_id: &str,
    ) -> Result<Option<(Vec<u8>, i64)>> {
        self.timed("get_msg_secret_with_ts", async move {
            let row = self.read(|s| {
                s.get(
                    MSG_SECRETS,
                    (self.device_id, chat, sender, msg_id),
                    secret_row,
                )?
                .transpose()
            })?;
            Ok(row.map(|r| (r.secret.to_vec(), r.message_ts)))
        })
        .await
    }

    /// Deletes rows whose deadline is set and at or before the cutoff
    /// (inclusive, unlike the other sweeps).
    async fn delete_expired_msg_secrets(&self, cutoff_timestamp: i64) -> Result<u32> {
        self.timed("delete_expired_msg_secrets", async move {
            let d = self.device_id;
            self.write_scan(move |tx| {
                tx.delete_where(MSG_SECRETS, MSG_SECRETS.device(d), |_, v| {
                    secret_row(v)
                        .is_ok_and(|r| r.expires_at != 0 && r.expires_at <= cutoff_timestamp)
                })
            })
            .await
        })
        .await
    }
}
