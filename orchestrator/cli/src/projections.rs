//! `saga projections verify [sagas|accounts|orders]…` and `saga projections rebuild <name>`:
//! the read models compared with the fold of their logs, and rebuilt from them.
//!
//! `sagas` is the orchestrator's (over its HTTP API: `GET /v1/projections/sagas`, `POST
//! /v1/projections/sagas/rebuild`); `accounts` and `orders` are the participants' (over NATS
//! admin requests). Every projection is walked page by page by key; a rebuild prints the
//! last key of each page, so one that was stopped resumes with `--after` that key.

use super::client::{call, http};
use super::{Error, Output, ProjectionName, ProjectionsAction, ProjectionsArgs};
use saga_participants::admin::{self, Difference, ProjectionPage};
use std::process::ExitCode;

pub async fn run(args: ProjectionsArgs) -> Result<ExitCode, Error> {
    let mut walker = Walker {
        args: &args,
        nats: None,
    };
    match &args.action {
        ProjectionsAction::Verify { names, limit } => {
            let names = if names.is_empty() {
                vec![
                    ProjectionName::Sagas,
                    ProjectionName::Accounts,
                    ProjectionName::Orders,
                ]
            } else {
                names.clone()
            };
            let mut differences = Vec::new();
            for name in names {
                let (checked, _, found) = walker.walk(name, false, None, *limit).await?;
                summary(name, checked, None, found.len(), args.server.output);
                differences.extend(found.into_iter().map(|d| (name, d)));
            }
            print_differences(&differences, args.server.output);
            Ok(if differences.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        ProjectionsAction::Rebuild { name, after, limit } => {
            let (checked, rebuilt, mended) =
                walker.walk(*name, true, after.clone(), *limit).await?;
            summary(
                *name,
                checked,
                Some(rebuilt),
                mended.len(),
                args.server.output,
            );
            let unreadable = mended.iter().filter(|d| d.field == "log").count();
            let mended: Vec<_> = mended.into_iter().map(|d| (*name, d)).collect();
            print_differences(&mended, args.server.output);
            if unreadable > 0 {
                eprintln!(
                    "{unreadable} log(s) cannot be folded (field `log`): their rows were left as they are"
                );
                return Ok(ExitCode::FAILURE);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Walks projections page by page, connecting to NATS the first time a participant's is asked.
struct Walker<'a> {
    args: &'a ProjectionsArgs,
    nats: Option<async_nats::Client>,
}

impl Walker<'_> {
    /// Every page of `name` after `after`: keys checked, rows rebuilt, differences found.
    async fn walk(
        &mut self,
        name: ProjectionName,
        rebuild: bool,
        mut after: Option<String>,
        limit: u32,
    ) -> Result<(u64, u64, Vec<Difference>), Error> {
        let (mut checked, mut rebuilt, mut differences) = (0, 0, Vec::new());
        loop {
            let page = self.page(name, rebuild, after.clone(), limit).await?;
            checked += page.checked;
            rebuilt += page.rebuilt;
            differences.extend(page.differences);
            if rebuild && let Some(next) = &page.next {
                // On standard error, so that a stopped rebuild says where to resume.
                eprintln!(
                    "{}: {checked} checked, {rebuilt} rebuilt, up to {next} (resume with --after {next})",
                    label(name)
                );
            }
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok((checked, rebuilt, differences)),
            }
        }
    }

    async fn page(
        &mut self,
        name: ProjectionName,
        rebuild: bool,
        after: Option<String>,
        limit: u32,
    ) -> Result<ProjectionPage, Error> {
        let subject = match name {
            ProjectionName::Sagas => return self.sagas_page(rebuild, after, limit).await,
            ProjectionName::Accounts => admin::ACCOUNT_SUBJECT,
            ProjectionName::Orders => admin::ORDER_SUBJECT,
        };
        let client = match &self.nats {
            Some(client) => client.clone(),
            None => {
                let client = self.args.admin.connect().await?;
                self.nats = Some(client.clone());
                client
            }
        };
        Ok(
            admin::projection(&client, subject, rebuild, after, Some(limit))
                .await
                .map_err(|e| format!("{}: {e}", label(name)))?,
        )
    }

    /// A page of the orchestrator's projection, in the participants' shape (`saga_id` as key).
    async fn sagas_page(
        &self,
        rebuild: bool,
        after: Option<String>,
        limit: u32,
    ) -> Result<ProjectionPage, Error> {
        let server = &self.args.server;
        let base = server.server.trim_end_matches('/');
        let mut query = format!("limit={limit}");
        if let Some(after) = after {
            let id = uuid::Uuid::parse_str(&after)
                .map_err(|_| format!("--after {after}: the sagas projection goes by saga id"))?;
            query.push_str(&format!("&after={id}"));
        }
        let req = if rebuild {
            http(server).post(format!("{base}/v1/projections/sagas/rebuild?{query}"))
        } else {
            http(server).get(format!("{base}/v1/projections/sagas?{query}"))
        };
        let mut page = call(req, base).await?;
        // The API names the key `saga_id`; the page is otherwise the same shape.
        for difference in page["differences"].as_array_mut().into_iter().flatten() {
            if let Some(id) = difference.get("saga_id").cloned() {
                difference["key"] = id;
            }
        }
        Ok(serde_json::from_value(page)
            .map_err(|e| format!("unexpected answer of {base}/v1/projections/sagas: {e}"))?)
    }
}

fn label(name: ProjectionName) -> &'static str {
    match name {
        ProjectionName::Sagas => "sagas",
        ProjectionName::Accounts => "accounts",
        ProjectionName::Orders => "orders",
    }
}

fn summary(name: ProjectionName, checked: u64, rebuilt: Option<u64>, found: usize, output: Output) {
    if output == Output::Json {
        return;
    }
    let rebuilt = rebuilt
        .map(|n| format!(", {n} rebuilt"))
        .unwrap_or_default();
    let found = match found {
        0 => "no difference".to_string(),
        1 => "1 difference".to_string(),
        n => format!("{n} differences"),
    };
    println!("{}: {checked} checked{rebuilt}, {found}", label(name));
}

fn print_differences(differences: &[(ProjectionName, Difference)], output: Output) {
    if output == Output::Json {
        let lines: Vec<serde_json::Value> = differences
            .iter()
            .map(|(name, d)| {
                serde_json::json!({
                    "projection": label(*name),
                    "key": d.key,
                    "field": d.field,
                    "stored": d.stored,
                    "expected": d.expected,
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(lines));
        return;
    }
    if differences.is_empty() {
        return;
    }
    let mut table = super::table(["projection", "key", "field", "stored", "expected"]);
    for (name, d) in differences {
        table.add_row([
            label(*name).to_string(),
            d.key.clone(),
            d.field.clone(),
            d.stored.to_string(),
            d.expected.to_string(),
        ]);
    }
    super::print_table(&table);
}
