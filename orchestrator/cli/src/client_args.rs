//! The arguments of the client commands: they talk to a running orchestrator's API (or, for
//! `dlq` and `account`, to NATS), and `validate` and `bench`.

use crate::NatsAuth;
use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct OperatorArgs {
    /// Saga id.
    pub id: String,
    /// Why: recorded in the saga's history.
    #[arg(long)]
    pub reason: String,
    /// Who: recorded in the saga's history when the API authenticates no one (with API
    /// tokens, the token's caller is recorded instead).
    #[arg(long, env = "USER", default_value = "operator")]
    pub by: String,
    #[command(flatten)]
    pub server: ServerArg,
}

#[derive(Debug, Args)]
pub struct SignalArgs {
    /// Saga id.
    pub id: String,
    /// The signal's name, as the definition's await step names it (e.g. `approval`).
    pub name: String,
    /// The signal's payload: a JSON object with the fields the definition's [step.signal]
    /// declares.
    #[arg(long, default_value = "{}")]
    pub payload: String,
    #[command(flatten)]
    pub server: ServerArg,
}

#[derive(Debug, Args)]
pub struct DefinitionsArgs {
    #[command(subcommand)]
    pub action: Option<DefinitionsAction>,
    #[command(flatten)]
    pub server: ServerArg,
}

#[derive(Debug, Subcommand)]
pub enum DefinitionsAction {
    /// Retire a version with no saga in flight: it can no longer be started, and the
    /// history of its sagas stays readable.
    Retire {
        /// Saga definition name, e.g. place_order.
        name: String,
        /// The version to retire.
        #[arg(id = "definition_version", value_name = "VERSION")]
        version: u32,
        #[command(flatten)]
        server: ServerArg,
    },
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Definition files, or directories of them.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// The participants catalogue (default: participants.toml beside the definitions).
    #[arg(long)]
    pub catalogue: Option<PathBuf>,
    /// `text` for people, `json` for tools.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub format: Output,
    /// Then simulate every valid definition (see `saga simulate`), `--seeds` schedules each.
    #[arg(long)]
    pub simulate: bool,
    /// Schedules per definition with `--simulate`.
    #[arg(long, default_value_t = 1_000, requires = "simulate")]
    pub seeds: u64,
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Definition files, or directories of them.
    #[arg(default_value = "sagas")]
    pub paths: Vec<PathBuf>,
    /// Schedules per definition: seeds `--seed` to `--seed + --seeds - 1`.
    #[arg(long, default_value_t = 10_000)]
    pub seeds: u64,
    /// The first seed (with `--replay`, the seed of the schedule).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Faults to inject: `all`, `none`, or some of lose, duplicate, reorder, delay, crash,
    /// refuse, fail (comma-separated).
    #[arg(long, default_value = "all")]
    pub faults: saga_core::simulate::Faults,
    /// Run one schedule again, event by event: the one a failure printed (`3:998,7:1`), of
    /// `--seed`, on one definition.
    #[arg(long, conflicts_with = "trace")]
    pub replay: Option<saga_core::simulate::Schedule>,
    /// Run the schedule of `--seed` alone, event by event, on one definition.
    #[arg(long)]
    pub trace: bool,
    /// The saga input as JSON (default: made up from the declared fields).
    #[arg(long)]
    pub input: Option<String>,
    /// The participants catalogue (default: participants.toml beside the definitions).
    #[arg(long)]
    pub catalogue: Option<PathBuf>,
    /// `text` for people, `json` for tools.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub format: Output,
}

#[derive(Debug, Args)]
pub struct ConformanceArgs {
    /// The participant to check: the second token of its command subjects.
    #[arg(long)]
    pub participant: String,
    /// NATS server URL.
    #[arg(long, env = "SAGA_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats: String,
    /// As the conformance identity (`conformance.nk` of `saga nats credentials --conformance`).
    #[command(flatten)]
    pub nats_auth: crate::NatsAuth,
    /// The participants catalogue listing its commands.
    #[arg(
        long,
        env = "SAGA_CATALOGUE",
        default_value = "sagas/participants.toml"
    )]
    pub catalogue: PathBuf,
    /// A command's payload, `Command=JSON` (default: made up from its declared input); give
    /// one that the participant applies to check retries too. Repeatable.
    #[arg(long = "payload", value_parser = crate::conformance::parse_payload)]
    pub payloads: Vec<(String, serde_json::Value)>,
    /// How long to wait for each reply or dead letter.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
    /// `text` for people, `json` for tools.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// NATS for an operator's command: the server, and the admin identity to be there.
