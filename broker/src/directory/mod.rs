//! The directory layer: typed, escaped, pooled access to OpenLDAP.
//!
//! ```text
//!  caller ──► Directory ──► pool of bound connections ──► URI 1 │ URI 2 │ …
//!               │  search/read/add/modify/delete, each under op_timeout
//!               └─ errors: NotFound, AlreadyExists, ConstraintViolation,
//!                  Unavailable (retryable), BadInput, …
//! ```
//!
//! Connections are bound once with the service identity and reused; a
//! connection that broke is dropped and the next one dials the URIs in
//! order: for reads starting with the one that answered last, for writes
//! always with the writer (the first URI or `writer`), so that with
//! replicated providers every broker writes to the same one. Filters and DNs are built
//! only with [`Filter`] and [`Dn`], which escape input (RFC 4515 / RFC 4514).

pub mod config;
pub mod dn;
pub mod entry;
pub mod error;
pub mod filter;
pub mod layout;
mod pool;
pub mod values;
mod wait;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use ldap3::exop::{PasswordModify, WhoAmI};
use ldap3::{Ldap, Mod, Scope as LdapScope};

pub use config::{Bind, DirectoryConfig, TlsSettings};
pub use dn::Dn;
pub use entry::Entry;
pub use error::{DirError, Result};
pub use filter::Filter;
pub use layout::Layout;
pub use pool::SKIP_FAILED_FOR;
pub use wait::Backoff;

use crate::secret::SecretString;

/// Search scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Base,
    OneLevel,
    Subtree,
}

impl From<Scope> for LdapScope {
    fn from(s: Scope) -> Self {
        match s {
            Scope::Base => LdapScope::Base,
            Scope::OneLevel => LdapScope::OneLevel,
            Scope::Subtree => LdapScope::Subtree,
        }
    }
}

/// One search of a [`Directory::search_batch`].
#[derive(Clone, Copy, Debug)]
pub struct SearchQuery<'a> {
    pub base: &'a Dn,
    pub scope: Scope,
    pub filter: &'a Filter,
    pub attrs: &'a [&'a str],
}

/// One change of a modify operation; values are raw bytes.
pub type Change = Mod<Vec<u8>>;

/// Attributes of a new entry: (attribute description, values).
pub type Attrs = Vec<(String, Vec<Vec<u8>>)>;

/// One write of an import: what an LDIF record asks of the directory.
#[derive(Clone, Debug)]
pub enum WriteOp {
    Add(Dn, Attrs),
    Delete(Dn),
    /// Never empty: an empty modify is not sent.
    Modify(Dn, Vec<Change>),
    ModDn {
        dn: Dn,
        new_rdn: String,
        delete_old_rdn: bool,
        new_superior: Option<Dn>,
    },
}

impl WriteOp {
    /// The entry the operation is about.
    pub fn dn(&self) -> &Dn {
        match self {
            WriteOp::Add(dn, _) | WriteOp::Delete(dn) | WriteOp::Modify(dn, _) | WriteOp::ModDn { dn, .. } => dn,
        }
    }

    async fn send(&self, l: &mut Ldap) -> std::result::Result<ldap3::LdapResult, ldap3::LdapError> {
        match self {
            WriteOp::Add(dn, attrs) => {
                let attrs: Vec<(Vec<u8>, HashSet<Vec<u8>>)> = attrs
                    .iter()
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(name, values)| (name.as_bytes().to_vec(), values.iter().cloned().collect()))
                    .collect();
                l.add(dn.as_str(), attrs).await
            }
            WriteOp::Delete(dn) => l.delete(dn.as_str()).await,
            WriteOp::Modify(dn, changes) => l.modify(dn.as_str(), changes.clone()).await,
            WriteOp::ModDn { dn, new_rdn, delete_old_rdn, new_superior } => {
                l.modifydn(dn.as_str(), new_rdn, *delete_old_rdn, new_superior.as_ref().map(Dn::as_str)).await
            }
        }
    }
}

