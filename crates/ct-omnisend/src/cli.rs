//! Commands of the interface contract (`../shared/docs/PRODUCT.md`).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use connector::app;
use connector::config::Settings;
use connector::replay::{self, Target};
use connector::store::{RejectedFilter, StateStore};
use connector::sync::catalog::{CatalogOptions, CatalogSync};
use connector::sync::contacts::{ContactOptions, ContactSync};

use crate::output::{self, LogFormat};
use connector::schedule::JobKind;

/// Keeps Omnisend (email/SMS marketing) in step with commercetools.
#[derive(Debug, Parser)]
#[command(name = "ct-omnisend", version, about)]
pub struct Cli {
    /// TOML configuration file.
    #[arg(long, global = true, env = "CT_OMNISEND_CONFIG")]
    pub config: Option<PathBuf>,
    /// State store URL: sqlite://PATH (default sqlite://ct-omnisend.db) or postgres://…
    #[arg(long, global = true, env = "CT_OMNISEND_STATE")]
    pub state: Option<String>,
    /// Log format on stderr (auto: pretty on a terminal, JSON otherwise).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Auto)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Synchronise commercetools data to Omnisend.
    Sync(SyncArgs),
    /// Cursors, last runs and rejected records per entity.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Records that could not be synced.
    Rejected {
        /// Sub-command.
        #[command(subcommand)]
        command: RejectedCommand,
    },
    /// Configuration tools.
    Config {
        /// Sub-command.
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Serves webhooks and storefront events and delivers Omnisend events until SIGTERM/SIGINT.
    Serve {
        /// Listen address (default: PORT on all interfaces, else server.listen, else
        /// 127.0.0.1:8080).
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// The commercetools Subscriptions `serve` needs: install, status, remove.
    Subscriptions {
        /// Sub-command.
        #[command(subcommand)]
        command: SubscriptionsCommand,
    },
    /// Runs the whole product against built-in emulators of both APIs with a generated shop.
    Demo {
        /// Exit after the demo runs instead of keeping the emulators up.
        #[arg(long)]
        exit: bool,
        /// Products in the generated catalog.
        #[arg(long, default_value_t = 1200)]
        products: usize,
    },
}

/// What to synchronise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Entity {
    /// Categories and products.
    Catalog,
    /// Customers and guests → contacts, per brand.
    Customers,
    /// Past orders as `placed order` events (needs --historical --since --confirm-historical).
    Orders,
    /// Everything available.
    All,
}

/// `sync` arguments.
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// What to synchronise.
    #[arg(value_enum)]
    pub entity: Entity,
    /// Full refresh instead of delta.
    #[arg(long)]
    pub full: bool,
    /// Send nothing; write the exact request bodies as NDJSON to FILE (stdout without FILE).
    #[arg(long, value_name = "FILE", num_args = 0..=1, default_missing_value = "-")]
    pub dry_run: Option<String>,
    /// Only this store route.
    #[arg(long, value_name = "KEY")]
    pub store: Option<String>,
    /// Print exactly one JSON document on stdout.
    #[arg(long)]
    pub json: bool,
    /// `sync orders`: first creation date of the orders to import (YYYY-MM-DD or RFC 3339).
    #[arg(long, value_name = "DATE")]
    pub since: Option<String>,
    /// `sync orders`: import past orders as events with their original time.
    #[arg(long)]
    pub historical: bool,
    /// `sync orders`: confirms that imported events may trigger Omnisend automations.
    #[arg(long)]
    pub confirm_historical: bool,
}

