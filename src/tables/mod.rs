//! The table catalog: every table of a store file, its key and value types,
//! and the schema version. `schema.md` documents the same list in prose;
//! change both together.
//!
//! Keys are typed redb tuples whose first element is the device id (the
//! account), so one file holds many accounts and a range over `(d, ..)`
//! covers exactly one of them. Values are either the caller's opaque bytes,
//! unchanged, or a versioned encoding from [`crate::tables::codec`].
//!
//! Each table also has a one-byte id, used by the journal to name the table
//! a change belongs to. Ids are part of the on-disk journal format: never
//! reuse or renumber one.

pub(crate) mod codec;
mod for_engine;
mod migrations;
pub(crate) mod shape;

pub(crate) use for_engine::CATALOG;

use std::ops::Bound;

use redb::{Key, Value};

use crate::engine::TableTag;
use crate::error::StorageResult as Result;
use crate::tables::shape::Shape;

pub(crate) use crate::engine::{Bounds, Table, every_row};

/// The schema version this build writes. See `migrations.rs`.
/// 1: the baseline. 2: `base_keys` values are `BaseKeyRow`s (the key and
/// when it was saved) instead of the bare key.
pub(crate) const SCHEMA_VERSION: u32 = 2;

/// The oldest schema version whose journal records this build can replay
/// (into a file of that version, before migrating it). Every table kept its
/// key and value types since: records of version 1 are raw rows of version
/// 1, which the migration then converts like the rest. A migration that
/// changes a table's types raises this.
pub(crate) const JOURNAL_REPLAYABLE_FROM: u32 = 1;

impl<K: StoreKey, V: Value + 'static> Table<K, V> {
    /// Bounds covering every key of device `d` in this table.
    pub fn device(self, d: i32) -> Bounds<'static, K> {
        K::device_range(d).expect("Table::device is only used on per-device tables")
    }
}

/// Keys of store tables: knows which device a key belongs to.
pub(crate) trait StoreKey: Key + 'static {
    /// Bounds covering every key of device `d`; `None` for tables that are
    /// not per-device (the meta table).
    fn device_range(d: i32) -> Option<Bounds<'static, Self>>;

    /// The device a key belongs to; `None` for the meta table.
    fn device_of(key: &Self::SelfType<'_>) -> Option<i32>;
}

impl StoreKey for &'static str {
    fn device_range(_: i32) -> Option<(Bound<&'static str>, Bound<&'static str>)> {
        None
    }

    fn device_of(_: &&str) -> Option<i32> {
        None
    }
}

impl StoreKey for i32 {
    fn device_range(d: i32) -> Option<(Bound<i32>, Bound<i32>)> {
        Some((Bound::Included(d), Bound::Included(d)))
    }

    fn device_of(key: &i32) -> Option<i32> {
        Some(*key)
    }
}

/// Implements [`StoreKey`] for a tuple key `(i32, rest..)`, given the
/// smallest value of each remaining element.
macro_rules! device_tuple_key {
    ($( ($($t:ty),+) => ($($min:expr),+); )*) => {$(
        impl StoreKey for (i32, $($t),+) {
            fn device_range(d: i32) -> Option<Bounds<'static, Self>> {
                let lower = Bound::Included((d, $($min),+));
                // `(d + 1, min..)` is the first key of the next device; at
                // i32::MAX there is none, so the range is open-ended.
                let upper = match d.checked_add(1) {
                    Some(next) => Bound::Excluded((next, $($min),+)),
                    None => Bound::Unbounded,
                };
                Some((lower, upper))
            }

            fn device_of(key: &Self::SelfType<'_>) -> Option<i32> {
                Some(key.0)
            }
        }
    )*};
}

