//! POSIX ids, accounts and groups (issue #14).
//!
//! uidNumbers and gidNumbers come from one counter in the directory,
//! `cn=posix-ids,ou=system,SUFFIX` (class `dirbrokerIdCounter`, attribute
//! `dirbrokerNextId`): the lowest id that may be handed out next. Drawing an
//! id is the compare-and-swap the OTP guard uses: one modify deletes the value
//! that was read and adds the next one, so of two writers that read the same
//! value slapd lets one through and refuses the other with `noSuchAttribute`;
//! the loser reads again. Two admins or two brokers never draw the same id.
//!
//! ```text
//!   read dirbrokerNextId = N ──► first id ≥ N in [uid_min, uid_max] that is not
//!                                reserved and not any entry's uidNumber/gidNumber = I
//!   modify: delete N, add I+1 ──► ok: I is ours │ noSuchAttribute: lost, read again
//! ```
//!
//! The counter only moves up: ids of deleted accounts are not handed out
//! again. A missing counter is created at `uid_min` (whoever creates it first
//! wins; the other reads it).

use std::collections::HashSet;

use crate::config::PosixSection;
use crate::directory::values::{generalized_time, int_value};
use crate::directory::{Attrs, Change, DirError, Directory, Dn, Filter, Scope, WriteOp};
use crate::model::{DirEntry, Group, Posix, User, posix_name};
use crate::secret::SecretString;

use time::OffsetDateTime;

use super::AdminError;

/// The counter entry's `cn` under `ou=system`.
pub const COUNTER_CN: &str = "posix-ids";
/// Its object class and attribute (schema/gen.py: .2.9 and .1.45).
pub const COUNTER_CLASS: &str = "dirbrokerIdCounter";
pub const COUNTER_ATTR: &str = "dirbrokerNextId";
/// How many lost races one allocation tolerates before giving up.
const MAX_RACES: usize = 64;
/// Candidate ids checked by one search.
const WINDOW: u64 = 64;

/// `cn=posix-ids,ou=system,SUFFIX`.
pub fn counter_dn(dir: &Directory) -> Result<Dn, AdminError> {
    Ok(dir.layout().system.child("cn", COUNTER_CN)?)
}

/// Refuses an id no account or group may have (0, 65534, 4294967295).
pub fn check_id(what: &str, id: u32) -> Result<(), AdminError> {
    if PosixSection::is_reserved(id) {
        return Err(AdminError::Usage(format!(
            "{what} {id} is reserved (0 is root, 65534 nobody, 4294967295 means -1); choose another"
        )));
    }
    Ok(())
}

