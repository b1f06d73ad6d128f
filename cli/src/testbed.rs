//! `dirbroker testbed up|down|status`: a private slapd under a data
//! directory, or several replicating providers (`up --providers N`).

use std::path::PathBuf;

use clap::{Args, Subcommand};

use dirbroker_testbed::cluster::{self, Cluster, ClusterOptions};
use dirbroker_testbed::{self as testbed, Identity, Testbed, TestbedError, TestbedOptions};

use super::{CliResult, Ctx, Failure, Output};
use crate::exit::Exit;

const DEFAULT_DIR: &str = ".dirbroker/testbed";

#[derive(Subcommand, Debug)]
pub enum TestbedCmd {
    /// Create and start a fresh slapd (schema, ACLs, identities, base entries).
    #[command(
        after_help = "Examples:\n  dirbroker testbed up\n  dirbroker testbed up --dir /srv/dirbroker-lab --port 3389 --tls\n  \
        dirbroker testbed up --providers 3\n\n\
        Writes DIR/dirbroker.toml (bound as the broker), DIR/node-reader.toml (bound as\n\
        the read-only node identity) and the identities' passwords in DIR/*.pw (mode\n\
        0600). With --tls both configs use ldaps:// and pin DIR/tls/ca.pem. An\n\
        instance already running in DIR is refused.\n\n\
        --providers N starts N slapd providers replicating with OpenLDAP's multi-provider\n\
        syncrepl (DIR/p1 … DIR/pN): p1 is seeded and the only writer, the others start\n\
        empty, are filled by replication and refuse client writes (olcReadOnly). The\n\
        configs in DIR list every provider; writes go to p1 (docs/replication.md)."
    )]
    Up(UpArgs),
    /// Add one more provider to a running `testbed up --providers N` cluster.
    #[command(after_help = "Example:\n  dirbroker testbed join --dir .dirbroker/testbed\n\n\
        Starts DIR/pN+1 empty with the schema, ACLs, indexes and the replication identity's\n\
        rule and limits, fills it by replication from every provider, has every provider\n\
        consume from it, makes it read-only (p1 stays the only writer) and adds it to the\n\
        configs in DIR. Exit 1 when DIR holds no running cluster or already 9 providers.")]
    Join(DirArg),
    /// Stop the slapd and remove its data directory.
    #[command(after_help = "Example:\n  dirbroker testbed down --dir .dirbroker/testbed")]
    Down(DirArg),
    /// Tell whether the slapd in DIR runs.
    #[command(after_help = "Example:\n  dirbroker testbed status --output json")]
    Status(DirArg),
}

#[derive(Args, Debug)]
pub struct DirArg {
    /// Data directory of the instance.
    #[arg(long, default_value = DEFAULT_DIR, value_name = "DIR")]
    dir: PathBuf,
}

#[derive(Args, Debug)]
pub struct UpArgs {
    #[command(flatten)]
    dir: DirArg,
    /// TCP port on 127.0.0.1 (default: a free one).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    port: Option<u16>,
    /// Directory suffix (must start with dc= or o=).
    #[arg(long, default_value = "dc=example,dc=org", value_name = "DN")]
    suffix: String,
    /// Also serve ldaps:// with a fresh CA (DIR/tls/ca.pem), and use it in dirbroker.toml.
    #[arg(long, conflicts_with = "providers")]
    tls: bool,
    /// Start N replicating providers (1 to 9) instead of one slapd.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(2..=9), conflicts_with = "port")]
    providers: Option<u8>,
}

fn failure(e: TestbedError) -> Failure {
    match e {
        TestbedError::Directory(d) => d.into(),
        TestbedError::MissingTool { .. } => Failure::new(Exit::Config, e.to_string()),
        TestbedError::Refused(_) => Failure::new(Exit::Failed, e.to_string()),
        other => Failure::new(Exit::Failed, other.to_string()),
    }
}

pub async fn run(ctx: &Ctx, cmd: TestbedCmd) -> CliResult {
    match cmd {
        TestbedCmd::Up(args) => up(ctx, args).await,
        TestbedCmd::Join(args) => join(ctx, &args.dir).await,
        TestbedCmd::Down(args) => {
            let dir = std::path::absolute(&args.dir).map_err(|e| Failure::usage(e.to_string()))?;
            let was_running = if cluster::is_cluster_dir(&dir) {
                cluster::stop_cluster_dir(&dir).map_err(failure)? > 0
            } else {
                testbed::stop_dir(&dir).map_err(failure)?
            };
            if ctx.output == Output::Json {
                ctx.json(&serde_json::json!({ "dir": dir, "stopped": was_running }));
            } else if was_running {
                println!("stopped slapd and removed {}", dir.display());
            } else {
                println!("no testbed slapd was running in {}", dir.display());
            }
            Ok(())
        }
        TestbedCmd::Status(args) => {
            let dir = std::path::absolute(&args.dir).map_err(|e| Failure::usage(e.to_string()))?;
            if cluster::is_cluster_dir(&dir) {
                return cluster_status(ctx, &dir);
            }
            let pid = testbed::running_pid(&dir);
            if ctx.output == Output::Json {
                ctx.json(&serde_json::json!({ "dir": dir, "running": pid.is_some(), "pid": pid }));
            } else {
                match pid {
                    Some(p) => println!("slapd running, pid {p}, config {}", dir.join("dirbroker.toml").display()),
                    None => println!("no slapd running in {}", dir.display()),
                }
            }
            if pid.is_some() { Ok(()) } else { Err(Failure::new(Exit::Failed, "testbed not running")) }
        }
    }
}

