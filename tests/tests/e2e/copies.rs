//! Copies of JetStream messages, injected as a network that duplicates and delays would, and
//! accounted for, so that a test proves each copy was stored, delivered and absorbed instead
//! of hoping so.
//!
//! JetStream drops a message whose `Nats-Msg-Id` it has seen within its two-minute window, so
//! a copy under the original's id would never reach anyone. Each copy is published under an
//! id of its own (`{id}.copy{n}`) with the payload unchanged: the envelope's message id, which
//! is the participant's inbox key, stays the original's. A copy whose publish fails is
//! published again, under the same copy id (so a retry whose first try was stored after all
//! cannot store it twice), until JetStream acknowledges it or `retry_for` has passed; a copy
//! never stored is an error the test fails on.
//!
//! ```ignore
//! let tally = Tally::shared();
//! let copier = Copier::start(client, "saga.cmd.>", Options::immediate(), &tally).await;
//! // … run sagas …
//! copier.finish().await;
//! let tally = tally.lock().unwrap();
//! tally.assert_complete(2);
//! assert_absorbed(&system, &tally, &HashMap::new()).await;
//! ```

use crate::system::{Service, System};
use async_nats::jetstream;
use futures::StreamExt;
use saga_testkit::wait_for;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::task::JoinSet;

/// Marks a copy, so that copiers do not copy copies.
const COPY_HEADER: &str = "Saga-Test-Copy";

/// How a copier copies.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Copies of each original.
    pub copies: u64,
    /// The delay before copy `n` of the original with `Nats-Msg-Id` `id`.
    pub delay: fn(id: &str, n: u64) -> Duration,
    /// How long a copy may keep failing to be stored (a nats-server restarting) before that
    /// is an error. Zero: the first failure is one.
    pub retry_for: Duration,
}

impl Options {
    /// Two copies of each message at once; any publish error fails the test.
    pub fn immediate() -> Self {
        Options {
            copies: 2,
            delay: |_, _| Duration::ZERO,
            retry_for: Duration::ZERO,
        }
    }
}

/// One copy JetStream stored.
#[derive(Debug, Clone)]
pub struct Stored {
    pub subject: String,
    /// When its first publish began: a process that was dead by then cannot have seen it.
    pub since: Instant,
}

/// What copiers saw and did. Copiers of one subject may share one (copies of an original
/// are counted once however many copiers published them).
#[derive(Debug, Default)]
pub struct Tally {
    /// Originals seen, by `Nats-Msg-Id`, with their subject.
    pub originals: HashMap<String, String>,
    /// Copies JetStream acknowledged, by copy id.
    pub stored: HashMap<String, Stored>,
    /// Publishes that failed and were tried again.
    pub retried: u64,
    /// What could not be copied: an original without a `Nats-Msg-Id`, a copy never stored.
    pub errors: Vec<String>,
}

pub type SharedTally = Arc<Mutex<Tally>>;

impl Tally {
    pub fn shared() -> SharedTally {
        Arc::new(Mutex::new(Tally::default()))
    }

    /// Fails unless every original seen has its `copies` copies stored and nothing failed.
    pub fn assert_complete(&self, copies: u64) {
        assert!(
            self.errors.is_empty(),
            "{} copies failed, e.g. {:?}",
            self.errors.len(),
            &self.errors[..self.errors.len().min(5)]
        );
        let missing: Vec<String> = self
            .originals
            .keys()
            .flat_map(|id| (1..=copies).map(move |n| copy_id(id, n)))
            .filter(|copy| !self.stored.contains_key(copy))
            .take(5)
            .collect();
        assert!(missing.is_empty(), "copies not stored: {missing:?}");
    }

    /// Stored copies of commands, by (participant, command), whose first publish began after
    /// `since`'s instant for that participant (all of them for a participant not in `since`).
    pub fn commands(&self, since: &HashMap<Service, Instant>) -> BTreeMap<(String, String), u64> {
        let mut out = BTreeMap::new();
        for stored in self.stored.values() {
            let mut parts = stored.subject.split('.');
            let (Some("saga"), Some("cmd"), Some(participant), Some(command)) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let after = since
                .iter()
                .find(|(s, _)| s.name() == participant)
                .is_none_or(|(_, at)| stored.since > *at);
            if after {
                *out.entry((participant.to_string(), command.to_string()))
                    .or_default() += 1;
            }
        }
        out
    }
}

fn copy_id(id: &str, n: u64) -> String {
    format!("{id}.copy{n}")
}

/// Copies every message published on a subject, in a task of its own.
pub struct Copier {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
    deadline: Duration,
}