/// A pooled, bound connection set to one directory (several URIs).
///
/// Reads go to any server (starting with the one that answered last);
/// writes always try the writer first ([`pool::Route::Write`]). With one URI
/// both are the same connections. [`Directory::primary`] sends reads to the
/// writer too, for a read that a consume-once write depends on.
#[derive(Clone)]
pub struct Directory {
    conns: pool::Conns,
    dialer: Arc<pool::Dialer>,
    writes: pool::Conns,
    write_dialer: Arc<pool::Dialer>,
    layout: Layout,
    op_timeout: Duration,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory").field("base", &self.layout.base).field("uris", &self.dialer.uris()).finish()
    }
}

impl Directory {
    /// Build the pool and open one connection now, so that a wrong password or
    /// an unreachable directory shows at start rather than at first use.
    pub async fn connect(cfg: DirectoryConfig) -> Result<Directory> {
        let dir = Self::lazy(cfg)?;
        drop(dir.conn().await?);
        Ok(dir)
    }

    /// Build the pool without dialling; the first operation connects.
    pub fn lazy(cfg: DirectoryConfig) -> Result<Directory> {
        Self::build(cfg, true)
    }

    /// One connection instead of a pool, dialled and bound now: for a command
    /// that makes a few operations and exits (the node-side SSH lookups).
    pub async fn connect_once(cfg: DirectoryConfig) -> Result<Directory> {
        let dir = Self::build(cfg, false)?;
        drop(dir.conn().await?);
        Ok(dir)
    }

    fn build(cfg: DirectoryConfig, pooled: bool) -> Result<Directory> {
        cfg.validate()?;
        let base = Dn::parse(&cfg.base_dn).map_err(|e| DirError::Config(format!("base_dn: {e}")))?;
        let layout = Layout::new(base)?;
        let op_timeout = cfg.op_timeout;
        let replicated = cfg.uris.len() > 1;
        let conns_for = |dialer: &Arc<pool::Dialer>| -> Result<pool::Conns> {
            Ok(if pooled {
                pool::Conns::Pool(pool::build(dialer.clone())?)
            } else {
                pool::Conns::single(dialer.clone())
            })
        };
        let tls = cfg.rustls_config()?;
        let write_dialer = Arc::new(pool::Dialer::new(cfg.clone(), pool::Route::Write, tls.clone()));
        let writes = conns_for(&write_dialer)?;
        let (dialer, conns) = if replicated {
            let dialer = Arc::new(pool::Dialer::new(cfg, pool::Route::Read, tls));
            let conns = conns_for(&dialer)?;
            (dialer, conns)
        } else {
            (write_dialer.clone(), writes.clone())
        };
        Ok(Directory { conns, dialer, writes, write_dialer, layout, op_timeout })
    }

