//! `replica push FILE URL`, `replica restore URL OUT`, `replica status URL`:
//! snapshots of a store in object storage or a directory.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::SystemTime;

use serde_json::json;
use whatsapp_rust_redb_storage::{
    RedbStore, RedbStoreConfig, ReplicaRestoreOptions, ReplicaSnapshot, ReplicaTarget,
};

use crate::args::ReplicaCommand;
use crate::failure::{Failure, Outcome};
use crate::output::{Out, human_bytes, outln, print_json};
use crate::progress::progress_bar;
use crate::support::{close, fresh_destination, look, runtime};

pub fn run(
    out: &mut Out,
    action: &ReplicaCommand,
    config: &RedbStoreConfig,
    json: bool,
) -> Outcome {
    match action {
        ReplicaCommand::Push { file, url, keep } => push(out, file, url, *keep, config, json),
        ReplicaCommand::Restore {
            url,
            output,
            accept_stale_state,
            at,
        } => restore(out, url, output, (*accept_stale_state, *at), config, json),
        ReplicaCommand::Status { url } => status(out, url, json),
    }
}

fn push(
    out: &mut Out,
    file: &Path,
    url: &str,
    keep: usize,
    config: &RedbStoreConfig,
    json: bool,
) -> Outcome {
    let (bar, progress) = progress_bar();
    let target = ReplicaTarget::new(url)?.with_progress(progress);
    let rt = runtime()?;
    let store = look(file, config)?;
    let result = rt.block_on(store.push_snapshot(&target, keep));
    bar.finish_and_clear();
    close(&rt, store)?;
    let pushed = result?;
    if json {
        print_json(out, &pushed)?;
    } else {
        outln!(
            out,
            "snapshot {} ({}) written to {url}",
            pushed.name,
            human_bytes(pushed.bytes)
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn restore(
    out: &mut Out,
    url: &str,
    output: &Path,
    (accept, at): (bool, Option<SystemTime>),
    config: &RedbStoreConfig,
    json: bool,
) -> Outcome {
    fresh_destination(output, "restored store")?;
    let (bar, progress) = progress_bar();
    let target = ReplicaTarget::new(url)?.with_progress(progress);
    let rt = runtime()?;
    let mut options = match accept {
        true => ReplicaRestoreOptions::accepting_stale_state(),
        false => ReplicaRestoreOptions::default(),
    };
    if let Some(at) = at {
        options = options.at(at);
    }
    let result = rt.block_on(RedbStore::restore_from_replica(
        &target, output, config, &options,
    ));
    bar.finish_and_clear();
    let got = match result {
        Ok(got) => got,
        // A replica of snapshots only: the flag is the way on.
        Err(e) if !accept => {
            return Err(Failure::from(e).with_hint(match at {
                None => "add --accept-stale-state to restore a snapshot's state anyway",
                Some(_) => "add --accept-stale-state to restore a past state",
            }));
        }
        Err(e) => return Err(e.into()),
    };
    if json {
        print_json(out, &json!({ "restored": got, "output": output }))?;
    } else {
        outln!(
            out,
            "snapshot {} ({}) and {} records after it restored as {} (up to write {}); every \
             page and record checked",
            got.snapshot.name,
            human_bytes(got.snapshot.bytes),
            got.records,
            output.display(),
            got.lsn
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn status(out: &mut Out, url: &str, json: bool) -> Outcome {
    let target = ReplicaTarget::new(url)?;
    let rt = runtime()?;
    let snapshots: Vec<ReplicaSnapshot> = rt.block_on(target.snapshots())?;
    let records = rt.block_on(target.records())?;
    if json {
        print_json(
            out,
            &json!({ "target": url, "snapshots": snapshots, "records": records }),
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    if snapshots.is_empty() {
        outln!(out, "{url}: no snapshot");
    }
    for s in &snapshots {
        outln!(
            out,
            "{}  lsn {:>10}  {:>10}  stored at {} (unix seconds)",
            s.name,
            s.lsn,
            human_bytes(s.bytes),
            s.stored_at_ms.div_euclid(1000)
        );
    }
    if let Some(oldest) = snapshots.first() {
        outln!(
            out,
            "a restore --at reaches back to {} (unix seconds, the oldest snapshot kept)",
            oldest.stored_at_ms.div_euclid(1000)
        );
    }
    let how = match (records.replicated, records.asynchronous) {
        (true, _) => "a store replicates here: every acknowledged write",
        (_, true) => "a store replicates here asynchronously: all but the newest writes",
        _ => "snapshots only: a restore lacks the writes after the newest",
    };
    outln!(
        out,
        "records: {} objects, {}, up to write {} ({how})",
        records.objects,
        human_bytes(records.bytes),
        records.newest_lsn
    );
    if let Some(ms) = records.newest_stored_at_ms {
        let now = SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        outln!(
            out,
            "newest record stored at {} (unix seconds), {} s ago",
            ms.div_euclid(1000),
            (now - ms).max(0) / 1000
        );
    }
    Ok(ExitCode::SUCCESS)
}
