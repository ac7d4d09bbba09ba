//! A row's web address: the `url` column when it is one, else assembled from the report's host
//! and path columns (`http_host` + `url` / `http_url`), as IntelMQ's
//! `convert_http_host_and_url` does, plus the scheme and port where the report gives them.
//!
//! - scheme: `application` or `url_scheme` when it says `http` or `https`, else `https` on
//!   port 443, else `http`;
//! - host: `http_host` (or the old `cc_dns`), lower-cased; an IPv6 address is bracketed; a
//!   host that already names its port keeps it;
//! - port: `dst_port` (the server of an event), else `port`, written unless it is the scheme's
//!   default;
//! - path: the path of a request line (`GET /x.php HTTP/1.1` → `/x.php`) or the path as
//!   written; a request line that names a whole URL (`GET http://h/x HTTP/1.1`) gives that
//!   URL; no path gives `/`.
//!
//! The URL is written into a buffer reused from row to row (no allocation per row).

use std::borrow::Cow;
use std::net::Ipv6Addr;

use super::{Columns, Row};

/// Where a report keeps the parts of a web address.
#[derive(Debug, Clone)]
pub(super) struct UrlColumns {
    host: usize,
    /// `url` when the report has one, else `http_url`.
    path: Option<usize>,
    /// `application`, then `url_scheme`.
    scheme: Vec<usize>,
    /// `dst_port`, else `port`.
    port: Option<usize>,
}

impl UrlColumns {
    /// The URL columns of a header; `None` when it has no host column.
    pub(super) fn find(find: &impl Fn(&str) -> Option<usize>) -> Option<UrlColumns> {
        let host = find("http_host").or_else(|| find("cc_dns"))?;
        Some(UrlColumns {
            host,
            path: find("url").or_else(|| find("http_url")),
            scheme: ["application", "url_scheme"]
                .iter()
                .filter_map(|n| find(n))
                .collect(),
            port: find("dst_port").or_else(|| find("port")),
        })
    }
}

/// Whether `v` starts with `http://` or `https://` (any case).
pub(super) fn is_absolute(v: &str) -> bool {
    let b = v.as_bytes();
    let starts = |p: &[u8]| b.len() > p.len() && b[..p.len()].eq_ignore_ascii_case(p);
    starts(b"http://") || starts(b"https://")
}

/// The row's URL and whether it is the `url` column as written (which then stays out of
/// `extra`); an assembled one is written into `buf`. A host column that holds no host name
/// gives no URL and a warning (the cell stays in `extra`).
pub(super) fn row_url<'x>(
    row: Row<'x>,
    cols: &Columns,
    buf: &'x mut String,
    warnings: &mut Vec<String>,
) -> Option<(Cow<'x, str>, bool)> {
    if let Some(u) = row.value(cols.url).filter(|u| is_absolute(u)) {
        return Some((u, true));
    }
    let parts = cols.url_parts.as_ref()?;
    let path = row.value(parts.path);
    let path = path.as_deref().map(request_target);
    if let Some(Target::Url(u)) = path {
        // `GET http://h/x HTTP/1.1` (a proxy request) or an `http_url` written whole.
        buf.clear();
        buf.push_str(u);
        return Some((Cow::Borrowed(buf.as_str()), false));
    }
    let host = row.value(Some(parts.host))?;
    if !plausible_host(&host) {
        warnings.push(format!(
            "`{}` is not a host name: no url (kept in extra)",
            crate::text::clip(&host, 60)
        ));
        return None;
    }
    let scheme = parts
        .scheme
        .iter()
        .filter_map(|&i| row.value(Some(i)))
        .find_map(|s| {
            ["http", "https"]
                .into_iter()
                .find(|k| s.eq_ignore_ascii_case(k))
        });
    let port = row.value(parts.port).and_then(|p| p.parse::<u16>().ok());
    let path = match path {
        Some(Target::Path(p)) => p,
        _ => "",
    };
    write_url(buf, scheme, &host, port, path);
    Some((Cow::Borrowed(buf.as_str()), false))
}

/// What a path cell names.
enum Target<'a> {
    /// A path (possibly empty).
    Path(&'a str),
    /// A whole URL.
    Url(&'a str),
}

/// The target of a request line (`GET /x HTTP/1.1` → `/x`), or the cell when it is a path.
fn request_target(cell: &str) -> Target<'_> {
    let mut words = cell.split_ascii_whitespace();
    let first = words.next().unwrap_or("");
    let is_method = !first.is_empty() && first.bytes().all(|b| b.is_ascii_uppercase());
    let target = if is_method {
        words.next().unwrap_or("")
    } else {
        first
    };
    if is_absolute(target) {
        return Target::Url(target);
    }
    // `CONNECT host:443` and `OPTIONS *` name no path.
    if first == "CONNECT" || target == "*" {
        return Target::Path("");
    }
    Target::Path(target)
}

