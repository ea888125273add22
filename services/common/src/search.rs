//! The one Elasticsearch client of the platform: the `elasticsearch` crate, built the same way for
//! every service (content's posts index, log's indexer and API).
//!
//! # Headers
//! Every request says `Content-Type: application/json` and `Accept: application/json` (a bulk
//! request `Content-Type: application/x-ndjson`, [`NDJSON`]): plain media types that every
//! Elasticsearch 7/8/9 and OpenSearch 1/2 accept. Not the versioned
//! `application/vnd.elasticsearch+json; compatible-with=N` that some official clients send for
//! Elasticsearch's REST compatibility mode: OpenSearch refuses it (406/400), and without it
//! Elasticsearch answers in its own version's format, which is what the services read. The
//! crate's `x-elastic-client-meta` header is turned off: it describes the client for Elastic's
//! telemetry and means nothing to OpenSearch. A test pins the headers
//! (`sends_plain_json_that_elasticsearch_and_opensearch_accept`), so an upgrade of the crate that
//! changes them fails here, not against a server.
//!
//! # Addresses
//! The URL may carry credentials (`http://user:password@host:9200`): they are sent as basic auth
//! and never printed ([`shown`]).

use std::time::Duration;

pub use elasticsearch::Elasticsearch;
use elasticsearch::auth::Credentials;
use elasticsearch::http::Url;
use elasticsearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use secrecy::{ExposeSecret, SecretString};

use crate::config::redact_url;

/// The `Content-Type` of a `_bulk` body (newline-delimited JSON); give it per request:
/// `.header(CONTENT_TYPE, HeaderValue::from_static(search::NDJSON))`.
pub const NDJSON: &str = "application/x-ndjson";

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("failed to parse the Elasticsearch URL {shown}: {message}")]
    Url { shown: String, message: String },
    #[error("failed to create the Elasticsearch client for {shown}: {message}")]
    Build { shown: String, message: String },
}

/// A client for `url`, every request bounded by `timeout`. Cheap to clone; share one per process.
pub fn client(url: &SecretString, timeout: Duration) -> Result<Elasticsearch, ClientError> {
    let shown = shown(url);
    let raw = url.expose_secret();
    let mut url = Url::parse(raw).map_err(|e| ClientError::Url {
        shown: shown.clone(),
        message: e.to_string(),
    })?;
    let credentials = (!url.username().is_empty()).then(|| {
        Credentials::Basic(
            url.username().to_owned(),
            url.password().unwrap_or_default().to_owned(),
        )
    });
    let _ = url.set_username("");
    let _ = url.set_password(None);
    let mut builder = TransportBuilder::new(SingleNodeConnectionPool::new(url))
        .timeout(timeout)
        .enable_meta_header(false)
        .disable_proxy();
    if let Some(c) = credentials {
        builder = builder.auth(c);
    }
    let transport = builder.build().map_err(|e| ClientError::Build {
        shown,
        message: e.to_string(),
    })?;
    Ok(Elasticsearch::new(transport))
}

/// The server address without credentials, for messages (`http://u:p@es:9200/` → `es:9200`).
pub fn shown(url: &SecretString) -> String {
    redact_url(url.expose_secret().trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use elasticsearch::BulkParts;
    use elasticsearch::http::headers::{CONTENT_TYPE, HeaderValue};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// The request head of the next request to a one-shot local server, answered `{}`.
    async fn capture(send: impl AsyncFnOnce(Elasticsearch)) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://elastic:hunter2@{}", listener.local_addr().unwrap());
        let es = client(&SecretString::from(url), Duration::from_secs(5)).unwrap();
        let server = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = conn.read(&mut chunk).await.unwrap();
                assert!(n > 0, "the client closed before its headers ended");
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = b"{}";
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            conn.write_all(head.as_bytes()).await.unwrap();
            conn.write_all(body).await.unwrap();
            let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
            String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase()
        });
        send(es).await;
        server.await.unwrap()
    }

    #[tokio::test]
    async fn sends_plain_json_that_elasticsearch_and_opensearch_accept() {
        let head = capture(async |es| {
            es.search(elasticsearch::SearchParts::Index(&["x"]))
                .body(serde_json::json!({"size": 0}))
                .send()
                .await
                .unwrap();
        })
        .await;
        assert!(
            head.contains("\r\ncontent-type: application/json\r\n"),
            "{head}"
        );
        assert!(head.contains("\r\naccept: application/json\r\n"), "{head}");
        assert!(!head.contains("compatible-with"), "{head}");
        assert!(!head.contains("x-elastic-client-meta"), "{head}");
        // Credentials from the URL go as basic auth (elastic:hunter2).
        assert!(
            head.contains("\r\nauthorization: basic zwxhc3rpyzpodw50zxiy\r\n"),
            "{head}"
        );

        let head = capture(async |es| {
            es.bulk(BulkParts::None)
                .header(CONTENT_TYPE, HeaderValue::from_static(NDJSON))
                .body(vec![b"{\"index\":{}}\n{}\n".to_vec()])
                .send()
                .await
                .unwrap();
        })
        .await;
        assert!(
            head.contains("\r\ncontent-type: application/x-ndjson\r\n"),
            "{head}"
        );
        assert!(head.contains("\r\naccept: application/json\r\n"), "{head}");
    }

    #[test]
    fn credentials_are_not_shown_and_bad_urls_are_refused() {
        let url = SecretString::from("http://elastic:hunter2@es:9200/");
        assert_eq!(shown(&url), "es:9200");
        let e = client(&SecretString::from("not a url"), Duration::from_secs(1)).unwrap_err();
        assert!(e.to_string().contains("failed to parse"), "{e}");
    }
}