device_tuple_key! {
    (&'static str) => ("");
    (u32) => (0u32);
    (&'static [u8]) => (&[][..]);
    (&'static str, &'static str) => ("", "");
    (&'static str, &'static [u8]) => ("", &[][..]);
    (&'static str, &'static str, &'static str) => ("", "", "");
}

/// Something done once per table, with the table's types known.
pub(crate) trait TableVisitor {
    /// What a visit fails with: the file's failures at least.
    type Error: From<crate::error::StorageError>;

    fn visit<K: StoreKey, V: Value + 'static>(
        &mut self,
        id: TableId,
        table: Table<K, V>,
    ) -> Result<(), Self::Error>;
}

type Bytes = &'static [u8];
type Str = &'static str;

macro_rules! catalog {
    ($( $id:literal $konst:ident $name:literal : $k:ty => $v:ty; )*) => {
        $(
            pub(crate) const $konst: Table<$k, $v> = Table::new($id, $name);
        )*

        /// Journal id of a table.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        #[allow(non_camel_case_types, clippy::upper_case_acronyms)]
        pub(crate) enum TableId {
            $( $konst = $id, )*
        }

        impl TableId {
            /// Every table, in catalog order.
            pub const ALL: &'static [TableId] = &[$( TableId::$konst ),*];

            /// The redb table name.
            pub fn name(self) -> &'static str {
                match self {
                    $( TableId::$konst => $name, )*
                }
            }

            /// The table of a journal tag.
            pub fn from_tag(tag: TableTag) -> Option<TableId> {
                match tag.0 {
                    $( $id => Some(TableId::$konst), )*
                    _ => None,
                }
            }

            /// The table of a redb table name (used by the `dump` tool).
            #[cfg_attr(not(feature = "cli"), allow(dead_code))]
            pub fn from_name(name: &str) -> Option<TableId> {
                match name {
                    $( $name => Some(TableId::$konst), )*
                    _ => None,
                }
            }

            /// Whether `key` (and `value`, if given) are well-formed
            /// encodings of this table's types, checked before redb
            /// decodes bytes that come from outside its pages.
            pub fn well_formed(self, key: &[u8], value: Option<&[u8]>) -> bool {
                match self {
                    $( TableId::$konst => {
                        <$k as Shape>::well_formed(key)
                            && value.is_none_or(<$v as Shape>::well_formed)
                    } )*
                }
            }

            /// Calls `visitor` with this table's typed definition.
            pub fn visit<T: TableVisitor>(self, visitor: &mut T) -> Result<(), T::Error> {
                match self {
                    $( TableId::$konst => visitor.visit(TableId::$konst, $konst), )*
                }
            }
        }

        /// Calls `visitor` once for every table.
        pub(crate) fn visit_all<T: TableVisitor>(visitor: &mut T) -> Result<(), T::Error> {
            $( visitor.visit(TableId::$konst, $konst)?; )*
            Ok(())
        }
    };
}

catalog! {
    // Store metadata: schema version, file id, checkpoint position,
    // counters. Keys are fixed names: the engine's own (`engine/catalog.rs`)
    // and `META_LID_SEQ` below.
    0 META "meta": Str => Bytes;
    // The account (device) record: versioned msgpack of wacore's `Device`.
    1 DEVICES "devices": i32 => Bytes;
    // (device, address) -> 32-byte identity key.
    2 IDENTITIES "identities": (i32, Str) => Bytes;
    // (device, address) -> session record, opaque.
    3 SESSIONS "sessions": (i32, Str) => Bytes;
    // (device, prekey id) -> PrekeyRow.
    4 PREKEYS "prekeys": (i32, u32) => Bytes;
    // (device, signed prekey id) -> record, opaque.
    5 SIGNED_PREKEYS "signed_prekeys": (i32, u32) => Bytes;
    // (device, sender key name) -> sender key record, opaque.
    6 SENDER_KEYS "sender_keys": (i32, Str) => Bytes;
    // (device, key id) -> versioned msgpack of `AppStateSyncKey`.
    7 SYNC_KEYS "app_state_sync_keys": (i32, Bytes) => Bytes;
    // (device, collection name) -> versioned msgpack of `HashState`.
    8 APP_STATE_VERSIONS "app_state_versions": (i32, Str) => Bytes;
    // (device, collection name, index mac) -> MutationMacRow.
    9 MUTATION_MACS "app_state_mutation_macs": (i32, Str, Bytes) => Bytes;
    // (device, group, device jid) -> has_key. Also holds the forget marks
    // of the legacy API (has_key = false).
    10 SENDER_KEY_DEVICES "sender_key_devices": (i32, Str, Str) => bool;
    // (device, lid user) -> LidMappingRow.
    11 LID_MAPPINGS "lid_mappings": (i32, Str) => Bytes;
    // (device, phone user, lid user) -> (): reverse index of LID_MAPPINGS.
    12 PN_INDEX "lid_mappings_by_pn": (i32, Str, Str) => ();
    // (device, address, message id) -> base key, opaque.
    13 BASE_KEYS "base_keys": (i32, Str, Str) => Bytes;
    // (device, user) -> versioned msgpack of `DeviceListRecord`.
    14 DEVICE_LISTS "device_lists": (i32, Str) => Bytes;
    // (device, group jid) -> metadata blob, opaque.
    15 GROUP_METADATA "group_metadata": (i32, Str) => Bytes;
    // (device, jid) -> TcTokenRow.
    16 TC_TOKENS "tc_tokens": (i32, Str) => Bytes;
    // (device, chat, message id) -> SentMessageRow.
    17 SENT_MESSAGES "sent_messages": (i32, Str, Str) => Bytes;
    // (device, chat, sender, stanza id) -> PendingInboundRow.
    18 PENDING_INBOUND "pending_inbound": (i32, Str, Str, Str) => Bytes;
    // (device, chat, sender, message id) -> MsgSecretRow.
    19 MSG_SECRETS "msg_secrets": (i32, Str, Str, Str) => Bytes;
}

pub(crate) use crate::engine::META_CREATED_BY;

/// `META` key (the catalog's own): the last insertion sequence number given
/// to a LID mapping, u64 LE.
pub(crate) const META_LID_SEQ: &str = "lid_seq";

/// `META` key (the catalog's own): who last took the store's replica over
/// (`replicate_to`), UTF-8; the write that fences the host before it.
#[cfg(feature = "replica")]
pub(crate) const META_REPLICA_CLAIM: &str = "replica_claim";
