//! What every command needs: the config (if any), the store folder, and how to open the store.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::clock::{Clock, SystemClock};
use crate::config::{Config, DEFAULT_CONFIG};
use crate::daemon::{DaemonEnv, DaemonError, RemoteStore};
use crate::error::CliError;
use crate::http::HttpClient;
use crate::store::postgres::{PgStore, Target};
use crate::store::{self, Store};

/// Resolved global settings of one invocation.
pub struct App {
    /// The loaded config; `None` when no file exists (allowed for `import` and `lookup`).
    pub config: Option<Config>,
    /// The config file read (when `config` is `Some`), else `./outwatch.toml`.
    pub config_path: PathBuf,
    /// Whether the file was named (`--config`, `$OUTWATCH_CONFIG`) rather than found.
    pub config_explicit: bool,
    /// Every place the config was looked for, in order.
    pub config_looked: Vec<PathBuf>,
    pub data_dir: PathBuf,
    /// Whether the store folder was named (`--data-dir`, `$OUTWATCH_DATA_DIR`, `[store] path`)
    /// rather than the default.
    pub data_dir_named: bool,
    pub clock: Arc<dyn Clock>,
    /// The socket this process answers reads on while it holds the store.
    served: std::sync::Mutex<Option<Served>>,
}

/// Who opens the store for writing ([`App::open_store`], [`App::open_own_store`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Writer {
    /// A command: through the daemon when it runs.
    Command,
    /// `run --once`.
    Once,
    /// `run`.
    Daemon,
}

/// How long a write waits for another command that holds the store (a `fetch` of every
/// source, a large import) before it gives up: 30 minutes, or `$OUTWATCH_STORE_WAIT` seconds.
pub(crate) const HOLD_WAIT: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// The command as a person typed it, without the global options before it (`fetch`,
/// `import shadowserver report.csv`, `run --once`), for the messages of those who wait.
fn holder_name(args: impl Iterator<Item = String>) -> String {
    let mut words = Vec::new();
    let mut skip_value = false;
    for a in args {
        if words.is_empty() {
            if std::mem::take(&mut skip_value) {
                continue;
            }
            if a.starts_with('-') {
                skip_value = !a.contains('=')
                    && matches!(a.as_str(), "--config" | "--data-dir" | "--log-format");
                continue;
            }
        }
        words.push(a);
    }
    crate::text::clip(&words.join(" "), 80)
}

fn hold_wait() -> std::time::Duration {
    std::env::var("OUTWATCH_STORE_WAIT")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(std::time::Duration::from_secs)
        .unwrap_or(HOLD_WAIT)
}

/// The socket served while this process holds the store: removed, then stopped, when dropped
/// (before the store lets go of its lock, so a daemon starting next binds its own).
struct Served {
    stop: tokio::sync::watch::Sender<bool>,
    path: PathBuf,
    /// The store served, held weakly: the command's letting go of it closes it.
    lent: Arc<crate::daemon::Lent>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let _ = self.stop.send(true);
    }
}

