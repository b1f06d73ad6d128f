//! `dirbroker check`: is the directory there, who are we, is the schema loaded.

use dirbroker::directory::{Dn, Filter, Scope};
use dirbroker::schema::REQUIRED_CLASSES;

use super::{CliResult, Ctx, Failure, Output};
use crate::exit::Exit;

pub async fn run(ctx: &Ctx) -> CliResult {
    let dir = ctx.directory().await?;
    let mut checks: Vec<(String, bool, String)> = Vec::new();
    let who = dir.whoami().await?;
    checks.push((
        "bind".into(),
        !who.is_empty(),
        format!("bound as {}", if who.is_empty() { "anonymous" } else { &who }),
    ));

    let subschema = Dn::parse("cn=Subschema").map_err(Failure::from)?;
    let schema = dir.search(&subschema, Scope::Base, &Filter::any(), &["objectClasses"]).await?;
    let classes: Vec<String> = schema
        .first()
        .map(|e| e.strs("objectClasses").unwrap_or_default().iter().map(|s| s.to_ascii_lowercase()).collect())
        .unwrap_or_default();
    let missing: Vec<&str> = REQUIRED_CLASSES
        .iter()
        .copied()
        .filter(|c| !classes.iter().any(|d| d.contains(&format!("name '{}'", c.to_ascii_lowercase()))))
        .collect();
    checks.push((
        "schema".into(),
        missing.is_empty(),
        if missing.is_empty() {
            "dirbroker and openssh-lpk classes present".into()
        } else {
            format!("missing: {}", missing.join(", "))
        },
    ));

    for unit in dir.layout().units() {
        let ok = dir.read(unit, &["ou"]).await.is_ok();
        checks.push((
            format!("entry {unit}"),
            ok,
            if ok { "present".into() } else { "missing or not readable".into() },
        ));
    }

    let all_ok = checks.iter().all(|(_, ok, _)| *ok);
    if ctx.output == Output::Json {
        let items: Vec<_> = checks
            .iter()
            .map(|(name, ok, detail)| serde_json::json!({ "check": name, "ok": ok, "detail": detail }))
            .collect();
        ctx.json(&serde_json::json!({ "ok": all_ok, "checks": items }));
    } else {
        for (name, ok, detail) in &checks {
            println!("{} {name}: {detail}", if *ok { "ok  " } else { "FAIL" });
        }
    }
    if all_ok { Ok(()) } else { Err(Failure::new(Exit::Failed, "some checks failed")) }
}
