//! `dirbroker host …`: hosts, their SSH host keys and allowed-from lists.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::json;

use dirbroker::directory::DirError;
use dirbroker::model::{DirEntry, Host};
use dirbroker::ssh::SshKey;
use dirbroker::ssh::keys::check_from_pattern;

use super::{CliResult, Ctx, Failure, Output, add_values, delete_named, load_named, remove_values};

#[derive(Subcommand, Debug)]
pub enum HostCmd {
    /// Create a host entry (device + ipHost + ldapPublicKey).
    #[command(after_help = "Examples:\n  dirbroker host add node17 --address 10.1.0.17\n  \
        dirbroker host add node17 --address 10.1.0.17 --alias node17.cluster.example.org --port 2222")]
    Add(AddArgs),
    /// Show a host with its key fingerprints.
    #[command(after_help = "Example:\n  dirbroker host show node17 --output json")]
    Show(NameArg),
    /// List hosts.
    #[command(after_help = "Example:\n  dirbroker host list")]
    List,
    /// Delete a host entry.
    #[command(after_help = "Example:\n  dirbroker host remove node17")]
    Remove(NameArg),
    /// Load a host's public host keys (ssh_host_*_key.pub) into LDAP, replacing the stored ones.
    #[command(after_help = "Examples (run on the host itself, or point --dir at a copy):\n  \
        dirbroker host load node17\n  dirbroker host load node17 --dir /srv/keys/node17 --address 10.1.0.17\n\n\
        This is the paper's SSHHKTLDAP. The host entry is created when missing (then\n\
        --address is required).")]
    Load(LoadArgs),
    /// Let logins to this host come from PATTERN (the paper's hosts.equiv).
    #[command(
        after_help = "Examples:\n  dirbroker host allow node17 --from 10.1.0.0/16 --from bastion.example.org\n\n\
        Patterns are sshd from= patterns: names, addresses, CIDR, * and ?, ! to negate.\n\
        They apply to every user logging in to this host when the node's config names it\n\
        ([ssh] host)."
    )]
    Allow(AllowArgs),
    /// Remove patterns from a host's allowed-from list.
    #[command(after_help = "Example:\n  dirbroker host disallow node17 --from bastion.example.org")]
    Disallow(AllowArgs),
}

#[derive(Args, Debug)]
pub struct NameArg {
    name: String,
}

#[derive(Args, Debug)]
pub struct AddArgs {
    name: String,
    /// IP address (repeat for several).
    #[arg(long = "address", required = true, value_name = "IP")]
    addresses: Vec<String>,
    /// Another name, e.g. the FQDN (repeat for several).
    #[arg(long = "alias", value_name = "NAME")]
    aliases: Vec<String>,
    /// SSH port when not 22.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    port: Option<u16>,
}

#[derive(Args, Debug)]
pub struct LoadArgs {
    name: String,
    /// Directory holding ssh_host_*_key.pub.
    #[arg(long, default_value = "/etc/ssh", value_name = "DIR")]
    dir: PathBuf,
    /// Address for a host entry that does not exist yet.
    #[arg(long, value_name = "IP")]
    address: Option<String>,
}

#[derive(Args, Debug)]
pub struct AllowArgs {
    name: String,
    #[arg(long = "from", required = true, value_name = "PATTERN")]
    patterns: Vec<String>,
}

fn check_address(a: &str) -> Result<(), Failure> {
    a.parse::<std::net::IpAddr>().map(drop).map_err(|_| Failure::usage(format!("{a:?} is not an IPv4 or IPv6 address")))
}

fn host_json(h: &Host) -> serde_json::Value {
    let keys: Vec<serde_json::Value> = h
        .ssh_public_keys
        .iter()
        .map(|k| match SshKey::parse(k) {
            Ok(k) => json!({ "type": k.key_type(), "fingerprint": k.fingerprint(), "bits": k.bits() }),
            Err(e) => json!({ "error": e.to_string() }),
        })
        .collect();
    json!({
        "name": h.name, "aliases": h.aliases, "addresses": h.addresses, "port": h.ssh_port,
        "allowed_from": h.allowed_from, "disabled": h.disabled, "keys": keys,
    })
}

