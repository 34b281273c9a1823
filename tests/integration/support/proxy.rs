//! portvakt itself, started in-process on `127.0.0.1:0` from a TOML configuration, on its own runtime thread.
//!
//! ```ignore
//! let upstream = FreeRadius::start_default()?;
//! let proxy = Proxy::builder().upstream(&upstream).start()?;
//! let reply = radclient(proxy.auth(), NAS_SECRET, Kind::Auth, &ALICE.pap())?;
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use portvakt::config::Settings;
use portvakt::daemon::{Context, Daemon, Listener};
use portvakt::store::{Store, StoreKey};
use tokio_util::sync::CancellationToken;

use super::freeradius::FreeRadius;
use super::{Error, Result, TestDir};

/// The secret the test NAS (radclient, eapol_test) shares with portvakt.
pub const NAS_SECRET: &str = "nas-secret-0123456789";

/// Builds a portvakt configuration for a test.
#[derive(Debug, Default)]
pub struct ProxyBuilder {
    store: bool,
    upstreams: Vec<String>,
    client_address: Option<String>,
    client_extra: String,
    extra: String,
}

impl ProxyBuilder {
    /// Adds a FreeRADIUS instance as an upstream (priority in the order added).
    pub fn upstream(self, upstream: &FreeRadius) -> Self {
        let n = self.upstreams.len() + 1;
        self.upstream_toml(format!(
            "name = \"fr{n}\"\nauth = \"{}\"\nacct = \"{}\"\nsecret = \"{}\"\npriority = {n}\n",
            upstream.auth(),
            upstream.acct(),
            upstream.secret()
        ))
    }

    /// Adds an upstream from raw TOML lines (the body of an `[[upstreams]]` table).
    pub fn upstream_toml(mut self, body: impl Into<String>) -> Self {
        self.upstreams.push(body.into());
        self
    }

    /// Gives portvakt a user store (`[store]` with a fresh key in its directory).
    pub fn with_store(mut self) -> Self {
        self.store = true;
        self
    }

    /// The test client's address or prefix (default `127.0.0.0/8`).
    pub fn client_address(mut self, address: &str) -> Self {
        self.client_address = Some(address.to_owned());
        self
    }

    /// Extra lines for the test client's `[[clients]]` table.
    pub fn client(mut self, lines: &str) -> Self {
        self.client_extra.push_str(lines);
        self.client_extra.push('\n');
        self
    }

    /// Extra top-level TOML (after the tables; start with a `[section]`).
    pub fn toml(mut self, text: &str) -> Self {
        self.extra.push_str(text);
        self.extra.push('\n');
        self
    }

    /// The configuration text.
    pub fn config_text(&self) -> String {
        let mut text = String::from(
            "[server]\nauth_listen = [\"127.0.0.1:0\"]\nacct_listen = [\"127.0.0.1:0\"]\n",
        );
        text += &format!(
            "dictionaries = \"{}/dictionaries\"\n\n",
            env!("CARGO_MANIFEST_DIR")
        );
        text += &format!(
            "[[clients]]\nname = \"test-nas\"\naddress = \"{}\"\nsecret = \"{NAS_SECRET}\"\n{}\n",
            self.client_address.as_deref().unwrap_or("127.0.0.0/8"),
            self.client_extra
        );
        for u in &self.upstreams {
            text += &format!("[[upstreams]]\n{u}\n");
        }
        if self.store {
            text += "[store]\npath = \"portvakt.db\"\nkey_file = \"store.key\"\n\n";
        }
        text + &self.extra
    }

    /// Starts portvakt and returns once its sockets are bound (it answers from then on).
    pub fn start(self) -> Result<Proxy> {
        let dir = TestDir::new("portvakt-proxy")?;
        if self.store {
            StoreKey::generate()
                .and_then(|k| k.write_new_file(&dir.join("store.key")))
                .map_err(|e| Error::Start {
                    peer: "portvakt",
                    reason: e.to_string(),
                    details: String::new(),
                })?;
        }
        dir.write("portvakt.toml", self.config_text())?;
        Proxy::start(dir)
    }
}

/// A running portvakt. Stopped (and its thread joined) on drop.
pub struct Proxy {
    auth: SocketAddr,
    approval: Option<SocketAddr>,
    acct: SocketAddr,
    ctx: Arc<Context>,
    shutdown: CancellationToken,
    thread: Option<JoinHandle<()>>,
    dir: TestDir,
}

impl Proxy {
    /// A builder.
    pub fn builder() -> ProxyBuilder {
        ProxyBuilder::default()
    }

    fn start(dir: TestDir) -> Result<Self> {
        let path = dir.join("portvakt.toml");
        portvakt::factor::install_crypto_provider();
        let settings = Settings::load(&path).map_err(|e| Error::Start {
            peer: "portvakt",
            reason: e.to_string(),
            details: std::fs::read_to_string(&path).unwrap_or_default(),
        })?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| Error::io("tokio runtime", e))?;
        let daemon = {
            let _guard = runtime.enter();
            Daemon::bind(settings).map_err(|e| Error::Start {
                peer: "portvakt",
                reason: e.to_string(),
                details: String::new(),
            })?
        };
        let auth = daemon.local_addrs(Listener::Auth)[0];
        let acct = daemon.local_addrs(Listener::Acct)[0];
        let approval = daemon.approval_addr();
        let ctx = daemon.context();
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let thread = std::thread::spawn(move || runtime.block_on(daemon.run(token)));
        Ok(Self {
            auth,
            approval,
            acct,
            ctx,
            shutdown,
            thread: Some(thread),
            dir,
        })
    }

    /// The authentication address.
    pub fn auth(&self) -> SocketAddr {
        self.auth
    }

    /// The approval API's address (with `[approval]` configured).
    pub fn approval(&self) -> SocketAddr {
        self.approval.expect("proxy configured with [approval]")
    }

    /// The accounting address.
    pub fn acct(&self) -> SocketAddr {
        self.acct
    }

    /// The daemon's shared context (counters, upstream health).
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// The proxy's temporary directory.
    pub fn dir(&self) -> &TestDir {
        &self.dir
    }

    /// The configuration file.
    pub fn config_path(&self) -> std::path::PathBuf {
        self.dir.join("portvakt.toml")
    }

    /// A handle on portvakt's user store (as the CLI would open it while the daemon runs).
    pub fn store(&self) -> Store {
        let key =
            StoreKey::from_file(&self.dir.join("store.key")).expect("proxy built with_store()");
        Store::open(&self.dir.join("portvakt.db"), &key).expect("open the store")
    }

    /// Stops the daemon and starts it again from the same directory and configuration
    /// (new ports: read them again).
    pub fn restart(mut self) -> Result<Self> {
        self.stop();
        let dir = std::mem::replace(&mut self.dir, TestDir::new("portvakt-proxy-old")?);
        Self::start(dir)
    }

    /// Keeps the directory after the proxy is dropped (for tests that inspect it).
    pub fn keep_dir(&mut self) {
        self.dir.keep();
    }

    /// Stops the daemon and waits for it.
    pub fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop();
    }
}
