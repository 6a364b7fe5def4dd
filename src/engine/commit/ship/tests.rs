//! The shipper against a sink in memory whose answers the tests choose:
//! jobs are answered only once their record is stored and the gate is
//! open, in order; late ones get an error within the bound and the records
//! still go up once the sink answers; a refusal stops everything; the
//! backlog bound refuses batches; a shipper dropped with records left
//! uploads them; one upload at a time, and what gathers meanwhile shares
//! the next.

use std::sync::Mutex;
use std::sync::mpsc;

use tokio::sync::oneshot;

use super::*;
use crate::engine::writer::{FnJob, Weight};

/// What the fake sink does with the next put.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Store,
    /// Fails at once, as a network that is down.
    Fail,
    /// Fails when the put's deadline passes, as a server that hangs.
    Hang,
    Refuse,
}

struct Sink {
    mode: Mutex<Mode>,
    /// Every object stored: (first, last, bytes).
    stored: Mutex<Vec<(u64, u64, Vec<u8>)>>,
    /// Told of every object stored, once it is.
    puts: Mutex<mpsc::Sender<(u64, u64)>>,
    /// Puts wait while a test holds it.
    gate: Mutex<()>,
}

impl Sink {
    /// What the sink does with one put, on its own thread.
    fn store(
        &self,
        first: u64,
        last: u64,
        object: &[u8],
        deadline: Instant,
    ) -> Result<(), SinkError> {
        match *self.mode.lock().unwrap() {
            Mode::Store => {
                self.stored
                    .lock()
                    .unwrap()
                    .push((first, last, object.to_vec()));
                let _ = self.puts.lock().unwrap().send((first, last));
                Ok(())
            }
            Mode::Fail => Err(SinkError::Transient("connection refused".into())),
            Mode::Hang => {
                std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
                Err(SinkError::Transient("no answer".into()))
            }
            Mode::Refuse => Err(SinkError::Refused("another host writes it".into())),
        }
    }
}

impl RecordSink for Sink {
    fn target(&self) -> String {
        "mem://test".into()
    }

    fn put(
        self: Arc<Self>,
        first: u64,
        last: u64,
        object: Arc<[u8]>,
        deadline: Instant,
        done: UploadDone,
    ) {
        std::thread::spawn(move || {
            // Held while a test holds the gate.
            drop(self.gate.lock().unwrap());
            done(self.store(first, last, &object, deadline))
        });
    }

    fn wake_at(&self, at: Instant, wake: Box<dyn FnOnce() + Send>) {
        std::thread::spawn(move || {
            std::thread::sleep(at.saturating_duration_since(Instant::now()));
            wake()
        });
    }
}

const HEADER: &[u8] = b"header--";
/// The bound every wait of a test has (a failure, not a sleep).
const BOUND: Duration = Duration::from_secs(60);

type Started = (Shipper, ShipWatch, Arc<Sink>, mpsc::Receiver<(u64, u64)>);

fn start(mode: Mode, timeout: Duration, max_backlog: usize) -> Started {
    start_with(mode, timeout, max_backlog, None)
}

fn start_with(
    mode: Mode,
    timeout: Duration,
    max_backlog: usize,
    max_lag: Option<Duration>,
) -> Started {
    let (tx, rx) = mpsc::channel();
    let sink = Arc::new(Sink {
        mode: Mutex::new(mode),
        stored: Mutex::new(Vec::new()),
        puts: Mutex::new(tx),
        gate: Mutex::new(()),
    });
    let bounds = ShipBounds {
        timeout,
        max_backlog,
        max_lag,
    };
    let (shipper, watch) = Shipper::start(
        PathBuf::from("t.redb"),
        sink.clone(),
        HEADER.to_vec(),
        bounds,
        10,
    );
    (shipper, watch, sink, rx)
}

/// A job whose answer arrives on the returned receiver.
fn job() -> (Answer, oneshot::Receiver<Result<(), WriteError>>) {
    let (reply, done) = oneshot::channel();
    let job: Box<dyn Job> = Box::new(FnJob {
        f: None::<fn(&mut crate::engine::tx::Tx<'_>) -> Result<(), WriteError>>,
        out: Some(()),
        reply,
        weight: Weight::bytes(1),
        max_value: 1,
    });
    ((job, None), done)
}

fn answer(done: oneshot::Receiver<Result<(), WriteError>>) -> Result<(), WriteError> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(done.blocking_recv());
    });
    rx.recv_timeout(BOUND)
        .expect("answered within the bound")
        .expect("answered, not dropped")
}

/// The records of every object stored, in order; each object must be the
/// header, then records `first..=last`.
fn records_stored(sink: &Sink) -> Vec<u8> {
    let mut records = Vec::new();
    for (first, last, bytes) in sink.stored.lock().unwrap().iter() {
        assert!(bytes.starts_with(HEADER));
        assert!(first <= last);
        records.extend_from_slice(&bytes[HEADER.len()..]);
    }
    records
}

fn pending(done: &mut oneshot::Receiver<Result<(), WriteError>>) -> bool {
    matches!(done.try_recv(), Err(oneshot::error::TryRecvError::Empty))
}

#[test]
fn jobs_are_answered_once_stored_and_the_gate_is_open() {
    let (shipper, watch, sink, puts) = start(Mode::Store, BOUND, 1 << 20);
    shipper.push(11, b"r11");
    shipper.push(12, b"r12");
    let (j, mut done) = job();
    shipper.defer(12, vec![j]);
    // Uploaded, but the base is not in place: no answer yet.
    let put = puts.recv_timeout(BOUND).unwrap();
    assert_eq!(put.0, 11);
    watch.drain(12).unwrap();
    assert!(pending(&mut done));
    watch.open_gate();
    answer(done).unwrap();
    assert_eq!(records_stored(&sink), b"r11r12");
    // Stored already: answered at once.
    let (j, done) = job();
    shipper.defer(12, vec![j]);
    answer(done).unwrap();
}

