//! moto's S3 server, started on 127.0.0.1 for a test or a bench.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::channel;
use std::time::Duration;

/// A free port of 127.0.0.1 (nothing listens on it once this returns).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The S3 settings of a server on `port` of 127.0.0.1 (moto takes any
/// credentials).
pub fn s3_options(port: u16) -> Vec<(&'static str, String)> {
    vec![
        ("aws_endpoint", format!("http://127.0.0.1:{port}")),
        ("aws_allow_http", "true".into()),
        ("aws_region", "us-east-1".into()),
        ("aws_access_key_id", "test".into()),
        ("aws_secret_access_key", "test".into()),
    ]
}

/// moto's S3 server on a free port of 127.0.0.1, killed on drop.
pub struct S3Server {
    child: Child,
    pub port: u16,
}

impl S3Server {
    /// `None` (said loudly) if `moto_server` is not installed, unless
    /// `WA_REDB_REQUIRE_S3` is set, which makes that a failure.
    pub fn start() -> Option<S3Server> {
        let port = free_port();
        let spawned = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) if std::env::var_os("WA_REDB_REQUIRE_S3").is_none() => {
                eprintln!(
                    "\n*** SKIPPED: no S3 test server ({e}); install one with \
                     `pip install 'moto[server]'` (.ci/run does) ***\n"
                );
                return None;
            }
            Err(e) => panic!("moto_server is required (WA_REDB_REQUIRE_S3): {e}"),
        };
        // Ready once it says it is running (bounded: a server that never
        // comes up fails the test).
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("Running on") {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(120))
            .expect("moto_server did not start within 120 s");
        Some(S3Server { child, port })
    }

    /// A target at `url` (`s3://bucket/prefix`) on this server, its bucket
    /// created.
    pub fn target(&self, url: &str) -> whatsapp_rust_redb_storage::ReplicaTarget {
        let bucket = url
            .strip_prefix("s3://")
            .and_then(|rest| rest.split('/').next())
            .expect("an s3:// URL");
        self.create_bucket(bucket);
        whatsapp_rust_redb_storage::ReplicaTarget::with_options(url, s3_options(self.port)).unwrap()
    }

    /// Creates `bucket` (moto accepts an unsigned request).
    pub fn create_bucket(&self, bucket: &str) {
        let mut conn = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        write!(
            conn,
            "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )
        .unwrap();
        let mut response = String::new();
        conn.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every file under `dir` (a directory replica's objects).
pub fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
