//! A tiny HTTP/1.1 replay server on loopback for `outwatch demo`: answers each request with a
//! recorded body chosen by method and path (the query string is ignored). One request per
//! connection (`Connection: close`); request heads and bodies are size-capped.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Largest request head + body accepted.
const MAX_REQUEST: usize = 1 << 20;

/// A recorded response.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Reply {
    pub(crate) fn ok(content_type: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Reply {
            status: 200,
            content_type,
            body: body.into(),
        }
    }
}

/// A running replay server; stops when dropped.
pub(crate) struct ReplayServer {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl ReplayServer {
    /// Binds 127.0.0.1 on a free port and serves `routes` (`"GET /path"` → reply).
    pub(crate) async fn start(routes: HashMap<String, Reply>) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let routes = Arc::new(routes);
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let routes = routes.clone();
                tokio::spawn(async move {
                    let _ = serve(sock, &routes).await;
                });
            }
        });
        Ok(ReplayServer { addr, task })
    }

    /// `http://127.0.0.1:PORT`
    pub(crate) fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for ReplayServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

async fn serve(mut sock: TcpStream, routes: &HashMap<String, Reply>) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    // Read the head.
    let head_end = loop {
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_REQUEST {
            return respond(&mut sock, 431, "text/plain", b"request too large").await;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.lines();
    let first = lines.next().unwrap_or_default();
    let mut parts = first.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default();
    let path = target.split('?').next().unwrap_or_default().to_string();
    let content_length = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0)
        .min(MAX_REQUEST);
    // Drain the body (the replay does not look at it).
    let mut have = buf.len() - head_end;
    while have < content_length {
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        have += n;
    }
    match routes.get(&format!("{method} {path}")) {
        Some(r) => respond(&mut sock, r.status, r.content_type, &r.body).await,
        None => respond(&mut sock, 404, "text/plain", b"not recorded").await,
    }
}

async fn respond(
    sock: &mut TcpStream,
    status: u16,
    content_type: &str,
    body: &[u8],
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        _ => "Status",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    sock.write_all(head.as_bytes()).await?;
    sock.write_all(body).await?;
    sock.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn replays_by_method_and_path() {
        let mut routes = HashMap::new();
        routes.insert("GET /a/b.csv".to_string(), Reply::ok("text/csv", "x,y\n"));
        routes.insert(
            "POST /api/list".to_string(),
            Reply::ok("application/json", "[]"),
        );
        let s = ReplayServer::start(routes).await.unwrap();
        let c = reqwest::Client::new();
        let r = c
            .get(format!("{}/a/b.csv?key=1", s.base_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.unwrap(), "x,y\n");
        let r = c
            .post(format!("{}/api/list", s.base_url()))
            .body("{\"a\":1}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.text().await.unwrap(), "[]");
        let r = c
            .get(format!("{}/nope", s.base_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
    }
}