fn cluster_status(ctx: &Ctx, dir: &std::path::Path) -> CliResult {
    let pids: Vec<Option<i32>> = cluster::provider_dirs(dir).iter().map(|d| testbed::running_pid(d)).collect();
    if ctx.output == Output::Json {
        let providers: Vec<serde_json::Value> = pids
            .iter()
            .enumerate()
            .map(|(k, pid)| serde_json::json!({ "provider": k + 1, "running": pid.is_some(), "pid": pid }))
            .collect();
        ctx.json(&serde_json::json!({ "dir": dir, "providers": providers }));
    } else {
        for (k, pid) in pids.iter().enumerate() {
            match pid {
                Some(p) => println!("p{}: slapd running, pid {p}", k + 1),
                None => println!("p{}: not running", k + 1),
            }
        }
        println!("config: {}", dir.join("dirbroker.toml").display());
    }
    let down = pids.iter().filter(|p| p.is_none()).count();
    if down == 0 {
        Ok(())
    } else {
        Err(Failure::new(Exit::Failed, format!("{down} of {} providers not running", pids.len())))
    }
}

async fn up_cluster(ctx: &Ctx, args: UpArgs, providers: u8) -> CliResult {
    if args.suffix != "dc=example,dc=org" {
        return Err(Failure::usage("--providers works with the default suffix only"));
    }
    let mut opts = ClusterOptions::new(args.dir.dir, usize::from(providers));
    opts.detach = true;
    let c = Cluster::start(opts).await.map_err(failure)?;
    let config = c.dir().join("dirbroker.toml");
    if ctx.output == Output::Json {
        let nodes: Vec<serde_json::Value> = (0..c.len())
            .filter_map(|k| c.provider(k).map(|p| (k, p)))
            .map(|(k, p)| {
                serde_json::json!({
                    "provider": k + 1, "pid": p.pid(), "uri": p.uri(), "ldapi_uri": p.ldapi_uri(),
                    "writer": k == 0, "dir": p.dir(),
                })
            })
            .collect();
        ctx.json(&serde_json::json!({ "dir": c.dir(), "providers": nodes, "config": config }));
    } else {
        for k in 0..c.len() {
            if let Some(p) = c.provider(k) {
                let role = if k == 0 { "writer" } else { "read-only" };
                println!("p{}: slapd pid {} at {} ({role})", k + 1, p.pid(), p.uri());
            }
        }
        println!("  config:  {}  (binds as the broker; lists every provider)", config.display());
        println!("           {}  (binds as the read-only node identity)", c.dir().join("node-reader.toml").display());
        println!("next:      export DIRBROKER_CONFIG={}; dirbroker check", config.display());
    }
    Ok(())
}

async fn join(ctx: &Ctx, dir: &std::path::Path) -> CliResult {
    let mut c = Cluster::attach(dir).map_err(failure)?;
    if let Some(k) = (0..c.len()).find(|&k| !c.is_running(k)) {
        return Err(Failure::new(Exit::Failed, format!("provider p{} is not running; start it first", k + 1)));
    }
    if c.len() >= 9 {
        return Err(Failure::new(Exit::Failed, "the cluster has 9 providers, the most"));
    }
    let k = c.join().await.map_err(failure)?;
    c.set_read_only(k, true).map_err(failure)?;
    let p = c.provider(k).ok_or_else(|| Failure::new(Exit::Failed, "the new provider is gone"))?;
    if ctx.output == Output::Json {
        ctx.json(&serde_json::json!({
            "provider": k + 1, "pid": p.pid(), "uri": p.uri(), "dir": p.dir(), "writer": false,
            "config": c.dir().join("dirbroker.toml"),
        }));
    } else {
        println!("p{}: slapd pid {} at {} (read-only), filled by replication", k + 1, p.pid(), p.uri());
        println!("  config:  {}  (now lists it)", c.dir().join("dirbroker.toml").display());
    }
    Ok(())
}

async fn up(ctx: &Ctx, args: UpArgs) -> CliResult {
    if let Some(n) = args.providers {
        return up_cluster(ctx, args, n).await;
    }
    let mut opts = TestbedOptions::new(args.dir.dir);
    opts.port = args.port;
    opts.suffix = args.suffix;
    opts.tls = args.tls;
    opts.detach = true;
    let bed = Testbed::start(opts).await.map_err(failure)?;
    let config = bed.dir().join("dirbroker.toml");
    let admin = bed.bind_dn(Identity::Admin).map_err(failure)?.map(|d| d.to_string()).unwrap_or_default();
    let admin_pw = bed.password_file(Identity::Admin).unwrap_or_default();
    if ctx.output == Output::Json {
        ctx.json(&serde_json::json!({
            "dir": bed.dir(),
            "pid": bed.pid(),
            "uri": bed.client_uri(),
            "ldap_uri": bed.uri(),
            "ldapi_uri": bed.ldapi_uri(),
            "ldaps_port": bed.tls().map(|t| t.ldaps_port),
            "ca_file": bed.tls().map(|t| t.ca_file.clone()),
            "suffix": bed.suffix().as_str(),
            "config": config,
            "admin_dn": admin,
            "admin_password_file": admin_pw,
        }));
    } else {
        println!("slapd running (pid {}) in {}", bed.pid(), bed.dir().display());
        println!("  LDAP:    {}", bed.uri());
        println!("  ldapi:   {}", bed.ldapi_uri());
        if let Some(tls) = bed.tls() {
            println!("  LDAPS:   ldaps://127.0.0.1:{}  (CA {})", tls.ldaps_port, tls.ca_file.display());
        }
        println!("  config:  {}  (binds as the broker)", config.display());
        println!("           {}  (binds as the read-only node identity)", bed.dir().join("node-reader.toml").display());
        println!("  admin:   {admin}  (password in {})", admin_pw.display());
        println!("next:      export DIRBROKER_CONFIG={}; dirbroker check", config.display());
    }
    Ok(())
}
