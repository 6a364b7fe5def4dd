//! The older sender-key API (whatsapp-rust before 0.7), kept as an extension
//! trait so code written against it keeps working.
//!
//! It is a view of the same rows the 0.7 sender-key-device methods use
//! (`sender_key_devices`, keyed `(device, group, device_jid)`), so both
//! views always agree:
//!
//! - an SKDM recipient is a device with `has_key = true`;
//! - a forget mark is a device with `has_key = false` (what 0.7's
//!   `set_sender_key_status(.., false)` writes for the same purpose);
//! - consuming the marks deletes those rows, atomically with reading them.

use async_trait::async_trait;
use wacore::store::error::Result;
use wacore::store::traits::ProtocolStore;

use crate::engine::NameRange;
use crate::handle::RedbStore;
use crate::tables::SENDER_KEY_DEVICES;

/// Sender-key distribution tracking with the pre-0.7 method names.
#[async_trait]
pub trait SkdmTracking {
    /// Devices that hold our current sender key for the group.
    async fn get_skdm_recipients(&self, group_jid: &str) -> Result<Vec<String>>;
    /// Records that these devices received our sender key.
    async fn add_skdm_recipients(&self, group_jid: &str, device_jids: &[String]) -> Result<()>;
    /// Forgets every recipient (and mark) of the group.
    async fn clear_skdm_recipients(&self, group_jid: &str) -> Result<()>;
    /// Marks a participant as needing a fresh sender key.
    async fn mark_forget_sender_key(&self, group_jid: &str, participant: &str) -> Result<()>;
    /// Returns the group's marked participants and deletes the marks, in one
    /// write transaction.
    async fn consume_forget_marks(&self, group_jid: &str) -> Result<Vec<String>>;
}

#[async_trait]
impl SkdmTracking for RedbStore {
    async fn get_skdm_recipients(&self, group_jid: &str) -> Result<Vec<String>> {
        let rows = self.get_sender_key_devices(group_jid).await?;
        Ok(rows
            .into_iter()
            .filter_map(|(jid, has_key)| has_key.then_some(jid))
            .collect())
    }

    async fn add_skdm_recipients(&self, group_jid: &str, device_jids: &[String]) -> Result<()> {
        let entries: Vec<(&str, bool)> = device_jids.iter().map(|j| (j.as_str(), true)).collect();
        self.set_sender_key_status(group_jid, &entries).await
    }

    async fn clear_skdm_recipients(&self, group_jid: &str) -> Result<()> {
        self.clear_sender_key_devices(group_jid).await
    }

    async fn mark_forget_sender_key(&self, group_jid: &str, participant: &str) -> Result<()> {
        self.set_sender_key_status(group_jid, &[(participant, false)])
            .await
    }

    async fn consume_forget_marks(&self, group_jid: &str) -> Result<Vec<String>> {
        let d = self.device_id;
        let group = NameRange::new(d, group_jid);
        self.write_scan(move |tx| {
            let bounds = group.str_keys();
            let mut marked = Vec::new();
            tx.visit(SENDER_KEY_DEVICES, bounds, |(_, _, jid), has_key| {
                if !has_key {
                    marked.push(jid.to_owned());
                }
                Ok(true)
            })?;
            for jid in &marked {
                tx.remove(SENDER_KEY_DEVICES, (d, group.name(), jid.as_str()))?;
            }
            Ok(marked)
        })
        .await
    }
}
