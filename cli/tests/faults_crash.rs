//! Crash recovery: the `erth` CLI is killed with SIGKILL at random points
//! during local writes, pushes and pulls, 120 times. A run counts as a kill
//! only when the process died of SIGKILL; any other failure fails the test.
//! The test keeps its own record of every write that was acknowledged (the
//! ids `erth add` printed, the ids `insert` returned) outside the databases
//! under test. After every kill the replica file passes
//! `PRAGMA integrity_check`, every acknowledged write is there, every row is
//! either still pending or on the server, and the pull cursor never skips a
//! page; at the end every replica and the server hold every acknowledged
//! write and nothing the test did not write.

#![cfg(unix)]
#![allow(clippy::unwrap_used)] // test code

use erth_core::store::sqlite::SqliteStore;
use erth_core::store::Store;
use erth_core::{Config, Database, SqlValue, Statement};
use erth_tests::{hrana, TestServer};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ERTH: &str = env!("CARGO_BIN_EXE_erth");

/// The table raw SQL reads on a replica file (the engine's physical table
/// behind the app-facing `todos`). Server-side SQL keeps `todos`.
const REPLICA_TODOS: &str = "_erth_rows_todos";

/// How long a run may go on before it is killed, when the draw says "let
/// it finish": long enough that only a hung CLI gets killed.
const LET_FINISH: Duration = Duration::from_secs(10);

/// SIGKILL's number (the same on every Unix).
const SIGKILL: i32 = 9;

async fn raw(path: &Path, sql: &str) -> Vec<Vec<SqlValue>> {
    let store = SqliteStore::open(path).unwrap();
    store.query(&Statement::plain(sql)).await.unwrap().rows
}

fn text(v: &SqlValue) -> String {
    v.as_str().unwrap().to_owned()
}

/// Whether the replica got as far as creating its schema (a kill can land
/// before `Database::open` commits it; then the file holds nothing at all).
async fn has_schema(path: &Path) -> bool {
    let rows = raw(
        path,
        &format!(
            "SELECT count(*) FROM sqlite_master WHERE name IN ('_erth_state', '{REPLICA_TODOS}')"
        ),
    )
    .await;
    match rows[0][0].as_i64() {
        Some(2) => true,
        Some(0) => false,
        other => panic!("half a schema in {}: {other:?}", path.display()),
    }
}

/// `(id, title, _dirty)` of every live row in a replica file (this test
/// deletes nothing, so a tombstone is a lost write).
async fn replica_rows(path: &Path) -> BTreeMap<String, (String, i64)> {
    raw(
        path,
        &format!("SELECT id, title, _dirty FROM {REPLICA_TODOS} WHERE is_deleted = 0"),
    )
    .await
    .iter()
    .map(|r| (text(&r[0]), (text(&r[1]), r[2].as_i64().unwrap())))
    .collect()
}

