//! The child: exercises a (possibly damaged) store and reports. Each case
//! runs `damage_child` in a child process on its copy; `damage_writer_child`
//! is the writer that crashes, for the fixtures with a journal.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use wacore::store::traits::*;
use whatsapp_rust_redb_storage::{IntegrityCheck, RedbStore};

use crate::dataset::{self, Check, blob, chain, variant};
use crate::{ACCOUNTS, EXTRAS, MARK, ROWS, child_config, env_u64, extra_key, extra_value};

fn say(line: String) {
    let line = line.replace(['\n', '\r'], " ");
    println!("{MARK}{line}");
    std::io::stdout().flush().unwrap();
}

/// Reports the errors of a step; returns the variant of the first.
fn report(stage: &str, check: &Check) -> Option<String> {
    for (what, e) in check.errors.iter().take(5) {
        say(format!(
            "STEP {stage} ERR {} {what}: {}",
            variant(e),
            chain(e)
        ));
    }
    if check.errors.len() > 5 {
        say(format!(
            "STEP {stage} NOTE {} more errors",
            check.errors.len() - 5
        ));
    }
    if !check.diffs.is_empty() {
        say(format!(
            "STEP {stage} DIFF {} {}",
            check.diffs.len(),
            check.diffs[0]
        ));
    }
    check.errors.first().map(|(_, e)| variant(e))
}

/// A write the child made; `Ok` ones must survive close and reopen.
struct Acked {
    what: String,
    verify: fn(&RedbStore) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + '_>>,
}

