//! `ProtocolStore`, one file per concern: `sender_key_devices`,
//! `lid_mappings`, `base_keys`, `device_lists`, `group_metadata`,
//! `tc_tokens`, `sent_messages`, `pending_inbound`. This file is the
//! trait's table of contents: each method is timed (metrics) and handed to
//! its concern.

mod base_keys;
mod device_lists;
mod group_metadata;
mod lid_mappings;
mod pending_inbound;
mod sender_key_devices;
mod sent_messages;
mod tc_tokens;

use async_trait::async_trait;
use wacore::store::error::Result;
use wacore::store::traits::{
    DeviceListRecord, LidPnMappingEntry, PendingInboundKey, PendingInboundRow, ProtocolStore,
    TcTokenEntry,
};

use crate::handle::RedbStore;

pub(crate) use base_keys::base_key_row;

#[async_trait]
impl ProtocolStore for RedbStore {
    async fn get_sender_key_devices(&self, group_jid: &str) -> Result<Vec<(String, bool)>> {
        self.timed(
            "get_sender_key_devices",
            sender_key_devices::get_sender_key_devices(self, group_jid),
        )
        .await
    }

    async fn set_sender_key_status(&self, group_jid: &str, entries: &[(&str, bool)]) -> Result<()> {
        self.timed(
            "set_sender_key_status",
            sender_key_devices::set_sender_key_status(self, group_jid, entries),
        )
        .await
    }

    async fn clear_sender_key_devices(&self, group_jid: &str) -> Result<()> {
        self.timed(
            "clear_sender_key_devices",
            sender_key_devices::clear_sender_key_devices(self, group_jid),
        )
        .await
    }

    async fn delete_sender_key_device_rows(&self, device_jids: &[&str]) -> Result<()> {
        self.timed(
            "delete_sender_key_device_rows",
            sender_key_devices::delete_sender_key_device_rows(self, device_jids),
        )
        .await
    }

    async fn clear_all_sender_key_devices(&self) -> Result<()> {
        self.timed(
            "clear_all_sender_key_devices",
            sender_key_devices::clear_all_sender_key_devices(self),
        )
        .await
    }

    async fn get_lid_mapping(&self, lid: &str) -> Result<Option<LidPnMappingEntry>> {
        self.timed("get_lid_mapping", lid_mappings::get_lid_mapping(self, lid))
            .await
    }

    async fn get_pn_mapping(&self, phone: &str) -> Result<Option<LidPnMappingEntry>> {
        self.timed("get_pn_mapping", lid_mappings::get_pn_mapping(self, phone))
            .await
    }

    // The single-row forms are their batch forms (which are timed).
    async fn put_lid_mapping(&self, entry: &LidPnMappingEntry) -> Result<()> {
        self.put_lid_mappings(std::slice::from_ref(entry)).await
    }

    async fn put_lid_mappings(&self, entries: &[LidPnMappingEntry]) -> Result<()> {
        self.timed(
            "put_lid_mappings",
            lid_mappings::put_lid_mappings(self, entries),
        )
        .await
    }

    async fn get_all_lid_mappings(&self) -> Result<Vec<LidPnMappingEntry>> {
        self.timed(
            "get_all_lid_mappings",
            lid_mappings::get_all_lid_mappings(self),
        )
        .await
    }

    async fn save_base_key(&self, address: &str, message_id: &str, base_key: &[u8]) -> Result<()> {
        self.timed(
            "save_base_key",
            base_keys::save_base_key(self, address, message_id, base_key),
        )
        .await
    }

    async fn has_same_base_key(
        &self,
        address: &str,
        message_id: &str,
        current_base_key: &[u8],
    ) -> Result<bool> {
        self.timed(
            "has_same_base_key",
            base_keys::has_same_base_key(self, address, message_id, current_base_key),
        )
        .await
    }

    async fn delete_base_key(&self, address: &str, message_id: &str) -> Result<()> {
        self.timed(
            "delete_base_key",
            base_keys::delete_base_key(self, address, message_id),
        )
        .await
    }

    async fn update_device_list(&self, record: DeviceListRecord) -> Result<()> {
        self.update_device_lists(vec![record]).await
    }

    async fn update_device_lists(&self, records: Vec<DeviceListRecord>) -> Result<()> {
        self.timed(
            "update_device_lists",
            device_lists::update_device_lists(self, records),
        )
        .await
    }

    async fn get_devices(&self, user: &str) -> Result<Option<DeviceListRecord>> {
        self.timed("get_devices", device_lists::get_devices(self, user))
            .await
    }

    async fn delete_devices(&self, user: &str) -> Result<()> {
        self.timed("delete_devices", device_lists::delete_devices(self, user))
            .await
    }