/// Whether `h` can be a URL's host (a name or address, optionally with a port): no white
/// space, no character that would end the host part, no control character.
fn plausible_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 260
        && !is_absolute(h)
        && h.bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'/' | b'?' | b'#' | b'@' | b'\\'))
}

/// `scheme://host[:port]path` into `buf`.
fn write_url(buf: &mut String, scheme: Option<&str>, host: &str, port: Option<u16>, path: &str) {
    use std::fmt::Write;
    let scheme = scheme.unwrap_or(if port == Some(443) { "https" } else { "http" });
    let default_port = if scheme == "https" { 443 } else { 80 };
    buf.clear();
    buf.push_str(scheme);
    buf.push_str("://");
    let v6 = host.parse::<Ipv6Addr>().is_ok();
    // A host that names its port (`example.org:8080`, `[2001:db8::1]:8080`) keeps it.
    let has_port = if v6 {
        false
    } else if host.starts_with('[') {
        host.contains("]:")
    } else {
        host.contains(':')
    };
    if v6 {
        buf.push('[');
    }
    buf.extend(host.chars().map(|c| c.to_ascii_lowercase()));
    if v6 {
        buf.push(']');
    }
    if let Some(p) = port.filter(|p| *p != default_port && !has_port) {
        let _ = write!(buf, ":{p}");
    }
    if !path.starts_with('/') {
        buf.push('/');
    }
    buf.push_str(path);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(scheme: Option<&str>, host: &str, port: Option<u16>, cell: &str) -> String {
        let mut b = String::new();
        match request_target(cell) {
            Target::Url(u) => u.to_string(),
            Target::Path(p) => {
                write_url(&mut b, scheme, host, port, p);
                b
            }
        }
    }

    #[test]
    fn urls_are_assembled_from_host_and_path() {
        let cases = [
            (
                None,
                "3fo8jrthz3y.rgk.cc",
                Some(443),
                "/index.php",
                "https://3fo8jrthz3y.rgk.cc/index.php",
            ),
            (
                None,
                "40.121.206.97",
                Some(80),
                "/locator.php",
                "http://40.121.206.97/locator.php",
            ),
            (
                None,
                "12106.Mobapptrack.com",
                Some(80),
                "GET /favicon.ico HTTP/1.1",
                "http://12106.mobapptrack.com/favicon.ico",
            ),
            (
                Some("http"),
                "example.com",
                Some(8080),
                "/header.php",
                "http://example.com:8080/header.php",
            ),
            (
                Some("https"),
                "example.com",
                Some(443),
                "",
                "https://example.com/",
            ),
            (
                None,
                "example.com:8080",
                Some(80),
                "/x",
                "http://example.com:8080/x",
            ),
            (
                None,
                "2001:db8::1",
                Some(80),
                "/x",
                "http://[2001:db8::1]/x",
            ),
            (
                None,
                "[2001:db8::1]:81",
                Some(80),
                "/x",
                "http://[2001:db8::1]:81/x",
            ),
            (
                None,
                "h.example",
                None,
                "GET http://other.example/a?b HTTP/1.1",
                "http://other.example/a?b",
            ),
            (
                None,
                "h.example",
                None,
                "CONNECT h.example:443 HTTP/1.1",
                "http://h.example/",
            ),
            (
                None,
                "h.example",
                None,
                "index.php",
                "http://h.example/index.php",
            ),
            (
                None,
                "h.example",
                None,
                "GET /getjs?r=0.63 HTTP/1.1",
                "http://h.example/getjs?r=0.63",
            ),
        ];
        for (scheme, host, port, cell, want) in cases {
            assert_eq!(url(scheme, host, port, cell), want, "{host} {cell}");
        }
    }

    #[test]
    fn hosts_that_are_none() {
        for h in ["", "a b", "x/y", "u@h", "http://h", "h\u{1b}", "é.example"] {
            assert!(!plausible_host(h), "{h:?}");
        }
        assert!(plausible_host("serpientesyescaleras.top"));
        assert!(plausible_host("0-0-0-0-0.info"));
    }
}
