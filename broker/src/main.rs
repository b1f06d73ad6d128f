//! `dirbroker`: the command-line tool. Noun-verb subcommands; see `dirbroker --help`.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
