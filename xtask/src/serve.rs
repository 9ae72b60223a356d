//! The demo's static file server: `web-demo/` at `/`, the built npm package
//! (`bindings-wasm/pkg/`) at `/erth-sync/`, and a generated `/config.json`
//! telling the page which server to sync with.
//!
//! Deliberately tiny: blocking std I/O, a thread per connection, HTTP/1.1
//! `GET`/`HEAD` only, `Connection: close`. It listens on 127.0.0.1 only,
//! answers only requests whose `Host` is a loopback name (so a web page
//! cannot read `/config.json`, which may hold a token, through DNS
//! rebinding), and serves only regular files under its two roots: every
//! path segment must be a plain name (no `..`, no dot files, no encoded `/`
//! or `\`), and the resolved file must still lie under its root after
//! symlinks are followed.

use crate::Result;
use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// URL prefix under which the package is served.
const PACKAGE_PREFIX: &str = "/erth-sync/";
/// Largest request head read (request line and headers).
const MAX_HEAD: usize = 16 * 1024;
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// What the server serves.
#[derive(Debug, Clone)]
pub struct Site {
    /// Served at `/` (`index.html` for `/`).
    pub page_dir: PathBuf,
    /// Served at `/erth-sync/`.
    pub package_dir: PathBuf,
    /// The body of `/config.json`.
    pub config_json: String,
}

/// The page's `/config.json`: the server URL and token the page syncs with
/// (`null` when absent), as a JSON object.
pub fn config_json(url: Option<&str>, auth_token: Option<&str>) -> String {
    format!(
        "{{\"url\":{},\"authToken\":{}}}\n",
        json_string_or_null(url),
        json_string_or_null(auth_token)
    )
}

fn json_string_or_null(value: Option<&str>) -> String {
    let Some(value) = value else {
        return "null".into();
    };
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A running server; stops (and joins its thread) on drop.
#[derive(Debug)]
pub struct StaticServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl StaticServer {
    /// Serves `site` on `127.0.0.1:port` (`0`: a free port). Fails if the
    /// port is taken (the error's kind is [`ErrorKind::AddrInUse`]).
    pub fn start(site: Site, port: u16) -> std::io::Result<StaticServer> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port))?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let site = Arc::new(site);
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("demo-http".into())
            .spawn(move || accept_loop(&listener, &site, &stopping))?;
        Ok(StaticServer {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Stops accepting connections and waits for the accept thread.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the blocked accept(); failing means it is gone already.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(thread) = self.thread.take() {
            // A panicked accept thread has nothing left to clean up.
            let _ = thread.join();
        }
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(listener: &TcpListener, site: &Arc<Site>, stop: &AtomicBool) {
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else {
            continue;
        };
        let site = Arc::clone(site);
        // Without a thread the connection is dropped: the browser retries.
        let _ = std::thread::Builder::new()
            .name("demo-http-conn".into())
            .spawn(move || serve_connection(stream, &site));
    }
}

fn serve_connection(mut stream: TcpStream, site: &Site) {
    let timeouts = [
        stream.set_read_timeout(Some(IO_TIMEOUT)),
        stream.set_write_timeout(Some(IO_TIMEOUT)),
    ];
    if timeouts.iter().any(Result::is_err) {
        return;
    }
    let response = match read_head(&mut stream) {
        Ok(head) => respond(site, &head),
        Err(HeadError::Io) => return,
        Err(HeadError::Malformed) => Response::text(400, "bad request"),
        Err(HeadError::TooLarge) => Response::text(431, "request header fields too large"),
    };
    // The client may have gone; nothing to do about it.
    let _ = stream.write_all(&response.to_bytes());
    let _ = stream.flush();
    let _ = stream.shutdown(Shutdown::Both);
}

/// A parsed request head.
#[derive(Debug, PartialEq, Eq)]
struct Head {
    method: String,
    target: String,
    host: Option<String>,
}

#[derive(Debug, PartialEq, Eq)]
enum HeadError {
    Io,
    Malformed,
    TooLarge,
}

fn read_head(stream: &mut impl Read) -> std::result::Result<Head, HeadError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            return parse_head(&buf[..end]);
        }
        if buf.len() > MAX_HEAD {
            return Err(HeadError::TooLarge);
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Err(HeadError::Io),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return Err(HeadError::Io),
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn parse_head(head: &[u8]) -> std::result::Result<Head, HeadError> {
    let text = std::str::from_utf8(head).map_err(|_| HeadError::Malformed)?;
    let mut lines = text.split("\r\n");
    let request_line = lines.next().ok_or(HeadError::Malformed)?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HeadError::Malformed);
    };
    if !version.starts_with("HTTP/1.") || method.is_empty() || target.is_empty() {
        return Err(HeadError::Malformed);
    }
    let mut host = None;
    for line in lines {
        let (name, value) = line.split_once(':').ok_or(HeadError::Malformed)?;
        if name.eq_ignore_ascii_case("host") {
            host = Some(value.trim().to_string());
        }
    }
    Ok(Head {
        method: method.to_string(),
        target: target.to_string(),
        host,
    })
}

