//! `dirbroker cluster status|compare|switchover|fence|promote`: the
//! replicated providers of `[[cluster.provider]]` (docs/replication.md).

use std::time::Duration;

use clap::{Args, Subcommand};

use dirbroker::admin::cluster;
use dirbroker::config::ClusterProvider;
use dirbroker::directory::DirError;

use super::{CliResult, Ctx, Failure, Output};
use crate::exit::Exit;

#[derive(Subcommand, Debug)]
pub enum ClusterCmd {
    /// Each provider: reachable, writer or read-only, serverID, contextCSN.
    #[command(after_help = "Examples:\n  dirbroker cluster status\n  dirbroker cluster status --output json\n\n\
        Exit 0 when exactly one provider takes writes, 1 otherwise (none: writes and\n\
        OTP verification are unavailable; several: codes can be accepted twice).")]
    Status,
    /// Compare the providers entry by entry (entryUUID and entryCSN of every entry).
    #[command(after_help = "Examples:\n  dirbroker cluster compare\n  dirbroker cluster compare --output json\n\n\
        Equal contextCSNs do not prove equal data: concurrent writes on two providers can\n\
        leave them different for good. Exit 1 when an entry differs.")]
    Compare,
    /// Planned change of writer with no window: the writer becomes read-only, the successor catches up, then takes writes.
    #[command(after_help = "Examples:\n  dirbroker cluster switchover --to 2\n  \
        dirbroker cluster switchover --to ldaps://ldap2.example.org --timeout-s 120\n\n\
        While it runs, writes (OTP verification too) answer \"unavailable\"; none is lost\n\
        or accepted twice. If the successor does not catch up in time, the old writer\n\
        takes writes again. Afterwards set `writer =` in every broker's [directory].")]
    Switchover(SwitchoverArgs),
    /// Make a provider read-only (fence a writer that must not take writes).
    #[command(after_help = "Example:\n  dirbroker cluster fence 1\n\n\
        A provider that is down cannot be fenced over the network: before starting it\n\
        again, set olcReadOnly: TRUE in its cn=config offline (slapmodify -n0), or wipe it\n\
        and let it join empty (docs/replication.md, runbook).")]
    Fence(ProviderArg),
    /// Make a provider the writer after the old one was lost (refused while another still takes writes).
    #[command(after_help = "Example:\n  dirbroker cluster fence 1 && dirbroker cluster promote 2\n\n\
        Codes the lost writer accepted within the replication lag before it failed may be\n\
        accepted once more (docs/replication.md, \"What is guaranteed\").")]
    Promote(ProviderArg),
}

#[derive(Args, Debug)]
pub struct ProviderArg {
    /// The provider: its position in [[cluster.provider]] (1, 2, …) or its URI.
    #[arg(value_name = "PROVIDER")]
    provider: String,
}

#[derive(Args, Debug)]
pub struct SwitchoverArgs {
    /// The successor: position in [[cluster.provider]] (1, 2, …) or URI.
    #[arg(long, value_name = "PROVIDER")]
    to: String,
    /// How long to wait for the successor to catch up.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    timeout_s: u64,
}

fn pick<'a>(providers: &'a [ClusterProvider], which: &str) -> Result<&'a ClusterProvider, Failure> {
    let by_index = which.parse::<usize>().ok().and_then(|i| i.checked_sub(1)).and_then(|i| providers.get(i));
    by_index.or_else(|| providers.iter().find(|p| p.uri == which)).ok_or_else(|| {
        Failure::usage(format!(
            "no provider {which:?} in [[cluster.provider]] (give its position 1..{} or its URI)",
            providers.len()
        ))
    })
}

