//! The demo's static file server, on `tiny_http`: `web-demo/` at `/`, the
//! built npm package (`bindings-wasm/pkg/`) at `/erth-sync/`, and a
//! generated config telling the page which server to sync with (and the
//! token), at a path no one can guess: `/config/<key>.json`, where the key
//! is a random secret made per run ([`config_key`]). The demo prints the
//! page's address with the key in its fragment (`#config=<key>`, see
//! [`StaticServer::page_url`]), which the browser never sends to a server
//! (nor in a `Referer`); the page reads it and fetches its config. Other
//! users and processes on the machine, who can reach 127.0.0.1 too, get a
//! 404 without the key.
//!
//! It listens on 127.0.0.1 only, answers only `GET` and `HEAD` requests
//! whose `Host` is a loopback name (so a web page cannot read the config,
//! which may hold a token, through DNS rebinding), and serves
//! only regular files under its two roots: every path segment must be a
//! plain name (no `..`, no dot files, no encoded `/` or `\`), and the
//! resolved file must still lie under its root after symlinks are followed.
//! Files are sent with their MIME type (`.wasm` as `application/wasm`) and
//! `Cache-Control: no-cache`, so a rebuilt package shows on the next reload.

use crate::Result;
use std::fs;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tiny_http::{Header, Method, Request, Response, Server};

/// URL prefix under which the package is served.
const PACKAGE_PREFIX: &str = "/erth-sync/";
/// How often the request loop checks whether to stop.
const POLL: Duration = Duration::from_millis(100);

/// What the server serves.
#[derive(Clone)]
pub struct Site {
    /// Served at `/` (`index.html` for `/`).
    pub page_dir: PathBuf,
    /// Served at `/erth-sync/`.
    pub package_dir: PathBuf,
    /// The config's body (it may hold a token): served only at
    /// `/config/<config_key>.json`.
    pub config_json: String,
    /// The secret naming the config's path ([`config_key`]).
    pub config_key: String,
}

impl std::fmt::Debug for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The config may hold a token, and its key opens it.
        f.debug_struct("Site")
            .field("page_dir", &self.page_dir)
            .field("package_dir", &self.package_dir)
            .finish_non_exhaustive()
    }
}

/// A fresh secret for [`Site::config_key`]: 128 random bits from the
/// operating system, as 32 lowercase hex digits.
pub fn config_key() -> Result<String> {
    random_hex(16)
}

/// A fresh key for the demo's encrypted column (`columnKey` in the page's
/// config): 256 random bits, as the 64 hex digits `columnKeys` takes.
pub fn column_key() -> Result<String> {
    random_hex(32)
}

