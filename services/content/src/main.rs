//! `campus-content api` and `campus-content worker inspect|cache|inbox|index`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = campus_common::run::parse::<campus_content::cli::Cli>();
    campus_common::run::block_on(cli.run())
}
