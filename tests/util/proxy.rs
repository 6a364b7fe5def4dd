//! A TCP proxy in front of a test server that a test can take down and
//! bring back: a network that stops answering, without losing the
//! server's state. It may also add latency: a distant server.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct Proxy {
    pub port: u16,
    down: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    /// Forwards connections to 127.0.0.1's `upstream` port.
    pub fn start(upstream: u16) -> Proxy {
        Self::with_latency(upstream, Duration::ZERO)
    }

    /// Forwards connections to 127.0.0.1's `upstream` port, holding each
    /// answer back for `latency` (the first bytes the server sends after
    /// the client sent some): a round trip to a distant server.
    pub fn with_latency(upstream: u16, latency: Duration) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let down = Arc::new(AtomicBool::new(false));
        let open = Arc::new(Mutex::new(Vec::new()));
        let (d, o) = (down.clone(), open.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(client) = conn else { break };
                if d.load(Ordering::SeqCst) {
                    // Down: the connection is dropped unanswered.
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                {
                    let mut o = o.lock().unwrap();
                    o.push(client.try_clone().unwrap());
                    o.push(server.try_clone().unwrap());
                }
                let asked = Arc::new(AtomicBool::new(false));
                let (from_client, to_server) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                pump(from_client, to_server, asked.clone(), Way::Requests);
                pump(server, client, asked, Way::Answers(latency));
            }
        });
        Proxy { port, down, open }
    }

    /// Cuts every connection and drops new ones until [`Proxy::up`].
    pub fn down(&self) {
        self.down.store(true, Ordering::SeqCst);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    pub fn up(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

/// Which way a pump copies: requests mark their connection `asked`; the
/// first bytes of the answer wait the latency and clear it.
enum Way {
    Requests,
    Answers(Duration),
}

/// Copies `from` to `to`, one way of a connection whose `asked` says a
/// request waits for its answer.
fn pump(mut from: TcpStream, mut to: TcpStream, asked: Arc<AtomicBool>, way: Way) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 << 10];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    match way {
                        Way::Requests => asked.store(true, Ordering::SeqCst),
                        Way::Answers(latency) => {
                            if asked.swap(false, Ordering::SeqCst) && !latency.is_zero() {
                                std::thread::sleep(latency);
                            }
                        }
                    }
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Both);
    });
}