/// `id -> title` of the live rows on the server, up to `_seq <= max_seq` if given.
async fn server_rows(server: &TestServer, max_seq: Option<i64>) -> BTreeMap<String, String> {
    let filter = max_seq.map_or(String::new(), |s| format!(" AND _seq <= {s}"));
    let res = hrana::execute(
        server.url(),
        server.token(),
        &[&format!(
            "SELECT id, title FROM todos WHERE is_deleted = 0{filter}"
        )],
    )
    .await
    .unwrap();
    res[0]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r[0]["value"].as_str().unwrap().to_owned(),
                r[1]["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// How one run of the CLI ended.
enum Run {
    /// It exited 0 on its own: its standard output and how long it took.
    Finished(String, Duration),
    /// It died of the SIGKILL this test sent.
    Killed,
}

/// Runs `erth` with `args` and sends SIGKILL after `delay` if it is still
/// running. Panics if it exited non-zero on its own or died of anything
/// but SIGKILL: only a kill is an expected way to stop.
fn run_and_kill(db: &Path, url: &str, args: &[&str], delay: Duration) -> Run {
    let mut child = Command::new(ERTH)
        .arg("--db")
        .arg(db)
        .args(["--remote", url, "--json"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        let left = delay.saturating_sub(started.elapsed());
        if left.is_zero() {
            child.kill().unwrap(); // SIGKILL; a no-op if it has just exited
            break;
        }
        std::thread::sleep(left.min(Duration::from_millis(1)));
    }
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        Run::Finished(String::from_utf8(out.stdout).unwrap(), started.elapsed())
    } else if out.status.signal() == Some(SIGKILL) {
        Run::Killed
    } else {
        panic!(
            "erth {args:?} failed on its own ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

/// The kill delays of one phase: one run in four may finish (it is killed
/// only if it hangs), the others are killed at a uniformly drawn point of
/// the last finished run's duration, so kills land mid-run on fast and
/// slow machines alike.
struct Delays {
    typical: Duration,
}

impl Delays {
    fn new(first_guess_ms: u64) -> Delays {
        Delays {
            typical: Duration::from_millis(first_guess_ms),
        }
    }

    fn draw(&self, rng: &mut StdRng) -> Duration {
        if rng.random_bool(0.25) {
            LET_FINISH
        } else {
            self.typical.mul_f64(rng.random::<f64>())
        }
    }

    /// Runs `erth` with a drawn delay; learns from runs that finished.
    fn run(&mut self, rng: &mut StdRng, db: &Path, url: &str, args: &[&str]) -> Run {
        let run = run_and_kill(db, url, args, self.draw(rng));
        if let Run::Finished(_, took) = &run {
            self.typical = *took;
        }
        run
    }
}

/// Inserts `count` rows titled `{prefix}{i}` through the engine and records
/// each acknowledged one.
async fn add_rows(
    path: &Path,
    url: &str,
    prefix: &str,
    count: usize,
    acked: &mut BTreeMap<String, String>,
) {
    let db = open(path, url).await;
    for i in 0..count {
        let title = format!("{prefix}{i}");
        let id = db
            .insert("todos", &[("title", title.clone().into())])
            .await
            .unwrap();
        acked.insert(id, title);
    }
}

async fn open(path: &Path, url: &str) -> Database {
    Database::open_native(
        path,
        Config {
            url: Some(url.to_owned()),
            ..Config::default()
        },
    )
    .await
    .unwrap()
}

/// What the test counted.
#[derive(Default)]
struct Counts {
    kills: [u32; 3],
    adds_acked: u32,
    syncs_completed: [u32; 2],
    integrity_checks: u32,
}

impl Counts {
    async fn integrity_ok(&mut self, path: &Path) {
        let rows = raw(path, "PRAGMA integrity_check").await;
        assert_eq!(rows, vec![vec![SqlValue::from("ok")]], "{}", path.display());
        self.integrity_checks += 1;
    }

    /// One `erth sync` of phase `phase` (1 push, 2 pull), counted, then
    /// the integrity check.
    async fn sync_run(
        &mut self,
        delays: &mut Delays,
        rng: &mut StdRng,
        path: &Path,
        url: &str,
        phase: usize,
    ) {
        match delays.run(rng, path, url, &["sync"]) {
            Run::Finished(..) => self.syncs_completed[phase - 1] += 1,
            Run::Killed => self.kills[phase] += 1,
        }
        self.integrity_ok(path).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_random_points_loses_nothing() {
    let seed: u64 = std::env::var("ERTH_FAULTS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(42);
    println!("faults_crash: seed {seed}");
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(seed);
    let server = TestServer::start().await.unwrap();
    let url = server.url().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let (w, p, q) = (
        dir.path().join("writer.db"),
        dir.path().join("pusher.db"),
        dir.path().join("puller.db"),
    );
    // Create the server's tables first, so server-side checks can run
    // even when the first push is killed before it bootstraps the server.
    open(&dir.path().join("bootstrap.db"), &url)
        .await
        .sync()
        .await
        .unwrap();
    let iterations = 40;
    let mut n = Counts::default();
    // The independent record: every acknowledged write, id -> title.
    let mut acked: BTreeMap<String, String> = BTreeMap::new();
    // Titles of `add`s that were killed: each may or may not have committed.
    let mut unacked_titles: BTreeSet<String> = BTreeSet::new();

    // Local writes: a killed `add` leaves the row fully there or not at all.
    let mut delays = Delays::new(25);
    for i in 0..iterations {
        let title = format!("write {i}");
        match delays.run(&mut rng, &w, &url, &["add", &title]) {
            Run::Finished(out, _) => {
                let todo: serde_json::Value = serde_json::from_str(&out).unwrap();
                assert_eq!(todo["title"], title.as_str(), "erth add printed {out}");
                let id = todo["id"].as_str().unwrap().to_owned();
                erth_core::ids::parse_id(&id).unwrap();
                acked.insert(id, title);
                n.adds_acked += 1;
            }
            Run::Killed => {
                n.kills[0] += 1;
                unacked_titles.insert(title);
            }
        }
        n.integrity_ok(&w).await;
        if !has_schema(&w).await {
            assert!(acked.is_empty(), "schema lost after acknowledged writes");
            continue;
        }
        let rows = replica_rows(&w).await;
        for (id, title) in &acked {
            let have = rows.get(id).map(|(t, _)| t);
            assert_eq!(have, Some(title), "acknowledged add {id} lost or changed");
        }
        for (id, (title, dirty)) in &rows {
            assert!(
                acked.contains_key(id) || unacked_titles.contains(title),
                "row {id} ({title:?}) was never written by this test"
            );
            assert!(*dirty > 0, "unsynced row {id} is not pending");
        }
    }

    // Pushes: kill mid-push; every acknowledged row stays, and every row is
    // pending or already on the server.
    let mut pushed: BTreeMap<String, String> = BTreeMap::new();
    add_rows(&p, &url, "push", 3_000, &mut pushed).await;
    let mut delays = Delays::new(120);
    for k in 0..iterations {
        n.sync_run(&mut delays, &mut rng, &p, &url, 1).await;
        let rows = replica_rows(&p).await;
        for (id, title) in &pushed {
            let have = rows.get(id).map(|(t, _)| t);
            assert_eq!(have, Some(title), "acknowledged row {id} lost or changed");
        }
        let on_server = server_rows(&server, None).await;
        for (id, (title, dirty)) in &rows {
            assert!(
                *dirty > 0 || on_server.get(id) == Some(title),
                "row {id} is marked pushed but the server does not hold it"
            );
        }
        // Add more work so later kills still land mid-push.
        let more = rng.random_range(0..200);
        add_rows(&p, &url, &format!("more {k}."), more, &mut pushed).await;
    }
    acked.extend(pushed);

    // Pulls: kill mid-pull; the cursor never runs ahead of the applied rows.
    let mut delays = Delays::new(150);
    for _ in 0..iterations {
        n.sync_run(&mut delays, &mut rng, &q, &url, 2).await;
        if !has_schema(&q).await {
            continue;
        }
        let cursor = raw(&q, "SELECT v FROM _erth_state WHERE k = 'cursor:todos'").await;
        let cursor: i64 = cursor
            .first()
            .and_then(|r| r[0].as_str())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let local = replica_rows(&q).await;
        let upto = server_rows(&server, Some(cursor)).await;
        let skipped = upto.keys().filter(|id| !local.contains_key(*id)).count();
        assert_eq!(skipped, 0, "cursor {cursor} skipped {skipped} rows");
    }

    // Everyone finishes cleanly and converges.
    let dbs = [
        open(&w, &url).await,
        open(&p, &url).await,
        open(&q, &url).await,
    ];
    for _ in 0..2 {
        for db in &dbs {
            db.sync().await.unwrap();
        }
    }
    // Every copy as id -> title of its live rows: the server's, then each replica's.
    let on_server = server_rows(&server, None).await;
    let mut copies = vec![on_server.clone()];
    let mut divergences = 0;
    for (i, db) in dbs.iter().enumerate() {
        let dump = db.dump("todos").await.unwrap();
        copies.push(
            dump.iter()
                .filter(|r| !r.is_deleted)
                .map(|r| (r.id.clone(), text(&r.values[0])))
                .collect(),
        );
        if copies[i + 1] != on_server {
            eprintln!("replica {i} differs from the server");
            divergences += 1;
        }
        let pending = db.status().await.unwrap().pending_changes;
        if pending != 0 {
            eprintln!("replica {i}: {pending} changes still pending");
            divergences += 1;
        }
    }
    let mut lost = 0;
    for (id, title) in &acked {
        if !copies.iter().all(|c| c.get(id) == Some(title)) {
            eprintln!("acknowledged write {id} ({title:?}) is missing from a copy");
            lost += 1;
        }
    }
    let unacked_kept = on_server
        .iter()
        .filter(|(id, title)| !acked.contains_key(*id) && unacked_titles.contains(*title))
        .count();
    let phantoms = on_server
        .iter()
        .filter(|(id, title)| !acked.contains_key(*id) && !unacked_titles.contains(*title))
        .count();
    println!(
        "faults_crash: iterations {}, SIGKILLs {} (add {}, push {}, pull {}), adds acknowledged {} of {iterations}, \
         syncs completed {} (push) + {} (pull), integrity checks {} ok, acknowledged rows {}, \
         present on the server and every replica {}, killed adds that had committed {unacked_kept}, \
         phantom rows {phantoms}, lost {lost}, divergences {divergences} ({:.1} s)",
        iterations * 3,
        n.kills.iter().sum::<u32>(),
        n.kills[0],
        n.kills[1],
        n.kills[2],
        n.adds_acked,
        n.syncs_completed[0],
        n.syncs_completed[1],
        n.integrity_checks,
        acked.len(),
        acked.len() - lost,
        started.elapsed().as_secs_f64(),
    );
    assert_eq!(lost, 0, "acknowledged writes lost");
    assert_eq!(phantoms, 0, "rows nobody wrote");
    assert_eq!(divergences, 0);
    let kills: u32 = n.kills.iter().sum();
    assert!(
        kills >= 30,
        "only {kills} kills landed: the test did not test crashes"
    );
    assert!(
        n.adds_acked >= 3 && n.syncs_completed.iter().all(|&s| s >= 3),
        "too few runs finished to mean anything: {} adds, {:?} syncs",
        n.adds_acked,
        n.syncs_completed
    );
}