pub(crate) async fn child_main(path: PathBuf, extras: u32, check_always: bool) {
    let mut first_error: Option<String> = None;
    let mut diffs = 0usize;
    let mut note = |stage: &str, v: Option<String>| {
        if first_error.is_none()
            && let Some(v) = v
        {
            first_error = Some(format!("{stage}:{v}"));
        }
    };

    // Open.
    let mut config = child_config();
    if check_always {
        config = config.with_integrity_check(IntegrityCheck::Always);
    }
    let store = match RedbStore::with_config(&path, config).await {
        Ok(s) => s,
        Err(e) => {
            say(format!("STEP open ERR {} {}", variant(&e), chain(&e)));
            say(format!("OUTCOME error@open:{}", variant(&e)));
            return;
        }
    };
    let r = store.recovery_report();
    say(format!(
        "STEP open OK replayed={} stopped={:?} set_aside={}",
        r.records_replayed,
        r.stopped,
        r.set_aside.is_some()
    ));

    // Read every table of every account.
    let mut reads = Check::default();
    for d in ACCOUNTS {
        reads.merge(dataset::check(&store.for_device(d), ROWS, false).await);
    }
    // The crashed writer's sessions: present ones form a prefix.
    let mut present = 0;
    let mut prefix = true;
    for i in 0..extras {
        match store.get_session(&extra_key(i)).await {
            Ok(Some(v)) if v.as_ref() == extra_value(i).as_slice() => {
                prefix &= present == i;
                present += 1;
            }
            Ok(Some(_)) => reads.diffs.push(format!("extra {i}: wrong value")),
            Ok(None) => {}
            Err(e) => reads.errors.push((format!("extra {i}"), e)),
        }
    }
    if !prefix {
        reads
            .diffs
            .push("extras present are not a prefix (a hole)".into());
    }
    say(format!("STEP extras {present}/{extras}"));
    match store.info().await {
        Ok(info) => {
            let rows: u64 = info.tables.iter().map(|t| t.rows).sum();
            say(format!("STEP info OK rows={rows}"));
        }
        Err(e) => reads.errors.push(("info".into(), e)),
    }
    let v = report("read", &reads);
    note("read", v);
    diffs += reads.diffs.len();
    say(format!(
        "STEP read reads={} diffs={} errors={}",
        reads.reads,
        reads.diffs.len(),
        reads.errors.len()
    ));

    // Write a little: every kind of write path (put, batch, delete, take,
    // sweep, range delete), then a checkpoint.
    let mut acked: Vec<Acked> = Vec::new();
    let mut writes = Check::default();
    let s = &store;
    macro_rules! try_write {
        ($what:expr, $call:expr, $verify:expr) => {{
            match $call.await {
                Ok(_) => acked.push(Acked {
                    what: $what.to_string(),
                    verify: $verify,
                }),
                Err(e) => writes.errors.push(($what.to_string(), e)),
            }
        }};
    }
    try_write!(
        "put_session",
        s.put_session("new-0@c.us.0", b"new session"),
        |s| Box::pin(async move {
            matches!(s.get_session("new-0@c.us.0").await, Ok(Some(v)) if v.as_ref() == b"new session")
        })
    );
    try_write!(
        "store_prekeys_batch",
        s.store_prekeys_batch(
            &[
                (70_001, bytes::Bytes::from_static(b"pk-a")),
                (70_002, bytes::Bytes::from_static(b"pk-b")),
            ],
            false
        ),
        |s| Box::pin(async move {
            matches!(s.load_prekey(70_002).await, Ok(Some(v)) if v.as_ref() == b"pk-b")
        })
    );
    try_write!(
        "put_msg_secrets",
        s.put_msg_secrets(vec![MsgSecretEntry {
            chat: "new@s.whatsapp.net".into(),
            sender: "new@s.whatsapp.net".into(),
            msg_id: "NEW1".into(),
            secret: [42; 32],
            expires_at: 0,
            message_ts: 5,
        }]),
        |s| Box::pin(async move {
            matches!(
                s.get_msg_secret("new@s.whatsapp.net", "new@s.whatsapp.net", "NEW1").await,
                Ok(Some(v)) if v == vec![42; 32]
            )
        })
    );
    try_write!("delete_session", s.delete_session(&dataset::addr(1)), |s| {
        Box::pin(async move { matches!(s.get_session(&dataset::addr(1)).await, Ok(None)) })
    });
    for i in 0..3 {
        match s
            .take_sent_message(&dataset::chat(i), &dataset::msg_id(i))
            .await
        {
            Ok(got) => {
                if got != Some(blob(1, "sent", i)) {
                    writes.diffs.push(format!("take sent message {i}"));
                }
            }
            Err(e) => writes.errors.push((format!("take sent message {i}"), e)),
        }
    }
    try_write!(
        "delete_expired_sent_messages",
        s.delete_expired_sent_messages(0),
        |_| Box::pin(async { true })
    );
    try_write!(
        "clear_sender_key_devices",
        s.clear_sender_key_devices(&dataset::group(0)),
        |s| Box::pin(async move {
            matches!(s.get_sender_key_devices(&dataset::group(0)).await, Ok(v) if v.is_empty())
        })
    );
    try_write!(
        "set_sender_key_status",
        s.set_sender_key_status("new@g.us", &[("x:1@lid", true)]),
        |s| Box::pin(async move {
            matches!(s.get_sender_key_devices("new@g.us").await, Ok(v) if v == vec![("x:1@lid".to_string(), true)])
        })
    );
    try_write!(
        "put_session device -7",
        s.for_device(-7).put_session("new-7@c.us.0", b"seven"),
        |s| Box::pin(async move {
            matches!(s.for_device(-7).get_session("new-7@c.us.0").await, Ok(Some(v)) if v.as_ref() == b"seven")
        })
    );
    if let Err(e) = s.checkpoint().await {
        writes.errors.push(("checkpoint".into(), e));
    }
    // Acknowledged writes read back in this process.
    for a in &acked {
        if !(a.verify)(s).await {
            writes
                .diffs
                .push(format!("acknowledged {} does not read back", a.what));
        }
    }
    let v = report("write", &writes);
    note("write", v);
    diffs += writes.diffs.len();
    say(format!(
        "STEP write acked={} errors={}",
        acked.len(),
        writes.errors.len()
    ));

    // Close, check, reopen.
    match store.close().await {
        Ok(_) => say("STEP close OK".into()),
        Err(e) => {
            say(format!("STEP close ERR {} {}", variant(&e), chain(&e)));
            note("close", Some(variant(&e)));
        }
    }
    match RedbStore::check_file_with(&path, &child_config()) {
        Ok(r) => say(format!(
            "STEP check_file OK pages_ok={} rows={} problems={}",
            r.pages_ok,
            r.rows_checked,
            r.problems.len()
        )),
        Err(e) => {
            say(format!("STEP check_file ERR {} {}", variant(&e), chain(&e)));
            note("check_file", Some(variant(&e)));
        }
    }
    let mut lost = Vec::new();
    match RedbStore::with_config(&path, child_config()).await {
        Ok(store) => {
            for a in &acked {
                if !(a.verify)(&store).await {
                    lost.push(a.what.clone());
                }
            }
            say(format!("STEP reopen OK lost={lost:?}"));
            if let Err(e) = store.close().await {
                say(format!("STEP close2 ERR {} {}", variant(&e), chain(&e)));
            }
        }
        Err(e) => {
            say(format!("STEP reopen ERR {} {}", variant(&e), chain(&e)));
            note("reopen", Some(variant(&e)));
        }
    }
    let outcome = if !lost.is_empty() {
        "lost".to_string()
    } else if let Some(e) = first_error {
        format!("error@{e}")
    } else if diffs > 0 {
        "ok-diff".to_string()
    } else {
        "ok".to_string()
    };
    say(format!("OUTCOME {outcome}"));
}

/// Child half of every case: see the docs of `main.rs`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn damage_child() {
    let Some(path) = std::env::var_os("WA_REDB_DAMAGE_FILE") else {
        return;
    };
    let extras = env_u64("WA_REDB_DAMAGE_EXTRAS").unwrap_or(0) as u32;
    let check_always = std::env::var("WA_REDB_DAMAGE_CHECK_ALWAYS").is_ok_and(|v| !v.is_empty());
    child_main(PathBuf::from(path), extras, check_always).await;
}

/// A writer that crashes: writes `EXTRAS` sessions (one journal record
/// each), optionally checkpoints, reports READY and waits to be killed.
#[tokio::test]
#[ignore]
async fn damage_writer_child() {
    let Some(path) = std::env::var_os("WA_REDB_DAMAGE_WRITER") else {
        return;
    };
    let config = child_config().with_checkpoint_interval(Duration::from_secs(3600));
    let store = RedbStore::with_config(&path, config).await.unwrap();
    for i in 0..EXTRAS {
        store
            .put_session(&extra_key(i), &extra_value(i))
            .await
            .unwrap();
    }
    if std::env::var_os("WA_REDB_DAMAGE_WRITER_CHECKPOINT").is_some() {
        store.checkpoint().await.unwrap();
    }
    println!("{MARK}READY");
    std::io::stdout().flush().unwrap();
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    // Never reached in the intended use: the parent kills us first.
    std::process::abort();
}
