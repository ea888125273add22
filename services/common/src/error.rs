//! Errors on one line, for logs and stored messages.

/// An error and its causes on one line, `outer: cause: cause`. A cause whose text the line already
/// holds (some errors print their source in their own message) is not repeated.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    enum E {
        #[error("failed to write")]
        Outer(#[source] Box<E>),
        #[error("connection refused: {0}")]
        Repeats(String),
        #[error("refused")]
        Leaf,
    }

    #[test]
    fn causes_follow_once() {
        let e = E::Outer(Box::new(E::Outer(Box::new(E::Leaf))));
        assert_eq!(super::chain(&e), "failed to write: refused");
        let e = E::Outer(Box::new(E::Repeats("x".into())));
        assert_eq!(super::chain(&e), "failed to write: connection refused: x");
        let inner = std::io::Error::other("disk full");
        assert_eq!(super::chain(&inner), "disk full");
    }
}