impl Copier {
    /// Subscribes to `subject` (core NATS, so it sees each message as it is published) and
    /// copies each original into JetStream as `options` say, counting into `tally`.
    pub async fn start(
        client: async_nats::Client,
        subject: &str,
        options: Options,
        tally: &SharedTally,
    ) -> Copier {
        let mut sub = client
            .subscribe(subject.to_string())
            .await
            .expect("subscribe the copier");
        let js = jetstream::new(client);
        let tally = tally.clone();
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            let mut copies = JoinSet::new();
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    msg = sub.next() => match msg {
                        Some(msg) => copy(&js, msg, options, &tally, &mut copies),
                        None => break,
                    },
                    Some(done) = copies.join_next(), if !copies.is_empty() => {
                        if let Err(e) = done {
                            tally.lock().unwrap().errors.push(format!("copy task: {e}"));
                        }
                    }
                }
            }
            // The copies in hand are finished, not dropped: an original counted as seen has
            // all its copies stored or an error said.
            while let Some(done) = copies.join_next().await {
                if let Err(e) = done {
                    tally.lock().unwrap().errors.push(format!("copy task: {e}"));
                }
            }
        });
        // Longest a copy in hand can take: its delay (at most a few seconds here), then its
        // publish retries, then one publish ack timeout.
        let deadline = options.retry_for + Duration::from_secs(30);
        Copier {
            stop,
            task,
            deadline,
        }
    }

    /// Stops copying new originals and waits for the copies in hand to be stored or fail.
    pub async fn finish(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(self.deadline, self.task)
            .await
            .expect("the copier to finish its copies")
            .expect("the copier task");
    }
}

/// Spawns the copies of `msg` into `copies`, unless it is a copy itself.
fn copy(
    js: &jetstream::Context,
    msg: async_nats::Message,
    options: Options,
    tally: &SharedTally,
    copies: &mut JoinSet<()>,
) {
    let headers = msg.headers.clone().unwrap_or_default();
    if headers.get(COPY_HEADER).is_some() {
        return;
    }
    let subject = msg.subject.to_string();
    let Some(id) = headers
        .get(saga_protocol::headers::NATS_MSG_ID)
        .map(|v| v.to_string())
    else {
        // The design sends every command and reply with one; copies of one without it would
        // all share an id and JetStream would drop them.
        tally
            .lock()
            .unwrap()
            .errors
            .push(format!("a message on {subject} has no Nats-Msg-Id"));
        return;
    };
    tally
        .lock()
        .unwrap()
        .originals
        .insert(id.clone(), subject.clone());
    for n in 1..=options.copies {
        let (js, tally, payload) = (js.clone(), tally.clone(), msg.payload.clone());
        let delay = (options.delay)(&id, n);
        let (id, subject) = (copy_id(&id, n), subject.clone());
        copies.spawn(async move {
            tokio::time::sleep(delay).await;
            let since = Instant::now();
            let give_up = since + options.retry_for;
            loop {
                let publish = jetstream::message::PublishMessage::build()
                    .payload(payload.clone())
                    .message_id(id.as_str())
                    .header(COPY_HEADER, n.to_string().as_str());
                let stored = async { js.send_publish(subject.clone(), publish).await?.await };
                match stored.await {
                    // `duplicate` means an earlier try (or another copier) stored it: it is
                    // in the stream once either way.
                    Ok(_ack) => {
                        let mut tally = tally.lock().unwrap();
                        let entry = tally.stored.entry(id).or_insert(Stored { subject, since });
                        entry.since = entry.since.min(since);
                        return;
                    }
                    Err(_) if Instant::now() < give_up => {
                        tally.lock().unwrap().retried += 1;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Err(e) => {
                        tally
                            .lock()
                            .unwrap()
                            .errors
                            .push(format!("copy {id} on {subject}: {e}"));
                        return;
                    }
                }
            }
        });
    }
}

/// Waits until each participant's inbox has counted, for every command, at least as many
/// duplicates (`saga_participant_duplicates_total`) as copies of it were stored, and fails
/// after two minutes with the counts. Only copies published after the participant's last
/// SIGKILL (`since`) count: the counter starts again with each process, and a copy stored
/// after the kill can only have reached the process running now.
///
/// At least, not exactly: a redelivery (an ack lost in a kill) is a duplicate too. Each stored
/// copy is delivered (the consumer is durable) and either finds its message id in the inbox,
/// or came before the original, which then finds it: so copies ≤ duplicates. Returns the
/// (copies, duplicates) of each (participant, command).
pub async fn assert_absorbed(
    system: &System,
    tally: &Tally,
    since: &HashMap<Service, Instant>,
) -> BTreeMap<(String, String), (u64, f64)> {
    let expected = tally.commands(since);
    assert!(
        expected.values().sum::<u64>() > 0,
        "no copy of a command was stored for a participant to absorb"
    );
    let counts = || async {
        let mut text = HashMap::new();
        for service in [Service::Account, Service::Order] {
            text.insert(service.name(), system.metrics(service).await);
        }
        expected
            .iter()
            .map(|((participant, command), copies)| {
                let labels = [("participant", participant.as_str()), ("command", command)];
                let duplicates = crate::telemetry::sample(
                    &text[participant.as_str()],
                    "saga_participant_duplicates_total",
                    &labels,
                )
                .unwrap_or(0.0);
                (
                    (participant.clone(), command.clone()),
                    (*copies, duplicates),
                )
            })
            .collect::<BTreeMap<_, _>>()
    };
    let absorbed = wait_for(
        "every stored copy to be counted as a duplicate",
        Duration::from_secs(120),
        || async {
            let counts = counts().await;
            counts
                .values()
                .all(|(copies, duplicates)| *duplicates >= *copies as f64)
                .then_some(counts)
        },
    )
    .await;
    match absorbed {
        Ok(counts) => counts,
        Err(e) => panic!(
            "{e}: (copies, duplicates) {:?}\n{}",
            counts().await,
            system.logs()
        ),
    }
}
