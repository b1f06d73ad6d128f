//! `dirbroker`: the command-line tool. Noun-verb subcommands; see `dirbroker --help`.

fn main() -> std::process::ExitCode {
    dirbroker_cli::main()
}