impl App {
    /// Loads the config. An explicit `--config`/`$OUTWATCH_CONFIG` must exist; otherwise the
    /// first file found of [`config_candidates`] is read, and none at all is allowed (for
    /// `import`, `lookup`, `demo`).
    pub fn new(config: Option<&Path>, data_dir: Option<&Path>) -> Result<App, CliError> {
        let candidates = config_candidates();
        let (path, explicit, looked) = match config {
            Some(p) => (p.to_path_buf(), true, vec![p.to_path_buf()]),
            None => match candidates.iter().find(|c| c.is_file()) {
                Some(found) => (found.clone(), false, candidates.clone()),
                None => (PathBuf::from(DEFAULT_CONFIG), false, candidates.clone()),
            },
        };
        let cfg = if explicit || path.is_file() {
            Some(Config::load(&path, &crate::sources::Registry).map_err(CliError::config)?)
        } else {
            None
        };
        let data_dir_resolved = match &cfg {
            Some(c) => c.data_dir(data_dir),
            None => data_dir
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(crate::config::DEFAULT_DATA_DIR)),
        };
        let data_dir_named = data_dir.is_some() || cfg.is_some();
        Ok(App {
            data_dir: data_dir_resolved,
            config: cfg,
            config_path: path,
            config_explicit: explicit,
            config_looked: looked,
            data_dir_named,
            clock: Arc::new(SystemClock),
            served: Default::default(),
        })
    }

    /// Where the config was looked for, for messages: "./outwatch.toml, ~/.config/...".
    pub fn looked_for(&self) -> String {
        self.config_looked
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The store's engine (`[store] backend`; sled without a config).
    pub fn backend(&self) -> crate::config::Backend {
        self.config
            .as_ref()
            .map(|c| c.store.backend)
            .unwrap_or_default()
    }

    /// Where the PostgreSQL store is, when `[store] backend = "postgres"`: the URL (from
    /// `url`, or the variable `url_env` names), the password file and the schema.
    pub fn pg_target(&self) -> Result<Option<Target>, CliError> {
        let Some(cfg) = self.config.as_ref() else {
            return Ok(None);
        };
        let st = &cfg.store;
        if st.backend != crate::config::Backend::Postgres {
            return Ok(None);
        }
        let url = crate::secret::resolve(&st.url, &st.url_env, "store.url")
            .map_err(|e| CliError::config(e.to_string()))?
            .ok_or_else(|| CliError::config("`store.backend = \"postgres\"` needs `url`"))?;
        Ok(Some(Target {
            url: url.expose().to_string(),
            password: None,
            schema: st.schema.clone(),
            password_file: st.password_file.as_ref().map(|p| cfg.resolve_path(p)),
        }))
    }

    /// Where the store is, for people: the folder, or the database (no password).
    pub fn store_place(&self) -> String {
        match self.pg_target() {
            Ok(Some(t)) => store::postgres::describe_target(&t),
            _ => self.data_dir.display().to_string(),
        }
    }

    /// Whether the store folder holds a store (sled's database folder).
    pub fn store_exists(&self) -> bool {
        self.data_dir.join("db").is_dir()
    }

    /// Read commands never create a store: with no store, they fail instead of answering
    /// "nothing known" from an empty one. Without a config and a named folder that is exit 3
    /// (nothing set up here); with a folder that holds no store, exit 4.
    pub fn require_store(&self) -> Result<(), CliError> {
        if let Some(t) = self.pg_target()? {
            return PgStore::open_existing(&t).map(drop).map_err(CliError::from);
        }
        if self.store_exists() {
            return Ok(());
        }
        if !self.data_dir_named {
            return Err(CliError::config(format!(
                "no config and no store here: looked for a config at {} (or --config PATH, \
                 $OUTWATCH_CONFIG) and for a store at {} (or --data-dir DIR, \
                 $OUTWATCH_DATA_DIR). Copy config.example.toml to outwatch.toml and run \
                 `outwatch fetch`, or try `outwatch demo`",
                self.looked_for(),
                self.data_dir.display()
            )));
        }
        Err(CliError::store(format!(
            "no store at {}: nothing was fetched or imported there yet. Run `outwatch fetch` \
             (or `outwatch import ...`; `outwatch demo` to try it), or check --data-dir / \
             [store] path",
            self.data_dir.display()
        )))
    }

    /// The config, or an error telling how to create one.
    pub fn require_config(&self) -> Result<&Config, CliError> {
        self.config.as_ref().ok_or_else(|| {
            CliError::config(format!(
                "no config file: looked at {}. Copy config.example.toml to outwatch.toml and \
                 edit it, or pass --config PATH (or set $OUTWATCH_CONFIG)",
                self.looked_for()
            ))
        })
    }

    /// Opens the store for a command that writes. While the daemon (`outwatch run`) holds it,
    /// the store is the daemon's, through its socket: the command runs as it would alone and
    /// the daemon does its writes (an older daemon that takes none is exit 4, saying so). While
    /// another command holds it for a while (a `fetch`, `run --once` from cron, an import), this
    /// waits for it, saying so on stderr, at most [`HOLD_WAIT`] (`$OUTWATCH_STORE_WAIT`
    /// seconds). A store opened here answers reads on the socket while the command works.
    pub fn open_store(&self) -> Result<Arc<dyn Store>, CliError> {
        self.open_writer(Writer::Command)
    }

    /// Opens the store itself when no other process holds it (answering reads on the socket
    /// meanwhile), else `None`: for a command that writes only what is due and otherwise reads
    /// (`scope` without `--refresh`), which neither waits nor asks the daemon to write.
    pub fn open_store_if_free(&self) -> Result<Option<Arc<dyn Store>>, CliError> {
        if let Some(t) = self.pg_target()? {
            // A shared database: several processes write at once, nothing to wait for.
            return Ok(Some(Arc::new(PgStore::open(&t)?)));
        }
        match store::open(&self.data_dir) {
            Ok(s) => {
                let s: Arc<dyn Store> = Arc::new(s);
                self.serve_reads(&s);
                Ok(Some(s))
            }
            Err(store::StoreError::Locked { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Opens the store for `run` (the daemon: `once` false) or `run --once`: never through a
    /// daemon (one already running is exit 4), waiting like [`App::open_store`] for a command
    /// that holds it. `run --once` answers reads on the socket while it works; the daemon
    /// serves its own socket.
    pub fn open_own_store(&self, once: bool) -> Result<Arc<dyn Store>, CliError> {
        self.open_writer(if once { Writer::Once } else { Writer::Daemon })
    }

    fn open_writer(&self, who: Writer) -> Result<Arc<dyn Store>, CliError> {
        if let Some(t) = self.pg_target()? {
            // A shared database: several processes write at once, nothing to wait for.
            return Ok(Arc::new(PgStore::open(&t)?));
        }
        let started = std::time::Instant::now();
        let wait = hold_wait();
        let mut told: Option<std::time::Instant> = None;
        loop {
            match store::open(&self.data_dir) {
                Ok(s) => {
                    let s: Arc<dyn Store> = Arc::new(s);
                    if who != Writer::Daemon {
                        self.serve_reads(&s);
                    }
                    return Ok(s);
                }
                Err(store::StoreError::Locked { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            let holder = RemoteStore::connect(&self.data_dir);
            let hello = holder.as_ref().map(|r| r.hello());
            if hello.as_ref().is_some_and(|h| h.pid == std::process::id()) {
                // Never wait for ourselves (a command that opens the store twice).
                return Err(CliError::store(store::StoreError::Locked {
                    path: self.data_dir.display().to_string(),
                }));
            }
            if let (Some(r), Some(h)) = (holder, &hello)
                && h.is_daemon()
            {
                if who == Writer::Command && r.takes_writes() {
                    tracing::info!(
                        pid = h.pid,
                        "the daemon holds the store: it does the writes"
                    );
                    return Ok(Arc::new(r));
                }
                return Err(self.daemon_refusal(h, who));
            }
            let what = match &hello {
                Some(h) if !h.holder.is_empty() => format!(
                    "`outwatch {}` (pid {})",
                    crate::text::clip(&h.holder, 60),
                    h.pid
                ),
                Some(h) => format!("another outwatch process (pid {})", h.pid),
                None => "another outwatch process".to_string(),
            };
            let waited = started.elapsed();
            if waited >= wait {
                return Err(CliError::store(format!(
                    "the store at {} is still held by {what} after {} s of waiting. Try \
                     again when it has finished, or set $OUTWATCH_STORE_WAIT (seconds) to \
                     wait longer",
                    self.data_dir.display(),
                    waited.as_secs()
                )));
            }
            // Said at once, then every 10 s, so a person or a cron mail sees why nothing moves.
            let due = match told {
                None => waited >= std::time::Duration::from_millis(500),
                Some(t) => t.elapsed() >= std::time::Duration::from_secs(10),
            };
            if due {
                if told.is_none() {
                    eprintln!(
                        "waiting for {what}, which holds the store at {}, to finish (at most {} s)",
                        self.data_dir.display(),
                        wait.as_secs()
                    );
                } else {
                    eprintln!("still waiting for {what} ({} s)", waited.as_secs());
                }
                told = Some(std::time::Instant::now());
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }

    /// Why a write cannot go through the daemon that holds the store (exit 4).
    fn daemon_refusal(&self, h: &crate::daemon::protocol::Hello, who: Writer) -> CliError {
        let pid = h.pid;
        let dir = self.data_dir.display();
        CliError::store(match who {
            Writer::Command => format!(
                "the outwatch daemon (`outwatch run`, pid {pid}) holds the store at {dir} and \
                 is older than this outwatch: it takes no writes from other commands. Restart \
                 it with this binary (e.g. `systemctl restart outwatch`) to write while it \
                 runs, or stop it first (`kill -TERM {pid}`). Read commands (lookup, status, \
                 export, scope) work while it runs"
            ),
            Writer::Once | Writer::Daemon => format!(
                "the outwatch daemon (`outwatch run`, pid {pid}) already runs on the store at \
                 {dir}: it fetches on its own schedule (use one or the other). Commands such as \
                 fetch, import and flows work beside it"
            ),
        })
    }

    /// Answers reads on the store's socket while this process holds the store, so that a
    /// `lookup` or `status` meanwhile is served instead of waiting for the lock. The socket
    /// holds the store weakly ([`crate::daemon::Lent`]): when the command drops it, it closes
    /// as before. The socket stops (and its file goes) when the `App` is dropped or the
    /// command opens the store again. Outside a tokio runtime, or when the
    /// socket cannot be made (a path too long), the store is simply not served.
    fn serve_reads(&self, store: &Arc<dyn Store>) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        {
            let Ok(mut served) = self.served.lock() else {
                return;
            };
            match served.as_ref() {
                Some(s) if s.lent.is_held() => return, // served already
                // A store this command let go of: its socket goes before the next is bound.
                Some(_) => *served = None,
                None => {}
            }
        }
        let lent = Arc::new(crate::daemon::Lent::new(store, &self.data_dir));
        let (listener, path) = {
            let _entered = rt.enter();
            match crate::daemon::socket::bind(&self.data_dir) {
                Ok(b) => b,
                Err(e) => {
                    tracing::debug!(error = %e, "cannot answer reads on the socket");
                    return;
                }
            }
        };
        let holder = holder_name(std::env::args().skip(1));
        let started = chrono::Utc::now();
        let data_dir = self.data_dir.display().to_string();
        let held = lent.clone();
        let info: crate::daemon::socket::InfoFn = Arc::new(move || {
            if !held.is_held() {
                return serde_json::Value::Null; // let go: nobody serves this store here
            }
            serde_json::to_value(crate::daemon::protocol::Hello {
                version: crate::daemon::protocol::PROTOCOL_VERSION,
                revision: crate::daemon::protocol::PROTOCOL_REVISION,
                pid: std::process::id(),
                started: Some(started),
                data_dir: data_dir.clone(),
                writes: false,
                holder: holder.clone(),
                ..Default::default()
            })
            .unwrap_or_default()
        });
        let (stop, rx) = tokio::sync::watch::channel(false);
        rt.spawn(crate::daemon::socket::serve(
            listener,
            lent.clone(),
            info,
            rx,
            crate::daemon::socket::Access::Read,
        ));
        if let Ok(mut s) = self.served.lock() {
            *s = Some(Served { stop, path, lent });
        }
    }

    /// Opens the store for reading: through the socket of the process that holds it (the
    /// daemon, or a command working on it) when one answers (`<data_dir>/outwatch.sock`), else
    /// directly. A stale socket file is ignored. Never creates a store (see
    /// [`App::require_store`]).
    pub fn open_read(&self) -> Result<Arc<dyn Store>, CliError> {
        if let Some(t) = self.pg_target()? {
            return Ok(Arc::new(PgStore::open_existing(&t)?));
        }
        // A process that is starting holds the lock a moment before its socket answers.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        loop {
            if let Some(r) = RemoteStore::connect(&self.data_dir) {
                tracing::debug!("reading through the socket of the process holding the store");
                return Ok(Arc::new(r));
            }
            self.require_store()?;
            match store::open(&self.data_dir) {
                Ok(s) => {
                    let s: Arc<dyn Store> = Arc::new(s);
                    self.serve_reads(&s);
                    return Ok(s);
                }
                Err(store::StoreError::Locked { .. }) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// What the daemon (and `fetch`, `run --once`) works with: the store folder, the clock
    /// and the HTTP client of `[http]`.
    pub fn daemon_env(&self) -> Result<DaemonEnv, CliError> {
        Ok(DaemonEnv {
            data_dir: self.data_dir.clone(),
            clock: self.clock.clone(),
            http: self.http()?,
        })
    }

    /// The HTTP client configured by `[http]`.
    pub fn http(&self) -> Result<HttpClient, CliError> {
        let cfg = self
            .config
            .as_ref()
            .map(|c| c.http.clone())
            .unwrap_or_default();
        HttpClient::new(&cfg, self.clock.clone()).map_err(|e| CliError::failure(e.to_string()))
    }
}

/// Where a config is looked for when none is named, in order: `./outwatch.toml`,
/// `$XDG_CONFIG_HOME/outwatch/outwatch.toml` (`~/.config/outwatch/outwatch.toml` when unset),
/// `/etc/outwatch/outwatch.toml`.
pub(crate) fn config_candidates() -> Vec<PathBuf> {
    let mut out = vec![PathBuf::from(DEFAULT_CONFIG)];
    let xdg = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join(".config"))
        });
    if let Some(x) = xdg {
        out.push(x.join("outwatch").join(DEFAULT_CONFIG));
    }
    out.push(PathBuf::from("/etc/outwatch").join(DEFAULT_CONFIG));
    out
}

impl From<DaemonError> for CliError {
    fn from(e: DaemonError) -> Self {
        match e {
            DaemonError::Store(e) => CliError::from(e),
            e @ DaemonError::Flush(_) => CliError::store(crate::text::chain(&e)),
            e => CliError::failure(crate::text::chain(&e)),
        }
    }
}