pub async fn run(ctx: &Ctx, cmd: HostCmd) -> CliResult {
    match cmd {
        HostCmd::Add(a) => {
            let mut addresses = a.addresses.into_iter();
            let first = addresses.next().unwrap_or_default();
            check_address(&first)?;
            let mut host = Host::new(&a.name, &first)?;
            for addr in addresses {
                check_address(&addr)?;
                host.addresses.push(addr);
            }
            for alias in a.aliases {
                dirbroker::directory::dn::check_value("alias", &alias)?;
                host.aliases.push(alias);
            }
            host.ssh_port = a.port;
            let dir = ctx.directory().await?;
            let dn = dir.create(&host).await?;
            ctx.report(json!({ "name": host.name, "dn": dn.to_string() }), &format!("created {dn}"));
            Ok(())
        }
        HostCmd::Show(a) => {
            let dir = ctx.directory().await?;
            let h = load_named::<Host>(&dir, &a.name, "host").await?;
            if ctx.output == Output::Json {
                ctx.json(&host_json(&h));
            } else {
                println!("name:         {}", h.name);
                println!("aliases:      {}", h.aliases.join(", "));
                println!("addresses:    {}", h.addresses.join(", "));
                if let Some(p) = h.ssh_port {
                    println!("port:         {p}");
                }
                println!("allowed from: {}", h.allowed_from.join(", "));
                for k in &h.ssh_public_keys {
                    match SshKey::parse(k) {
                        Ok(k) => println!("key:          {}", k.describe()),
                        Err(e) => println!("key:          (unusable: {e})"),
                    }
                }
            }
            Ok(())
        }
        HostCmd::List => {
            let dir = ctx.directory().await?;
            let mut hosts = dir.list::<Host>().await?;
            hosts.sort_by(|a, b| a.name.cmp(&b.name));
            if ctx.output == Output::Json {
                ctx.json(&serde_json::Value::Array(hosts.iter().map(host_json).collect()));
            } else {
                println!("{:<24} {:<4} {:<20} ALLOWED FROM", "NAME", "KEYS", "ADDRESSES");
                for h in &hosts {
                    println!(
                        "{:<24} {:<4} {:<20} {}",
                        h.name,
                        h.ssh_public_keys.len(),
                        h.addresses.join(","),
                        h.allowed_from.join(",")
                    );
                }
            }
            Ok(())
        }
        HostCmd::Remove(a) => {
            let h = delete_named::<Host>(&ctx.directory().await?, &a.name, "host").await?;
            ctx.report(json!({ "removed": h.name }), &format!("removed host {}", h.name));
            Ok(())
        }
        HostCmd::Load(a) => load(ctx, a).await,
        HostCmd::Allow(a) | HostCmd::Disallow(a) if a.patterns.is_empty() => Err(Failure::usage("no --from given")),
        HostCmd::Allow(a) => {
            for p in &a.patterns {
                check_from_pattern(p).map_err(|e| Failure::usage(e.to_string()))?;
            }
            let dir = ctx.directory().await?;
            let h = load_named::<Host>(&dir, &a.name, "host").await?;
            let added =
                add_values(&dir, &h.dn(dir.layout())?, "dirbrokerAllowedFrom", &h.allowed_from, &a.patterns).await?;
            ctx.report(
                json!({ "host": h.name, "added": added }),
                &format!("{}: allowed from {}", h.name, a.patterns.join(", ")),
            );
            Ok(())
        }
        HostCmd::Disallow(a) => {
            let dir = ctx.directory().await?;
            let h = load_named::<Host>(&dir, &a.name, "host").await?;
            let removed =
                remove_values(&dir, &h.dn(dir.layout())?, "dirbrokerAllowedFrom", &h.allowed_from, &a.patterns).await?;
            ctx.report(
                json!({ "host": h.name, "removed": removed }),
                &format!("{}: removed {} pattern(s)", h.name, removed.len()),
            );
            Ok(())
        }
    }
}

/// Read DIR/ssh_host_*_key.pub, checked, sorted by file name.
pub(super) fn read_host_keys(dir: &std::path::Path) -> Result<Vec<SshKey>, Failure> {
    let entries = std::fs::read_dir(dir).map_err(|e| Failure::usage(format!("cannot read {}: {e}", dir.display())))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("ssh_host_") && n.ends_with("_key.pub"))
        })
        .collect();
    files.sort();
    let mut keys: Vec<SshKey> = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).map_err(|e| Failure::usage(format!("{}: {e}", f.display())))?;
        let key = SshKey::parse(text.trim()).map_err(|e| Failure::usage(format!("{}: {e}", f.display())))?;
        if key.options().is_some() {
            return Err(Failure::usage(format!("{}: a host key file has no options", f.display())));
        }
        if let Err(e) = key.check_policy() {
            eprintln!("dirbroker: skipping {}: {e}", f.display());
            continue;
        }
        if !keys.iter().any(|k| k.same_key(&key)) {
            keys.push(key);
        }
    }
    if keys.is_empty() {
        return Err(Failure::usage(format!("no usable ssh_host_*_key.pub in {}", dir.display())));
    }
    Ok(keys)
}

async fn load(ctx: &Ctx, a: LoadArgs) -> CliResult {
    let keys = read_host_keys(&a.dir)?;
    let lines: Vec<String> = keys.iter().map(|k| format!("{} {}", k.key_type(), k.blob_base64())).collect();
    let dir = ctx.directory().await?;
    let created = match dir.load::<Host>(&a.name).await {
        Ok(host) => {
            let dn = host.dn(dir.layout())?;
            let values = lines.iter().map(|l| l.as_bytes().to_vec()).collect();
            dir.modify(&dn, vec![ldap3::Mod::Replace(b"sshPublicKey".to_vec(), values)]).await?;
            false
        }
        Err(DirError::NotFound { .. }) => {
            let address = a.address.ok_or_else(|| {
                Failure::usage(format!("host {} does not exist; give --address to create it", a.name))
            })?;
            check_address(&address)?;
            let mut host = Host::new(&a.name, &address)?;
            host.ssh_public_keys = lines.clone();
            dir.create(&host).await?;
            true
        }
        Err(e) => return Err(e.into()),
    };
    if ctx.output == Output::Json {
        let fps: Vec<String> = keys.iter().map(SshKey::fingerprint).collect();
        ctx.json(&json!({ "host": a.name, "created": created, "fingerprints": fps }));
    } else {
        println!("{} host {} with {} key(s):", if created { "created" } else { "updated" }, a.name, keys.len());
        for k in &keys {
            println!("  {}", k.describe());
        }
    }
    Ok(())
}