    /// The same directory with reads sent to the writer as well: for reads
    /// that a consume-once or counted write is based on (an OTP counter, an
    /// invitation, the next free id), which a replica may not have yet.
    pub fn primary(&self) -> Directory {
        Directory {
            conns: self.writes.clone(),
            dialer: self.write_dialer.clone(),
            writes: self.writes.clone(),
            write_dialer: self.write_dialer.clone(),
            layout: self.layout.clone(),
            op_timeout: self.op_timeout,
        }
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    async fn conn(&self) -> Result<pool::Lease> {
        self.conns.get(self.op_timeout).await
    }

    async fn write_conn(&self) -> Result<pool::Lease> {
        self.writes.get(self.op_timeout).await
    }

    /// Run `op` on a pooled connection. A connection whose operation failed
    /// with a transport error is taken out of the pool; `retry` allows one
    /// more attempt on a fresh connection (for reads: a pooled connection may
    /// have been closed by the server since its last use), but not after a
    /// timeout: the caller waits at most one operation timeout per server.
    ///
    /// `op` gets its own handle on the connection (ldap3 multiplexes handles),
    /// carrying the operation timeout.
    async fn run<T, F, Fut>(&self, dn: &str, retry: bool, op: F) -> Result<T>
    where
        F: Fn(Ldap) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, ldap3::LdapError>>,
    {
        let attempts = if retry { 2 } else { 1 };
        let mut last = None;
        for _ in 0..attempts {
            let conn = self.conn().await?;
            let mut handle: Ldap = (*conn).clone();
            handle.with_timeout(self.op_timeout);
            match op(handle).await {
                Ok(v) => return Ok(v),
                Err(e) => {
                    // A server that let the operation time out is hung, not a
                    // pooled connection it closed: asking it again would only
                    // double the wait (sshd pays it on every login); another
                    // server is asked instead, if there is one.
                    let timed_out = matches!(e, ldap3::LdapError::Timeout { .. });
                    let err = DirError::from_ldap(e, dn);
                    if !err.is_retryable() {
                        return Err(err);
                    }
                    self.dialer.mark_failed(conn.uri());
                    conn.discard().await;
                    if timed_out && self.dialer.uris().len() < 2 {
                        return Err(err);
                    }
                    last = Some(err);
                }
            }
        }
        Err(last.unwrap_or(DirError::Unavailable { detail: "no attempt made".into() }))
    }

    /// Run the write `op` on a connection to the writer. A write is never
    /// sent twice to one server (it may have been applied), but a server that
    /// refused it as read-only (`unwillingToPerform`, olcReadOnly) or could
    /// not be reached is skipped and the next URI is asked, so the write
    /// lands on the one writable provider.
    async fn run_write<T, F, Fut>(&self, dn: &str, op: F) -> Result<T>
    where
        F: Fn(Ldap) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, ldap3::LdapError>>,
    {
        let attempts = self.write_dialer.uris().len().max(1);
        let mut last = None;
        for _ in 0..attempts {
            let conn = self.write_conn().await?;
            let mut handle: Ldap = (*conn).clone();
            handle.with_timeout(self.op_timeout);
            match op(handle).await {
                Ok(v) => return Ok(v),
                Err(e) => {
                    let read_only = matches!(&e, ldap3::LdapError::LdapResult { result }
                        if result.rc == error::rc::UNWILLING_TO_PERFORM);
                    let err = DirError::from_ldap(e, dn);
                    if read_only && attempts > 1 {
                        self.write_dialer.mark_failed(conn.uri());
                        conn.discard().await;
                        last = Some(DirError::Unavailable {
                            detail: format!("no writable provider among the {attempts} directory URIs (last: {err})"),
                        });
                        continue;
                    }
                    if err.is_retryable() {
                        // Maybe applied, maybe not: not sent again, but the
                        // next write starts on another server for a while.
                        self.write_dialer.mark_failed(conn.uri());
                        conn.discard().await;
                    }
                    return Err(err);
                }
            }
        }
        Err(last.unwrap_or(DirError::Unavailable { detail: "no attempt made".into() }))
    }

    /// Search below `base`. A missing base is [`DirError::NotFound`].
    pub async fn search(&self, base: &Dn, scope: Scope, filter: &Filter, attrs: &[&str]) -> Result<Vec<Entry>> {
        let filter = filter.to_string();
        let attrs: Vec<&str> = if attrs.is_empty() { vec!["*"] } else { attrs.to_vec() };
        let (entries, _) = self
            .run(base.as_str(), true, |mut l: Ldap| {
                let (filter, attrs) = (&filter, &attrs);
                async move { l.search(base.as_str(), scope.into(), filter, attrs).await?.success() }
            })
            .await?;
        entries.into_iter().map(|re| Entry::from_search(ldap3::SearchEntry::construct(re))).collect()
    }

    /// Run several searches at once on one connection (LDAP lets a client
    /// have many operations in flight), so a lookup that needs two entries
    /// costs one round trip and one connection. Results come back in order.
    pub async fn search_batch(&self, queries: &[SearchQuery<'_>]) -> Result<Vec<Vec<Entry>>> {
        let prepared: Vec<(String, String, Vec<&str>, LdapScope)> = queries
            .iter()
            .map(|q| {
                let attrs: Vec<&str> = if q.attrs.is_empty() { vec!["*"] } else { q.attrs.to_vec() };
                (q.base.to_string(), q.filter.to_string(), attrs, q.scope.into())
            })
            .collect();
        let label = queries.first().map(|q| q.base.to_string()).unwrap_or_default();
        let results = self
            .run(&label, true, |l: Ldap| {
                let prepared = &prepared;
                async move {
                    let ops = prepared.iter().map(|(base, filter, attrs, scope)| {
                        let mut l = l.clone();
                        async move { l.search(base, *scope, filter, attrs).await?.success() }
                    });
                    futures_util::future::join_all(ops).await.into_iter().collect::<std::result::Result<Vec<_>, _>>()
                }
            })
            .await?;
        results
            .into_iter()
            .map(|(entries, _)| {
                entries.into_iter().map(|re| Entry::from_search(ldap3::SearchEntry::construct(re))).collect()
            })
            .collect()
    }

    /// Read one entry by DN.
    pub async fn read(&self, dn: &Dn, attrs: &[&str]) -> Result<Entry> {
        let mut found = self.search(dn, Scope::Base, &Filter::any(), attrs).await?;
        match found.pop() {
            Some(e) if found.is_empty() => Ok(e),
            Some(_) => Err(DirError::Ldap {
                dn: dn.to_string(),
                rc: 0,
                message: "base search returned several entries".into(),
            }),
            None => Err(DirError::NotFound { what: dn.to_string() }),
        }
    }

    /// Search for at most one entry; several matches are an error.
    pub async fn find_one(&self, base: &Dn, filter: &Filter, attrs: &[&str]) -> Result<Option<Entry>> {
        let mut found = self.search(base, Scope::Subtree, filter, attrs).await?;
        match found.len() {
            0 => Ok(None),
            1 => Ok(found.pop()),
            n => Err(DirError::ConstraintViolation {
                dn: base.to_string(),
                rc: 0,
                message: format!("{n} entries match {filter}, expected at most one"),
            }),
        }
    }

    pub async fn add(&self, dn: &Dn, attrs: Attrs) -> Result<()> {
        let attrs: Vec<(Vec<u8>, HashSet<Vec<u8>>)> = attrs
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(name, values)| (name.into_bytes(), values.into_iter().collect()))
            .collect();
        self.run_write(dn.as_str(), |mut l: Ldap| {
            let attrs = attrs.clone();
            async move { l.add(dn.as_str(), attrs).await?.success() }
        })
        .await
        .map(drop)
    }

    /// Add `entries` in one LDAP transaction (see [`Directory::apply_in_transaction`]).
    pub async fn add_in_transaction(&self, entries: Vec<(Dn, Attrs)>) -> Result<()> {
        self.apply_in_transaction(entries.into_iter().map(|(dn, attrs)| WriteOp::Add(dn, attrs)).collect()).await
    }

    /// Apply `ops` in one LDAP transaction (RFC 5805, which slapd's mdb
    /// backend supports): all are applied or none, and the directory commits
    /// them in one durable write — much faster than one write per operation.
    /// Operations are applied in order, so parents may come before children
    /// and a modify may follow the add of its entry.
    pub async fn apply_in_transaction(&self, ops: Vec<WriteOp>) -> Result<()> {
        use ldap3::asn1::{ASNTag, OctetString, Sequence, Tag, write};
        use ldap3::controls::RawControl;
        use ldap3::exop::Exop;
        const START: &str = "1.3.6.1.1.21.1";
        const SPEC: &str = "1.3.6.1.1.21.2";
        const END: &str = "1.3.6.1.1.21.3";
        let label = ops.first().map(|op| op.dn().to_string()).unwrap_or_default();
        let conn = self.write_conn().await?;
        let mut l: Ldap = (*conn).clone();
        let fail = |e: ldap3::LdapError| DirError::from_ldap(e, &label);
        l.with_timeout(self.op_timeout);
        let (started, _) =
            l.extended(Exop { name: Some(START.into()), val: None }).await.and_then(|r| r.success()).map_err(fail)?;
        let id = started.val.unwrap_or_default();
        let end = |commit: bool| {
            let mut inner = Vec::new();
            if !commit {
                inner.push(Tag::Boolean(ldap3::asn1::Boolean { inner: false, ..Default::default() }));
            }
            inner.push(Tag::OctetString(OctetString { inner: id.clone(), ..Default::default() }));
            let mut buf = bytes::BytesMut::new();
            let encoded =
                write::encode_into(&mut buf, Tag::Sequence(Sequence { inner, ..Default::default() }).into_structure());
            encoded.ok().map(|()| Exop { name: Some(END.into()), val: Some(buf.to_vec()) })
        };
        // The operations are pipelined, a window at a time: a window is sent
        // before its first answer is awaited (LDAP allows many operations in
        // flight), in order, so slapd queues them into the transaction in that
        // order. The window stays under slapd's olcConnMaxPendingAuth (1000).
        // Adds are pipelined, a window at a time: a window is sent before its
        // first answer is awaited (LDAP allows many operations in flight).
        // slapd may queue the operations of one window into the transaction
        // in any order, so a window never holds an entry and its parent (the
        // parent's window is answered first), and deletes, modifies and
        // renames go one at a time: the file's order is the operation order.
        // The window stays under slapd's olcConnMaxPendingAuth (1000). (The
        // import sends only adds in transactions: see `import::apply::run_batch`.)
        const WINDOW: usize = 900;
        let mut windows: Vec<&[WriteOp]> = Vec::new();
        let mut start = 0usize;
        let mut in_window: HashSet<String> = HashSet::new();
        for (i, op) in ops.iter().enumerate() {
            let depends = match op {
                WriteOp::Add(dn, _) => dn.parent().is_some_and(|p| in_window.contains(&p.normalized())),
                _ => true,
            };
            if i > start && (depends || i - start >= WINDOW) {
                windows.extend(ops.get(start..i));
                start = i;
                in_window.clear();
            }
            match op {
                WriteOp::Add(dn, _) => {
                    in_window.insert(dn.normalized());
                }
                _ => {
                    windows.extend(ops.get(i..=i));
                    start = i + 1;
                    in_window.clear();
                }
            }
        }
        windows.extend(ops.get(start..).filter(|w| !w.is_empty()));
        let mut queued: Result<()> = Ok(());
        for window in windows {
            let run = window.iter().map(|op| {
                let ctrl = RawControl { ctype: SPEC.into(), crit: true, val: Some(id.clone()) };
                let mut h = l.clone();
                h.with_controls(vec![ctrl]).with_timeout(self.op_timeout);
                async move {
                    op.send(&mut h)
                        .await
                        .and_then(|r| r.success())
                        .map_err(|e| DirError::from_ldap(e, op.dn().as_str()))
                }
            });
            if let Err(e) = futures_util::future::join_all(run).await.into_iter().collect::<Result<Vec<_>>>() {
                queued = Err(e);
                break;
            }
        }
        let commit = queued.is_ok();
        let Some(exop) = end(commit) else {
            return Err(DirError::Ldap {
                dn: label,
                rc: 0,
                message: "cannot encode the end of the transaction".into(),
            });
        };
        l.with_timeout(self.op_timeout);
        if commit {
            // slapd 2.5 (Debian 12 ships 2.5.13) answers an operation queued
            // into a transaction (txn_preop sends the result) before the
            // thread that handled it has returned through do_add, and the
            // commit frees the queued operations: a commit arriving in that
            // gap is a use-after-free (seen under load: SIGSEGV in do_add).
            // One round trip and a short pause let those threads finish
            // before the commit runs.
            let _ = l.extended(WhoAmI).await;
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        let ended = l.extended(exop).await.and_then(|r| r.success());
        queued?;
        ended.map_err(fail)?;
        Ok(())
    }

    /// Apply one operation on its own (outside any transaction).
    pub async fn apply(&self, op: &WriteOp) -> Result<()> {
        self.run_write(op.dn().as_str(), |mut l: Ldap| async move { op.send(&mut l).await?.success() }).await.map(drop)
    }

    /// Search page by page (RFC 2696 simple paged results, `page_size`
    /// entries a page) and hand each entry to `each` as it arrives, so the
    /// caller never holds the whole result. Not retried: `each` may already
    /// have written entries when a connection breaks. Returns the count.
    pub async fn search_each<E: From<DirError>>(
        &self,
        base: &Dn,
        scope: Scope,
        filter: &Filter,
        attrs: &[&str],
        page_size: i32,
        mut each: impl FnMut(Entry) -> std::result::Result<(), E>,
    ) -> std::result::Result<usize, E> {
        use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
        let filter = filter.to_string();
        let attrs: Vec<String> =
            if attrs.is_empty() { vec!["*".into()] } else { attrs.iter().map(|a| (*a).to_string()).collect() };
        let conn = self.conn().await?;
        let mut l: Ldap = (*conn).clone();
        l.with_timeout(self.op_timeout);
        let fail = |e: ldap3::LdapError| DirError::from_ldap(e, base.as_str());
        let adapters: Vec<Box<dyn Adapter<'_, String, Vec<String>>>> =
            vec![Box::new(EntriesOnly::new()), Box::new(PagedResults::new(page_size.max(1)))];
        let mut stream = l
            .streaming_search_with(adapters, base.as_str(), scope.into(), &filter, attrs)
            .await
            .map_err(|e| E::from(fail(e)))?;
        let mut count = 0usize;
        loop {
            let next = match stream.next().await {
                Ok(n) => n,
                Err(e) => {
                    conn.discard().await;
                    return Err(fail(e).into());
                }
            };
            let Some(raw) = next else { break };
            let entry = Entry::from_search(ldap3::SearchEntry::construct(raw))?;
            each(entry)?;
            count += 1;
        }
        stream.finish().await.success().map_err(|e| E::from(fail(e)))?;
        Ok(count)
    }

    /// Apply `changes` to `dn` in one modify operation: all or nothing.
    pub async fn modify(&self, dn: &Dn, changes: Vec<Change>) -> Result<()> {
        self.run_write(dn.as_str(), |mut l: Ldap| {
            let changes = changes.clone();
            async move { l.modify(dn.as_str(), changes).await?.success() }
        })
        .await
        .map(drop)
    }

    /// Apply `changes` to `dn` only while the entry still matches `assertion`
    /// (RFC 4528 Assertion control, critical), and get the entry back as the
    /// change left it (RFC 4527 Post-Read, the `read_back` attributes), in one
    /// operation. An entry that no longer matches fails with
    /// `assertionFailed`, which [`DirError::is_stale_value`] recognises.
    pub async fn modify_if(
        &self,
        dn: &Dn,
        changes: Vec<Change>,
        assertion: &Filter,
        read_back: &[&str],
    ) -> Result<Entry> {
        use ldap3::controls::{Assertion, Control, ControlType, PostRead, PostReadResp, RawControl};
        let assertion = assertion.to_string();
        let result = self
            .run_write(dn.as_str(), |mut l: Ldap| {
                let changes = changes.clone();
                // Both critical: a server that does not know them must refuse
                // the write rather than apply it unguarded.
                let mut asserted: RawControl = Assertion::new(assertion.as_str());
                asserted.crit = true;
                let mut read: RawControl = PostRead::new(read_back.to_vec());
                read.crit = true;
                let ctrls = vec![asserted, read];
                async move { l.with_controls(ctrls).modify(dn.as_str(), changes).await?.success() }
            })
            .await?;
        let read = result.ctrls.into_iter().find_map(|Control(kind, raw)| match kind {
            Some(ControlType::PostReadResp) => Some(raw.parse::<PostReadResp>()),
            _ => None,
        });
        read.map(|r| Entry::from_read_back(dn.clone(), r)).ok_or_else(|| DirError::Ldap {
            dn: dn.to_string(),
            rc: 0,
            message: "the server applied the change but sent no Post-Read entry".into(),
        })
    }

    pub async fn delete(&self, dn: &Dn) -> Result<()> {
        self.run_write(dn.as_str(), |mut l: Ldap| async move { l.delete(dn.as_str()).await?.success() }).await.map(drop)
    }

    /// The authorization identity of the pooled connections (RFC 4532), e.g.
    /// `dn:cn=broker,ou=system,dc=example,dc=org`.
    pub async fn whoami(&self) -> Result<String> {
        let (exop, _) = self.run("", true, |mut l: Ldap| async move { l.extended(WhoAmI).await?.success() }).await?;
        let raw = exop.val.unwrap_or_default();
        String::from_utf8(raw).map_err(|_| DirError::Ldap {
            dn: String::new(),
            rc: 0,
            message: "WhoAmI reply is not UTF-8".into(),
        })
    }

    /// Set the password of `dn` with the Password Modify extended operation
    /// (RFC 3062), so slapd hashes it with its configured scheme.
    pub async fn set_password(&self, dn: &Dn, password: &SecretString) -> Result<()> {
        check_password_input(password)?;
        self.run_write(dn.as_str(), |mut l: Ldap| async move {
            l.extended(PasswordModify { user_id: Some(dn.as_str()), old_pass: None, new_pass: Some(password.expose()) })
                .await?
                .success()
        })
        .await
        .map(drop)
    }

    /// Whether `password` is right for `dn`, by binding as `dn` on a fresh
    /// connection (never a pooled one, which must keep the service identity).
    pub async fn check_password(&self, dn: &Dn, password: &SecretString) -> Result<bool> {
        check_password_input(password)?;
        self.dialer.config().check_simple_bind_transport()?;
        match self.dialer.dial(&Bind::Simple { dn: dn.to_string(), password: password.clone() }).await {
            Ok(mut ldap) => {
                let _ = ldap.unbind().await;
                Ok(true)
            }
            Err(DirError::InvalidCredentials { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// A second directory handle on the same servers bound as another identity.
    pub fn with_bind(&self, bind: Bind) -> Result<Directory> {
        let mut cfg = self.dialer.config().clone();
        cfg.bind = bind;
        Self::lazy(cfg)
    }

    /// The URIs that failed within the last [`SKIP_FAILED_FOR`] (timed out,
    /// unreachable, or refused a write as read-only), for a short-lived
    /// process to hand to the next one ([`DirectoryConfig::try_last`]).
    pub fn failed_uris(&self) -> Vec<String> {
        let mut uris = self.dialer.failed_uris();
        for u in self.write_dialer.failed_uris() {
            if !uris.contains(&u) {
                uris.push(u);
            }
        }
        uris
    }

    /// Close every idle connection (e.g. before the process exits).
    pub fn close(&self) {
        self.conns.close();
        self.writes.close();
    }
}

/// An empty password would turn a simple bind into an unauthenticated one
/// (RFC 4513 §5.1.2), which "succeeds"; refuse it everywhere.
fn check_password_input(password: &SecretString) -> Result<()> {
    if password.expose().is_empty() {
        return Err(DirError::bad_input("password", "is empty"));
    }
    if password.expose().chars().any(|c| c == '\0') {
        return Err(DirError::bad_input("password", "contains a NUL character"));
    }
    Ok(())
}