/// The counter's value, or `None` when the entry does not exist yet.
async fn read_counter(dir: &Directory, dn: &Dn) -> Result<Option<i64>, AdminError> {
    match dir.read(dn, &[COUNTER_ATTR]).await {
        Ok(e) => e.int(COUNTER_ATTR)?.map(Some).ok_or_else(|| {
            AdminError::Directory(DirError::MalformedEntry {
                dn: dn.to_string(),
                attr: COUNTER_ATTR.into(),
                reason: "missing".into(),
            })
        }),
        Err(DirError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Creates the counter at `start`; someone else having done it is fine.
async fn create_counter(dir: &Directory, dn: &Dn, start: u32) -> Result<(), AdminError> {
    let attrs: Attrs = vec![
        ("objectClass".into(), vec![COUNTER_CLASS.as_bytes().to_vec()]),
        ("cn".into(), vec![COUNTER_CN.as_bytes().to_vec()]),
        (COUNTER_ATTR.into(), vec![int_value(start.into())]),
        ("description".into(), vec![b"next POSIX uidNumber/gidNumber dirbroker may hand out".to_vec()]),
    ];
    match dir.add(dn, attrs).await {
        Ok(()) | Err(DirError::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The ids in `ids` some entry already has as uidNumber or gidNumber.
async fn taken(dir: &Directory, ids: &[u32]) -> Result<HashSet<u32>, AdminError> {
    if ids.is_empty() {
        return Ok(HashSet::new());
    }
    let filter = Filter::or(
        ids.iter().flat_map(|i| [Filter::eq("uidNumber", i.to_string()), Filter::eq("gidNumber", i.to_string())]),
    );
    let found = dir.search(&dir.layout().base, Scope::Subtree, &filter, &["uidNumber", "gidNumber"]).await?;
    let mut used = HashSet::new();
    for e in &found {
        for attr in ["uidNumber", "gidNumber"] {
            if let Some(v) = e.int(attr).ok().flatten().and_then(|v| u32::try_from(v).ok()) {
                used.insert(v);
            }
        }
    }
    Ok(used)
}

/// The first id from `start` to `max` that is neither reserved nor taken.
async fn first_free(dir: &Directory, start: u64, max: u32) -> Result<Option<u32>, AdminError> {
    let mut lo = start;
    while lo <= u64::from(max) {
        let hi = (lo + WINDOW - 1).min(u64::from(max));
        let candidates: Vec<u32> =
            (lo..=hi).filter_map(|i| u32::try_from(i).ok()).filter(|i| !PosixSection::is_reserved(*i)).collect();
        let used = taken(dir, &candidates).await?;
        if let Some(free) = candidates.into_iter().find(|i| !used.contains(i)) {
            return Ok(Some(free));
        }
        lo = hi + 1;
    }
    Ok(None)
}

/// Draws a fresh id from the directory's counter: within `[uid_min,
/// uid_max]`, not reserved, not any entry's uidNumber or gidNumber, and never
/// the same id for two callers, however many run at once.
pub async fn allocate_id(dir: &Directory, range: &PosixSection) -> Result<u32, AdminError> {
    // A counted write: read the counter and the ids in use on the writer
    // (docs/replication.md), whatever handle the caller holds.
    let dir = &dir.primary();
    let dn = counter_dn(dir)?;
    let mut tried_to_create = false;
    for _ in 0..MAX_RACES {
        let Some(current) = read_counter(dir, &dn).await? else {
            if tried_to_create {
                // It exists (the add said so) yet this identity cannot read it.
                return Err(AdminError::Directory(DirError::AccessDenied {
                    dn: dn.to_string(),
                    message: "this identity cannot read the POSIX id counter (only the broker identity may)".into(),
                }));
            }
            create_counter(dir, &dn, range.uid_min).await?;
            tried_to_create = true;
            continue;
        };
        let start = u64::try_from(current).unwrap_or(0).max(u64::from(range.uid_min));
        let Some(id) = first_free(dir, start, range.uid_max).await? else {
            return Err(AdminError::Refused(format!(
                "no free POSIX id left: [posix] uid_min..uid_max is {}..{} and {dn} is at {current}; \
                 widen the range in the configuration",
                range.uid_min, range.uid_max
            )));
        };
        let changes = vec![
            Change::Delete(COUNTER_ATTR.as_bytes().to_vec(), [int_value(current)].into_iter().collect()),
            Change::Add(COUNTER_ATTR.as_bytes().to_vec(), [int_value(i64::from(id) + 1)].into_iter().collect()),
        ];
        match dir.modify(&dn, changes).await {
            Ok(()) => return Ok(id),
            // Another writer moved the counter since we read it.
            Err(e) if e.is_stale_value() => tokio::task::yield_now().await,
            Err(e) => return Err(e.into()),
        }
    }
    Err(AdminError::Failed(format!("could not draw a POSIX id: {MAX_RACES} other writers moved {dn} first; try again")))
}

/// The DN of an entry of `class` whose `attr` is `id`, if any.
async fn holder(dir: &Directory, class: &'static str, attr: &'static str, id: u32) -> Result<Option<Dn>, AdminError> {
    let filter = Filter::and([Filter::object_class(class), Filter::eq(attr, id.to_string())]);
    Ok(dir.find_one(&dir.layout().base, &filter, &["1.1"]).await?.map(|e| e.dn))
}

/// Refuses a uidNumber another account has.
pub async fn check_uid_number_free(dir: &Directory, id: u32) -> Result<(), AdminError> {
    check_id("uidNumber", id)?;
    match holder(dir, "posixAccount", "uidNumber", id).await? {
        Some(dn) => Err(AdminError::Refused(format!("uidNumber {id} is already used by {dn}; nothing written"))),
        None => Ok(()),
    }
}

/// Refuses a gidNumber another group has.
pub async fn check_gid_number_free(dir: &Directory, id: u32) -> Result<(), AdminError> {
    check_id("gidNumber", id)?;
    match holder(dir, "posixGroup", "gidNumber", id).await? {
        Some(dn) => Err(AdminError::Refused(format!("gidNumber {id} is already used by {dn}; nothing written"))),
        None => Ok(()),
    }
}

/// What `user add` (or `user modify --posix`) asks for the POSIX side; every
/// field left out takes the `[posix]` default.
#[derive(Clone, Debug, Default)]
pub struct PosixRequest {
    pub uid_number: Option<u32>,
    pub gid_number: Option<u32>,
    pub home: Option<String>,
    pub shell: Option<String>,
}

/// The POSIX attributes decided for `uid`, and the user-private group to
/// create with them (when neither `--gid-number` nor `[posix] default_gid` chose a group).
async fn plan_posix(
    dir: &Directory,
    cfg: &PosixSection,
    uid: &str,
    req: &PosixRequest,
) -> Result<(Posix, Option<Group>), AdminError> {
    posix_name::check("uid", uid)
        .map_err(|e| AdminError::Usage(format!("{e}; a user without a Unix login may have such a uid (--no-posix)")))?;
    let home = req.home.clone().unwrap_or_else(|| format!("{}/{uid}", cfg.home_base.trim_end_matches('/')));
    posix_name::check_path("home directory", &home)?;
    let shell = req.shell.clone().unwrap_or_else(|| cfg.default_shell.clone());
    posix_name::check_path("login shell", &shell)?;
    if let Some(g) = req.gid_number {
        check_id("gidNumber", g)?;
    }
    // Explicit ids first: a refused one must not cost a counter value.
    if let Some(u) = req.uid_number {
        check_uid_number_free(dir, u).await?;
    }
    let private = req.gid_number.is_none() && cfg.default_gid.is_none();
    if private && dir.read(&Group::dn_for(dir.layout(), uid)?, &["1.1"]).await.is_ok() {
        return Err(AdminError::Refused(format!(
            "a group named {uid:?} already exists, so the user-private group cannot be made; \
             give --gid-number to use an existing group"
        )));
    }
    let uid_number = match req.uid_number {
        Some(u) => u,
        None => allocate_id(dir, cfg).await?,
    };
    let (gid_number, group) = match (req.gid_number, cfg.default_gid) {
        (Some(g), _) | (None, Some(g)) => (g, None),
        (None, None) => {
            let gid = match holder(dir, "posixGroup", "gidNumber", uid_number).await? {
                None if !PosixSection::is_reserved(uid_number) => uid_number,
                _ => allocate_id(dir, cfg).await?,
            };
            let mut group = Group::new(uid, gid)?;
            group.description = Some(format!("user-private group of {uid}"));
            (gid, Some(group))
        }
    };
    Ok((Posix { uid_number, gid_number, home_directory: home, login_shell: Some(shell) }, group))
}

/// A user `user add` made.
#[derive(Clone, Debug)]
pub struct CreatedUser {
    pub dn: Dn,
    pub user: User,
    /// The user-private group made with it.
    pub group: Option<Group>,
}

/// Creates `user`, a POSIX account unless `posix` is `None`, with its
/// user-private group when that is how its gid is chosen, and sets its
/// password. The group and the user are added in one LDAP transaction, and a
/// password that cannot be set removes both: nothing is left half-made.
pub async fn create_user(
    dir: &Directory,
    cfg: &PosixSection,
    mut user: User,
    posix: Option<&PosixRequest>,
    password: Option<&SecretString>,
) -> Result<CreatedUser, AdminError> {
    if dir.find_user(&user.uid).await?.is_some() {
        return Err(AdminError::Refused(format!("a user with uid {:?} already exists", user.uid)));
    }
    let mut group = None;
    if let Some(req) = posix {
        let (p, g) = plan_posix(dir, cfg, &user.uid, req).await?;
        user.posix = Some(p);
        group = g;
    }
    let dn = user.dn(dir.layout())?;
    let group_dn = group.as_ref().map(|g| g.dn(dir.layout())).transpose()?;
    match (&group, &group_dn) {
        (Some(g), Some(gdn)) => {
            dir.apply_in_transaction(vec![
                WriteOp::Add(gdn.clone(), g.to_attrs()),
                WriteOp::Add(dn.clone(), user.to_attrs()),
            ])
            .await?
        }
        _ => dir.add(&dn, user.to_attrs()).await?,
    }
    if let Some(pw) = password
        && let Err(e) = dir.set_password(&dn, pw).await
    {
        return Err(undo(dir, &dn, group_dn.as_ref(), e.into()).await);
    }
    Ok(CreatedUser { dn, user, group })
}

/// Removes what a failed `create_user` wrote; the error says if that failed too.
pub async fn undo(dir: &Directory, user: &Dn, group: Option<&Dn>, why: AdminError) -> AdminError {
    let mut problems = Vec::new();
    for dn in std::iter::once(user).chain(group) {
        if let Err(e) = dir.delete(dn).await {
            problems.push(format!("removing {dn} failed too: {e}"));
        }
    }
    match problems.is_empty() {
        true => why,
        false => AdminError::Failed(format!("{why}; {}", problems.join("; "))),
    }
}

/// Deletes the user `uid`, and its user-private group (`cn=UID` with the
/// user's gidNumber and no other members) with it.
pub async fn delete_user(dir: &Directory, uid: &str) -> Result<(User, Option<Group>), AdminError> {
    let user = super::existing_user(dir, uid).await?;
    let private = match &user.posix {
        Some(p) => match dir.load::<Group>(&user.uid).await {
            Ok(g) if g.gid_number == p.gid_number && g.members.iter().all(|m| *m == user.uid) => Some(g),
            Ok(_) | Err(DirError::NotFound { .. } | DirError::BadInput { .. }) => None,
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    dir.delete(&user.dn(dir.layout())?).await?;
    // No group keeps naming a user who is gone (a new user with the same uid
    // would inherit the memberships).
    let filter = Filter::and([Filter::object_class("posixGroup"), Filter::eq("memberUid", user.uid.clone())]);
    for g in dir.search(&dir.layout().groups, Scope::Subtree, &filter, &["1.1"]).await? {
        let gone = Change::Delete(b"memberUid".to_vec(), [user.uid.as_bytes().to_vec()].into_iter().collect());
        match dir.modify(&g.dn, vec![gone]).await {
            Ok(()) => {}
            Err(e) if e.is_stale_value() => {}
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(g) = &private {
        // Still someone's primary group (set by hand)? Then keep it.
        if holder(dir, "posixAccount", "gidNumber", g.gid_number).await?.is_none() {
            dir.delete(&g.dn(dir.layout())?).await?;
        } else {
            return Ok((user, None));
        }
    }
    Ok((user, private))
}

/// Object classes a user written by another tool (say, `ldapadd` with only
/// `inetOrgPerson`) lacks for dirbroker's attributes: adding these in the
/// same modify as the attributes makes keys, allowed-from lists and account
/// state work on it.
pub fn missing_user_classes(entry: &crate::directory::Entry) -> Vec<Change> {
    let missing: HashSet<Vec<u8>> = ["ldapPublicKey", "dirbrokerUser"]
        .into_iter()
        .filter(|c| !entry.has_class(c))
        .map(|c| c.as_bytes().to_vec())
        .collect();
    match missing.is_empty() {
        true => Vec::new(),
        false => vec![Change::Add(b"objectClass".to_vec(), missing)],
    }
}

/// `changes` to the user `uid`, preceded by the object classes its entry lacks.
pub async fn modify_user(dir: &Directory, uid: &str, mut changes: Vec<Change>) -> Result<User, AdminError> {
    let user = super::existing_user(dir, uid).await?;
    let dn = user.dn(dir.layout())?;
    let entry = dir.read(&dn, &["objectClass"]).await?;
    let mut all = missing_user_classes(&entry);
    all.append(&mut changes);
    if !all.is_empty() {
        dir.modify(&dn, all).await?;
    }
    Ok(user)
}

/// What `user modify` changes; `None` leaves a field alone, `Some(None)` clears it.
#[derive(Clone, Debug, Default)]
pub struct UserModify {
    pub name: Option<String>,
    pub mail: Option<Option<String>>,
    pub home: Option<String>,
    pub shell: Option<Option<String>>,
    pub uid_number: Option<u32>,
    pub gid_number: Option<u32>,
    /// Make the user a POSIX account (ids from the counter unless given).
    pub posix: bool,
    /// `dirbrokerNotBefore`: the account may not be used before this time.
    pub not_before: Option<Option<OffsetDateTime>>,
    /// `dirbrokerNotAfter`: the account expires after this time.
    pub not_after: Option<Option<OffsetDateTime>>,
}

/// Applies `m` to the user `uid` in one modify (with the object classes the
/// entry lacks; and the user-private group, in one transaction with it, when
/// `--posix` makes one). Returns the user as it is afterwards.
pub async fn update_user(dir: &Directory, cfg: &PosixSection, uid: &str, m: &UserModify) -> Result<User, AdminError> {
    let user = super::existing_user(dir, uid).await?;
    let dn = user.dn(dir.layout())?;
    let entry = dir.read(&dn, &["objectClass"]).await?;
    let replace = |attr: &str, v: Vec<u8>| Change::Replace(attr.as_bytes().to_vec(), [v].into_iter().collect());
    let clear = |attr: &str| Change::Replace(attr.as_bytes().to_vec(), HashSet::new());
    let mut changes = missing_user_classes(&entry);
    if let Some(name) = &m.name {
        crate::directory::dn::check_value("name", name)?;
        changes.push(replace("cn", name.as_bytes().to_vec()));
    }
    match &m.mail {
        Some(Some(mail)) => {
            crate::directory::dn::check_value("mail", mail)?;
            changes.push(replace("mail", mail.as_bytes().to_vec()));
        }
        Some(None) => changes.push(clear("mail")),
        None => {}
    }
    let bounds = [("dirbrokerNotBefore", m.not_before), ("dirbrokerNotAfter", m.not_after)];
    for (attr, bound) in bounds {
        match bound {
            Some(Some(t)) => changes.push(replace(attr, generalized_time(t))),
            Some(None) => changes.push(clear(attr)),
            None => {}
        }
    }
    let (from, until) = (m.not_before.unwrap_or(user.not_before), m.not_after.unwrap_or(user.not_after));
    if let (Some(from), Some(until)) = (from, until)
        && from > until
    {
        return Err(AdminError::Usage(format!(
            "not before {from} is after not after {until}: the account could never be used"
        )));
    }
    let mut group = None;
    let is_posix = entry.has_class("posixAccount");
    if m.posix && !is_posix {
        let req = PosixRequest {
            uid_number: m.uid_number,
            gid_number: m.gid_number,
            home: m.home.clone(),
            shell: m.shell.clone().flatten(),
        };
        let (p, g) = plan_posix(dir, cfg, &user.uid, &req).await?;
        changes.push(Change::Add(b"objectClass".to_vec(), [b"posixAccount".to_vec()].into_iter().collect()));
        changes.push(replace("uidNumber", int_value(p.uid_number.into())));
        changes.push(replace("gidNumber", int_value(p.gid_number.into())));
        changes.push(replace("homeDirectory", p.home_directory.into_bytes()));
        if let Some(s) = p.login_shell {
            changes.push(replace("loginShell", s.into_bytes()));
        }
        group = g;
    } else {
        let wants_posix = m.home.is_some() || m.shell.is_some() || m.uid_number.is_some() || m.gid_number.is_some();
        if wants_posix && !is_posix {
            return Err(AdminError::Usage(format!(
                "{uid} is not a POSIX account; add --posix to make it one (uidNumber, gidNumber, home, shell)"
            )));
        }
        if let Some(u) = m.uid_number {
            if user.posix.as_ref().map(|p| p.uid_number) != Some(u) {
                check_uid_number_free(dir, u).await?;
            }
            changes.push(replace("uidNumber", int_value(u.into())));
        }
        if let Some(g) = m.gid_number {
            check_id("gidNumber", g)?;
            changes.push(replace("gidNumber", int_value(g.into())));
        }
        if let Some(h) = &m.home {
            posix_name::check_path("home directory", h)?;
            changes.push(replace("homeDirectory", h.as_bytes().to_vec()));
        }
        match &m.shell {
            Some(Some(s)) => {
                posix_name::check_path("login shell", s)?;
                changes.push(replace("loginShell", s.as_bytes().to_vec()));
            }
            Some(None) => changes.push(clear("loginShell")),
            None => {}
        }
    }
    if changes.is_empty() {
        return Err(AdminError::Usage(match m.posix && is_posix {
            true => format!("{uid} is a POSIX account already; nothing to change"),
            false => "nothing to change: name at least one attribute".into(),
        }));
    }
    match &group {
        Some(g) => {
            dir.apply_in_transaction(vec![
                WriteOp::Add(g.dn(dir.layout())?, g.to_attrs()),
                WriteOp::Modify(dn.clone(), changes),
            ])
            .await?
        }
        None => dir.modify(&dn, changes).await?,
    }
    super::existing_user(dir, uid).await
}

/// Creates the posixGroup `name` with `gid` (or an id from the counter).
pub async fn create_group(
    dir: &Directory,
    cfg: &PosixSection,
    name: &str,
    gid: Option<u32>,
    description: Option<&str>,
) -> Result<Group, AdminError> {
    posix_name::check("group name", name)?;
    if let Some(d) = description {
        crate::directory::dn::check_value("description", d)?;
    }
    if dir.read(&Group::dn_for(dir.layout(), name)?, &["1.1"]).await.is_ok() {
        return Err(AdminError::Refused(format!("a group named {name:?} already exists")));
    }
    let gid = match gid {
        Some(g) => {
            check_gid_number_free(dir, g).await?;
            g
        }
        None => allocate_id(dir, cfg).await?,
    };
    let mut group = Group::new(name, gid)?;
    group.description = description.map(str::to_string);
    match dir.create(&group).await {
        Ok(_) => Ok(group),
        Err(DirError::AlreadyExists { .. }) => {
            Err(AdminError::Refused(format!("a group named {name:?} already exists")))
        }
        Err(e) => Err(e.into()),
    }
}

/// The group `name`; a missing one is "no group …".
pub async fn existing_group(dir: &Directory, name: &str) -> Result<Group, AdminError> {
    match dir.load::<Group>(name).await {
        Ok(g) => Ok(g),
        Err(DirError::NotFound { .. }) => Err(AdminError::Refused(format!("no group named {name:?}"))),
        Err(e) => Err(e.into()),
    }
}

/// The uids of the accounts whose primary group is `gid`, sorted.
pub async fn primary_members(dir: &Directory, gid: u32) -> Result<Vec<String>, AdminError> {
    let filter = Filter::and([Filter::object_class("posixAccount"), Filter::eq("gidNumber", gid.to_string())]);
    let found = dir.search(&dir.layout().base, Scope::Subtree, &filter, &["uid"]).await?;
    let mut uids: Vec<String> =
        found.iter().filter_map(|e| e.strs("uid").ok()?.first().map(|s| s.to_string())).collect();
    uids.sort();
    Ok(uids)
}

/// The names of the groups listing `uid` as a member (`memberUid`), sorted.
pub async fn groups_of(dir: &Directory, uid: &str) -> Result<Vec<String>, AdminError> {
    crate::directory::dn::check_value("uid", uid)?;
    let filter = Filter::and([Filter::object_class("posixGroup"), Filter::eq("memberUid", uid.to_string())]);
    let found = match dir.search(&dir.layout().groups, Scope::Subtree, &filter, &["1.1"]).await {
        Ok(found) => found,
        // An identity that may not see ou=groups sees no memberships.
        Err(DirError::NotFound { .. }) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let mut names: Vec<String> = found.iter().filter_map(|e| e.dn.first_rdn().map(|(_, v)| v)).collect();
    names.sort();
    Ok(names)
}

/// Deletes the group `name`; a group that is still some account's primary
/// group is kept unless `force`.
pub async fn delete_group(dir: &Directory, name: &str, force: bool) -> Result<Group, AdminError> {
    let group = existing_group(dir, name).await?;
    let users = primary_members(dir, group.gid_number).await?;
    if !users.is_empty() && !force {
        return Err(AdminError::Refused(format!(
            "group {name:?} (gid {}) is the primary group of {}; change their --gid-number first, or --force",
            group.gid_number,
            users.join(", ")
        )));
    }
    dir.delete(&group.dn(dir.layout())?).await?;
    Ok(group)
}

/// Adds the users `uids` to the group `name` (as `memberUid`). Every uid must
/// name an existing user and not be a member yet; otherwise nothing is added.
pub async fn add_members(dir: &Directory, name: &str, uids: &[String]) -> Result<Group, AdminError> {
    let mut group = existing_group(dir, name).await?;
    let mut problems = Vec::new();
    let mut new: Vec<String> = Vec::new();
    for uid in uids {
        match dir.find_user(uid).await {
            Ok(Some(_)) if group.members.contains(uid) || new.contains(uid) => {
                problems.push(format!("{uid} is already a member"))
            }
            Ok(Some(u)) => new.push(u.uid),
            Ok(None) => problems.push(format!("no user with uid {uid:?}")),
            Err(DirError::BadInput { field, reason }) => problems.push(format!("{field}: {reason}")),
            Err(e) => return Err(e.into()),
        }
    }
    if !problems.is_empty() {
        return Err(AdminError::Refused(format!("nothing added to {name}: {}", problems.join("; "))));
    }
    let values = new.iter().map(|u| u.as_bytes().to_vec()).collect();
    dir.modify(&group.dn(dir.layout())?, vec![Change::Add(b"memberUid".to_vec(), values)]).await?;
    group.members.extend(new);
    group.members.sort();
    Ok(group)
}

/// Removes `uids` from the group `name`; each must be a member, or nothing is removed.
pub async fn remove_members(dir: &Directory, name: &str, uids: &[String]) -> Result<Group, AdminError> {
    let mut group = existing_group(dir, name).await?;
    let missing: Vec<&String> = uids.iter().filter(|u| !group.members.contains(u)).collect();
    if !missing.is_empty() {
        let list: Vec<String> = missing.iter().map(|u| format!("{u:?}")).collect();
        return Err(AdminError::Refused(format!("nothing removed from {name}: not a member: {}", list.join(", "))));
    }
    let values = uids.iter().map(|u| u.as_bytes().to_vec()).collect();
    dir.modify(&group.dn(dir.layout())?, vec![Change::Delete(b"memberUid".to_vec(), values)]).await?;
    group.members.retain(|m| !uids.contains(m));
    Ok(group)
}
