//! `SignalStore`: identities, sessions, pre-keys, signed pre-keys, sender
//! keys.

use std::collections::BTreeSet;
use std::ops::Bound;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use wacore::store::error::Result;
use wacore::store::traits::SignalStore;

use crate::engine::Snapshot;
use crate::error::StorageError;
use crate::handle::RedbStore;
use crate::tables::codec::{PrekeyRow, decode, encode_row};
use crate::tables::{IDENTITIES, PREKEYS, SENDER_KEYS, SESSIONS, SIGNED_PREKEYS};

fn identity_key(bytes: &[u8]) -> crate::error::StorageResult<[u8; 32]> {
    bytes.try_into().map_err(|_| {
        StorageError::decode(
            "identity key",
            format!("invalid length {} (expected 32)", bytes.len()),
        )
    })
}

fn prekey_record(bytes: &[u8]) -> crate::error::StorageResult<Bytes> {
    let row: PrekeyRow = decode("prekey", bytes)?;
    Ok(Bytes::from(row.record))
}

/// SQL `LIKE` as SQLite evaluates it by default: `%` matches any run of
/// characters, `_` one character, ASCII letters match regardless of case.
fn sql_like(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '_' || p[pi].eq_ignore_ascii_case(&t[ti])) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '%' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '%')
}

/// Whether any address of device `d` in `table` (sessions or identities)
/// belongs to `user`, with SqliteStore's rule: it matches `LIKE 'user@%'`
/// or `LIKE 'user:%'`. A user without letters or wildcards (every real
/// user, they are numeric) matches exactly by prefix, found with a range
/// scan; anything else is checked against every address of the device.
/// Whether `user` names one user exactly (digits, as phone numbers and
/// LIDs are) rather than a pattern SqliteStore's `LIKE` would expand.
fn is_exact_user(user: &str) -> bool {
    !user
        .chars()
        .any(|c| c.is_ascii_alphabetic() || c == '_' || c == '%')
}

