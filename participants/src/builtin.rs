//! The participants of this crate by [`Kind`], for the `saga participant` command: the
//! only place that names them, on top of the generic [`runtime`](crate::runtime).
//!
//! ```no_run
//! # async fn demo() -> Result<(), saga_participants::Error> {
//! use saga_participants::{Kind, Options, run};
//!
//! let options = Options { database_url: "sqlite:account.db".into(), ..Options::default() };
//! run(Kind::Account, options, async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```

use crate::participant::Participant;
use crate::runtime::{self, Error};
use crate::{Kind, Options, account::Account, inventory::Inventory, order::Orders};
use saga_protocol::CommandKind;
use std::future::Future;
use tokio::sync::oneshot;

/// Runs participant `kind` until `shutdown` resolves (see [`runtime::run`]).
pub async fn run(
    kind: Kind,
    options: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let (ready, _) = oneshot::channel();
    run_with_ready(kind, options, shutdown, ready).await
}

/// Like [`run`], and sends on `ready` once the consumer and the admin subscription exist:
/// from then on, published commands are handled.
pub async fn run_with_ready(
    kind: Kind,
    options: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
    ready: oneshot::Sender<()>,
) -> Result<(), Error> {
    match kind {
        Kind::Account => {
            let periods = options.statement_periods();
            let account = move |store| Account::new(store).with_periods(periods);
            runtime::run(account, options, shutdown, ready).await
        }
        Kind::Order => {
            let limit = options.review_limit;
            let orders = move |store| Orders::new(store, limit);
            runtime::run(orders, options, shutdown, ready).await
        }
        Kind::Inventory => runtime::run(Inventory::new, options, shutdown, ready).await,
    }
}

/// The commands participant `kind` implements, each with the kind it must be sent as (to
/// check against the participants catalogue).
pub fn commands(kind: Kind) -> &'static [(&'static str, CommandKind)] {
    match kind {
        Kind::Account => Account::COMMANDS,
        Kind::Order => Orders::COMMANDS,
        Kind::Inventory => Inventory::COMMANDS,
    }
}
