//! Crash recovery: the `erth` CLI is killed with SIGKILL at random points
//! during local writes, pushes and pulls, 120 times. A run counts as a kill
//! only when the process died of SIGKILL; any other failure fails the test.
//! The test keeps its own record of every write that was acknowledged (the
//! ids `erth add` printed, the ids `insert` returned, the titles of the
//! renames it made) outside the databases under test. After every kill the
//! replica file passes `PRAGMA integrity_check`, every acknowledged write is
//! there, every row is either still pending or on the server, and the pull
//! cursor never skips a page; at the end every replica and the server hold
//! every acknowledged write and nothing the test did not write.
//!
//! The pull phase pulls in pages of [`PULL_PAGE_ROWS`] rows (the hidden
//! `ERTH_PULL_PAGE_ROWS`), so a pull is many pages and a kill lands between
//! two of them, and before every run another replica changes the server
//! (adds rows and renames rows the puller already holds), so every run has
//! work left. The test counts the kills that landed mid-pull (the cursor
//! moved, but not to the end) and fails if too few did.

#![cfg(unix)]
#![allow(clippy::unwrap_used)] // test code

use erth_core::schema::todos_table;
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

/// Where a pull keeps the pages it downloaded until it caught up with the
/// server; then they are applied to the engine table in one transaction.
const STAGED_TODOS: &str = "_erth_stage_todos";

/// How long a run may go on before it is killed, when the draw says "let
/// it finish": long enough that only a hung CLI gets killed.
const LET_FINISH: Duration = Duration::from_secs(10);

/// SIGKILL's number (the same on every Unix).
const SIGKILL: i32 = 9;

/// Rows per pull page in the pull phase: the first pull is hundreds of
/// pages, each later one several.
const PULL_PAGE_ROWS: &str = "25";

/// Where the CLI runs sync to.
struct Remote {
    url: String,
    token: Option<String>,
}

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

/// `(id, title, _dirty)` of every live row in a replica file that its app
/// sees (not the rows of a first pull under way; this test deletes
/// nothing, so a tombstone is a lost write).
async fn replica_rows(path: &Path) -> BTreeMap<String, (String, i64)> {
    raw(
        path,
        &format!(
            "SELECT id, title, _dirty FROM {REPLICA_TODOS} WHERE is_deleted = 0 AND {}",
            todos_table().visible_sql()
        ),
    )
    .await
    .iter()
    .map(|r| (text(&r[0]), (text(&r[1]), r[2].as_i64().unwrap())))
    .collect()
}

/// The server's highest `_seq` (0 for an empty table).
async fn server_max_seq(server: &TestServer) -> i64 {
    let res = hrana::execute(
        server.url(),
        server.token(),
        &["SELECT coalesce(max(_seq), 0) FROM todos"],
    )
    .await
    .unwrap();
    let v = &res[0]["rows"][0][0]["value"];
    v.as_str().unwrap().parse().unwrap()
}

