//! `main` glue: a bad command line or a failed start becomes one clear line on stderr and a non-zero
//! exit code, never a panic or a page of usage text.

use std::fmt::Write as _;
use std::future::Future;
use std::process::ExitCode;

use clap::Parser;

/// Parses the command line; on error prints one line (`error: …`) and exits with status 2.
/// `--help` and `--version` print as usual.
pub fn parse<T: Parser>() -> T {
    match T::try_parse() {
        Ok(cli) => cli,
        Err(err) => exit_on_clap_error(err),
    }
}

fn exit_on_clap_error(err: clap::Error) -> ! {
    use clap::error::ErrorKind;
    if matches!(
        err.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        err.exit()
    }
    eprintln!("{}", one_line(&err.render().to_string()));
    std::process::exit(2)
}

/// Folds clap's message (without its usage block) into one line.
fn one_line(rendered: &str) -> String {
    let mut line = String::new();
    for part in rendered.lines() {
        let part = part.trim();
        if part.starts_with("Usage:") || part.starts_with("For more information") {
            break;
        }
        if part.is_empty() {
            continue;
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(part);
    }
    let _ = write!(
        line,
        " (see --help; every flag can also be set by its environment variable)"
    );
    line
}

/// Runs the async body of `main` on a multi-threaded runtime. An error is printed as one line,
/// `error: <context>: <cause>: <cause>…`, and the process exits with status 1.
pub fn block_on<F>(body: F) -> ExitCode
where
    F: Future<Output = anyhow::Result<()>>,
{
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: failed to start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(body) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let line = format!("{e:#}");
            tracing::error!(error = %line, "exiting");
            eprintln!("error: {line}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        kafka: crate::config::KafkaArgs,
    }

    #[test]
    fn missing_flag_is_one_line() {
        let err = Cli::try_parse_from(["campus"]).unwrap_err();
        let line = one_line(&err.render().to_string());
        assert!(!line.contains('\n'));
        assert!(
            line.starts_with(
                "error: the following required arguments were not provided: --kafka-brokers"
            ),
            "{line}"
        );
    }
}
