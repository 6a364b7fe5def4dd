//! Opens, reads and writes each store file named on the command line, as
//! an application would, and says how it went — built with `panic =
//! "abort"` (`cargo build --profile abort-probe --features cli --example
//! damage_probe`), so
//! that a panic anywhere, caught by the store or not, kills the process
//! instead of becoming an error. The damage sweep (`tests/damage`, with
//! `WA_REDB_ABORT_PROBE` set to this binary) runs it on every damaged copy
//! of a protected store and fails unless it exits normally.
//!
//! Prints one line per file: `ok`, or the first error (`error at <step>:
//! <message>`). Exits 0 when it got through every file (errors are
//! expected on damaged files), 2 on a usage error. `WA_REDB_DAMAGE_KEY`
//! (64 hex digits) is the key of encrypted files.

use std::ops::ControlFlow;
use std::path::Path;

use wacore::store::traits::SignalStore;
use whatsapp_rust_redb_storage::{DumpOptions, RedbStore, RedbStoreConfig};

/// The configuration the files open with: `WA_REDB_DAMAGE_KEY` keys it.
fn config() -> Result<RedbStoreConfig, String> {
    let Ok(hex) = std::env::var("WA_REDB_DAMAGE_KEY") else {
        return Ok(RedbStoreConfig::default());
    };
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect();
    let key: [u8; 32] = bytes
        .and_then(|b| b.try_into().ok())
        .ok_or("WA_REDB_DAMAGE_KEY is not 64 hex digits")?;
    Ok(RedbStoreConfig::default().with_encryption_key(key))
}

/// Every step the store offers on a file it can open: a dump of every row
/// (which reads and decodes them all), a write and a checkpoint, the close,
/// and the whole-file check.
async fn probe(path: &Path, config: &RedbStoreConfig) -> Result<(), String> {
    let at = |step: &'static str| move |e: wacore::store::error::StoreError| format!("{step}: {e}");
    let store = RedbStore::with_config(path, config.clone())
        .await
        .map_err(at("open"))?;
    let mut rows = 0u64;
    store
        .dump(&DumpOptions::default(), &mut |_| {
            rows += 1;
            ControlFlow::Continue(())
        })
        .map_err(at("read"))?;
    store
        .put_session("probe@s.whatsapp.net.0", b"probe")
        .await
        .map_err(at("write"))?;
    store.checkpoint().await.map_err(at("checkpoint"))?;
    store.close().await.map_err(at("close"))?;
    RedbStore::check_file_with(path, config).map_err(at("check"))?;
    Ok(())
}

fn main() {
    let files: Vec<String> = std::env::args().skip(1).collect();
    if files.is_empty() {
        eprintln!("usage: damage_probe FILE...");
        std::process::exit(2);
    }
    let config = match config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("damage_probe: {e}");
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    for file in files {
        match rt.block_on(probe(Path::new(&file), &config)) {
            Ok(()) => println!("{file}: ok"),
            Err(e) => println!("{file}: error at {}", e.replace('\n', " ")),
        }
    }
}