/// The pull cursor of a replica file (0 before its first page).
async fn cursor(path: &Path) -> i64 {
    raw(path, "SELECT v FROM _erth_state WHERE k = 'cursor:todos'")
        .await
        .first()
        .and_then(|r| r[0].as_str())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// `id -> title` of the rows a replica's pull staged and not yet applied:
/// in the stage, and in a first pull the engine table's rows the app does
/// not see yet.
async fn staged_rows(path: &Path) -> BTreeMap<String, String> {
    raw(
        path,
        &format!(
            "SELECT id, title FROM {STAGED_TODOS} UNION ALL SELECT id, title FROM {REPLICA_TODOS} WHERE NOT {}",
            todos_table().visible_sql()
        ),
    )
        .await
        .iter()
        .map(|r| (text(&r[0]), text(&r[1])))
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

/// Runs `erth` with `args` (and the environment `env`) and sends SIGKILL
/// after `delay` if it is still running. Panics if it exited non-zero on
/// its own or died of anything but SIGKILL: only a kill is an expected way
/// to stop.
fn run_and_kill(
    db: &Path,
    remote: &Remote,
    args: &[&str],
    env: &[(&str, &str)],
    delay: Duration,
) -> Run {
    let mut cmd = Command::new(ERTH);
    cmd.arg("--db")
        .arg(db)
        .args(["--remote", &remote.url, "--json"])
        .args(args)
        .env_remove("ERTH_DATABASE_URL")
        .env_remove("ERTH_SCHEMA")
        .env_remove("ERTH_AUTH_TOKEN")
        .env_remove("ERTH_PULL_PAGE_ROWS")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(token) = &remote.token {
        cmd.env("ERTH_AUTH_TOKEN", token);
    }
    let mut child = cmd.spawn().unwrap();
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
    fn run(
        &mut self,
        rng: &mut StdRng,
        db: &Path,
        remote: &Remote,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Run {
        let run = run_and_kill(db, remote, args, env, self.draw(rng));
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
    remote: &Remote,
    prefix: &str,
    count: usize,
    acked: &mut BTreeMap<String, String>,
) {
    let db = open(path, remote).await;
    insert_rows(&db, prefix, count, acked).await;
}

/// Inserts `count` rows titled `{prefix}{i}` into `db`, records each
/// acknowledged one and returns their ids.
async fn insert_rows(
    db: &Database,
    prefix: &str,
    count: usize,
    acked: &mut BTreeMap<String, String>,
) -> Vec<String> {
    let mut ids = Vec::with_capacity(count);
    for i in 0..count {
        let title = format!("{prefix}{i}");
        let id = db
            .insert("todos", &[("title", title.clone().into())])
            .await
            .unwrap();
        acked.insert(id.clone(), title);
        ids.push(id);
    }
    ids
}

async fn open(path: &Path, remote: &Remote) -> Database {
    Database::open_native(
        path,
        Config {
            url: Some(remote.url.clone()),
            auth_token: remote.token.clone(),
            ..Config::default()
        },
    )
    .await
    .unwrap()
}

/// Another replica changes the server between two pulls: it adds rows and
/// renames rows the puller may already hold (each rename takes a new
/// `_seq`), then pushes; `acked` and `ids` follow.
async fn change_server(
    changer: &Database,
    rng: &mut StdRng,
    round: usize,
    acked: &mut BTreeMap<String, String>,
    ids: &mut Vec<String>,
) -> usize {
    let added = rng.random_range(100..250);
    ids.extend(insert_rows(changer, &format!("pulled {round}."), added, acked).await);
    let renames = rng.random_range(10..50);
    for j in 0..renames {
        let id = ids[rng.random_range(0..ids.len())].clone();
        let title = format!("renamed {round}.{j}");
        changer.rename_todo(&id, &title).await.unwrap();
        acked.insert(id, title);
    }
    changer.sync().await.unwrap();
    added + renames
}

/// What the test counted.
#[derive(Default)]
struct Counts {
    kills: [u32; 3],
    adds_acked: u32,
    syncs_completed: [u32; 2],
    integrity_checks: u32,
    /// Pull runs killed after the cursor moved but before it reached the
    /// end: between two pages, with work left.
    mid_pull_kills: u32,
    /// Pull runs killed with pages staged and not applied.
    staged_kills: u32,
    /// Rows the other replica added or renamed before pull runs.
    server_changes: usize,
}

impl Counts {
    async fn integrity_ok(&mut self, path: &Path) {
        let rows = raw(path, "PRAGMA integrity_check").await;
        assert_eq!(rows, vec![vec![SqlValue::from("ok")]], "{}", path.display());
        self.integrity_checks += 1;
    }

    /// One `erth sync` of phase `phase` (1 push, 2 pull) with the
    /// environment `env`, counted, then the integrity check. Returns
    /// whether it was killed.
    #[allow(clippy::too_many_arguments)]
    async fn sync_run(
        &mut self,
        delays: &mut Delays,
        rng: &mut StdRng,
        path: &Path,
        remote: &Remote,
        phase: usize,
        env: &[(&str, &str)],
    ) -> bool {
        let killed = match delays.run(rng, path, remote, &["sync"], env) {
            Run::Finished(..) => {
                self.syncs_completed[phase - 1] += 1;
                false
            }
            Run::Killed => {
                self.kills[phase] += 1;
                true
            }
        };
        self.integrity_ok(path).await;
        killed
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
    let remote = Remote {
        url: server.url().to_owned(),
        token: server.token().map(str::to_owned),
    };
    let dir = tempfile::tempdir().unwrap();
    let (w, p, q) = (
        dir.path().join("writer.db"),
        dir.path().join("pusher.db"),
        dir.path().join("puller.db"),
    );
    // Create the server's tables first, so server-side checks can run
    // even when the first push is killed before it bootstraps the server.
    open(&dir.path().join("bootstrap.db"), &remote)
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
        match delays.run(&mut rng, &w, &remote, &["add", &title], &[]) {
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
    add_rows(&p, &remote, "push", 3_000, &mut pushed).await;
    let mut delays = Delays::new(120);
    for k in 0..iterations {
        n.sync_run(&mut delays, &mut rng, &p, &remote, 1, &[]).await;
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
        add_rows(&p, &remote, &format!("more {k}."), more, &mut pushed).await;
    }
    let pushed_ids: Vec<String> = pushed.keys().cloned().collect();
    acked.extend(pushed);

    // Pulls: kill mid-pull, in pages of PULL_PAGE_ROWS rows, while another
    // replica (the pusher's file, opened here) changes the server before
    // every run. After each run every server row at or below the cursor was
    // pulled as the server holds it (staged, or applied: the cursor never
    // runs ahead of the pulled rows; the replica's first pull keeps its rows
    // in the engine table out of the app's sight, and they count as
    // staged); the rows the app sees are a state the server had, whole
    // (what it held before the run, or the server's rows now: pages are
    // applied together once the pull caught up); after a finished run the
    // app sees exactly the server's rows and nothing is staged.
    let changer = open(&p, &remote).await;
    let mut ids: Vec<String> = pushed_ids;
    let mut delays = Delays::new(300);
    let env = [("ERTH_PULL_PAGE_ROWS", PULL_PAGE_ROWS)];
    let mut before = 0;
    let mut applied_before: BTreeMap<String, String> = BTreeMap::new();
    for k in 0..iterations {
        n.server_changes += change_server(&changer, &mut rng, k, &mut acked, &mut ids).await;
        let end = server_max_seq(&server).await;
        let killed = n
            .sync_run(&mut delays, &mut rng, &q, &remote, 2, &env)
            .await;
        if !has_schema(&q).await {
            continue;
        }
        let at = cursor(&q).await;
        let applied: BTreeMap<String, String> = replica_rows(&q)
            .await
            .into_iter()
            .map(|(id, (t, _))| (id, t))
            .collect();
        let staged = staged_rows(&q).await;
        let upto = server_rows(&server, Some(at)).await;
        for (id, title) in &upto {
            let have = staged.get(id).or_else(|| applied.get(id));
            assert_eq!(
                have,
                Some(title),
                "cursor {at}: row {id} at or below it is missing or stale"
            );
        }
        assert!(at <= end, "cursor {at} beyond the server's last _seq {end}");
        let now = server_rows(&server, None).await;
        assert!(
            applied == applied_before || applied == now,
            "the engine table holds part of a pull: {} rows, {} before the run, {} on the server",
            applied.len(),
            applied_before.len(),
            now.len()
        );
        if killed {
            if at > before && at < end {
                n.mid_pull_kills += 1;
            }
            if !staged.is_empty() {
                n.staged_kills += 1;
            }
        } else {
            assert_eq!(at, end, "a finished pull stopped short");
            assert_eq!(applied, now, "a finished pull differs from the server");
            assert!(
                staged.is_empty(),
                "a finished pull left {} rows staged",
                staged.len()
            );
        }
        before = at;
        applied_before = applied;
    }
    drop(changer);

    // Everyone finishes cleanly and converges.
    let dbs = [
        open(&w, &remote).await,
        open(&p, &remote).await,
        open(&q, &remote).await,
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
        "faults_crash: iterations {}, SIGKILLs {} (add {}, push {}, pull {}, of them mid-pull with work left {}, with pages staged {}), \
         server changes between pulls {}, adds acknowledged {} of {iterations}, \
         syncs completed {} (push) + {} (pull), integrity checks {} ok, acknowledged rows {}, \
         present on the server and every replica {}, killed adds that had committed {unacked_kept}, \
         phantom rows {phantoms}, lost {lost}, divergences {divergences} ({:.1} s)",
        iterations * 3,
        n.kills.iter().sum::<u32>(),
        n.kills[0],
        n.kills[1],
        n.kills[2],
        n.mid_pull_kills,
        n.staged_kills,
        n.server_changes,
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
        n.mid_pull_kills >= 5,
        "only {} pull runs were killed between pages with work left: the \
         pull phase did not test kills mid-pull",
        n.mid_pull_kills
    );
    assert!(
        n.adds_acked >= 3 && n.syncs_completed.iter().all(|&s| s >= 3),
        "too few runs finished to mean anything: {} adds, {:?} syncs",
        n.adds_acked,
        n.syncs_completed
    );
}
