use sqlx::migrate::Migrator;
static SQLITE: Migrator = sqlx::migrate!("migrations/sqlite");
static PG: Migrator = sqlx::migrate!("migrations/postgres");

#[tokio::test]
async fn opens_sqlite_and_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("x.db").display());
    let (pool, _) = saga_participants::db::connect(&url, 2, &SQLITE, &PG)
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM placeholder")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 0);
    let pg = saga_testkit::Postgres::start().unwrap();
    let (pool, _) = saga_participants::db::connect(&pg.url(), 2, &SQLITE, &PG)
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM placeholder")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 0);
}
