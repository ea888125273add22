//! Configuration of the log processes beyond the shared parts (Kafka, Elasticsearch, HTTP, ops in
//! `campus_common::config`): which indices hold the access logs. Every flag has an environment
//! variable (see the README).

use std::time::Duration;

use campus_contract::{access_log, env};

/// The log service's Elasticsearch request timeout when none is given (a week's stats aggregation
/// or a large bulk may take long).
pub const ES_TIMEOUT: Duration = Duration::from_secs(30);

/// Which indices hold the access logs.
#[derive(Debug, Clone, clap::Args)]
pub struct AccessLogArgs {
    /// Prefix of the daily indices `<prefix>-YYYY.MM.dd`, of their alias and index template.
    #[arg(
        long = "log-index-prefix",
        env = env::LOG_INDEX_PREFIX,
        default_value = access_log::INDEX_PREFIX,
        value_parser = parse_index_prefix
    )]
    pub index_prefix: String,
}

/// Elasticsearch index names: lowercase, no `\ / * ? " < > | , #` or spaces, not starting with
/// `-`, `_` or `+`.
pub fn parse_index_prefix(s: &str) -> Result<String, String> {
    if s.is_empty() || s.len() > 200 {
        return Err("must be 1 to 200 characters".into());
    }
    if s.starts_with(['-', '_', '+']) {
        return Err("must not start with -, _ or +".into());
    }
    if s.chars().any(|c| {
        c.is_ascii_uppercase()
            || c.is_whitespace()
            || matches!(
                c,
                '\\' | '/' | '*' | '?' | '"' | '<' | '>' | '|' | ',' | '#' | ':'
            )
    }) {
        return Err("must be lowercase without spaces or any of \\ / * ? \" < > | , # :".into());
    }
    Ok(s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_prefixes() {
        assert!(parse_index_prefix("access-log").is_ok());
        assert!(parse_index_prefix("Access").is_err());
        assert!(parse_index_prefix("_x").is_err());
        assert!(parse_index_prefix("a*").is_err());
    }
}
