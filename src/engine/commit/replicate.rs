//! Starting and watching replicated durability on an open file (feature
//! `replica`): the shipper ([`super::ship`]) attached to the writer, its
//! gate, its status.

use std::sync::Arc;

use crate::engine::Engine;
use crate::engine::ship::{self, RecordSink, ShipBounds, ShipStatus, ShipWatch};
use crate::error::WriteError;

impl Engine {
    /// Starts replicated durability: from the next batch on, every journal
    /// record also goes to `sink`, and a batch's callers are answered once
    /// it is stored there (see [`ship`]). Returns the sequence number the
    /// replica's base must hold every write up to; until
    /// [`Engine::replica_ready`], no write is answered `Ok`. Blocking.
    pub fn replicate(
        &self,
        sink: Arc<dyn RecordSink>,
        bounds: ShipBounds,
    ) -> Result<u64, WriteError> {
        let refused = |reason: &str| WriteError::NotReplicated {
            path: self.path.clone(),
            target: sink.target(),
            reason: reason.to_string(),
        };
        if self.look.is_some() {
            return Err(WriteError::OpenedToLook {
                path: self.path.clone(),
            });
        }
        let mut slot = self.replica.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_some() {
            return Err(refused("this store already replicates"));
        }
        let (watch, lsn) = self.lane.exclusive(|writer, _| {
            if !writer.append {
                return Err(refused(
                    "a store in `Synchronous::Off` mode writes no journal records to replicate; \
                     open it in `Normal` or `Full` mode",
                ));
            }
            let header = writer.journal_spec.header();
            let (shipper, watch) =
                ship::Shipper::start(self.path.clone(), sink.clone(), header, bounds, writer.lsn);
            writer.ship = Some(shipper);
            Ok((watch, writer.lsn))
        })?;
        *slot = Some(watch);
        Ok(lsn)
    }

    /// The replica's base is in place: writes stored there are answered.
    pub fn replica_ready(&self) {
        if let Some(watch) = self
            .replica
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            watch.open_gate();
        }
    }

    /// Replication could not start (its base could not be stored): the
    /// writes waiting get `why`, and the store goes on without a replica.
    /// Blocking.
    pub fn replica_failed(&self, why: String) {
        let watch = self
            .replica
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(watch) = watch {
            watch.refuse(why);
            self.lane.exclusive(|writer, _| writer.ship = None);
        }
    }

    /// The sequence number of the last batch committed, read under the
    /// write lane: a read snapshot begun before this call holds no later
    /// write (the published `status.lsn` may trail a commit for a moment).
    /// Blocking.
    pub fn committed_lsn(&self) -> u64 {
        self.lane.exclusive(|writer, _| writer.lsn)
    }

    /// Where the records go, if the store replicates and its replica has
    /// not stopped for good.
    pub fn replica_sink(&self) -> Option<Arc<dyn RecordSink>> {
        let slot = self.replica.lock().unwrap_or_else(|p| p.into_inner());
        let watch = slot.as_ref()?;
        watch.status().refused.is_none().then(|| watch.sink())
    }

    /// What the replica holds, if the store replicates.
    pub fn replica_status(&self) -> Option<ShipStatus> {
        let slot = self.replica.lock().unwrap_or_else(|p| p.into_inner());
        slot.as_ref().map(ShipWatch::status)
    }

    /// Waits (at most the replica's timeout) until every write so far is
    /// stored in the replica. Blocking.
    pub fn replica_drain(&self) -> Result<(), WriteError> {
        let watch = self
            .replica
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match watch {
            Some(watch) => watch.drain(self.status.lsn.load(std::sync::atomic::Ordering::Acquire)),
            None => Ok(()),
        }
    }
}
