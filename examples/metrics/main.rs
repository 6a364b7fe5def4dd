//! Installs a metrics recorder and a tracing subscriber, runs a little
//! Signal-like traffic through a store, and prints what an operator would
//! scrape: operation latencies (p50/p99), commits and batch sizes, the
//! journal, checkpoints, I/O, the cache, the file, and the spans of the
//! whole-file operations. The names are listed in README "Metrics".
//!
//! ```text
//! cargo run --release --example metrics --features metrics,tracing
//! ```
//!
//! A real program installs an exporter instead of `recorder::Recorder`
//! (`metrics-exporter-prometheus`, OpenTelemetry...), and a subscriber such
//! as `tracing-subscriber`'s.

mod recorder;
mod spans;

use wacore::store::traits::*;
use whatsapp_rust_redb_storage::{RedbStore, telemetry};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Both before the first store opens: a file takes its handles then.
    let recorder = recorder::Recorder::default();
    metrics::set_global_recorder(recorder.clone())?;
    telemetry::describe();
    tracing::subscriber::set_global_default(spans::Printer::default())?;

    let dir = tempfile::tempdir()?;
    let store = RedbStore::new(dir.path().join("metrics.redb")).await?;
    for i in 0..2_000u32 {
        let address = format!("55119876{i:05}:1@c.us.0");
        store.put_session(&address, &[7u8; 600]).await?;
        store.get_session(&address).await?;
        if i % 10 == 0 {
            store.put_identity(&address, [1; 32]).await?;
        }
    }
    // An operation that fails (no such account): counted under
    // wa_redb_op_errors_total.
    let mapping = LidPnMappingEntry {
        lid: "100000012345678".into(),
        phone_number: "559980000001".into(),
        created_at: 0,
        updated_at: 0,
        learning_source: "usync".into(),
    };
    let refused = store.for_device(42).put_lid_mapping(&mapping).await;
    assert!(refused.is_err());
    store.checkpoint().await?;
    // Sampled gauges (file size, I/O, accounts) refresh at most once a
    // second, as operations finish.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    store.get_session("5511987600000:1@c.us.0").await?;
    store.close().await?;

    println!("\n# metrics\n{}", recorder.render());
    Ok(())
}