/// `rejected` sub-commands.
#[derive(Debug, Subcommand)]
pub enum RejectedCommand {
    /// List open rejected records (newest first).
    List {
        /// Include resolved ones.
        #[arg(long)]
        all: bool,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one rejected record with its payload.
    Show {
        /// Rejected record id.
        id: i64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Re-fetch, re-map and re-send rejected records.
    Replay {
        /// One record id.
        id: Option<i64>,
        /// Every open rejected record.
        #[arg(long, conflicts_with = "id")]
        all: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `subscriptions` sub-commands (see docs/subscriptions.md).
#[derive(Debug, Subcommand)]
pub enum SubscriptionsCommand {
    /// Create the Subscriptions the configuration needs; update drifted ones in place.
    Install {
        /// Read only: print what would be done and the drafts (secrets masked).
        #[arg(long)]
        dry_run: bool,
        /// Send the destination again (with the secrets now in the environment) even where
        /// nothing differs: commercetools hides secrets, so a rotated one is never seen.
        #[arg(long)]
        rotate_secrets: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Compare the project's Subscriptions with the configuration (exit code 3 when one is
    /// missing or drifted).
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete the connector's Subscriptions (key `key_prefix` or `key_prefix-…`), no others.
    Remove {
        /// Read only: list what would be deleted.
        #[arg(long)]
        dry_run: bool,
        /// Only those the configuration no longer needs.
        #[arg(long)]
        not_needed: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Exit code of `subscriptions status` when a Subscription is missing or drifted.
pub const EXIT_SUBSCRIPTIONS_OUT_OF_SYNC: u8 = 3;

/// `config` sub-commands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration and, where credentials are set, connectivity.
    Check,
}

fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

fn load_settings(cli_config: Option<&Path>, cli_state: Option<&str>) -> anyhow::Result<Settings> {
    // `--state` goes in where CT_OMNISEND_STATE would, so it is checked like any other source;
    // clap already gives the flag precedence over the variable.
    let env = |name: &str| match (name, cli_state) {
        (connector::config::env::CT_OMNISEND_STATE, Some(state)) => Some(state.to_owned()),
        _ => process_env(name),
    };
    Ok(Settings::load(cli_config, &env)?)
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Demo { exit, products } => crate::demo::run(exit, products).await,
        Command::Config {
            command: ConfigCommand::Check,
        } => config_check(cli.config.as_deref(), cli.state.as_deref()).await,
        Command::Sync(args) => {
            let settings = load_settings(cli.config.as_deref(), cli.state.as_deref())?;
            sync(&settings, &args, &process_env).await
        }
        Command::Serve { listen } => {
            let settings = load_settings(cli.config.as_deref(), cli.state.as_deref())?;
            crate::serve::serve(settings, listen.as_deref(), &process_env).await
        }
        Command::Subscriptions { command } => {
            let settings = load_settings(cli.config.as_deref(), cli.state.as_deref())?;
            subscriptions(&settings, command, &process_env).await
        }
        Command::Status { json } => {
            let settings = load_settings(cli.config.as_deref(), cli.state.as_deref())?;
            let store = StateStore::connect(&settings.state_url).await?;
            output::print_status(&store, json).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Rejected { command } => {
            let settings = load_settings(cli.config.as_deref(), cli.state.as_deref())?;
            let store = StateStore::connect(&settings.state_url).await?;
            rejected(&settings, &store, command).await
        }
    }
}

/// `sync …`, also used by the demo.
pub async fn sync(
    settings: &Settings,
    args: &SyncArgs,
    env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<ExitCode> {
    let (catalog, customers) = match args.entity {
        Entity::Catalog => (true, false),
        Entity::Customers => (false, true),
        Entity::All => (true, true),
        Entity::Orders => {
            let since = crate::history::check_guard(
                args.since.as_deref(),
                args.historical,
                args.confirm_historical,
            )?;
            if args.dry_run.is_some() {
                bail!(
                    "sync orders --historical has no --dry-run: its events go through the outbox"
                );
            }
            let summary = crate::history::run(settings, since, env).await?;
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string(&serde_json::json!({ "runs": [summary] }))?
                );
            } else {
                output::print_summary_to(&mut std::io::stdout(), &[summary])?;
            }
            return Ok(ExitCode::SUCCESS);
        }
    };
    if args.json && args.dry_run.as_deref() == Some("-") {
        bail!(
            "--json and --dry-run without FILE would both write to stdout: use --dry-run FILE with --json"
        );
    }
    // With --store, only that store's brand key is needed (contacts run the whole brand: its
    // stores' customers merge into one set of contacts).
    let mut scoped = settings.clone();
    scoped.stores = settings
        .brands(args.store.as_deref())?
        .into_iter()
        .flat_map(|b| b.stores)
        .cloned()
        .collect();
    let settings = &scoped;
    let store = StateStore::connect(&settings.state_url)
        .await
        .with_context(|| {
            format!(
                "opening the state store {}",
                connector::config::redact_password(&settings.state_url)
            )
        })?;
    let dry_output: Option<app::DryRunOutput> = match args.dry_run.as_deref() {
        None => None,
        Some("-") => Some(Arc::new(Mutex::new(
            Box::new(std::io::stdout()) as Box<dyn Write + Send>
        ))),
        Some(path) => {
            let f = File::create(path).with_context(|| format!("creating dry-run file {path}"))?;
            Some(Arc::new(Mutex::new(
                Box::new(BufWriter::new(f)) as Box<dyn Write + Send>
            )))
        }
    };
    let ct = app::commercetools_client(settings)?;
    let sinks = app::sinks(settings, env, dry_output.clone())?;
    // On PostgreSQL a sync shares the brand's request budget with running `serve` instances.
    connector::budget::share(&store, sinks.values().filter_map(|s| s.client()));
    // A real run holds the jobs it covers, so it never overlaps a scheduled run of `serve`.
    let held = if dry_output.is_none() {
        let names: Vec<String> = connector::schedule::plan_jobs(settings)
            .into_iter()
            .filter(|j| match j.kind {
                JobKind::Catalog => catalog && args.store.as_deref().is_none_or(|s| s == j.store),
                JobKind::Contacts => customers,
            })
            .map(|j| j.name)
            .collect();
        let owner = format!(
            "sync-{}-{}",
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        Some(
            connector::schedule::hold_jobs(
                &store,
                names,
                &owner,
                settings.schedule.lease,
                args.full,
            )
            .await?,
        )
    } else {
        None
    };
    let bars = output::Bars::new(!args.json && args.dry_run.as_deref() != Some("-"));
    let summaries = async {
        let mut out = Vec::new();
        if catalog {
            let engine =
                CatalogSync::new(ct.clone(), store.clone(), settings.clone(), sinks.clone());
            out.extend(
                engine
                    .run(
                        &CatalogOptions {
                            full: args.full,
                            store: args.store.clone(),
                        },
                        &|p| bars.update(p.store, p.entity, p.seen),
                    )
                    .await?,
            );
        }
        if customers {
            let engine = ContactSync::new(ct, store, settings.clone(), sinks);
            out.extend(
                engine
                    .run(&ContactOptions {
                        full: args.full,
                        store: args.store.clone(),
                    })
                    .await?,
            );
        }
        Ok::<_, connector::sync::SyncError>(out)
    }
    .await;
    bars.finish();
    if let Some(held) = held {
        let outcome = match &summaries {
            Ok(runs) => format!("ok: {} run(s) (manual sync)", runs.len()),
            Err(e) => format!("failed: {e}"),
        };
        held.finish(&outcome).await?;
    }
    if let Some(out) = dry_output {
        out.lock().unwrap_or_else(|e| e.into_inner()).flush()?;
    }
    let summaries = summaries?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&serde_json::json!({ "runs": summaries }))?
        );
    } else if args.dry_run.as_deref() == Some("-") {
        output::print_summary_to(&mut std::io::stderr(), &summaries)?;
    } else {
        output::print_summary_to(&mut std::io::stdout(), &summaries)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `subscriptions install | status | remove`. Needs no state store.
async fn subscriptions(
    settings: &Settings,
    command: SubscriptionsCommand,
    env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<ExitCode> {
    use connector::subscriptions as subs;
    let ct = app::commercetools_client(settings)?;
    let s = &settings.subscriptions;
    let ok = match command {
        SubscriptionsCommand::Install {
            dry_run,
            rotate_secrets,
            json,
        } => {
            let options = subs::InstallOptions {
                dry_run,
                rotate_secrets,
            };
            let report = subs::install_with(&ct, s, env, &options).await?;
            output::print_subscriptions_install(&report, json)?;
            !report.failed()
        }
        SubscriptionsCommand::Status { json } => {
            let report = subs::status(&ct, s).await?;
            output::print_subscriptions_status(&report, json)?;
            if !report.in_sync() {
                return Ok(ExitCode::from(EXIT_SUBSCRIPTIONS_OUT_OF_SYNC));
            }
            true
        }
        SubscriptionsCommand::Remove {
            dry_run,
            not_needed,
            json,
        } => {
            let report = subs::remove(&ct, s, dry_run, not_needed).await?;
            output::print_subscriptions_remove(&report, json)?;
            !report.failed()
        }
    };
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn config_check(path: Option<&Path>, state: Option<&str>) -> anyhow::Result<ExitCode> {
    let settings = load_settings(path, state)?;
    println!(
        "configuration: ok ({} store route(s): {})",
        settings.stores.len(),
        settings
            .stores
            .iter()
            .map(|s| s.key.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut ok = true;
    match StateStore::connect(&settings.state_url).await {
        Ok(_) => println!(
            "state store: ok ({})",
            connector::config::redact_password(&settings.state_url)
        ),
        Err(e) => {
            ok = false;
            println!("state store: FAILED: {e}");
        }
    }
    match app::commercetools_client(&settings) {
        Err(e) => println!("commercetools: not checked ({e})"),
        Ok(ct) => match ct.check_connectivity().await {
            Ok(()) => {
                println!(
                    "commercetools: ok (project {} at {})",
                    settings.commercetools.project_key, settings.commercetools.api_url
                );
                match connector::sync::catalog::check_project(&ct, &settings).await {
                    Ok(problems) if problems.is_empty() => {
                        println!("stores and channels: ok (all configured keys exist)")
                    }
                    Ok(problems) => {
                        ok = false;
                        for p in problems {
                            println!("stores and channels: FAILED: {p}");
                        }
                    }
                    Err(e) => {
                        ok = false;
                        println!("stores and channels: FAILED: {e}");
                    }
                }
            }
            Err(e) => {
                ok = false;
                println!("commercetools: FAILED: {e}");
            }
        },
    }
    for s in &settings.stores {
        let Some(key) = std::env::var(&s.omnisend_api_key_env)
            .ok()
            .filter(|k| !k.is_empty())
        else {
            println!(
                "omnisend brand for store {}: not checked ({} is not set)",
                s.key, s.omnisend_api_key_env
            );
            continue;
        };
        let checked = match app::omnisend_client(&settings, key) {
            Ok(client) => client.check_connectivity().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match checked {
            Ok(()) => println!(
                "omnisend brand for store {}: ok (key from {} accepted by {})",
                s.key, s.omnisend_api_key_env, settings.omnisend.api_url
            ),
            Err(e) => {
                ok = false;
                println!("omnisend brand for store {}: FAILED: {e}", s.key);
            }
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn rejected(
    settings: &Settings,
    store: &StateStore,
    command: RejectedCommand,
) -> anyhow::Result<ExitCode> {
    match command {
        RejectedCommand::List { all, limit, json } => {
            let list = store
                .list_rejected(&RejectedFilter {
                    entity: None,
                    route: None,
                    open_only: !all,
                    limit,
                })
                .await?;
            output::print_rejected_list(&list, json)?;
        }
        RejectedCommand::Show { id, json } => {
            let Some(r) = store.rejected(id).await? else {
                bail!("no rejected record with id {id}")
            };
            output::print_rejected_one(&r, json)?;
        }
        RejectedCommand::Replay { id, all, json } => {
            if id.is_none() && !all {
                bail!("say which: `rejected replay ID` or `rejected replay --all`");
            }
            let ct = app::commercetools_client(settings)?;
            let sinks = app::sinks(settings, &process_env, None)?;
            connector::budget::share(store, sinks.values().filter_map(|s| s.client()));
            let target = match id {
                Some(id) => Target::One(id),
                None => Target::All,
            };
            let outcomes = replay::replay(settings, store, &ct, &sinks, target).await?;
            output::print_replay(&outcomes, json)?;
            if outcomes.iter().any(|o| !o.resolved) {
                return Ok(ExitCode::from(2));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