#[test]
fn a_late_record_fails_its_jobs_in_time_and_is_uploaded_later() {
    let (shipper, watch, sink, puts) = start(Mode::Fail, Duration::from_millis(300), 1 << 20);
    watch.open_gate();
    shipper.push(11, b"r11");
    let (j, done) = job();
    shipper.defer(11, vec![j]);
    let err = answer(done).unwrap_err();
    assert!(
        matches!(&err, WriteError::NotReplicated { reason, .. } if reason.contains("connection refused")),
        "{err:?}"
    );
    assert_eq!(watch.status().stored_lsn, 10);
    assert!(watch.status().last_error.is_some());
    // The server answers again: the record goes up at the next retry
    // (waited for here: the retry may be up to a second of backoff away,
    // longer than this shipper's timeout), and the next job is answered.
    *sink.mode.lock().unwrap() = Mode::Store;
    assert_eq!(puts.recv_timeout(BOUND).unwrap().0, 11);
    shipper.push(12, b"r12");
    let (j, done) = job();
    shipper.defer(12, vec![j]);
    answer(done).unwrap();
    assert_eq!(records_stored(&sink), b"r11r12");
    assert!(watch.status().last_error.is_none());
}

#[test]
fn a_hanging_server_cannot_hold_a_job_past_its_deadline() {
    let (shipper, watch, _sink, _puts) = start(Mode::Hang, Duration::from_millis(300), 1 << 20);
    watch.open_gate();
    shipper.push(11, b"r11");
    let (j, done) = job();
    let t = Instant::now();
    shipper.defer(11, vec![j]);
    assert!(answer(done).is_err());
    // Bounded by the put's deadline (the job's), not by the hang.
    assert!(t.elapsed() < BOUND);
}

#[test]
fn a_refusal_stops_replication_for_good() {
    let (shipper, watch, _sink, _puts) = start(Mode::Refuse, BOUND, 1 << 20);
    watch.open_gate();
    shipper.push(11, b"r11");
    let (j, done) = job();
    shipper.defer(11, vec![j]);
    let err = answer(done).unwrap_err();
    assert!(err.to_string().contains("another host"), "{err}");
    assert!(watch.status().refused.is_some());
    assert!(shipper.admit().is_err());
    let (j, done) = job();
    shipper.defer(12, vec![j]);
    assert!(answer(done).is_err());
    assert!(watch.drain(11).is_err());
}

#[test]
fn the_backlog_bound_refuses_batches_before_they_change_anything() {
    let (shipper, watch, _sink, _puts) = start(Mode::Fail, BOUND, 8);
    watch.open_gate();
    assert!(shipper.admit().is_ok());
    shipper.push(11, b"0123456789");
    let err = shipper.admit().unwrap_err();
    assert!(err.to_string().contains("wait for the replica"), "{err}");
}

#[test]
fn a_dropped_shipper_still_uploads_what_it_has() {
    let (shipper, watch, sink, _puts) = start(Mode::Store, BOUND, 1 << 20);
    watch.open_gate();
    shipper.push(11, b"r11");
    let (j, done) = job();
    shipper.defer(11, vec![j]);
    drop(shipper);
    answer(done).unwrap();
    watch.drain(11).unwrap();
    assert_eq!(sink.stored.lock().unwrap().len(), 1);
}

#[test]
fn asynchronous_jobs_are_answered_while_the_lag_is_within_its_bound() {
    // The replica is down; the bound is far: answered at once, and the
    // record stays queued (the lag shows).
    let (shipper, watch, _sink, _puts) = start_with(Mode::Fail, BOUND, 1 << 20, Some(BOUND));
    watch.open_gate();
    shipper.push(11, b"r11");
    let (j, done) = job();
    shipper.defer(11, vec![j]);
    answer(done).unwrap();
    assert_eq!(watch.status().stored_lsn, 10);
    // A bound of zero: every job waits for its record, as in synchronous
    // mode, and fails at the timeout.
    let (shipper, watch, _sink, _puts) = start_with(
        Mode::Fail,
        Duration::from_millis(300),
        1 << 20,
        Some(Duration::ZERO),
    );
    watch.open_gate();
    shipper.push(11, b"r11");
    let (j, done) = job();
    shipper.defer(11, vec![j]);
    assert!(answer(done).is_err());
}

#[test]
fn one_upload_at_a_time_and_what_gathers_meanwhile_shares_the_next() {
    let (shipper, watch, sink, puts) = start(Mode::Store, BOUND, 1 << 20);
    watch.open_gate();
    let held = sink.gate.lock().unwrap();
    shipper.push(11, b"r11");
    let (j11, done11) = job();
    shipper.defer(11, vec![j11]);
    // While the first upload is out, the next records gather.
    shipper.push(12, b"r12");
    shipper.push(13, b"r13");
    let (j13, done13) = job();
    shipper.defer(13, vec![j13]);
    assert_eq!(watch.status().backlog, HEADER.len() + 9);
    drop(held);
    answer(done11).unwrap();
    answer(done13).unwrap();
    assert_eq!(puts.recv_timeout(BOUND).unwrap(), (11, 11));
    assert_eq!(puts.recv_timeout(BOUND).unwrap(), (12, 13));
    assert_eq!(records_stored(&sink), b"r11r12r13");
    // Closed with nothing left: done at once.
    drop(shipper);
    watch.drain(13).unwrap();
    assert_eq!(watch.status().backlog, 0);
}