#[derive(Debug, Args)]
pub struct AdminNats {
    /// NATS server URL.
    #[arg(
        long,
        global = true,
        env = "SAGA_NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    pub nats: String,
    /// As the admin identity (`admin.nk` of `saga nats credentials`).
    #[command(flatten)]
    pub nats_auth: NatsAuth,
}

#[derive(Debug, Args)]
pub struct DlqArgs {
    #[command(subcommand)]
    pub action: DlqAction,
    #[command(flatten)]
    pub admin: AdminNats,
}

#[derive(Debug, Subcommand)]
pub enum DlqAction {
    /// List dead letters with why and where they came from.
    List {
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Publish a dead letter to its original subject again and remove it.
    Replay { sequence: u64 },
}

/// Where the orchestrator's API is.
#[derive(Debug, Clone, Args)]
pub struct ServerArg {
    /// Base URL of the orchestrator's HTTP API.
    #[arg(long, env = "SAGA_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// Bearer token of the API, when it requires one.
    #[arg(long, env = "SAGA_API_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct BenchCommand {
    #[command(flatten)]
    pub bench: saga_bench::BenchArgs,
    /// `text`: progress, a summary table, then the JSON line; `json`: only the JSON line.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct StartArgs {
    /// Saga definition name, e.g. place_order.
    pub saga: String,
    /// Saga input as a JSON object.
    #[arg(long)]
    pub input: String,
    /// Same key, same saga: a retried start does not start a second one.
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// Definition version to run (default: the newest loaded).
    #[arg(long)]
    pub definition_version: Option<u32>,
    /// Wait until the saga is completed, compensated or stuck, then print it.
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits (e.g. 30s).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
    #[command(flatten)]
    pub server: ServerArg,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Saga id.
    pub id: String,
    /// Follow the saga: print each change until it is completed, compensated, stuck or aborted.
    #[arg(long)]
    pub watch: bool,
    /// Show the saga as it was after this event (time travel).
    #[arg(long, conflicts_with = "watch")]
    pub as_of_sequence: Option<u64>,
    #[command(flatten)]
    pub server: ServerArg,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only these statuses (repeat or separate by commas): running, compensating, completed,
    /// compensated, stuck, aborted.
    #[arg(long, value_delimiter = ',')]
    pub status: Vec<String>,
    /// Only sagas of this definition.
    #[arg(long)]
    pub name: Option<String>,
    /// Only this definition version.
    #[arg(long)]
    pub definition_version: Option<u32>,
    /// Only sagas whose input has this top-level field value, e.g. customer_id=alice.
    #[arg(long, value_name = "FIELD=VALUE")]
    pub input: Option<String>,
    /// Created at or after (RFC 3339, e.g. 2026-11-23T18:00:00Z).
    #[arg(long)]
    pub from: Option<String>,
    /// Created before (RFC 3339).
    #[arg(long)]
    pub until: Option<String>,
    /// At most this many (1 to 1000).
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Continue after the previous page (its `next` cursor).
    #[arg(long)]
    pub cursor: Option<String>,
    #[command(flatten)]
    pub server: ServerArg,
}

#[derive(Debug, Args)]
pub struct SagaRef {
    /// Saga id.
    pub id: String,
    #[command(flatten)]
    pub server: ServerArg,
}

#[derive(Debug, Args)]
pub struct ProjectionsArgs {
    #[command(subcommand)]
    pub action: ProjectionsAction,
    #[command(flatten)]
    pub server: ServerArg,
    /// The participants' projections are reached over NATS.
    #[command(flatten)]
    pub admin: AdminNats,
}

/// A read model rebuilt from its log: the orchestrator's, or a participant's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProjectionName {
    /// The orchestrator's `sagas` and `saga_tags` rows (status, version, timer, tags).
    Sagas,
    /// The account participant's `accounts` rows (balances, version).
    Accounts,
    /// The order participant's `orders` rows (customer, amount, status).
    Orders,
}

#[derive(Debug, Subcommand)]
pub enum ProjectionsAction {
    /// Compare read models with the fold of their logs and list every difference; exits
    /// non-zero if there is one. Changes nothing.
    Verify {
        /// The projections to check (all three when none is named).
        #[arg(value_enum)]
        names: Vec<ProjectionName>,
        /// Keys per request, 1 to 5000.
        #[arg(long, default_value_t = 500)]
        limit: u32,
    },
    /// Rewrite the rows of a projection that differ from the fold of their logs, page by
    /// page, while the system runs. Interrupted, it resumes with `--after`.
    Rebuild {
        #[arg(value_enum)]
        name: ProjectionName,
        /// Start after this key (the last one a stopped rebuild printed).
        #[arg(long)]
        after: Option<String>,
        /// Keys per request, 1 to 5000.
        #[arg(long, default_value_t = 500)]
        limit: u32,
    },
}