/// `n` bytes from the operating system's random source, as lowercase hex.
fn random_hex(n: usize) -> Result<String> {
    use std::io::Read;
    let mut bytes = vec![0u8; n];
    fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut bytes))
        .map_err(|e| format!("reading /dev/urandom for a key: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Whether `a` and `b` are equal, in a time that depends on their lengths
/// only (the config's key is compared with what a client sent).
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// The page's config (served at `/config/<key>.json`): the server URL and
/// token the page syncs with, and the key of its encrypted notes, which
/// every device of this server shares (`null` when absent), as a JSON
/// object.
pub fn config_json(
    url: Option<&str>,
    auth_token: Option<&str>,
    column_key: Option<&str>,
) -> String {
    format!(
        "{{\"url\":{},\"authToken\":{},\"columnKey\":{}}}\n",
        json_string_or_null(url),
        json_string_or_null(auth_token),
        json_string_or_null(column_key)
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

/// A running server; stops (and joins its request loop) on drop.
pub struct StaticServer {
    addr: SocketAddr,
    /// The config's key, for [`StaticServer::page_url`].
    config_key: String,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl StaticServer {
    /// Serves `site` on `127.0.0.1:port` (`0`: a free port). Fails if the
    /// port is taken (the error's kind is [`ErrorKind::AddrInUse`]).
    pub fn start(site: Site, port: u16) -> std::io::Result<StaticServer> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port))?;
        let addr = listener.local_addr()?;
        let server = Server::from_listener(listener, None).map_err(std::io::Error::other)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let config_key = site.config_key.clone();
        let site = Arc::new(site);
        let thread = std::thread::Builder::new()
            .name("demo-http".into())
            .spawn(move || serve(&server, &site, &stopping))?;
        Ok(StaticServer {
            addr,
            config_key,
            stop,
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// The page's address with the config's key in its fragment:
    /// `http://127.0.0.1:<port>/#config=<key>`. Secret: print it only to the
    /// one who runs the demo.
    pub fn page_url(&self) -> String {
        format!("{}#config={}", self.url(), self.config_key)
    }

    /// Stops answering and closes the port (when the loop ends, the
    /// `tiny_http` server is dropped, which stops its accept thread).
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            // A panicked request loop has nothing left to clean up.
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for StaticServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Leaves out the config's key.
        f.debug_struct("StaticServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The request loop: each request is answered on its own thread.
fn serve(server: &Server, site: &Arc<Site>, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        match server.recv_timeout(POLL) {
            Ok(Some(request)) => {
                let site = Arc::clone(site);
                // Without a thread the request is dropped: the browser retries.
                let _ = std::thread::Builder::new()
                    .name("demo-http-request".into())
                    .spawn(move || answer(&site, request));
            }
            Ok(None) => {}
            Err(_) => return,
        }
    }
}

fn answer(site: &Site, request: Request) {
    let host = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("Host"))
        .map(|h| h.value.as_str().to_string());
    let method = match request.method() {
        Method::Get => "GET",
        Method::Head => "HEAD",
        _ => "other",
    };
    let reply = respond(site, method, request.url(), host.as_deref());
    let mut response = Response::from_data(reply.body).with_status_code(reply.status);
    let mut headers = vec![
        ("Content-Type", reply.content_type),
        ("Cache-Control", reply.cache),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"),
    ];
    if reply.status == 405 {
        headers.push(("Allow", "GET, HEAD"));
    }
    for (name, value) in headers {
        if let Ok(header) = Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            response.add_header(header);
        }
    }
    // The client may have gone; nothing to do about it. (`HEAD` gets the
    // headers and the body's length only: tiny_http leaves the body out.)
    let _ = request.respond(response);
}

/// What to answer: status, type, body, caching.
#[derive(Debug)]
struct Reply {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
    cache: &'static str,
}

impl Reply {
    fn text(status: u16, message: &str) -> Reply {
        Reply {
            status,
            content_type: "text/plain; charset=utf-8",
            body: format!("{message}\n").into_bytes(),
            cache: "no-store",
        }
    }
}

/// The reply to `method target` with `Host: host`.
fn respond(site: &Site, method: &str, target: &str, host: Option<&str>) -> Reply {
    if !host.is_some_and(is_loopback_host) {
        return Reply::text(
            403,
            "only loopback host names (127.0.0.1, localhost) are served",
        );
    }
    if !matches!(method, "GET" | "HEAD") {
        return Reply::text(405, "only GET and HEAD");
    }
    route(site, target)
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

fn route(site: &Site, target: &str) -> Reply {
    let path = target.split(['?', '#']).next().unwrap_or("");
    if !path.starts_with('/') {
        return Reply::text(400, "bad request target");
    }
    let config = path
        .strip_prefix("/config/")
        .and_then(|rest| rest.strip_suffix(".json"));
    let opens = |key: &str| {
        !site.config_key.is_empty() && same_secret(key.as_bytes(), site.config_key.as_bytes())
    };
    if config.is_some_and(opens) {
        return Reply {
            status: 200,
            content_type: "application/json",
            body: site.config_json.clone().into_bytes(),
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
            Ok(body) => Reply {
                status: 200,
                content_type: mime_type(&file),
                body,
                // Always revalidate: a rebuilt package or an edited page
                // shows up on the next reload.
                cache: "no-cache",
            },
            Err(_) => Reply::text(404, "not found"),
        },
        None => Reply::text(404, "not found"),
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
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Instant;

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
            config_json: config_json(Some("http://127.0.0.1:9"), None, None),
            config_key: KEY.into(),
        };
        (dir, site)
    }

    /// The test site's config key.
    const KEY: &str = "00112233445566778899aabbccddeeff";

    fn get(site: &Site, target: &str) -> Reply {
        respond(site, "GET", target, Some("127.0.0.1:8780"))
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
                "/config/00112233445566778899aabbccddeeff.json",
                200,
                "application/json",
                "{\"url\":\"http://127.0.0.1:9\",\"authToken\":null,\"columnKey\":null}\n",
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
    fn the_config_needs_its_key() {
        let (_dir, site) = site();
        for target in [
            "/config.json",
            "/config/",
            "/config/.json",
            "/config/00112233445566778899aabbccddeefe.json",
            "/config/00112233445566778899aabbccddeeff",
            "/config/00112233445566778899aabbccddee.json",
            "/config/00112233445566778899aabbccddeeff0.json",
            "/config/00112233445566778899AABBCCDDEEFF.json",
            "/config/%30%30112233445566778899aabbccddeeff.json",
            "/CONFIG/00112233445566778899aabbccddeeff.json",
        ] {
            let r = get(&site, target);
            assert_eq!(r.status, 404, "{target}");
            assert!(!String::from_utf8_lossy(&r.body).contains("127.0.0.1:9"));
        }
        let ok = get(&site, &format!("/config/{KEY}.json?fresh"));
        assert_eq!((ok.status, ok.cache), (200, "no-store"));
        // No key, no config: a site made without one serves none.
        let keyless = Site {
            config_key: String::new(),
            ..site
        };
        assert_eq!(get(&keyless, "/config/.json").status, 404);
    }

    #[test]
    fn config_keys_are_random_hex() {
        let (a, b) = (config_key().expect("key"), config_key().expect("key"));
        assert_eq!(a.len(), 32);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
        assert!(same_secret(a.as_bytes(), a.clone().as_bytes()));
        assert!(!same_secret(a.as_bytes(), b.as_bytes()));
        assert!(!same_secret(a.as_bytes(), &a.as_bytes()[1..]));
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
        let status =
            |method: &str, host: Option<&str>| respond(&site, method, "/app.js", host).status;
        for host in ["127.0.0.1:8780", "localhost:1", "LOCALHOST", "[::1]:8780"] {
            assert_eq!(status("GET", Some(host)), 200, "{host}");
            assert_eq!(status("HEAD", Some(host)), 200, "{host}");
        }
        for host in ["evil.example:8780", "127.0.0.1.evil.example", "", "[::2]:1"] {
            assert_eq!(status("GET", Some(host)), 403, "{host}");
        }
        assert_eq!(status("GET", None), 403);
        assert_eq!(status("POST", Some("127.0.0.1")), 405);
        // The config, which may hold a token, follows the same rule.
        let path = format!("/config/{KEY}.json");
        let config = |host| respond(&site, "GET", &path, Some(host)).status;
        assert_eq!(
            (config("localhost"), config("attacker.example")),
            (200, 403)
        );
    }

    #[test]
    fn config_json_escapes_and_nulls() {
        assert_eq!(
            config_json(None, None, None),
            "{\"url\":null,\"authToken\":null,\"columnKey\":null}\n"
        );
        assert_eq!(
            config_json(Some("libsql://a.b"), Some("t\"o\\k\n"), Some("ab")),
            "{\"url\":\"libsql://a.b\",\"authToken\":\"t\\\"o\\\\k\\u000a\",\"columnKey\":\"ab\"}\n"
        );
        let key = column_key().expect("key");
        assert!(key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(key, column_key().expect("key"));
    }

    /// One request over TCP (`Connection: close`); the whole response.
    fn fetch(addr: SocketAddr, request: &str) -> String {
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        stream.write_all(request.as_bytes()).expect("write");
        let mut response = Vec::new();
        // A reset after the response is fine: what arrived is what counts.
        let _ = stream.read_to_end(&mut response);
        String::from_utf8_lossy(&response).into_owned()
    }

    #[test]
    fn serves_over_tcp_only_on_loopback_and_stops() {
        let (_dir, site) = site();
        let mut server = StaticServer::start(site, 0).expect("start");
        let addr = server.addr;
        assert!(addr.ip().is_loopback());
        assert_eq!(server.url(), format!("http://127.0.0.1:{}/", addr.port()));
        assert_eq!(server.page_url(), format!("{}#config={KEY}", server.url()));
        assert!(!format!("{server:?}").contains(KEY), "{server:?}");
        let request = |line: &str, host: &str| {
            fetch(
                addr,
                &format!("{line}\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
            )
        };

        let ok = request("GET /erth-sync/erth_wasm_bg.wasm HTTP/1.1", "127.0.0.1");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains("Content-Type: application/wasm\r\n"), "{ok}");
        assert!(ok.contains("Cache-Control: no-cache\r\n"), "{ok}");
        assert!(ok.ends_with("\r\n\r\n\0asm\x01\0\0\0"), "{ok:?}");

        let head = request("HEAD /app.js HTTP/1.1", "localhost");
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.contains("Content-Length: 10\r\n"), "{head}");
        assert!(head.ends_with("\r\n\r\n"), "HEAD sent a body: {head:?}");

        let post = request("POST /app.js HTTP/1.1", "127.0.0.1");
        assert!(
            post.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
            "{post}"
        );
        assert!(post.contains("Allow: GET, HEAD\r\n"), "{post}");

        let config = request(&format!("GET /config/{KEY}.json HTTP/1.1"), "127.0.0.1");
        assert!(config.starts_with("HTTP/1.1 200 OK\r\n"), "{config}");
        assert!(config.contains("127.0.0.1:9"), "{config}");
        let guessed = request("GET /config.json HTTP/1.1", "127.0.0.1");
        assert!(
            guessed.starts_with("HTTP/1.1 404 Not Found\r\n"),
            "{guessed}"
        );
        assert!(!guessed.contains("127.0.0.1:9"), "{guessed}");

        let rebinding = request(&format!("GET /config/{KEY}.json HTTP/1.1"), "evil.example");
        assert!(
            rebinding.starts_with("HTTP/1.1 403 Forbidden\r\n"),
            "{rebinding}"
        );
        assert!(!rebinding.contains("127.0.0.1:9"), "{rebinding}");

        let traversal = request("GET /../secret.txt HTTP/1.1", "127.0.0.1");
        assert!(
            traversal.starts_with("HTTP/1.1 404 Not Found\r\n"),
            "{traversal}"
        );
        assert!(!traversal.contains("secret\n") && !traversal.ends_with("secret"));

        let garbage = fetch(addr, "BLAH\r\n\r\n");
        assert!(
            garbage.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{garbage}"
        );

        server.stop();
        // tiny_http closes the port from its accept thread, just after stop.
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            assert!(Instant::now() < deadline, "still listening 5 s after stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    #[test]
    fn a_taken_port_is_reported_or_avoided() {
        let (_dir, site) = site();
        let holder = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let taken = holder.local_addr().expect("addr").port();
        let err = StaticServer::start(site.clone(), taken).expect_err("port is taken");
        assert_eq!(err.kind(), ErrorKind::AddrInUse);
        assert!(start_preferring(site.clone(), Some(taken), 1).is_err());
        let (server, why) = start_preferring(site.clone(), None, taken).expect("falls back");
        assert_ne!(server.addr.port(), taken);
        assert!(why.is_some_and(|w| w.contains(&taken.to_string())));
        // A free preferred port is used as it is.
        let free = server.addr.port();
        drop(server);
        let deadline = Instant::now() + Duration::from_secs(5);
        let (again, why) = loop {
            match start_preferring(site.clone(), None, free) {
                Ok((s, why)) if s.addr.port() == free => break (s, why),
                _ => assert!(Instant::now() < deadline, "port {free} never freed"),
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!((again.addr.port(), why), (free, None));
    }
}
