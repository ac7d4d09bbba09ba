//! A real SMTP server on loopback (mailin-embedded) that keeps what it accepts and may refuse
//! recipients: what the digest and notification tests send to.

use std::io;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use mailin_embedded::{Handler, Response, Server, SslConfig, response};

#[derive(Debug, Clone, Default)]
pub(crate) struct Received {
    pub(crate) to: Vec<String>,
    pub(crate) data: Vec<u8>,
}

#[derive(Clone)]
struct Capture {
    inbox: Arc<Mutex<Vec<Received>>>,
    current: Received,
    refuse: Option<String>,
}

impl Handler for Capture {
    fn rcpt(&mut self, to: &str) -> Response {
        if self.refuse.as_deref().is_some_and(|r| to.contains(r)) {
            response::NO_MAILBOX
        } else {
            response::OK
        }
    }
    fn data_start(&mut self, _domain: &str, _from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.current = Received {
            to: to.to_vec(),
            data: Vec::new(),
        };
        response::OK
    }
    fn data(&mut self, buf: &[u8]) -> io::Result<()> {
        self.current.data.extend_from_slice(buf);
        Ok(())
    }
    fn data_end(&mut self) -> Response {
        self.inbox
            .lock()
            .unwrap()
            .push(std::mem::take(&mut self.current));
        response::OK
    }
}

pub(crate) struct Smtp {
    pub(crate) port: u16,
    inbox: Arc<Mutex<Vec<Received>>>,
}

impl Smtp {
    /// Starts the server on 127.0.0.1 and a random port; it refuses (550) every recipient
    /// that contains `refuse` (`Some("@")`: all of them).
    pub(crate) fn start(refuse: Option<&str>) -> Smtp {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let inbox = Arc::new(Mutex::new(Vec::new()));
        let handler = Capture {
            inbox: inbox.clone(),
            current: Received::default(),
            refuse: refuse.map(str::to_string),
        };
        let mut server = Server::new(handler);
        server
            .with_name("localhost")
            .with_ssl(SslConfig::None)
            .unwrap()
            .with_tcp_listener(listener);
        std::thread::spawn(move || {
            let _ = server.serve();
        });
        Smtp { port, inbox }
    }

    /// What it accepted so far (kept).
    pub(crate) fn received(&self) -> Vec<Received> {
        self.inbox.lock().unwrap().clone()
    }

    /// What it accepted since the last `take` (emptied).
    pub(crate) fn take(&self) -> Vec<Received> {
        std::mem::take(&mut *self.inbox.lock().unwrap())
    }
}
