//! `dirbroker serve`: run the HTTPS JSON service (see `dirbroker::serve` and docs/serve.md).

use clap::Args;

use dirbroker::serve::{ServeError, Server};

use super::{CliResult, Ctx, Failure, Output};
use crate::exit::Exit;

#[derive(Args, Debug)]
pub struct ServeArgs {}

impl From<ServeError> for Failure {
    fn from(e: ServeError) -> Self {
        match e {
            ServeError::Config(m) => Failure::new(Exit::Config, m),
            ServeError::Listen { .. } => Failure::new(Exit::Failed, e.to_string()),
            ServeError::Directory(d) => Failure::from(d),
        }
    }
}

/// Runs on its own multi-threaded runtime (the other commands use one thread).
pub fn run(ctx: &Ctx, _args: ServeArgs) -> CliResult {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(Exit::Failed, format!("cannot start the async runtime: {e}")))?;
    rt.block_on(async {
        let config = ctx.config()?;
        let keyring = ctx.keyring()?;
        let dir = ctx.directory().await?;
        // Signal handlers first: a SIGTERM right after start must be graceful too.
        let shutdown = shutdown_signal()?;
        let server = Server::bind(&config, dir, keyring).await?;
        let addr = server.local_addr().map_err(|e| Failure::new(Exit::Failed, format!("listener: {e}")))?;
        tracing::info!("listening on https://{addr}");
        if ctx.output == Output::Json {
            ctx.json(&serde_json::json!({ "listening": addr.to_string() }));
        } else {
            println!("listening on {addr}");
        }
        server.run(shutdown).await;
        Ok(())
    })
}

/// Completes at the first SIGTERM or SIGINT.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>, Failure> {
    use tokio::signal::unix::{SignalKind, signal};
    let err = |e: std::io::Error| Failure::new(Exit::Failed, format!("cannot handle signals: {e}"));
    let mut term = signal(SignalKind::terminate()).map_err(err)?;
    let mut int = signal(SignalKind::interrupt()).map_err(err)?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM"),
            _ = int.recv() => tracing::info!("SIGINT"),
        }
    })
}
