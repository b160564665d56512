//! Connection strings: parsed by tokio-postgres, and redacted before they
//! appear in any message, log line or printed configuration.

use std::str::FromStr;

use super::super::StoreError;

/// `url` with its password replaced by `***`: the user info of a URL
/// (`postgres://user:secret@host`), a `password=` query parameter and a
/// `password=` key of the key/value form all lose their value.
pub fn redact_url(url: &str) -> String {
    if let Some(scheme_end) = url.find("://") {
        let (scheme, rest) = url.split_at(scheme_end + 3);
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        let authority = match authority.rfind('@') {
            Some(at) => {
                let (info, host) = authority.split_at(at);
                match info.split_once(':') {
                    Some((user, _)) => format!("{user}:***{host}"),
                    None => authority.to_owned(),
                }
            }
            None => authority.to_owned(),
        };
        return format!("{scheme}{authority}{}", redact_query(tail));
    }
    redact_key_values(url)
}

/// Replaces the value of every `password=` parameter after the `?`.
fn redact_query(tail: &str) -> String {
    let Some((path, query)) = tail.split_once('?') else {
        return tail.to_owned();
    };
    let params: Vec<String> = query
        .split('&')
        .map(|p| match p.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
            _ => p.to_owned(),
        })
        .collect();
    format!("{path}?{}", params.join("&"))
}

/// The key/value form (`host=h user=u password='a b'`): a quoted value
/// runs to its closing quote (`\'` escapes one), a bare one to whitespace.
fn redact_key_values(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = find_password_key(rest) {
        let (before, after) = rest.split_at(i);
        out.push_str(before);
        let eq = after.find('=').map_or(after.len(), |e| e + 1);
        out.push_str(&after[..eq]);
        out.push_str("***");
        let value = after[eq..].trim_start();
        let skipped = after.len() - eq - value.len();
        let end = if let Some(quoted) = value.strip_prefix('\'') {
            let mut escaped = false;
            let close = quoted.char_indices().find(|&(_, c)| {
                let done = c == '\'' && !escaped;
                escaped = c == '\\' && !escaped;
                done
            });
            close.map_or(value.len(), |(j, _)| j + 2)
        } else {
            value.find(char::is_whitespace).unwrap_or(value.len())
        };
        rest = &after[eq + skipped + end..];
    }
    out.push_str(rest);
    out
}

/// Where a `password` key (followed by optional spaces and `=`) starts.
fn find_password_key(s: &str) -> Option<usize> {
    let lower = s.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find("password") {
        let at = from + i;
        let starts_word = at == 0 || lower.as_bytes()[at - 1].is_ascii_whitespace();
        let after = lower[at + "password".len()..].trim_start();
        if starts_word && after.starts_with('=') {
            return Some(at);
        }
        from = at + "password".len();
    }
    None
}

/// Parses a connection string. Only `postgres://` and `postgresql://` URLs
/// and the key/value form are accepted; tokio-postgres's own message says
/// what is wrong without quoting values.
pub(super) fn parse(url: &str) -> Result<tokio_postgres::Config, StoreError> {
    let bad = |reason: String| StoreError::BadUrl {
        url: redact_url(url),
        reason,
    };
    if url.contains("://") && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
    {
        return Err(bad("the scheme must be postgres:// or postgresql://".into()));
    }
    let config = tokio_postgres::Config::from_str(url).map_err(|e| bad(e.to_string()))?;
    if config.get_hosts().is_empty() {
        return Err(bad("it names no host".into()));
    }
    if config.get_dbname().is_none() {
        return Err(bad(
            "it names no database (postgres://user@host:port/DATABASE)".into(),
        ));
    }
    Ok(config)
}

/// Checks a connection string without connecting (for configuration).
pub fn check_url(url: &str) -> Result<(), StoreError> {
    parse(url).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_survive_redaction() {
        for (url, want) in [
            (
                "postgres://tide:s3cret@db:5432/tidemark",
                "postgres://tide:***@db:5432/tidemark",
            ),
            (
                "postgresql://tide:p%40ss@db/t?sslmode=disable&password=s3cret",
                "postgresql://tide:***@db/t?sslmode=disable&password=***",
            ),
            ("postgres://tide@db/t", "postgres://tide@db/t"),
            (
                "host=db user=tide password='s3 cret' dbname=t",
                "host=db user=tide password=*** dbname=t",
            ),
            (
                "host=db password = s3cret dbname=t",
                "host=db password =*** dbname=t",
            ),
        ] {
            assert_eq!(redact_url(url), want);
            assert!(!redact_url(url).contains("s3"), "{url}");
        }
    }

    #[test]
    fn bad_connection_strings_are_named_without_their_password() {
        for url in [
            "mysql://tide:s3cret@db/t",
            "postgres://tide:s3cret@db:notaport/t",
            "postgres://tide:s3cret@db:5432",
        ] {
            let err = parse(url).expect_err(url).to_string();
            assert!(!err.contains("s3cret"), "{err}");
            assert!(err.contains("tide:***@db"), "{err}");
        }
        assert!(parse("postgres://tide@127.0.0.1:5432/t").is_ok());
    }
}
