//! The server's guard (`Config::server_guard`): triggers installed at
//! bootstrap by a token that may change the schema; afterwards every token
//! (the proxy plays one that may not change the schema) can do no more than
//! honest clocked writes. A hostile client's attacks are refused by the
//! real server, while honest replicas, syncing with the guard on through
//! network faults, keep converging to exactly the ledger.

#![allow(clippy::unwrap_used)] // test code

mod common;

use erth_core::Config;
use erth_tests::{hrana, FaultProxy, Faults, TestServer};
use rand::Rng;

#[tokio::test]
async fn a_guarded_server_refuses_every_attack_and_honest_replicas_converge() {
    let seed = common::seed();
    println!("faults_guard: seed {seed} (replay with ERTH_FAULTS_SEED={seed})");
    let mut rng = common::rng(seed);
    let server = TestServer::start().await.unwrap();
    let guarded = Config {
        server_guard: true,
        ..Config::default()
    };
    let dir = tempfile::tempdir().unwrap();
    // An administrator's replica installs the guard (its token may change the schema).
    let admin = common::open(
        dir.path(),
        "admin",
        server.url(),
        server.token(),
        guarded.clone(),
    )
    .await;
    let seeded = admin.add_todo("seeded by the admin").await.unwrap();
    admin.sync().await.unwrap();
    // From now on, every token is one that may not change the schema.
    let proxy = FaultProxy::start(server.url(), seed).await.unwrap();
    proxy.deny_schema_changes(true);
    proxy.set_faults(Faults {
        drop_response: 0.05,
        reset: 0.03,
        status_5xx: 0.03,
        ..Faults::none()
    });
    let fleet = common::open_fleet(dir.path(), 3, proxy.url(), server.token(), &guarded).await;
    let mut known: Vec<Vec<String>> = vec![Vec::new(); fleet.len()];
    let mut ledger = common::Ledger::default();
    ledger
        .record_add(&admin, &seeded.id, "seeded by the admin")
        .await;
    let attacker = |sql: String| {
        let url = proxy.url().to_owned();
        let token = server.token().map(str::to_owned);
        async move { hrana::execute(&url, token.as_deref(), &[sql.as_str()]).await }
    };
    let id = &seeded.id;
    let attacks = [
        ("a clock that freezes a column", format!("UPDATE todos SET title = 'pwned', _clk_title = 'ffffffffffffffff-0000000000000001', _seq = _seq + 1000 WHERE id = '{id}'")),
        ("the counter rewound", "UPDATE _erth_meta SET v = 0 WHERE k = 'seq'".to_owned()),
        ("a new server identity", "UPDATE _erth_meta SET v = v + 1 WHERE k = 'db_id'".to_owned()),
        ("the bookkeeping deleted", "DELETE FROM _erth_meta".to_owned()),
        ("an invalid row planted", "INSERT INTO todos (id, title, is_completed, is_deleted, created_at, updated_at, _clk_title, _clk_is_completed, _clk_is_deleted, _seq, _dirty) VALUES ('not-an-id', 't', 0, 0, 1, 1, '0000000000010000-0000000000000001', '0000000000010000-0000000000000001', '0000000000010000-0000000000000001', 1000000, 0)".to_owned()),
        ("a deleted row brought back", format!("UPDATE todos SET is_deleted = 0, _seq = _seq + 1000 WHERE is_deleted = 1 OR id = '{id}'")),
        ("a clock turned back", format!("UPDATE todos SET _clk_title = '0000000000000001-0000000000000000', _seq = _seq + 1000 WHERE id = '{id}'")),
        ("rows deleted", "DELETE FROM todos".to_owned()),
        ("the table dropped", "DROP TABLE todos".to_owned()),
        ("the guard dropped", "DROP TRIGGER \"_erth_guard_v1_todos_update\"".to_owned()),
    ];
    let rounds = 40 * common::scale();
    let mut refused = 0;
    for round in 0..rounds {
        for (r, db) in fleet.iter().enumerate() {
            for _ in 0..rng.random_range(0..3) {
                common::random_op(&mut rng, db, &mut known[r], &mut ledger).await;
            }
        }
        if round % 4 == 0 {
            let (what, sql) = &attacks[(round / 4) % attacks.len()];
            proxy.set_faults(Faults::none());
            let outcome = attacker(sql.clone()).await;
            assert!(outcome.is_err(), "{what}: the server took it");
            refused += 1;
            proxy.set_faults(Faults {
                drop_response: 0.05,
                reset: 0.03,
                status_5xx: 0.03,
                ..Faults::none()
            });
        }
        let s = rng.random_range(0..fleet.len());
        let _ = fleet[s].sync().await;
    }
    proxy.set_faults(Faults::none());
    let mut all: Vec<&erth_core::Database> = fleet.iter().collect();
    all.push(&admin);
    for _ in 0..2 {
        for db in &all {
            db.sync().await.unwrap();
        }
    }
    let divergences = common::check(&all, &ledger).await;
    println!(
        "faults_guard: rounds {rounds}, attacks refused by the server {refused}/{refused}, honest writes {}, divergences {divergences}",
        ledger.ops
    );
    assert_eq!(divergences, 0);
    assert!(refused >= attacks.len(), "not every attack was tried");
    assert_ne!(admin.get_todo(id).await.unwrap().title, "pwned");
    for db in &all {
        let status = db.status().await.unwrap();
        assert_eq!(
            (status.rejected, status.quarantined),
            (0, 0),
            "honest rows were refused"
        );
    }
}
