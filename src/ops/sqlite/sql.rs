//! Reading a SqliteStore file: row counts and the queries behind the import.

use super::*;

// ---------------------------------------------------------------------------
// SQL side
// ---------------------------------------------------------------------------

#[derive(QueryableByName)]
pub(crate) struct DeviceCount {
    #[diesel(sql_type = Integer)]
    pub(crate) device: i32,
    #[diesel(sql_type = BigInt)]
    pub(crate) n: i64,
}

/// Rows per account per SqliteStore table: `{device: {table: rows}}`.
pub(crate) type SqlCounts = BTreeMap<i32, BTreeMap<&'static str, u64>>;

pub(crate) async fn sql_counts(src: &SqliteStore) -> Result<SqlCounts, StoreError> {
    src.shared()
        .read(|conn| {
            let mut out = SqlCounts::new();
            for table in SQL_TABLES {
                let sql = format!(
                    "SELECT {c} AS device, COUNT(*) AS n FROM {t} GROUP BY {c}",
                    c = table.device_column,
                    t = table.name
                );
                let rows: Vec<DeviceCount> = diesel::sql_query(sql).load(conn).map_err(db_err)?;
                for r in rows {
                    out.entry(r.device)
                        .or_default()
                        .insert(table.name, r.n as u64);
                }
            }
            Ok(out)
        })
        .await
}

/// Runs `sql` (with `?` bound to the device id) on SqliteStore's own
/// connection, in one read snapshot.
pub(crate) async fn select<T>(
    src: &SqliteStore,
    sql: &'static str,
    d: i32,
) -> Result<Vec<T>, StoreError>
where
    T: QueryableByName<Sqlite> + Send + 'static,
{
    src.shared()
        .read(move |conn| {
            diesel::sql_query(sql)
                .bind::<Integer, _>(d)
                .load(conn)
                .map_err(db_err)
        })
        .await
}

#[derive(QueryableByName)]
pub(crate) struct TextBlob {
    #[diesel(sql_type = Text)]
    pub(crate) k: String,
    #[diesel(sql_type = Binary)]
    pub(crate) v: Vec<u8>,
}

#[derive(QueryableByName)]
pub(crate) struct IdBlob {
    #[diesel(sql_type = Integer)]
    pub(crate) id: i32,
    #[diesel(sql_type = Binary)]
    pub(crate) v: Vec<u8>,
}

#[derive(QueryableByName)]
pub(crate) struct PrekeySql {
    #[diesel(sql_type = Integer)]
    pub(crate) id: i32,
    #[diesel(sql_type = Binary)]
    pub(crate) v: Vec<u8>,
    #[diesel(sql_type = Bool)]
    pub(crate) uploaded: bool,
}

#[derive(QueryableByName)]
pub(crate) struct TextKey {
    #[diesel(sql_type = Text)]
    pub(crate) k: String,
}

#[derive(QueryableByName)]
pub(crate) struct BlobKey {
    #[diesel(sql_type = Binary)]
    pub(crate) k: Vec<u8>,
}

#[derive(QueryableByName)]
pub(crate) struct MacSql {
    #[diesel(sql_type = Text)]
    pub(crate) name: String,
    #[diesel(sql_type = Binary)]
    pub(crate) index_mac: Vec<u8>,
    #[diesel(sql_type = BigInt)]
    pub(crate) version: i64,
    #[diesel(sql_type = Binary)]
    pub(crate) value_mac: Vec<u8>,
}

#[derive(QueryableByName)]
pub(crate) struct SenderKeyDeviceSql {
    #[diesel(sql_type = Text)]
    pub(crate) group_jid: String,
    #[diesel(sql_type = Text)]
    pub(crate) device_jid: String,
    #[diesel(sql_type = BigInt)]
    pub(crate) has_key: i64,
}

#[derive(QueryableByName)]
pub(crate) struct LidSql {
    #[diesel(sql_type = Text)]
    pub(crate) lid: String,
    #[diesel(sql_type = Text)]
    pub(crate) phone_number: String,
    #[diesel(sql_type = BigInt)]
    pub(crate) created_at: i64,
    #[diesel(sql_type = BigInt)]
    pub(crate) updated_at: i64,
    #[diesel(sql_type = Text)]
    pub(crate) learning_source: String,
}

#[derive(QueryableByName)]
pub(crate) struct TcSql {
    #[diesel(sql_type = Text)]
    pub(crate) k: String,
    #[diesel(sql_type = Binary)]
    pub(crate) token: Vec<u8>,
    #[diesel(sql_type = BigInt)]
    pub(crate) token_timestamp: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub(crate) sender_timestamp: Option<i64>,
}

#[derive(QueryableByName)]
/// Two text key columns, a blob and a time (sent messages, base keys).
pub(crate) struct Text2BlobTime {
    #[diesel(sql_type = Text)]
    pub(crate) a: String,
    #[diesel(sql_type = Text)]
    pub(crate) b: String,
    #[diesel(sql_type = Binary)]
    pub(crate) v: Vec<u8>,
    #[diesel(sql_type = BigInt)]
    pub(crate) at: i64,
}

#[derive(QueryableByName)]
pub(crate) struct Text3BlobTime {
    #[diesel(sql_type = Text)]
    pub(crate) a: String,
    #[diesel(sql_type = Text)]
    pub(crate) b: String,
    #[diesel(sql_type = Text)]
    pub(crate) c: String,
    #[diesel(sql_type = Binary)]
    pub(crate) v: Vec<u8>,
    #[diesel(sql_type = BigInt)]
    pub(crate) at: i64,
}

#[derive(QueryableByName)]
pub(crate) struct SecretSql {
    #[diesel(sql_type = Text)]
    pub(crate) a: String,
    #[diesel(sql_type = Text)]
    pub(crate) b: String,
    #[diesel(sql_type = Text)]
    pub(crate) c: String,
    #[diesel(sql_type = Binary)]
    pub(crate) v: Vec<u8>,
    #[diesel(sql_type = BigInt)]
    pub(crate) expires_at: i64,
    #[diesel(sql_type = BigInt)]
    pub(crate) message_ts: i64,
}