    async fn get_group_metadata(&self, group_jid: &str) -> Result<Option<Vec<u8>>> {
        self.timed(
            "get_group_metadata",
            group_metadata::get_group_metadata(self, group_jid),
        )
        .await
    }

    async fn put_group_metadata(&self, group_jid: &str, blob: &[u8]) -> Result<()> {
        self.timed(
            "put_group_metadata",
            group_metadata::put_group_metadata(self, group_jid, blob),
        )
        .await
    }

    async fn delete_group_metadata(&self, group_jid: &str) -> Result<()> {
        self.timed(
            "delete_group_metadata",
            group_metadata::delete_group_metadata(self, group_jid),
        )
        .await
    }

    async fn get_tc_token(&self, jid: &str) -> Result<Option<TcTokenEntry>> {
        self.timed("get_tc_token", tc_tokens::get_tc_token(self, jid))
            .await
    }

    async fn put_tc_token(&self, jid: &str, entry: &TcTokenEntry) -> Result<()> {
        self.timed("put_tc_token", tc_tokens::put_tc_token(self, jid, entry))
            .await
    }

    async fn delete_tc_token(&self, jid: &str) -> Result<()> {
        self.timed("delete_tc_token", tc_tokens::delete_tc_token(self, jid))
            .await
    }

    async fn get_all_tc_token_jids(&self) -> Result<Vec<String>> {
        self.timed(
            "get_all_tc_token_jids",
            tc_tokens::get_all_tc_token_jids(self),
        )
        .await
    }

    async fn delete_expired_tc_tokens(&self, token_cutoff: i64, sender_cutoff: i64) -> Result<u32> {
        self.timed(
            "delete_expired_tc_tokens",
            tc_tokens::delete_expired_tc_tokens(self, token_cutoff, sender_cutoff),
        )
        .await
    }

    async fn touch_tc_token_sender_timestamp(
        &self,
        jid: &str,
        sender_timestamp: i64,
    ) -> Result<()> {
        self.timed(
            "touch_tc_token_sender_timestamp",
            tc_tokens::touch_tc_token_sender_timestamp(self, jid, sender_timestamp),
        )
        .await
    }

    async fn store_received_tc_token(
        &self,
        jid: &str,
        token: &[u8],
        token_timestamp: i64,
    ) -> Result<()> {
        self.timed(
            "store_received_tc_token",
            tc_tokens::store_received_tc_token(self, jid, token, token_timestamp),
        )
        .await
    }

    async fn store_sent_message(
        &self,
        chat_jid: &str,
        message_id: &str,
        payload: &[u8],
    ) -> Result<()> {
        self.timed(
            "store_sent_message",
            sent_messages::store_sent_message(self, chat_jid, message_id, payload),
        )
        .await
    }

    async fn take_sent_message(&self, chat_jid: &str, message_id: &str) -> Result<Option<Vec<u8>>> {
        self.timed(
            "take_sent_message",
            sent_messages::take_sent_message(self, chat_jid, message_id),
        )
        .await
    }

    async fn delete_expired_sent_messages(&self, cutoff_timestamp: i64) -> Result<u32> {
        self.timed(
            "delete_expired_sent_messages",
            sent_messages::delete_expired_sent_messages(self, cutoff_timestamp),
        )
        .await
    }

    async fn store_pending_inbound(
        &self,
        chat: &str,
        sender: &str,
        id: &str,
        message: &[u8],
    ) -> Result<()> {
        pending_inbound::store_pending_inbound(self, chat, sender, id, message).await
    }

    async fn get_pending_inbound(
        &self,
        chat: &str,
        sender: &str,
        id: &str,
    ) -> Result<Option<Vec<u8>>> {
        self.timed(
            "get_pending_inbound",
            pending_inbound::get_pending_inbound(self, chat, sender, id),
        )
        .await
    }

    async fn delete_pending_inbound(&self, chat: &str, sender: &str, id: &str) -> Result<()> {
        pending_inbound::delete_pending_inbound(self, chat, sender, id).await
    }

    async fn delete_expired_pending_inbound(&self, cutoff_timestamp: i64) -> Result<u32> {
        self.timed(
            "delete_expired_pending_inbound",
            pending_inbound::delete_expired_pending_inbound(self, cutoff_timestamp),
        )
        .await
    }

    async fn store_pending_inbound_batch(&self, rows: &[PendingInboundRow<'_>]) -> Result<()> {
        self.timed(
            "store_pending_inbound_batch",
            pending_inbound::store_pending_inbound_batch(self, rows),
        )
        .await
    }

    async fn delete_pending_inbound_batch(&self, keys: &[PendingInboundKey<'_>]) -> Result<()> {
        self.timed(
            "delete_pending_inbound_batch",
            pending_inbound::delete_pending_inbound_batch(self, keys),
        )
        .await
    }
}
