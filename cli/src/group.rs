//! `dirbroker group …`: RFC 2307 posixGroups under `ou=groups` with
//! `memberUid` members (see `dirbroker::admin::posix`).

use clap::{Args, Subcommand};
use serde_json::json;

use dirbroker::admin::posix;
use dirbroker::directory::Directory;
use dirbroker::model::{DirEntry, Group};

use super::{CliResult, Ctx, Output};

#[derive(Subcommand, Debug)]
pub enum GroupCmd {
    /// Create a group (posixGroup cn=NAME,ou=groups) with a gidNumber from the id counter.
    #[command(after_help = "Examples:\n  dirbroker group add developers\n  \
        dirbroker group add wheel --gid-number 10 --description 'may use sudo'\n\n\
        The gidNumber comes from the same counter as uidNumbers ([posix] uid_min..uid_max)\n\
        unless --gid-number gives one; a gidNumber another group has is refused.")]
    Add(AddArgs),
    /// Show one group and its members.
    #[command(
        after_help = "Examples:\n  dirbroker group show developers\n  dirbroker group show developers --output json"
    )]
    Show(NameArg),
    /// List groups.
    #[command(
        after_help = "Examples:\n  dirbroker group list\n  dirbroker group list --output json | jq -r '.[].name'"
    )]
    List,
    /// Delete a group (refused while it is some user's primary group, unless --force).
    #[command(after_help = "Examples:\n  dirbroker group delete developers\n  dirbroker group delete alice --force")]
    Delete(DeleteArgs),
    /// Add users to a group (memberUid); every one must exist, or nothing is added.
    #[command(after_help = "Example:\n  dirbroker group add-member developers alice bob")]
    AddMember(MembersArgs),
    /// Remove users from a group; every one must be a member, or nothing is removed.
    #[command(after_help = "Example:\n  dirbroker group remove-member developers bob")]
    RemoveMember(MembersArgs),
}

#[derive(Args, Debug)]
pub struct AddArgs {
    /// Group name (letters, digits, '.', '_', '-', '@').
    name: String,
    /// gidNumber instead of one from the id counter.
    #[arg(long)]
    gid_number: Option<u32>,
    #[arg(long)]
    description: Option<String>,
}

#[derive(Args, Debug)]
pub struct NameArg {
    /// The group's name (cn).
    name: String,
}

#[derive(Args, Debug)]
pub struct DeleteArgs {
    name: String,
    /// Delete it even if it is the primary group (gidNumber) of users.
    #[arg(long)]
    force: bool,
}

#[derive(Args, Debug)]
pub struct MembersArgs {
    /// The group's name (cn).
    name: String,
    /// uids of the users.
    #[arg(required = true)]
    uids: Vec<String>,
}

fn group_json(dir: &Directory, g: &Group) -> serde_json::Value {
    json!({
        "name": g.name,
        "dn": g.dn(dir.layout()).map(|d| d.to_string()).unwrap_or_default(),
        "gid_number": g.gid_number,
        "members": g.members,
        "description": g.description,
    })
}

pub async fn run(ctx: &Ctx, cmd: GroupCmd) -> CliResult {
    let dir = ctx.directory().await?;
    match cmd {
        GroupCmd::Add(a) => {
            let cfg = ctx.config()?;
            let g = posix::create_group(&dir, &cfg.posix, &a.name, a.gid_number, a.description.as_deref()).await?;
            ctx.report(
                group_json(&dir, &g),
                &format!("created group {} (gidNumber {})", g.dn(dir.layout())?, g.gid_number),
            );
        }
        GroupCmd::Show(a) => {
            let g = posix::existing_group(&dir, &a.name).await?;
            let primary = posix::primary_members(&dir, g.gid_number).await?;
            if ctx.output == Output::Json {
                let mut v = group_json(&dir, &g);
                if let Some(o) = v.as_object_mut() {
                    o.insert("primary_of".into(), json!(primary));
                }
                ctx.json(&v);
            } else {
                println!("name:       {}", g.name);
                println!("dn:         {}", g.dn(dir.layout())?);
                println!("gidNumber:  {}", g.gid_number);
                if let Some(d) = &g.description {
                    println!("description: {d}");
                }
                println!("members:    {}", g.members.join(" "));
                println!("primary of: {}", primary.join(" "));
            }
        }
        GroupCmd::List => {
            let mut groups = dir.list::<Group>().await?;
            groups.sort_by(|a, b| a.name.cmp(&b.name));
            if ctx.output == Output::Text {
                println!("{:<20} {:<10} MEMBERS", "NAME", "GID");
            }
            ctx.list(
                &groups,
                |g| group_json(&dir, g),
                |g| format!("{:<20} {:<10} {}", g.name, g.gid_number, g.members.join(",")),
            );
        }
        GroupCmd::Delete(a) => {
            let g = posix::delete_group(&dir, &a.name, a.force).await?;
            ctx.report(json!({ "deleted": g.name }), &format!("deleted group {}", g.name));
        }
        GroupCmd::AddMember(a) => {
            let g = posix::add_members(&dir, &a.name, &a.uids).await?;
            ctx.report(group_json(&dir, &g), &format!("{}: members {}", g.name, g.members.join(", ")));
        }
        GroupCmd::RemoveMember(a) => {
            let g = posix::remove_members(&dir, &a.name, &a.uids).await?;
            ctx.report(group_json(&dir, &g), &format!("{}: members {}", g.name, g.members.join(", ")));
        }
    }
    Ok(())
}