/// One response, always sent with `Connection: close`.
#[derive(Debug)]
struct Response {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
    /// `HEAD`: send the headers (with the body's length) but not the body.
    head_only: bool,
    cache: &'static str,
}

impl Response {
    fn text(status: u16, message: &str) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: format!("{message}\n").into_bytes(),
            head_only: false,
            cache: "no-store",
        }
    }

    fn reason(&self) -> &'static str {
        match self.status {
            200 => "OK",
            400 => "Bad Request",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            431 => "Request Header Fields Too Large",
            _ => "Internal Server Error",
        }
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\
             Cache-Control: {}\r\nX-Content-Type-Options: nosniff\r\n\
             Referrer-Policy: no-referrer\r\n",
            self.status,
            self.reason(),
            self.content_type,
            self.body.len(),
            self.cache,
        )
        .into_bytes();
        if self.status == 405 {
            out.extend_from_slice(b"Allow: GET, HEAD\r\n");
        }
        out.extend_from_slice(b"Connection: close\r\n\r\n");
        if !self.head_only {
            out.extend_from_slice(&self.body);
        }
        out
    }
}

fn respond(site: &Site, head: &Head) -> Response {
    if !head.host.as_deref().is_some_and(is_loopback_host) {
        return Response::text(
            403,
            "only loopback host names (127.0.0.1, localhost) are served",
        );
    }
    let head_only = match head.method.as_str() {
        "GET" => false,
        "HEAD" => true,
        _ => return Response::text(405, "only GET and HEAD"),
    };
    let mut response = route(site, &head.target);
    response.head_only = head_only;
    response
}

/// `host[:port]` names this machine: `127.0.0.1`, `localhost`, `[::1]`.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    matches!(
        name.to_ascii_lowercase().as_str(),
        "127.0.0.1" | "localhost" | "::1"
    )
}

fn route(site: &Site, target: &str) -> Response {
    let path = target.split(['?', '#']).next().unwrap_or("");
    if !path.starts_with('/') {
        return Response::text(400, "bad request target");
    }
    if path == "/config.json" {
        return Response {
            status: 200,
            content_type: "application/json",
            body: site.config_json.clone().into_bytes(),
            head_only: false,
            cache: "no-store",
        };
    }
    let (root, rest) = match path.strip_prefix(PACKAGE_PREFIX) {
        Some(rest) => (&site.package_dir, rest),
        None if path == "/" => (&site.page_dir, "index.html"),
        None => (&site.page_dir, &path[1..]),
    };
    match resolve(root, rest) {
        Some(file) => match fs::read(&file) {
            Ok(body) => Response {
                status: 200,
                content_type: mime_type(&file),
                body,
                head_only: false,
                // Always revalidate: a rebuilt package or an edited page
                // shows up on the next reload.
                cache: "no-cache",
            },
            Err(_) => Response::text(404, "not found"),
        },
        None => Response::text(404, "not found"),
    }
}

/// The regular file `rest` (a URL path, percent-encoded) names under `root`,
/// or `None` if it is not a plain relative path to such a file.
fn resolve(root: &Path, rest: &str) -> Option<PathBuf> {
    let mut file = root.to_path_buf();
    for segment in rest.split('/') {
        let name = percent_decode(segment)?;
        let plain = !name.is_empty() && !name.starts_with('.') && !name.contains(['/', '\\', '\0']);
        if !plain {
            return None;
        }
        file.push(name);
    }
    let file = fs::canonicalize(&file).ok()?;
    let root = fs::canonicalize(root).ok()?;
    (file.starts_with(&root) && file.is_file()).then_some(file)
}

