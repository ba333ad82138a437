//! A participant written against the library (`saga_participants::Participant` and its
//! runtime), as a service author would: loyalty points granted by a saga and revoked by its
//! compensation. It keeps its own table and its own rules; the runtime gives it the inbox,
//! batching, replies, dead letters and tracing.

use saga_participants::admin::{Reply, Request};
use saga_participants::participant::{Error, Participant, payload, rejected, succeeded};
use saga_participants::store::Store;
use saga_participants::{Options, runtime};
use saga_protocol::{CommandEnvelope, CommandKind, Outcome, Timestamp};
use saga_testkit::NatsServer;
use serde_json::json;
use sqlx::{AnyConnection, Row};
use std::future::Future;
use std::path::Path;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const CATALOGUE: &str = r#"
[points.Grant]
kind = "forward"
input = { member = "string", points = "integer" }
output = { granted = "integer" }

[points.Revoke]
kind = "compensation"
undoes = "Grant"
output = { revoked = "integer" }
"#;

const TABLE: &str = "CREATE TABLE IF NOT EXISTS grants (
    effect_key TEXT PRIMARY KEY,
    member TEXT NOT NULL,
    points BIGINT NOT NULL,
    status TEXT NOT NULL
)";

#[derive(Clone)]
struct Points {
    store: Store,
}

#[derive(serde::Deserialize)]
struct Grant {
    member: String,
    points: i64,
}

impl Points {
    async fn apply_in(
        &self,
        tx: &mut AnyConnection,
        command: &CommandEnvelope,
    ) -> Result<Outcome, Error> {
        let key = command.effect_key.as_str();
        let row = sqlx::query("SELECT points, status FROM grants WHERE effect_key = $1")
            .bind(key)
            .fetch_optional(&mut *tx)
            .await?;
        let grant: Option<(i64, String)> = row.map(|r| (r.get(0), r.get(1)));
        match (command.command.as_str(), grant) {
            ("Grant", Some((points, status))) if status == "granted" => {
                Ok(succeeded(json!({ "granted": points })))
            }
            ("Grant", Some(_)) => Ok(rejected(format!("{key} was revoked before it was granted"))),
            ("Grant", None) => {
                let grant: Grant = match payload(command) {
                    Ok(grant) => grant,
                    Err(refusal) => return Ok(refusal),
                };
                if grant.points <= 0 {
                    return Ok(rejected("points must be positive"));
                }
                sqlx::query("INSERT INTO grants (effect_key, member, points, status) VALUES ($1, $2, $3, 'granted')")
                    .bind(key)
                    .bind(grant.member)
                    .bind(grant.points)
                    .execute(&mut *tx)
                    .await?;
                Ok(succeeded(json!({ "granted": grant.points })))
            }
            ("Revoke", None) => {
                sqlx::query("INSERT INTO grants (effect_key, member, points, status) VALUES ($1, '', 0, 'revoked')")
                    .bind(key)
                    .execute(&mut *tx)
                    .await?;
                Ok(succeeded(json!({ "revoked": 0 })))
            }
            ("Revoke", Some((points, status))) => {
                if status == "granted" {
                    sqlx::query("UPDATE grants SET status = 'revoked' WHERE effect_key = $1")
                        .bind(key)
                        .execute(&mut *tx)
                        .await?;
                }
                Ok(succeeded(json!({ "revoked": points })))
            }
            (other, _) => Ok(rejected(format!("no command {other}"))),
        }
    }
}

impl Participant for Points {
    const NAME: &'static str = "points";
    const COMMANDS: &'static [(&'static str, CommandKind)] = &[
        ("Grant", CommandKind::Forward),
        ("Revoke", CommandKind::Compensation),
    ];

    fn store(&self) -> &Store {
        &self.store
    }

    fn apply<'a>(
        &'a self,
        tx: &'a mut AnyConnection,
        command: &'a CommandEnvelope,
        _now: Timestamp,
    ) -> impl Future<Output = Result<Outcome, Error>> + Send + 'a {
        self.apply_in(tx, command)
    }

    async fn admin(&self, _request: Request) -> Result<Reply, Error> {
        Ok(Reply::Error("points answers no admin requests".into()))
    }
}

pub struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), runtime::Error>>,
}

impl Running {
    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}

/// Runs the points participant on the library's runtime, as identity `points`, until stopped.
pub async fn start(nats: &NatsServer, dir: &Path) -> Running {
    let database_url = format!("sqlite:{}?mode=rwc", dir.join("points.db").display());
    let store = Store::open(&database_url, 2).await.unwrap();
    sqlx::query(TABLE).execute(store.pool()).await.unwrap();
    store.close().await;
    let options = Options {
        nats_url: nats.url(),
        nats_nkey: nats.identities().nkey("points"),
        nats_ca: nats.identities().ca(),
        database_url,
        ..Options::default()
    };
    let (ready_tx, ready) = oneshot::channel();
    let (stop, stopped) = oneshot::channel::<()>();
    let shutdown = async move {
        let _ = stopped.await;
    };
    let task = tokio::spawn(runtime::run(
        |store| Points { store },
        options,
        shutdown,
        ready_tx,
    ));
    ready.await.expect("the points participant is ready");
    Running { stop, task }
}
