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
            Some(Config::load(&path).map_err(CliError::config)?)
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

    /// Opens the store for writing. Fails (exit 4) when another process holds it; when that is
    /// the daemon, the message says so and how to proceed.
    pub fn open_store(&self) -> Result<Arc<dyn Store>, CliError> {
        if let Some(t) = self.pg_target()? {
            // A shared database: several processes write at once, nothing to wait for.
            return Ok(Arc::new(PgStore::open(&t)?));
        }
        match store::open(&self.data_dir) {
            Ok(s) => Ok(Arc::new(s)),
            Err(e @ store::StoreError::Locked { .. }) => {
                match RemoteStore::connect(&self.data_dir) {
                    Some(d) => {
                        let pid = d.hello().pid;
                        Err(CliError::store(format!(
                            "the outwatch daemon (`outwatch run`, pid {pid}) holds the store at {}: \
                             commands that write (fetch, import, restore, run) cannot run beside it. \
                             It fetches on its own schedule; stop it first (e.g. `systemctl stop \
                             outwatch` or `kill -TERM {pid}`) to write by hand. Read commands \
                             (lookup, status, export, scope) work while it runs",
                            self.data_dir.display()
                        )))
                    }
                    None => Err(CliError::store(e)),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Opens the store for reading: through the running daemon's socket when one answers
    /// (`<data_dir>/outwatch.sock`), else directly. A stale socket file is ignored.
    /// Never creates a store (see [`App::require_store`]).
    pub fn open_read(&self) -> Result<Arc<dyn Store>, CliError> {
        if let Some(t) = self.pg_target()? {
            return Ok(Arc::new(PgStore::open_existing(&t)?));
        }
        // A daemon that is starting holds the lock a moment before its socket answers.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        loop {
            if let Some(r) = RemoteStore::connect(&self.data_dir) {
                tracing::debug!("reading through the daemon's socket");
                return Ok(Arc::new(r));
            }
            self.require_store()?;
            match store::open(&self.data_dir) {
                Ok(s) => return Ok(Arc::new(s)),
                Err(store::StoreError::Locked { .. }) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Err(_) => return self.open_store(),
            }
        }
    }

    /// Opens the store for writing, waiting up to `wait` while another process holds it,
    /// unless that process is a daemon (then it fails at once, saying so).
    pub async fn open_store_waiting(
        &self,
        wait: std::time::Duration,
    ) -> Result<Arc<dyn Store>, CliError> {
        if self.pg_target()?.is_some() {
            return self.open_store();
        }
        let deadline = std::time::Instant::now() + wait;
        loop {
            match store::open(&self.data_dir) {
                Ok(s) => return Ok(Arc::new(s)),
                Err(store::StoreError::Locked { .. })
                    if std::time::Instant::now() < deadline
                        && RemoteStore::connect(&self.data_dir).is_none() =>
                {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                // Let `open_store` phrase the error (it names a running daemon).
                Err(_) => return self.open_store(),
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
pub fn config_candidates() -> Vec<PathBuf> {
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
            DaemonError::Store(m) => CliError::store(m),
            DaemonError::Failure(m) => CliError::failure(m),
        }
    }
}
