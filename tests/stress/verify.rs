//! Comparing a store with one task's model: every key of the task's key
//! space, present and absent, and optionally the device-wide listings.

use std::collections::BTreeMap;

use wacore::store::error::StoreError;
use wacore::store::traits::*;
use whatsapp_rust_redb_storage::RedbStore;

use crate::dataset::chain;
use crate::{KEYS, Lid, Model, Names, Tc};

/// Compares every key of the task's key space with the model, present and
/// absent. With `scans`, also the device-wide listings.
pub(crate) async fn verify_model(
    s: &RedbStore,
    m: &Model,
    n: &Names,
    owner: bool,
    scans: bool,
) -> Result<(), String> {
    let err = |what: &str, e: StoreError| format!("{what}: {}", chain(&e));
    macro_rules! eq {
        ($got:expr, $want:expr, $what:expr) => {{
            let (got, want) = ($got, $want);
            if got != want {
                return Err(format!(
                    "{}: store has {:?}, model says {:?}",
                    $what, got, want
                ));
            }
        }};
    }
    if owner {
        let d = s.load().await.map_err(|e| err("load", e))?;
        eq!(d.map(|d| d.push_name), m.device.clone(), "device record");
    }
    for i in 0..KEYS {
        let a = n.addr(i);
        let got = s.load_identity(&a).await.map_err(|e| err("identity", e))?;
        eq!(got, m.identities.get(&a).copied(), format!("identity {a}"));
        let got = s.get_session(&a).await.map_err(|e| err("session", e))?;
        eq!(
            got.map(|b| b.to_vec()),
            m.sessions.get(&a).cloned(),
            format!("session {a}")
        );
        let id = n.prekey(i);
        let got = s.load_prekey(id).await.map_err(|e| err("prekey", e))?;
        eq!(
            got.map(|b| b.to_vec()),
            m.prekeys.get(&id).cloned(),
            format!("prekey {id}")
        );
        let got = s
            .load_signed_prekey(id)
            .await
            .map_err(|e| err("signed prekey", e))?;
        eq!(
            got,
            m.signed.get(&id).cloned(),
            format!("signed prekey {id}")
        );
        let key = n.sync_key(i);
        let got = s.get_sync_key(&key).await.map_err(|e| err("sync key", e))?;
        eq!(
            got.map(|k| (k.key_data, k.timestamp)),
            m.sync_keys.get(&key).cloned(),
            format!("sync key {i}")
        );
        let g = n.group(i);
        let got = s
            .get_group_metadata(&g)
            .await
            .map_err(|e| err("group metadata", e))?;
        eq!(
            got,
            m.group_meta.get(&g).cloned(),
            format!("group metadata {g}")
        );
        let got = s.get_devices(&a).await.map_err(|e| err("devices", e))?;
        eq!(
            got.map(|r| (r.devices[0].device_id, r.timestamp)),
            m.device_lists.get(&a).copied(),
            format!("device list {a}")
        );
        let lid = n.lid(i);
        let got = s.get_tc_token(&lid).await.map_err(|e| err("tc", e))?;
        eq!(
            got.map(|e| Tc {
                token: e.token,
                token_ts: e.token_timestamp,
                sender_ts: e.sender_timestamp,
            }),
            m.tc.get(&lid).cloned(),
            format!("tc token {lid}")
        );
        let got = s.get_lid_mapping(&lid).await.map_err(|e| err("lid", e))?;
        eq!(
            got.map(|e| (e.phone_number, e.created_at, e.updated_at)),
            m.lids
                .get(&lid)
                .map(|l| (l.phone.clone(), l.created, l.updated)),
            format!("lid {lid}")
        );
        for j in 0..4 {
            let id = n.id(j);
            let got = s
                .has_same_base_key(
                    &a,
                    &id,
                    m.base_keys
                        .get(&(a.clone(), id.clone()))
                        .map_or(b"-".as_slice(), Vec::as_slice),
                )
                .await
                .map_err(|e| err("base key", e))?;
            eq!(
                got,
                m.base_keys.contains_key(&(a.clone(), id.clone())),
                format!("base key {a} {id}")
            );
            let sk = format!("{}::{a}", n.group(j));
            let got = s
                .get_sender_key(&sk)
                .await
                .map_err(|e| err("sender key", e))?;
            eq!(
                got,
                m.sender_keys.get(&sk).cloned(),
                format!("sender key {sk}")
            );
        }
        if i >= 3 {
            continue; // n.chat() has three distinct chats
        }
        let chat = n.chat(i);
        for j in 0..KEYS {
            let id = n.id(j);
            for x in 0..4 {
                let sender = n.addr(x);
                let k = (chat.clone(), sender.clone(), id.clone());
                let got = s
                    .get_pending_inbound(&chat, &sender, &id)
                    .await
                    .map_err(|e| err("inbound", e))?;
                eq!(got, m.inbound.get(&k).cloned(), format!("inbound {k:?}"));
                if x < 3 {
                    let got = s
                        .get_msg_secret_with_ts(&chat, &sender, &id)
                        .await
                        .map_err(|e| err("secret", e))?;
                    eq!(
                        got,
                        m.secrets.get(&k).map(|r| (r.secret.to_vec(), r.ts)),
                        format!("secret {k:?}")
                    );
                }
            }
        }
    }
    for c in 0..4 {
        let name = n.coll(c);
        let got = s.get_version(&name).await.map_err(|e| err("version", e))?;
        eq!(
            got.version,
            m.versions.get(&name).copied().unwrap_or(0),
            format!("version {name}")
        );
        let all: Vec<[u8; 32]> = (0..KEYS).map(|i| n.mac(i)).collect();
        let got: BTreeMap<[u8; 32], Vec<u8>> = s
            .get_mutation_macs(&name, &all)
            .await
            .map_err(|e| err("macs", e))?
            .into_iter()
            .collect();
        let want: BTreeMap<[u8; 32], Vec<u8>> = m
            .macs
            .iter()
            .filter(|((nm, _), _)| *nm == name)
            .map(|((_, i), v)| (*i, v.clone()))
            .collect();
        eq!(got, want, format!("macs {name}"));
        let g = n.group(c);
        let got = s
            .get_sender_key_devices(&g)
            .await
            .map_err(|e| err("skd", e))?;
        let want: Vec<(String, bool)> = m
            .skd
            .iter()
            .filter(|((gg, _), _)| *gg == g)
            .map(|((_, j), k)| (j.clone(), *k))
            .collect();
        eq!(got, want, format!("sender key devices {g}"));
        let phone = n.phone(c);
        let got = s.get_pn_mapping(&phone).await.map_err(|e| err("pn", e))?;
        eq!(
            got.map(|e| e.lid),
            m.best_lid_for(&phone),
            format!("pn {phone}")
        );
    }
    if scans {
        let own = format!("t{}-", n.t);
        let mut lids = s
            .get_all_lid_mappings()
            .await
            .map_err(|e| err("all lids", e))?;
        lids.retain(|e| owner || e.lid.starts_with(&own));
        let mut want: Vec<(&String, &Lid)> = m.lids.iter().collect();
        want.sort_by_key(|(_, l)| l.seq);
        eq!(
            lids.into_iter().map(|e| e.lid).collect::<Vec<_>>(),
            want.into_iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
            "all lid mappings"
        );
        let mut jids = s
            .get_all_tc_token_jids()
            .await
            .map_err(|e| err("tc jids", e))?;
        jids.retain(|j| owner || j.starts_with(&own));
        eq!(
            jids,
            m.tc.keys().cloned().collect::<Vec<_>>(),
            "tc token jids"
        );
        let mut signed = s
            .load_all_signed_prekeys()
            .await
            .map_err(|e| err("signed", e))?;
        let range = n.prekey(0)..=n.prekey(KEYS);
        signed.retain(|(id, _)| owner || range.contains(id));
        signed.sort();
        eq!(
            signed,
            m.signed
                .iter()
                .map(|(k, v)| (*k, v.clone()))
                .collect::<Vec<_>>(),
            "all signed prekeys"
        );
        if owner {
            let max = s.get_max_prekey_id().await.map_err(|e| err("max", e))?;
            eq!(
                max,
                m.prekeys.keys().max().copied().unwrap_or(0),
                "max prekey id"
            );
            let latest = s
                .get_latest_sync_key_id()
                .await
                .map_err(|e| err("latest", e))?;
            eq!(
                latest,
                m.sync_keys.keys().next_back().cloned(),
                "latest sync key"
            );
            let rows = s
                .accounts()
                .await
                .map_err(|e| err("accounts", e))?
                .into_iter()
                .find(|a| a.device_id == s.device_id())
                .map_or(0, |a| a.rows);
            eq!(rows, m.rows(), "rows of the device");
        }
        // Sent messages can only be read by taking them: last.
        for i in 0..3 {
            let chat = n.chat(i);
            for j in 0..KEYS {
                let id = n.id(j);
                let got = s
                    .take_sent_message(&chat, &id)
                    .await
                    .map_err(|e| err("take", e))?;
                eq!(
                    got,
                    m.sent.get(&(chat.clone(), id.clone())).cloned(),
                    format!("sent message {chat} {id}")
                );
            }
        }
    }
    Ok(())
}
