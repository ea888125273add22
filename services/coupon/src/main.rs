use std::process::ExitCode;

use campus_common::run;
use campus_coupon::cli::{self, Cli};

fn main() -> ExitCode {
    let cli: Cli = run::parse();
    run::block_on(cli::run(cli))
}
