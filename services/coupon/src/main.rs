//! `campus-coupon api`, `worker issue`, `drift` and `burst`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = campus_common::run::parse::<campus_coupon::cli::Cli>();
    campus_common::run::block_on(cli.run())
}
