//! The whatsapp-rust 0.7 README bot, on `RedbStore` instead of `SqliteStore`.
//!
//! ```text
//! cargo run --release --example bot --features bot -- [store path] [phone number]
//! ```
//!
//! The store path defaults to `whatsapp.redb`. On the first run the bot
//! prints a QR code to scan in WhatsApp > Linked devices; given a phone
//! number (country code, digits only) it also prints a pair code. Later runs
//! reuse the session in the store. Send the bot "ping" (it answers "pong")
//! or "!echo some text" (it answers "some text").

use whatsapp_rust::pair_code::PairCodeOptions;
use whatsapp_rust::prelude::*;
use whatsapp_rust_redb_storage::RedbStore;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if log::set_logger(&StderrLogger).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| "whatsapp.redb".to_owned());
    let phone_number = args.next();

    let mut builder = Bot::builder()
        // The one line that differs from the whatsapp-rust README, which has
        //     .with_backend(SqliteStore::new("whatsapp.db").await?)
        // The builder takes the store by value (it wraps it in an Arc itself).
        .with_backend(RedbStore::new(&path).await?)
        .on_qr_code(|code, timeout| async move {
            println!("Scan to pair (valid {}s):\n{code}", timeout.as_secs());
        })
        .on_pair_code(|code, timeout| async move {
            println!(
                "Pair code (valid {}s): {code}\n\
                 WhatsApp > Linked devices > Link a device > Link with phone number instead",
                timeout.as_secs()
            );
        })
        .on_connected(|_client| async { println!("Connected.") })
        .on_logged_out(|_info| async { println!("Logged out.") })
        .on_message(|ctx| async move {
            if ctx.info.source.is_from_me {
                return;
            }
            let reply = match ctx.message.text_content() {
                Some("ping") => "pong".to_owned(),
                Some(text) => match text.strip_prefix("!echo ") {
                    Some(echo) => echo.to_owned(),
                    None => return,
                },
                None => return,
            };
            if let Err(e) = ctx.reply(reply).await {
                eprintln!("Failed to reply: {e}");
            }
        });
    if let Some(phone_number) = phone_number {
        builder = builder.with_pair_code(PairCodeOptions {
            phone_number,
            ..Default::default()
        });
    }

    println!("Store: {path}");
    // Runs until logout or shutdown.
    builder.build().await?.run().await;
    Ok(())
}

/// The client logs through `log`; this prints its info-level records (the
/// connection's progress, errors) to stderr.
struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::Level::Info
    }

    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            eprintln!(
                "{:<5} {}: {}",
                record.level(),
                record.target(),
                record.args()
            );
        }
    }

    fn flush(&self) {}
}
