//! What `wa-redb` tells a user about how a look saw a store (in use by
//! another process, left by a crashed one).

use whatsapp_rust_redb_storage::LookReport;

/// What a user should know about how a look saw the store, if anything.
pub fn look_note(look: &LookReport) -> Option<String> {
    let records = match look.journal_records {
        0 => String::new(),
        n => format!(" plus {n} journal record(s)"),
    };
    // In use, the journal's tail is being written: stopping there is normal.
    let stopped = match &look.journal_stopped {
        Some(why) if !look.in_use => format!(" (the journal ends early: {why})"),
        _ => String::new(),
    };
    if look.in_use {
        let age = match look.checkpointed_at {
            Some(at) => {
                let ago = now_secs().saturating_sub(at).max(0);
                format!("its last checkpoint ({ago} s ago)")
            }
            None => "its last checkpoint (time not recorded)".to_string(),
        };
        Some(format!(
            "the store is open in another process: showing {age}{records}; \
             writes it acknowledged since may not be shown"
        ))
    } else if look.crashed {
        Some(format!(
            "the last process did not close the store: showing its file{records}{stopped}, \
             applied in memory only (the next open by the application applies it for good)"
        ))
    } else {
        None
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