fn has_address_of_user(
    s: &Snapshot<'_>,
    table: crate::tables::Table<(i32, &'static str), &'static [u8]>,
    d: i32,
    user: &str,
) -> crate::error::StorageResult<bool> {
    let mut found = false;
    if is_exact_user(user) {
        let (_, upper) = table.device(d);
        s.visit(
            table,
            (Bound::Included((d, user)), upper),
            |(_, addr), _| {
                let Some(rest) = addr.strip_prefix(user) else {
                    return Ok(false); // past the keys that start with `user`
                };
                found = rest.starts_with('@') || rest.starts_with(':');
                Ok(!found)
            },
        )?;
    } else {
        let (at, colon) = (format!("{user}@%"), format!("{user}:%"));
        s.visit(table, table.device(d), |(_, addr), _| {
            found = sql_like(&at, addr) || sql_like(&colon, addr);
            Ok(!found)
        })?;
    }
    Ok(found)
}

#[async_trait]
impl SignalStore for RedbStore {
    async fn put_identity(&self, address: &str, key: [u8; 32]) -> Result<()> {
        self.timed("put_identity", async move {
            self.put_named(IDENTITIES, address, &key).await
        })
        .await
    }

    async fn put_identities_batch(&self, identities: &[(Arc<str>, [u8; 32])]) -> Result<()> {
        self.timed("put_identities_batch", async move {
            let items = identities
                .iter()
                .map(|(address, key)| (address.clone(), Bytes::copy_from_slice(key)))
                .collect();
            self.put_named_batch(IDENTITIES, items).await
        })
        .await
    }

    async fn load_identity(&self, address: &str) -> Result<Option<[u8; 32]>> {
        self.timed("load_identity", async move {
            self.read(|s| {
                s.get(IDENTITIES, (self.device_id, address), identity_key)?
                    .transpose()
            })
        })
        .await
    }

    async fn delete_identity(&self, address: &str) -> Result<()> {
        self.timed("delete_identity", async move {
            self.delete_named(IDENTITIES, address).await
        })
        .await
    }

    async fn get_session(&self, address: &str) -> Result<Option<Bytes>> {
        self.timed("get_session", async move {
            self.read(|s| s.get(SESSIONS, (self.device_id, address), Bytes::copy_from_slice))
        })
        .await
    }

    async fn put_session(&self, address: &str, session: &[u8]) -> Result<()> {
        self.timed("put_session", async move {
            self.put_named(SESSIONS, address, session).await
        })
        .await
    }

    async fn put_sessions_batch(&self, sessions: &[(Arc<str>, Bytes)]) -> Result<()> {
        self.timed("put_sessions_batch", async move {
            self.put_named_batch(SESSIONS, sessions.to_vec()).await
        })
        .await
    }

    async fn delete_session(&self, address: &str) -> Result<()> {
        self.timed("delete_session", async move {
            self.delete_named(SESSIONS, address).await
        })
        .await
    }

    async fn has_session(&self, address: &str) -> Result<bool> {
        self.timed("has_session", async move {
            self.read(|s| {
                Ok(s.get(SESSIONS, (self.device_id, address), |_| ())?
                    .is_some())
            })
        })
        .await
    }

    async fn has_signal_state_for_user(&self, user: &str) -> Result<bool> {
        self.timed("has_signal_state_for_user", async move {
            let d = self.device_id;
            let look = move |s: &Snapshot<'_>, user: &str| {
                Ok(has_address_of_user(s, SESSIONS, d, user)?
                    || has_address_of_user(s, IDENTITIES, d, user)?)
            };
            if is_exact_user(user) {
                // A range lookup that stops at the first key past `user`.
                self.read(|s| look(s, user))
            } else {
                // A pattern match over every address of the account: a scan,
                // so off the runtime thread.
                let user = user.to_owned();
                self.read_blocking(move |s| look(s, &user)).await
            }
        })
        .await
    }

    async fn store_prekey(&self, id: u32, record: &[u8], uploaded: bool) -> Result<()> {
        self.timed("store_prekey", async move {
            let d = self.device_id;
            let row = encode_row(&PrekeyRow {
                uploaded,
                record: record.to_vec(),
            });
            self.write(row.len(), move |tx| {
                tx.put(PREKEYS, (d, id), row.as_slice())
            })
            .await
        })
        .await
    }

    async fn store_prekeys_batch(&self, keys: &[(u32, Bytes)], uploaded: bool) -> Result<()> {
        self.timed("store_prekeys_batch", async move {
            if keys.is_empty() {
                return Ok(());
            }
            let d = self.device_id;
            let rows: Vec<(u32, Vec<u8>)> = keys
                .iter()
                .map(|(id, record)| {
                    let row = PrekeyRow {
                        uploaded,
                        record: record.to_vec(),
                    };
                    (*id, encode_row(&row))
                })
                .collect();
            let weight = rows.iter().map(|(_, r)| r.len() + 4).sum();
            self.write(weight, move |tx| {
                tx.table(PREKEYS)?
                    .put_all(rows.iter().map(|(id, row)| ((d, *id), row.as_slice())))
            })
            .await
        })
        .await
    }

    async fn load_prekey(&self, id: u32) -> Result<Option<Bytes>> {
        self.timed("load_prekey", async move {
            self.read(|s| {
                s.get(PREKEYS, (self.device_id, id), prekey_record)?
                    .transpose()
            })
        })
        .await
    }

    /// Found ids only, each once, in ascending id order (SqliteStore's
    /// observed order; the client sorts the result itself).
    async fn load_prekeys_batch(&self, ids: &[u32]) -> Result<Vec<(u32, Bytes)>> {
        self.timed("load_prekeys_batch", async move {
            let d = self.device_id;
            let ids: BTreeSet<u32> = ids.iter().copied().collect();
            self.read_batch(ids.len(), move |s: &Snapshot<'_>| {
                let mut out = Vec::with_capacity(ids.len());
                let t = s.table(PREKEYS)?;
                for id in ids {
                    if let Some(record) = t.get((d, id), prekey_record)? {
                        out.push((id, record?));
                    }
                }
                Ok(out)
            })
            .await
        })
        .await
    }

    async fn mark_prekeys_uploaded(&self, ids: &[u32]) -> Result<()> {
        self.timed("mark_prekeys_uploaded", async move {
            if ids.is_empty() {
                return Ok(());
            }
            let (d, ids) = (self.device_id, ids.to_vec());
            self.write(ids.len() * 4, move |tx| {
                let mut t = tx.table(PREKEYS)?;
                let mut marked = Vec::new();
                for id in ids {
                    // Update only: a key removed meanwhile stays removed.
                    // A row that no longer decodes cannot be re-encoded: it is
                    // left as it is (its reads report it) instead of failing
                    // the marks of every other key.
                    let mut row = match t.get((d, id), |v| decode::<PrekeyRow>("prekey", v))? {
                        None => continue,
                        Some(Ok(row)) => row,
                        Some(Err(e @ StorageError::Decode { .. })) => {
                            log::warn!("prekeys: not marking device {d} id {id} uploaded: {e}");
                            continue;
                        }
                        Some(Err(e)) => return Err(e.into()),
                    };
                    if !row.uploaded {
                        row.uploaded = true;
                        marked.push((id, encode_row(&row)));
                    }
                }
                t.put_all(marked.iter().map(|(id, row)| ((d, *id), row.as_slice())))
            })
            .await
        })
        .await
    }

    async fn remove_prekey(&self, id: u32) -> Result<()> {
        self.timed("remove_prekey", async move {
            let d = self.device_id;
            self.write(4, move |tx| tx.remove(PREKEYS, (d, id)).map(drop))
                .await
        })
        .await
    }

    /// The greatest stored id as an unsigned number (SqliteStore compares
    /// ids as i32, so ids >= 2^31 sort below small ones there), 0 if none.
    async fn get_max_prekey_id(&self) -> Result<u32> {
        self.timed("get_max_prekey_id", async move {
            let mut max = 0;
            self.read(|s| {
                s.visit_rev(PREKEYS, PREKEYS.device(self.device_id), |(_, id), _| {
                    max = id;
                    Ok(false)
                })
            })?;
            Ok(max)
        })
        .await
    }

    async fn store_signed_prekey(&self, id: u32, record: &[u8]) -> Result<()> {
        self.timed("store_signed_prekey", async move {
            let (d, record) = (self.device_id, record.to_vec());
            self.write(record.len(), move |tx| {
                tx.put(SIGNED_PREKEYS, (d, id), record.as_slice())
            })
            .await
        })
        .await
    }

    async fn load_signed_prekey(&self, id: u32) -> Result<Option<Vec<u8>>> {
        self.timed("load_signed_prekey", async move {
            self.read(|s| s.get(SIGNED_PREKEYS, (self.device_id, id), <[u8]>::to_vec))
        })
        .await
    }

    /// In ascending id order (unspecified by the trait; the client sorts).
    async fn load_all_signed_prekeys(&self) -> Result<Vec<(u32, Vec<u8>)>> {
        self.timed("load_all_signed_prekeys", async move {
            let mut out = Vec::new();
            self.read(|s| {
                s.visit(
                    SIGNED_PREKEYS,
                    SIGNED_PREKEYS.device(self.device_id),
                    |(_, id), v| {
                        out.push((id, v.to_vec()));
                        Ok(true)
                    },
                )
            })?;
            Ok(out)
        })
        .await
    }

    async fn remove_signed_prekey(&self, id: u32) -> Result<()> {
        self.timed("remove_signed_prekey", async move {
            let d = self.device_id;
            self.write(4, move |tx| tx.remove(SIGNED_PREKEYS, (d, id)).map(drop))
                .await
        })
        .await
    }

    async fn put_sender_key(&self, address: &str, record: &[u8]) -> Result<()> {
        self.timed("put_sender_key", async move {
            self.put_named(SENDER_KEYS, address, record).await
        })
        .await
    }

    async fn put_sender_keys_batch(&self, sender_keys: &[(Arc<str>, Bytes)]) -> Result<()> {
        self.timed("put_sender_keys_batch", async move {
            self.put_named_batch(SENDER_KEYS, sender_keys.to_vec())
                .await
        })
        .await
    }

    async fn get_sender_key(&self, address: &str) -> Result<Option<Vec<u8>>> {
        self.timed("get_sender_key", async move {
            self.read(|s| s.get(SENDER_KEYS, (self.device_id, address), <[u8]>::to_vec))
        })
        .await
    }

    async fn delete_sender_key(&self, address: &str) -> Result<()> {
        self.timed("delete_sender_key", async move {
            self.delete_named(SENDER_KEYS, address).await
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::sql_like;

    #[test]
    fn like_matches_sqlite_semantics() {
        assert!(sql_like("123@%", "123@c.us.0"));
        assert!(sql_like("abc:%", "ABC:3@lid"));
        assert!(sql_like("5511_0@%", "5511x0@c.us"));
        assert!(sql_like("a%c@%", "abbbc@x"));
        assert!(!sql_like("123@%", "1234@c.us"));
        assert!(!sql_like("123@%", "12@"));
        assert!(sql_like("%", ""));
        assert!(!sql_like("_", ""));
        assert!(sql_like("é_@%", "éx@y"));
    }
}
