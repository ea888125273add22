//! `campus-log api`, `worker index` and `filebeat-config`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = campus_common::run::parse::<campus_log::cli::Cli>();
    campus_common::run::block_on(cli.run())
}