pub async fn run(ctx: &Ctx, cmd: ClusterCmd) -> CliResult {
    let config = ctx.config()?;
    let providers = config.cluster.providers.clone();
    if providers.is_empty() {
        return Err(Failure::new(
            Exit::Config,
            format!("{} has no [[cluster.provider]] entries (docs/replication.md)", config.path.display()),
        ));
    }
    let base = config.directory_config()?;
    match cmd {
        ClusterCmd::Status => {
            let states = cluster::status(&base, &providers).await;
            let writers = states.iter().filter(|s| s.is_writer()).count();
            if ctx.output == Output::Json {
                ctx.json(&serde_json::json!({ "providers": states, "writers": writers }));
            } else {
                for (i, s) in states.iter().enumerate() {
                    let role = match (s.reachable, s.read_only) {
                        (false, _) => "DOWN",
                        (true, Some(false)) => "writer",
                        (true, Some(true)) => "read-only",
                        (true, None) => "unknown (no cn=config)",
                    };
                    let sid = s.server_id.map_or_else(|| "-".to_string(), |v| v.to_string());
                    println!(
                        "{:>2} {:<40} {:<10} serverID {:<3} contextCSN {}",
                        i + 1,
                        s.uri,
                        role,
                        sid,
                        s.context_csn.len()
                    );
                    if let Some(e) = &s.error {
                        println!("   {e}");
                    }
                }
            }
            match writers {
                1 => Ok(()),
                0 => Err(Failure::new(
                    Exit::Failed,
                    "no provider takes writes: writes and OTP verification are unavailable",
                )),
                n => {
                    Err(Failure::new(Exit::Failed, format!("{n} providers take writes: a code can be accepted twice")))
                }
            }
        }
        ClusterCmd::Compare => {
            let uris: Vec<String> = providers.iter().map(|p| p.uri.clone()).collect();
            let diff = cluster::compare(&base, &uris).await?;
            if ctx.output == Output::Json {
                ctx.json(&serde_json::json!({ "providers": uris, "differing_entries": diff }));
            } else if diff.is_empty() {
                println!("{} providers hold the same entries", uris.len());
            } else {
                for d in &diff {
                    println!(
                        "{}: {} (reference) vs {} on {}",
                        d.dn,
                        or_none(&d.reference),
                        or_none(&d.other),
                        d.provider
                    );
                }
            }
            if diff.is_empty() {
                Ok(())
            } else {
                Err(Failure::new(Exit::Failed, format!("{} entries differ between providers", diff.len())))
            }
        }
        ClusterCmd::Switchover(a) => {
            let to = pick(&providers, &a.to)?;
            let states = cluster::status(&base, &providers).await;
            let from = states
                .iter()
                .find(|s| s.is_writer())
                .and_then(|w| providers.iter().find(|p| p.uri == w.uri))
                .ok_or_else(|| Failure::new(Exit::Failed, "no provider takes writes now: use promote"))?;
            let done = cluster::switchover(&base, &providers, from, to, Duration::from_secs(a.timeout_s))
                .await
                .map_err(refused)?;
            ctx.report(
                serde_json::json!(done),
                &format!(
                    "{} is the writer ({} caught up in {} ms); {} is read-only",
                    done.to, done.to, done.caught_up_ms, done.from
                ),
            );
            Ok(())
        }
        ClusterCmd::Fence(a) => {
            let p = pick(&providers, &a.provider)?;
            cluster::set_read_only(&base, p, true).await?;
            ctx.report(serde_json::json!({ "fenced": p.uri }), &format!("{} is read-only", p.uri));
            Ok(())
        }
        ClusterCmd::Promote(a) => {
            let p = pick(&providers, &a.provider)?;
            cluster::promote(&base, &providers, p).await.map_err(refused)?;
            ctx.report(serde_json::json!({ "writer": p.uri }), &format!("{} is the writer", p.uri));
            Ok(())
        }
    }
}

/// The cluster's state refused the change (another writer, none): not a
/// configuration error, the command failed.
fn refused(e: DirError) -> Failure {
    match e {
        DirError::Config(m) => Failure::new(Exit::Failed, m),
        other => other.into(),
    }
}

fn or_none(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("(missing)")
}
