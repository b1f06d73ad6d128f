//! `dirbroker-agents`: the processes that act beside the broker.
//! `dirbroker migrate …` runs the same console (`console`) in its own process.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use dirbroker_agents::{ams, ans, console, dc, example_service, ps};

#[derive(Parser, Debug)]
#[command(
    name = "dirbroker-agents",
    version,
    about = "dirbroker's actors: data-center and physical-server daemons, the admin migration console"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run a data-center daemon (source or destination of migrations).
    #[command(
        after_help = "Example:\n  dirbroker-agents dc --bundle /etc/dirbroker/dc-DC-SEOUL-1 \\\n      --broker https://broker1:8443,https://broker2:8443 --listen 0.0.0.0:7443\n\n\
        The bundle is the directory `dirbroker dc add` wrote (key.pem, cert.pem, ca.pem).\n\
        At start the daemon fetches the CA, CRL and its own credentials from the broker.\n\
        With several brokers, one that cannot be reached is skipped (tried last for 30 s)."
    )]
    Dc {
        #[arg(long)]
        bundle: PathBuf,
        /// The brokers' base URLs, tried in order: `--broker URL,URL…` or the flag repeated.
        #[arg(long = "broker", value_name = "URL", value_delimiter = ',', required = true)]
        brokers: Vec<String>,
        #[arg(long, default_value = "127.0.0.1:7443")]
        listen: String,
        /// Seconds to wait for each protocol message.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
        /// Seconds a transfer may take.
        #[arg(long, default_value_t = 3600)]
        transfer_timeout: u64,
        /// Seconds between fetches of the CA, CRL and credentials from the broker.
        #[arg(long, default_value_t = 300)]
        refresh: u64,
    },
    /// Run a physical-server daemon.
    #[command(
        after_help = "Example:\n  dirbroker-agents ps --bundle /etc/dirbroker/ps-0001.bundle --listen 10.2.0.1:7444 --images /var/lib/vm\n\n\
        The bundle is the enrolment file `dirbroker ps add` wrote (mode 0600)."
    )]
    Ps {
        #[arg(long)]
        bundle: PathBuf,
        #[arg(long, default_value = "127.0.0.1:7444")]
        listen: String,
        /// Directory of VM images.
        #[arg(long)]
        images: PathBuf,
        /// Address for the data port (default: the --listen address's IP).
        #[arg(long)]
        data_host: Option<String>,
        #[arg(long, default_value_t = 30)]
        timeout: u64,
        /// Chunk size of VM_Data_Tran in KiB: a power of two, 1 to 16384.
        #[arg(long, default_value_t = 1024)]
        chunk_kib: u32,
    },
    /// Run the example Kerberized service (SSO stages 6–7): read ≥ level 1, write ≥ 2, admin = 4.
    #[command(
        name = "example-service",
        after_help = "Example:\n  dirbroker-agents example-service --key-file /etc/wiki/sso.key --service-id wiki \\\n      --broker https://broker:8443 --ca ca.pem --listen 127.0.0.1:7000\n\n\
        The key file is the one `dirbroker service add` wrote. The broker's JWKS is fetched at\n\
        start. Clients call it with `dirbroker ticket use wiki --endpoint … --request 'read KEY'`."
    )]
    ExampleService {
        #[arg(long)]
        key_file: PathBuf,
        #[arg(long)]
        service_id: String,
        /// The brokers' base URLs, tried in order: `--broker URL,URL…` or the flag repeated.
        #[arg(long = "broker", value_name = "URL", value_delimiter = ',', required = true)]
        brokers: Vec<String>,
        /// The broker CA certificate.
        #[arg(long)]
        ca: PathBuf,
        #[arg(long, default_value = "127.0.0.1:7000")]
        listen: String,
        /// The ticket issuer to trust ([sso] issuer of the broker).
        #[arg(long, default_value = "dirbroker")]
        issuer: String,
        /// This is a restart: refuse all requests for 300 s, since the replay cache was lost
        /// (RFC 4120 §3.2.3). Use it whenever the service restarts within a ticket lifetime.
        #[arg(long)]
        restart_window: bool,
    },
    /// Run the Agent Management System of the SSO (seed 002): makes mobile agents for the broker.
    #[command(
        after_help = "Example:\n  dirbroker-agents ams --bundle /etc/dirbroker/ams1 --broker https://broker:8443 --listen 0.0.0.0:9443\n\n\
        The bundle is the directory `dirbroker agent add ams` wrote. Prints `listening on ADDR`."
    )]
    Ams {
        #[arg(long)]
        bundle: PathBuf,
        /// The brokers' base URLs, tried in order: `--broker URL,URL…` or the flag repeated.
        #[arg(long = "broker", value_name = "URL", value_delimiter = ',', required = true)]
        brokers: Vec<String>,
        #[arg(long, default_value = "127.0.0.1:9443")]
        listen: String,
        /// Seconds between reads of the CRL from the broker.
        #[arg(long, default_value_t = dirbroker_service::pki::DEFAULT_CRL_REFRESH_S,
              value_parser = clap::value_parser!(u64).range(1..=86_400))]
        crl_refresh: u64,
    },
    /// Run the Agent Name Server of the SSO (seed 002): signs user levels, forwards shares to the broker.
    #[command(
        after_help = "Example:\n  dirbroker-agents ans --bundle /etc/dirbroker/ans1 --broker https://broker:8443 --listen 0.0.0.0:9444\n\n\
        The bundle is the directory `dirbroker agent add ans` wrote (with signing.key and box.key).\n\
        Prints `listening on ADDR`."
    )]
    Ans {
        #[arg(long)]
        bundle: PathBuf,
        /// The brokers' base URLs, tried in order: `--broker URL,URL…` or the flag repeated.
        #[arg(long = "broker", value_name = "URL", value_delimiter = ',', required = true)]
        brokers: Vec<String>,
        #[arg(long, default_value = "127.0.0.1:9444")]
        listen: String,
        /// Seconds between reads of the CRL from the broker.
        #[arg(long, default_value_t = dirbroker_service::pki::DEFAULT_CRL_REFRESH_S,
              value_parser = clap::value_parser!(u64).range(1..=86_400))]
        crl_refresh: u64,
        /// Most registrations waiting for their share at once, in all (then 503).
        #[arg(long, default_value_t = ans::MAX_PENDING,
              value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
        max_pending: usize,
        /// Most registrations of one user (one invitation) waiting for their share at once (then 429).
        #[arg(long, default_value_t = ans::MAX_PENDING_PER_USER,
              value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1000))]
        max_pending_per_user: usize,
    },
    /// Migrate a VM image (the admin console); asks for the user's OTP.
    #[command(
        after_help = "Example:\n  dirbroker-agents migrate vm1.qcow2 --from DC-SEOUL-1 --to DC-BUSAN-2 --source-server PS-0001 \\\n      --dest-server PS-0101 --user bob --k1 k1.bundle --ca ca.pem --endpoint dc1.example.org:7443\n\n\
        The OTP is read from the terminal, or from stdin when it is not one. Exit 0: migrated;\n\
        1: refused or failed (the reason on stderr); 2: usage."
    )]
    Migrate {
        #[command(flatten)]
        migration: console::MigrationArgs,
        /// The broker CA certificate.
        #[arg(long)]
        ca: PathBuf,
        /// The source data center's endpoint (host:port).
        #[arg(long)]
        endpoint: String,
        /// Print the outcome as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    dirbroker_service::logging::init("info");
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::ExampleService { key_file, service_id, brokers, ca, listen, issuer, restart_window } => {
            example_service::run(example_service::Options {
                key_file,
                service_id,
                brokers,
                ca,
                listen,
                issuer,
                restart_window,
            })
            .await
            .map(|()| None)
            .map_err(dirbroker_agents::migration::MigrationError::Local)
        }
        Cmd::Dc { bundle, brokers, listen, timeout, transfer_timeout, refresh } => dc::run(dc::DcOptions {
            bundle,
            brokers,
            listen,
            timeout: Duration::from_secs(timeout),
            transfer_timeout: Duration::from_secs(transfer_timeout),
            refresh: Duration::from_secs(refresh.max(1)),
        })
        .await
        .map(|()| None),
        Cmd::Ps { bundle, listen, images, data_host, timeout, chunk_kib } => ps::run(ps::PsOptions {
            bundle,
            listen,
            images,
            data_host,
            timeout: Duration::from_secs(timeout),
            chunk_size: chunk_kib.saturating_mul(1024),
        })
        .await
        .map(|()| None),
        Cmd::Ams { bundle, brokers, listen, crl_refresh } => {
            ams::run(ams::AmsOptions { bundle, brokers, listen, crl_refresh: Duration::from_secs(crl_refresh) })
                .await
                .map(|()| None)
                .map_err(dirbroker_agents::migration::MigrationError::Local)
        }
        Cmd::Ans { bundle, brokers, listen, crl_refresh, max_pending, max_pending_per_user } => {
            ans::run(ans::AnsOptions {
                bundle,
                brokers,
                listen,
                crl_refresh: Duration::from_secs(crl_refresh),
                max_pending,
                max_pending_per_user,
            })
            .await
            .map(|()| None)
            .map_err(dirbroker_agents::migration::MigrationError::Local)
        }
        Cmd::Migrate { migration, ca, endpoint, json } => match console::run(migration, ca, endpoint, json).await {
            Ok(line) => Ok(Some(line)),
            Err(console::ConsoleError::Usage(e)) => {
                eprintln!("dirbroker-agents: {e}");
                return ExitCode::from(2);
            }
            Err(console::ConsoleError::Failed(e)) => Err(e),
        },
    };
    match result {
        Ok(Some(line)) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dirbroker-agents: {e}");
            ExitCode::from(1)
        }
    }
}
