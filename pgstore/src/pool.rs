//! The store's connections: a few threads, each with its own synchronous Postgres client, taking
//! jobs from one queue. A run's entry is one job (one transaction); an async caller awaits its
//! answer through a oneshot, a synchronous caller (list, show) through a channel. A broken
//! connection is opened again at the next job, so a restarted server costs the jobs in flight,
//! not the process.

use std::str::FromStr as _;
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::Duration;

use flowcat_engine::journal::JournalError;
use postgres::{Client, Config, NoTls};

use crate::error;

/// One job: it gets the thread's connection (opened if it is not).
pub(crate) type Job = Box<dyn FnOnce(&mut Conn) + Send>;

/// A thread's connection, opened on first use and again after it broke.
pub(crate) struct Conn {
    config: Config,
    place: Arc<str>,
    client: Option<Client>,
}

impl Conn {
    pub(crate) fn new(config: Config, place: Arc<str>) -> Conn {
        Conn { config, place, client: None }
    }

    /// Where the database is (`host:port/db`, never a password), for messages.
    pub(crate) fn place(&self) -> &str {
        &self.place
    }

    /// The client, connected.
    pub(crate) fn client(&mut self) -> Result<&mut Client, JournalError> {
        if self.client.as_ref().is_some_and(Client::is_closed) {
            self.client = None;
        }
        if self.client.is_none() {
            let client = self.config.connect(NoTls).map_err(|e| error::unreachable(&self.place, &e))?;
            self.client = Some(client);
        }
        Ok(self.client.as_mut().expect("connected above"))
    }

    /// Runs `f` on the client; maps its error, and drops a connection the error broke.
    pub(crate) fn with<T>(
        &mut self,
        f: impl FnOnce(&mut Client) -> Result<T, postgres::Error>,
    ) -> Result<T, JournalError> {
        let place = self.place.clone();
        let client = self.client()?;
        match f(client) {
            Ok(v) => Ok(v),
            Err(e) => {
                if e.is_closed() || client.is_closed() || e.as_db_error().is_none() {
                    self.client = None;
                }
                Err(error::postgres(&place, &e))
            }
        }
    }
}

/// Parses a `postgres://` URL into a client configuration with flowcat's settings, and the
/// place it names for messages.
pub(crate) fn config(url: &str) -> Result<(Config, Arc<str>), JournalError> {
    let mut config = Config::from_str(url).map_err(|e| {
        JournalError::new(
            "invalid",
            format!(
                "the store URL is not a Postgres connection string ({e}): write `postgres://USER@HOST:PORT/DATABASE`"
            ),
        )
    })?;
    if !matches!(config.get_ssl_mode(), postgres::config::SslMode::Disable | postgres::config::SslMode::Prefer) {
        return Err(JournalError::new(
            "invalid",
            "the store URL asks for TLS (`sslmode=require`), which this flowcat does not speak to Postgres yet: reach \
             the database over loopback or a private network, or through a TLS tunnel (docs/serve.md)",
        ));
    }
    // `prefer` would try TLS first; this client has none, so say it plainly.
    config.ssl_mode(postgres::config::SslMode::Disable);
    config.application_name("flowcat");
    config.connect_timeout(Duration::from_secs(10));
    // A server that vanishes (a cable, a failed-over host) fails the calls in flight within this
    // bound instead of leaving a run waiting forever.
    config.keepalives_idle(Duration::from_secs(10));
    #[cfg(target_os = "linux")]
    config.tcp_user_timeout(Duration::from_secs(30));
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            postgres::config::Host::Tcp(h) => h.clone(),
            #[cfg(unix)]
            postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".to_owned());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config.get_dbname().or(config.get_user()).unwrap_or("postgres").to_owned();
    let place: Arc<str> = format!("{host}:{port}/{db}").into();
    Ok((config, place))
}

/// The threads and their queue.
pub(crate) struct Pool {
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    place: Arc<str>,
}

impl Pool {
    /// `size` threads, each with a connection to `config` (opened at its first job).
    pub(crate) fn new(config: &Config, place: Arc<str>, size: usize) -> Pool {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let threads = (0..size.max(1))
            .map(|i| {
                let rx = rx.clone();
                let mut conn = Conn::new(config.clone(), place.clone());
                std::thread::Builder::new()
                    .name(format!("flowcat-pg-{i}"))
                    .spawn(move || {
                        loop {
                            let job = rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
                            match job {
                                Ok(job) => job(&mut conn),
                                Err(_) => break,
                            }
                        }
                    })
                    .expect("a thread for the store")
            })
            .collect();
        Pool { jobs: Mutex::new(Some(tx)), threads: Mutex::new(threads), place }
    }

    /// Queues a job; nobody waits for it.
    pub(crate) fn spawn(&self, job: Job) -> Result<(), JournalError> {
        let jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(jobs) = jobs.as_ref() else { return Err(error::closed(&self.place)) };
        jobs.send(job).map_err(|_| error::closed(&self.place))
    }

    /// Runs `f` on a connection and awaits its answer.
    pub(crate) async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Conn) -> Result<T, JournalError> + Send + 'static,
    ) -> Result<T, JournalError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.spawn(Box::new(move |conn| {
            let _ = reply.send(f(conn));
        }))?;
        answer.await.map_err(|_| error::closed(&self.place))?
    }

    /// Runs `f` on a connection and blocks this thread until it answers.
    pub(crate) fn call_blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Conn) -> Result<T, JournalError> + Send + 'static,
    ) -> Result<T, JournalError> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.spawn(Box::new(move |conn| {
            let _ = reply.send(f(conn));
        }))?;
        answer.recv().map_err(|_| error::closed(&self.place))?
    }

    /// Lets the threads finish the queued jobs, then end.
    pub(crate) fn close(&self) {
        drop(self.jobs.lock().unwrap_or_else(PoisonError::into_inner).take());
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(PoisonError::into_inner));
        for thread in threads {
            let _ = thread.join();
        }
    }
}