#[derive(Debug, Args)]
pub struct AccountArgs {
    #[command(subcommand)]
    pub action: AccountAction,
    /// Accounts are managed through the account participant, over NATS.
    #[command(flatten)]
    pub admin: AdminNats,
}

#[derive(Debug, Args)]
pub struct InventoryArgs {
    #[command(subcommand)]
    pub action: InventoryAction,
    /// Shows are managed through the inventory participant, over NATS.
    #[command(flatten)]
    pub admin: AdminNats,
}

#[derive(Debug, Subcommand)]
pub enum InventoryAction {
    /// Add a show with its seats (idempotent: an existing show is left as it is).
    AddShow {
        show_id: String,
        #[arg(long)]
        capacity: i64,
    },
    /// Every show's seats: free, held by reservations, sold.
    Shows,
}

#[derive(Debug, Args)]
pub struct NatsArgs {
    #[command(subcommand)]
    pub action: NatsAction,
}

#[derive(Debug, Args)]
pub struct ApiArgs {
    #[command(subcommand)]
    pub action: ApiAction,
}

#[derive(Debug, Subcommand)]
pub enum ApiAction {
    /// Make a bearer token for a named caller of the API with a role, print it (once, on
    /// standard output) and write its SHA-256 into the tokens file; send SIGHUP to a running
    /// orchestrator to take it.
    Token {
        /// The caller's name: recorded as who performed its operator actions.
        #[arg(long)]
        name: String,
        /// read (status, history, search), operate (and start, retry, skip, abort) or admin
        /// (and reload and retire definitions).
        #[arg(long)]
        role: saga_orchestrator::api::Role,
        /// The tokens file (the orchestrator's --api-tokens); created if missing.
        #[arg(long, env = "SAGA_API_TOKENS")]
        tokens: std::path::PathBuf,
        /// Replace the caller's token if it has one: a rotation (the old token stops working
        /// when the orchestrator reloads the file).
        #[arg(long)]
        replace: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum NatsAction {
    /// Generate an NKey per identity (orchestrator, admin, each participant) and the
    /// nats-server `authorization` block that grants each only what its role needs.
    Credentials {
        /// Directory to write `{identity}.nk` (the secret seeds) and `auth.conf` into.
        #[arg(long)]
        out: std::path::PathBuf,
        /// Participants to make identities for.
        #[arg(long = "participant", default_values_t = ["account".to_string(), "order".to_string(), "inventory".to_string()])]
        participants: Vec<String>,
        /// Host names and addresses the server certificate is valid for (the names clients
        /// and route peers reach the servers by).
        #[arg(long = "tls-host", default_values_t = ["localhost".to_string(), "127.0.0.1".to_string()])]
        tls_hosts: Vec<String>,
        /// Also the identity of `saga conformance` (`conformance.nk`), for a test system:
        /// it may publish any command and hear every reply.
        #[arg(long)]
        conformance: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AccountAction {
    /// Open an account (idempotent), optionally with a first deposit.
    Open {
        customer_id: String,
        #[arg(long, default_value_t = 0)]
        deposit: i64,
    },
    /// Deposit into an account; the operation id makes a retried deposit apply once.
    Deposit {
        customer_id: String,
        amount: i64,
        #[arg(long)]
        operation_id: Option<String>,
    },
    /// Show an account's balance, or every account's without an id.
    Balance { customer_id: Option<String> },
    /// Show an account's passbook: each entry with the balance after it, when it occurred and
    /// when it was booked, and the correction notices of entries booked after their period
    /// closed.
    Statement {
        customer_id: String,
        /// occurred: in the order things happened, late entries backfilled; booked: in the
        /// order they were booked, as reported at the time.
        #[arg(long, default_value = "occurred")]
        by: saga_participants::account::passbook::Clock,
        /// From this time on, by the chosen clock (RFC 3339, e.g. 2026-12-01T00:00:00Z).
        #[arg(long, value_parser = rfc3339)]
        from: Option<saga_protocol::Timestamp>,
        /// Before this time (RFC 3339).
        #[arg(long, value_parser = rfc3339)]
        to: Option<saga_protocol::Timestamp>,
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
}

/// An RFC 3339 time, as a timestamp.
fn rfc3339(text: &str) -> Result<saga_protocol::Timestamp, String> {
    let at = humantime::parse_rfc3339_weak(text)
        .map_err(|e| format!("{e}: give an RFC 3339 time such as 2026-12-01T00:00:00Z"))?;
    let millis = at
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| format!("{text} is before 1970"))?
        .as_millis();
    Ok(saga_protocol::Timestamp(
        i64::try_from(millis).map_err(|e| e.to_string())?,
    ))
}
