//! A local `tursodb --sync-server` process on 127.0.0.1: picks a free port,
//! starts it with its output captured to a log file, waits until it answers
//! a Hrana `SELECT 1`, and kills it on drop. Blocking std code, so xtask can
//! use it without an async runtime.
//!
//! tursodb serves one TCP connection at a time, so the readiness probe sends
//! `Connection: close` and never keeps a connection open.

use crate::error::{io_err, Error, Result};
use crate::tools;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long one start attempt may take before it counts as hung.
const READY_DEADLINE: Duration = Duration::from_secs(30);
/// Start attempts on fresh ports when [`LocalServer::start`] picks the port.
const ATTEMPTS: usize = 5;
const PROBE_BODY: &str = r#"{"requests":[{"type":"execute","stmt":{"sql":"SELECT 1"}}]}"#;

/// A running `tursodb --sync-server` child process. Killed (and reaped) on
/// drop; [`LocalServer::stop`] stops it gracefully instead.
#[derive(Debug)]
pub struct LocalServer {
    child: Child,
    port: u16,
    url: String,
    log: PathBuf,
}

impl LocalServer {
    /// Installs tursodb if needed and starts it serving the database file `db`
    /// on `127.0.0.1:<port>`; `log` is truncated and receives the server's
    /// stdout and stderr.
    ///
    /// With `port: None` a free port is picked, and on failure (another
    /// process took the port, the server died or never answered) the start is
    /// retried on a new port, up to 5 attempts. With a fixed port there is one
    /// attempt. Returns once `POST /v2/pipeline` answers 200 from this very
    /// process. Errors include the tail of the log.
    pub fn start(db: &Path, log: &Path, port: Option<u16>) -> Result<LocalServer> {
        let bin = tools::tursodb()?;
        let attempts = if port.is_some() { 1 } else { ATTEMPTS };
        let mut failures = Vec::new();
        for _ in 0..attempts {
            let port = match port {
                Some(port) => port,
                None => free_port()?,
            };
            match attempt(&bin, db, log, port)? {
                Ok(child) => {
                    return Ok(LocalServer {
                        child,
                        port,
                        url: format!("http://127.0.0.1:{port}"),
                        log: log.to_path_buf(),
                    })
                }
                Err(why) => failures.push(format!("port {port}: {why}")),
            }
        }
        Err(Error::Server(format!(
            "tursodb --sync-server did not start ({}).\nLast lines of {}:\n{}",
            failures.join("; "),
            log.display(),
            log_tail(log)
        )))
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The file receiving the server's output.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Stops the server cleanly: SIGINT (tursodb exits 0 on it), then SIGKILL
    /// if it is still running after 5 seconds. Returns its exit status.
    pub fn stop(&mut self) -> Result<ExitStatus> {
        if let Some(status) = self.child.try_wait().map_err(io_err("polling tursodb"))? {
            return Ok(status);
        }
        // `kill` is the util-linux/procps binary: std has no way to send
        // SIGINT and this crate forbids unsafe code.
        let sent = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        if sent {
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Some(status) = self.child.try_wait().map_err(io_err("polling tursodb"))? {
                    return Ok(status);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.kill()
    }

    fn kill(&mut self) -> Result<ExitStatus> {
        // An error here means it already exited; `wait` reports how.
        let _ = self.child.kill();
        self.child.wait().map_err(io_err("waiting for tursodb"))
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        // Nothing to report from a destructor; the process is gone either way.
        let _ = self.kill();
    }
}

/// A port that was free a moment ago on 127.0.0.1 (bound, read, released).
/// Another process may take it before it is used: callers retry.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(io_err("binding 127.0.0.1:0 to find a free port"))?;
    let port = listener
        .local_addr()
        .map_err(io_err("reading the free port"))?
        .port();
    Ok(port)
}

/// One start attempt: `Ok(Ok(child))` when ready, `Ok(Err(why))` when it is
/// worth retrying on another port, `Err` when retrying cannot help.
fn attempt(
    bin: &Path,
    db: &Path,
    log: &Path,
    port: u16,
) -> Result<std::result::Result<Child, String>> {
    let out = File::create(log).map_err(io_err(format!("creating {}", log.display())))?;
    let err = out
        .try_clone()
        .map_err(io_err("duplicating the log handle"))?;
    let mut child = Command::new(bin)
        .arg(db)
        .arg("--sync-server")
        .arg(format!("127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(io_err(format!("starting {}", bin.display())))?;
    let deadline = Instant::now() + READY_DEADLINE;
    loop {
        if let Some(status) = child.try_wait().map_err(io_err("polling tursodb"))? {
            return Ok(Err(format!("exited early ({status})")));
        }
        // A 200 could come from another process that holds the port (ours
        // then fails to bind and exits): also check that ours listens on it.
        if probe(port) && owns_listener(child.id(), port).unwrap_or(true) {
            return Ok(Ok(child));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(Err(format!(
                "no answer within {} s",
                READY_DEADLINE.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// True when `POST /v2/pipeline` with `SELECT 1` on 127.0.0.1:`port` answers
/// 200 with a Hrana `results` body.
fn probe(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let timeouts = [
        stream.set_read_timeout(Some(Duration::from_secs(2))),
        stream.set_write_timeout(Some(Duration::from_secs(2))),
    ];
    if timeouts.iter().any(|t| t.is_err()) {
        return false;
    }
    let request = format!(
        "POST /v2/pipeline HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{PROBE_BODY}",
        PROBE_BODY.len()
    );
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut response = Vec::new();
    // A timeout after a complete response is fine: judge what arrived.
    let _ = stream.take(1 << 20).read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response);
    response.starts_with("HTTP/1.1 200") && response.contains("\"results\"")
}

/// Whether process `pid` holds the IPv4 socket listening on `port`, from
/// `/proc`; `None` when `/proc` cannot tell.
fn owns_listener(pid: u32, port: u16) -> Option<bool> {
    let table = fs::read_to_string("/proc/net/tcp").ok()?;
    let inodes: Vec<String> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = fields.get(1)?.rsplit(':').next()?;
            let listening = *fields.get(3)? == "0A";
            let matches = u16::from_str_radix(local_port, 16).ok()? == port;
            let inode = fields.get(9)?;
            (listening && matches).then(|| format!("socket:[{inode}]"))
        })
        .collect();
    let fds = fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    Some(fds.flatten().any(|fd| {
        fs::read_link(fd.path()).is_ok_and(|target| {
            inodes
                .iter()
                .any(|inode| target.as_os_str() == inode.as_str())
        })
    }))
}

/// The last 30 lines (at most 4 KB) of a log file, or a note why not.
pub fn log_tail(log: &Path) -> String {
    match fs::read(log) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(30)..].join("\n");
            let skip = tail.len().saturating_sub(4096);
            match tail.char_indices().find(|&(i, _)| i >= skip) {
                Some((start, _)) => tail[start..].to_string(),
                None => "(empty)".to_string(),
            }
        }
        Err(e) => format!("(could not read the log: {e})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_answers_and_is_gone_after_drop() {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = LocalServer::start(&dir.path().join("s.db"), &dir.path().join("s.log"), None)
            .expect("start tursodb");
        let port = server.port();
        assert_eq!(server.url(), format!("http://127.0.0.1:{port}"));
        assert!(probe(port));
        assert_eq!(owns_listener(server.child.id(), port), Some(true));
        drop(server);
        assert!(!probe(port), "server still answers after drop");
    }

    #[test]
    fn stop_is_graceful() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut server =
            LocalServer::start(&dir.path().join("s.db"), &dir.path().join("s.log"), None)
                .expect("start tursodb");
        let status = server.stop().expect("stop");
        assert!(status.success(), "tursodb exited with {status} on SIGINT");
        assert!(!probe(server.port()));
    }

    #[test]
    fn a_taken_fixed_port_fails_with_the_log_tail() {
        let dir = tempfile::tempdir().expect("temp dir");
        let holder = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let port = holder.local_addr().expect("addr").port();
        let err = LocalServer::start(
            &dir.path().join("s.db"),
            &dir.path().join("s.log"),
            Some(port),
        )
        .expect_err("port is taken");
        let msg = err.to_string();
        assert!(msg.contains("exited early"), "{msg}");
        assert!(msg.contains("Address already in use"), "{msg}");
    }
}
