//! A big store for tests and benches: two accounts of 64 KiB sessions.

#![allow(dead_code)]

use std::sync::Arc;

use bytes::Bytes;
use wacore::store::traits::SignalStore;
use whatsapp_rust_redb_storage::RedbStore;

/// Writes about `mib` MiB of sessions into `s`: half to device 1, half to
/// device 2, 16 sessions of 64 KiB per batch.
pub async fn fill_two_accounts(s: &RedbStore, mib: usize) {
    let value = Bytes::from(vec![0x5A; 64 << 10]);
    for device in [1, 2] {
        let account = s.for_device(device);
        for chunk in 0..mib / 2 {
            let batch: Vec<(Arc<str>, Bytes)> = (0..16)
                .map(|i| (Arc::from(format!("{chunk}:{i}@c.us.0")), value.clone()))
                .collect();
            account.put_sessions_batch(&batch).await.expect("write");
        }
    }
}