/// `%XX`-decodes a URL path segment; `None` if malformed or not UTF-8.
fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn mime_type(file: &Path) -> &'static str {
    let ext = file
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("wasm") => "application/wasm",
        Some("json" | "map") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("ts" | "md" | "txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Starts the server on `port`; with `None`, on `preferred` if it is free
/// (so the page's origin, and with it the browser's data, stays the same
/// between runs) and else on a free port.
pub fn start_preferring(
    site: Site,
    port: Option<u16>,
    preferred: u16,
) -> Result<(StaticServer, Option<String>)> {
    let explicit = |e: std::io::Error, p: u16| format!("serving the page on 127.0.0.1:{p}: {e}");
    match port {
        Some(p) => Ok((
            StaticServer::start(site, p).map_err(|e| explicit(e, p))?,
            None,
        )),
        None => match StaticServer::start(site.clone(), preferred) {
            Ok(server) => Ok((server, None)),
            Err(e) if e.kind() == ErrorKind::AddrInUse => {
                let server = StaticServer::start(site, 0).map_err(|e| explicit(e, 0))?;
                let why = format!(
                    "port {preferred} is taken, so the page is on another port: this \
                     origin has its own browser storage (choose one with --port)"
                );
                Ok((server, Some(why)))
            }
            Err(e) => Err(explicit(e, preferred).into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site() -> (tempfile::TempDir, Site) {
        let dir = tempfile::tempdir().expect("temp dir");
        let page = dir.path().join("page");
        let pkg = dir.path().join("pkg");
        fs::create_dir_all(page.join("sub")).expect("page dir");
        fs::create_dir_all(pkg.join("snippets")).expect("pkg dir");
        fs::write(page.join("index.html"), "<!doctype html>").expect("write");
        fs::write(page.join("app.js"), "export {};").expect("write");
        fs::write(page.join("style.css"), "body{}").expect("write");
        fs::write(page.join("sub").join("a b.txt"), "spaced").expect("write");
        fs::write(page.join(".hidden"), "no").expect("write");
        fs::write(pkg.join("index.js"), "export {};").expect("write");
        fs::write(pkg.join("erth_wasm_bg.wasm"), b"\0asm\x01\0\0\0").expect("write");
        fs::write(pkg.join("snippets").join("x.js"), "1").expect("write");
        fs::write(dir.path().join("secret.txt"), "secret").expect("write");
        std::os::unix::fs::symlink(dir.path().join("secret.txt"), page.join("link.txt"))
            .expect("symlink");
        let site = Site {
            page_dir: page,
            package_dir: pkg,
            config_json: config_json(Some("http://127.0.0.1:9"), None),
        };
        (dir, site)
    }

    fn get(site: &Site, target: &str) -> Response {
        respond(
            site,
            &Head {
                method: "GET".into(),
                target: target.into(),
                host: Some("127.0.0.1:8780".into()),
            },
        )
    }

    #[test]
    fn serves_the_page_the_package_and_the_config_with_their_types() {
        let (_dir, site) = site();
        for (target, status, mime, body) in [
            ("/", 200, "text/html; charset=utf-8", "<!doctype html>"),
            (
                "/index.html?device=2",
                200,
                "text/html; charset=utf-8",
                "<!doctype html>",
            ),
            (
                "/app.js",
                200,
                "text/javascript; charset=utf-8",
                "export {};",
            ),
            ("/style.css", 200, "text/css; charset=utf-8", "body{}"),
            ("/sub/a%20b.txt", 200, "text/plain; charset=utf-8", "spaced"),
            (
                "/erth-sync/index.js",
                200,
                "text/javascript; charset=utf-8",
                "export {};",
            ),
            (
                "/erth-sync/snippets/x.js",
                200,
                "text/javascript; charset=utf-8",
                "1",
            ),
            (
                "/config.json",
                200,
                "application/json",
                "{\"url\":\"http://127.0.0.1:9\",\"authToken\":null}\n",
            ),
        ] {
            let r = get(&site, target);
            assert_eq!(r.status, status, "{target}");
            assert_eq!(r.content_type, mime, "{target}");
            assert_eq!(String::from_utf8_lossy(&r.body), body, "{target}");
        }
        let wasm = get(&site, "/erth-sync/erth_wasm_bg.wasm");
        assert_eq!((wasm.status, wasm.content_type), (200, "application/wasm"));
        assert_eq!(wasm.body, b"\0asm\x01\0\0\0");
    }

    #[test]
    fn refuses_traversal_dot_files_symlinks_out_and_directories() {
        let (_dir, site) = site();
        for target in [
            "/../secret.txt",
            "/sub/../../secret.txt",
            "/%2e%2e/secret.txt",
            "/%2E%2E%2Fsecret.txt",
            "/sub%2f..%2f..%2fsecret.txt",
            "/erth-sync/../page/app.js",
            "/erth-sync/%2e%2e/page/app.js",
            "/..%5csecret.txt",
            "//etc/passwd",
            "/.hidden",
            "/link.txt",
            "/sub",
            "/sub/",
            "/erth-sync/",
            "/erth-sync",
            "/missing.js",
            "/app.js%00.html",
            "/bad%zz",
            "/bad%c3",
        ] {
            assert_eq!(get(&site, target).status, 404, "{target}");
        }
        assert_eq!(get(&site, "http://evil/app.js").status, 400);
    }

    #[test]
    fn only_get_and_head_from_loopback_host_names() {
        let (_dir, site) = site();
        let req = |method: &str, host: Option<&str>| {
            respond(
                &site,
                &Head {
                    method: method.into(),
                    target: "/app.js".into(),
                    host: host.map(String::from),
                },
            )
        };
        for host in ["127.0.0.1:8780", "localhost:1", "LOCALHOST", "[::1]:8780"] {
            assert_eq!(req("GET", Some(host)).status, 200, "{host}");
        }
        for host in ["evil.example:8780", "127.0.0.1.evil.example", "", "[::2]:1"] {
            assert_eq!(req("GET", Some(host)).status, 403, "{host}");
        }
        assert_eq!(req("GET", None).status, 403);
        let head = req("HEAD", Some("127.0.0.1"));
        let bytes = String::from_utf8(head.to_bytes()).expect("utf-8");
        assert!(bytes.starts_with("HTTP/1.1 200 OK\r\n"), "{bytes}");
        assert!(bytes.contains("Content-Length: 10\r\n"), "{bytes}");
        assert!(bytes.ends_with("\r\n\r\n"), "HEAD sent a body: {bytes}");
        let post = req("POST", Some("127.0.0.1")).to_bytes();
        let post = String::from_utf8_lossy(&post);
        assert!(post.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
        assert!(post.contains("Allow: GET, HEAD\r\n"));
    }

    #[test]
    fn parses_request_heads_and_rejects_garbage() {
        let head = read_head(&mut &b"GET /x?y HTTP/1.1\r\nHOST: localhost:1\r\nA: b\r\n\r\n"[..]);
        assert_eq!(
            head,
            Ok(Head {
                method: "GET".into(),
                target: "/x?y".into(),
                host: Some("localhost:1".into()),
            })
        );
        for bad in [
            &b"GET /x\r\n\r\n"[..],
            b"GET /x HTTP/1.1 extra\r\n\r\n",
            b"GET /x SPDY/3\r\n\r\n",
            b"GET /x HTTP/1.1\r\nno colon\r\n\r\n",
            b"\xff\xfe /x HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(read_head(&mut &bad[..]), Err(HeadError::Malformed));
        }
        assert_eq!(
            read_head(&mut &b"GET / HTTP/1.1\r\n"[..]),
            Err(HeadError::Io)
        );
        let huge = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD * 2));
        assert_eq!(read_head(&mut huge.as_bytes()), Err(HeadError::TooLarge));
    }

    #[test]
    fn config_json_escapes_and_nulls() {
        assert_eq!(
            config_json(None, None),
            "{\"url\":null,\"authToken\":null}\n"
        );
        assert_eq!(
            config_json(Some("libsql://a.b"), Some("t\"o\\k\n")),
            "{\"url\":\"libsql://a.b\",\"authToken\":\"t\\\"o\\\\k\\u000a\"}\n"
        );
    }

    #[test]
    fn serves_over_tcp_and_stops() {
        let (_dir, site) = site();
        let mut server = StaticServer::start(site, 0).expect("start");
        let url = server.url();
        let addr = server.addr;
        assert_eq!(url, format!("http://127.0.0.1:{}/", addr.port()));
        let fetch = |request: &str| {
            let mut stream = TcpStream::connect(addr).expect("connect");
            stream.write_all(request.as_bytes()).expect("write");
            let mut response = String::new();
            stream.read_to_string(&mut response).expect("read");
            response
        };
        let ok = fetch("GET /erth-sync/erth_wasm_bg.wasm HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains("Content-Type: application/wasm\r\n"), "{ok}");
        assert!(ok.contains("Connection: close\r\n"), "{ok}");
        let bad = fetch("BLAH\r\n\r\n");
        assert!(bad.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{bad}");
        server.stop();
        assert!(
            TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err(),
            "still listening after stop"
        );
    }

    #[test]
    fn a_taken_port_is_reported_or_avoided() {
        let (_dir, site) = site();
        let holder = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let taken = holder.local_addr().expect("addr").port();
        let err = StaticServer::start(site.clone(), taken).expect_err("port is taken");
        assert_eq!(err.kind(), ErrorKind::AddrInUse);
        assert!(start_preferring(site.clone(), Some(taken), 1).is_err());
        let (server, why) = start_preferring(site, None, taken).expect("falls back");
        assert_ne!(server.addr.port(), taken);
        assert!(why.is_some_and(|w| w.contains(&taken.to_string())));
    }
}
