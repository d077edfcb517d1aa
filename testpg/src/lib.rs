//! A real Postgres for tests: a server of the machine's own Postgres, started by the test binary
//! itself in a temporary folder, on a free loopback port, with a fresh database per test.
//!
//! ```no_run
//! let url = flowcat_testpg::Cluster::shared().database();
//! // url = "postgres://flowcat@127.0.0.1:PORT/test_3": an empty database of its own.
//! ```
//!
//! - [`Cluster::shared`]: one server per test binary, started by the first test that asks and
//!   killed when the test process ends (however it ends: the server runs under
//!   `setpriv --pdeathsig KILL`).
//! - [`Cluster::start`]: a private server for a test that stops or kills it; dropping it stops the
//!   server and removes its folder.
//! - [`Cluster::database`]: `CREATE DATABASE` of a new name, answered as a URL, so tests sharing a
//!   server never see each other's tables.
//!
//! The binaries are the machine's (`initdb` on `PATH`, else the highest
//! `/usr/lib/postgresql/*/bin`). When there are none, every test that asks for a server FAILS with
//! a message saying to `apt-get install postgresql` (`.ci/run` installs it): a missing Postgres
//! must not turn into tests that silently pass.
//!
//! The server is made for tests, not for keeping data: `fsync=off` (a crash of the machine may
//! lose what it wrote; a crash of the server or of a test does not), trust authentication for the
//! user `flowcat` on 127.0.0.1 only, `max_connections=300` (replicas and their pools in one test
//! binary). Postgres refuses to run as root: as root, `initdb` and the server run as the
//! `postgres` system user (else `nobody`), which owns the folder.
//!
//! Each folder is `$TMPDIR/flowcat-pg-PID-N` (`data/`, `sock/`, `server.log`, `owner`). A test
//! process killed before it could clean up leaves its folder: the next start of a cluster, by any
//! test binary, removes every such folder whose owner and server are both dead.
//!
//! The sync `postgres` client that this crate uses runs its own tokio runtime and panics when it
//! is called on a thread that is already inside a runtime (`#[tokio::test]`). So every call of it
//! here happens on a plain `std::thread` that is joined: [`Cluster::database`] and
//! [`Cluster::start`] can be called from async tests.
//!
//! Linux only (`setpriv`, `/proc`).

use std::fmt;
use std::fs;
use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use rustix::process::{Pid, Signal};

/// The folder name prefix, under `std::env::temp_dir()`.
const PREFIX: &str = "flowcat-pg-";
/// The superuser `initdb` creates; every URL names it (trust authentication).
pub const USER: &str = "flowcat";
/// How long a server may take to accept connections.
const READY_WITHIN: Duration = Duration::from_secs(30);
/// How long a fast shutdown may take before the server is killed.
const STOP_WITHIN: Duration = Duration::from_secs(10);
/// Another port is tried when the one picked was taken in between (another process bound it).
const PORT_ATTEMPTS: usize = 5;
/// A folder with neither a server's nor an owner's pid file is left alone for this long (it may
/// be a folder just created by another process).
const ORPHAN_AGE: Duration = Duration::from_secs(3600);
/// Lines of the server's log quoted in an error.
const LOG_TAIL_LINES: usize = 30;

/// Why a cluster could not be started or a database created.
#[derive(Debug)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

fn error(message: impl Into<String>) -> Error {
    Error(message.into())
}

/// A Postgres server of this test process (see the crate's documentation).
#[derive(Debug)]
pub struct Cluster {
    root: PathBuf,
    port: u16,
    pid: u32,
    shared: bool,
    next_database: AtomicU64,
    /// The server's exit, reported by the thread that spawned it; `None` once stopped.
    server: Mutex<Option<Receiver<io::Result<ExitStatus>>>>,
}

impl Cluster {
    /// The server shared by every test of this test binary, started by the first call.
    ///
    /// Panics, with what to do, when Postgres is not installed or does not start (each later
    /// call panics with the same message, without trying again).
    pub fn shared() -> &'static Cluster {
        static SHARED: OnceLock<Result<Cluster, String>> = OnceLock::new();
        match SHARED.get_or_init(|| launch(true).map_err(|e| e.to_string())) {
            Ok(cluster) => cluster,
            Err(message) => panic!("{message}"),
        }
    }

    /// A server of the caller's own: [`Cluster::stop`] and [`Cluster::kill`] take it down, and
    /// dropping it stops it and removes its folder.
    pub fn start() -> Result<Cluster, Error> {
        launch(false)
    }

    /// Creates an empty database of a new name and answers its URL,
    /// `postgres://flowcat@127.0.0.1:PORT/NAME`. Panics if the server refuses.
    pub fn database(&self) -> String {
        match self.try_database() {
            Ok(url) => url,
            Err(e) => panic!("{e}"),
        }
    }

    /// [`Cluster::database`], answering an error instead of panicking.
    pub fn try_database(&self) -> Result<String, Error> {
        let name = format!("test_{}", self.next_database.fetch_add(1, Ordering::Relaxed));
        let port = self.port;
        let statement = format!("CREATE DATABASE \"{name}\"");
        // A plain thread: the sync client must not run on a tokio runtime's thread.
        let created = std::thread::spawn(move || {
            let mut client = connect(port, "postgres", Duration::from_secs(10))?;
            client.batch_execute(&statement)
        })
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        match created {
            Ok(()) => Ok(self.url(&name)),
            Err(e) => Err(error(format!(
                "flowcat-testpg: CREATE DATABASE {name} on the test server at 127.0.0.1:{port} failed: {e}{}",
                self.log_tail_note()
            ))),
        }
    }

    /// The URL of database `name` of this server (the server's own `postgres` database too).
    pub fn url(&self, name: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{name}", self.port)
    }

    /// The server's TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's process id (the postmaster).
    pub fn server_pid(&self) -> u32 {
        self.pid
    }

    /// The cluster's folder (`data/`, `sock/`, `server.log`).
    pub fn dir(&self) -> &Path {
        &self.root
    }

    /// The server's log so far (empty if it cannot be read).
    pub fn log(&self) -> String {
        fs::read_to_string(self.root.join("server.log")).unwrap_or_default()
    }

    /// Stops a private server: a fast shutdown (SIGINT: clients are disconnected, the data is
    /// written), then SIGKILL if it has not ended within 10 s. Does nothing when it is already
    /// stopped. Panics on the shared cluster, which every test of the binary uses.
    pub fn stop(&self) -> Result<(), Error> {
        self.take_down(Signal::INT)
    }

    /// Kills a private server (SIGKILL, as a crash would) and waits until it is gone. Panics on
    /// the shared cluster.
    pub fn kill(&self) {
        // SIGKILL cannot be refused: a failure here is a bug of the harness.
        if let Err(e) = self.take_down(Signal::KILL) {
            panic!("{e}")
        }
    }

    fn take_down(&self, signal: Signal) -> Result<(), Error> {
        assert!(
            !self.shared,
            "flowcat-testpg: the shared cluster serves every test of this binary and cannot be \
             stopped; use Cluster::start() for a server of your own"
        );
        let mut server = self.server.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(exited) = server.take() else {
            return Ok(());
        };
        send(self.pid, signal);
        let result = match exited.recv_timeout(STOP_WITHIN) {
            Ok(_) | Err(RecvTimeoutError::Disconnected) => Ok(()),
            Err(RecvTimeoutError::Timeout) => {
                send(self.pid, Signal::KILL);
                let _ = exited.recv_timeout(STOP_WITHIN);
                Err(error(format!(
                    "flowcat-testpg: the test server (pid {}) did not stop within {} s of a fast \
                     shutdown and was killed{}",
                    self.pid,
                    STOP_WITHIN.as_secs(),
                    self.log_tail_note()
                )))
            }
        };
        // A killed server leaves its System V shared memory segment behind.
        remove_shared_memory(&self.root);
        result
    }

    fn log_tail_note(&self) -> String {
        log_tail_note(&self.root.join("server.log"))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if !self.shared {
            let _ = self.take_down(Signal::INT);
            let _ = fs::remove_dir_all(&self.root);
        }
    }
}

/// Where the server's binaries are: `initdb` on `PATH` (its real folder, so Debian's links in
/// /usr/local/bin or a wrapper's folder lead to `postgres` beside it), else the highest
/// `/usr/lib/postgresql/VERSION/bin`. `.ci/run` looks the same way.
pub fn find_binaries() -> Result<PathBuf, Error> {
    find_binaries_in(std::env::var_os("PATH"), Path::new("/usr/lib/postgresql"))
}

fn find_binaries_in(path: Option<std::ffi::OsString>, versions: &Path) -> Result<PathBuf, Error> {
    let has_both = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    if let Some(path) = path {
        for dir in std::env::split_paths(&path) {
            let initdb = dir.join("initdb");
            if !initdb.is_file() {
                continue;
            }
            let real = fs::canonicalize(&initdb).unwrap_or(initdb);
            if let Some(bin) = real.parent().filter(|bin| has_both(bin)) {
                return Ok(bin.to_path_buf());
            }
        }
    }
    let mut best: Option<(Vec<u32>, PathBuf)> = None;
    for entry in fs::read_dir(versions).into_iter().flatten().flatten() {
        let name = entry.file_name();
        let Some(version) =
            name.to_str().and_then(|v| v.split('.').map(|part| part.parse().ok()).collect::<Option<Vec<u32>>>())
        else {
            continue;
        };
        let bin = entry.path().join("bin");
        if has_both(&bin) && best.as_ref().is_none_or(|(v, _)| version > *v) {
            best = Some((version, bin));
        }
    }
    best.map(|(_, bin)| bin).ok_or_else(|| {
        error(
            "flowcat-testpg: Postgres is not installed: no `initdb` on PATH nor in \
             /usr/lib/postgresql/*/bin. These tests need a real Postgres server; install it \
             (Debian/Ubuntu: `apt-get install postgresql`; .ci/run does it)",
        )
    })
}

/// The unprivileged user the server runs as when the tests run as root.
#[derive(Debug, Clone, Copy)]
struct RunAs {
    uid: u32,
    gid: u32,
}

fn run_as() -> Result<Option<RunAs>, Error> {
    if !rustix::process::geteuid().is_root() {
        return Ok(None);
    }
    let passwd =
        fs::read_to_string("/etc/passwd").map_err(|e| error(format!("flowcat-testpg: reading /etc/passwd: {e}")))?;
    let user = |wanted: &str| {
        passwd.lines().find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.len() > 3 && fields[0] == wanted)
                .then(|| Some(RunAs { uid: fields[2].parse().ok()?, gid: fields[3].parse().ok()? }))?
        })
    };
    user("postgres").or_else(|| user("nobody")).map(Some).ok_or_else(|| {
        error(
            "flowcat-testpg: running as root, and Postgres refuses to run as root, but there is \
             neither a `postgres` nor a `nobody` user in /etc/passwd to run it as",
        )
    })
}

/// `program` run as `run_as` (when root), through `setpriv`; `pdeathsig`: killed when the thread
/// that spawns it ends.
fn command(run_as: Option<RunAs>, program: &Path, pdeathsig: bool) -> Command {
    if run_as.is_none() && !pdeathsig {
        return Command::new(program);
    }
    let mut command = Command::new("setpriv");
    if pdeathsig {
        command.arg("--pdeathsig").arg("KILL");
    }
    if let Some(RunAs { uid, gid }) = run_as {
        command.arg(format!("--reuid={uid}")).arg(format!("--regid={gid}")).arg("--clear-groups");
    }
    command.arg(program);
    command
}

fn launch(shared: bool) -> Result<Cluster, Error> {
    // A plain thread: the readiness probe uses the sync client (see the crate's documentation).
    std::thread::spawn(move || launch_here(shared)).join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

fn launch_here(shared: bool) -> Result<Cluster, Error> {
    let bin = find_binaries()?;
    let run_as = run_as()?;
    let temp = std::env::temp_dir();
    sweep(&temp);
    let root = make_root(&temp, run_as)?;
    // From here on, a failure removes the folder.
    let started = start_server(&bin, run_as, &root);
    match started {
        Ok((port, pid, exited)) => {
            Ok(Cluster { root, port, pid, shared, next_database: AtomicU64::new(1), server: Mutex::new(Some(exited)) })
        }
        Err(e) => {
            let _ = fs::remove_dir_all(&root);
            Err(e)
        }
    }
}

fn make_root(temp: &Path, run_as: Option<RunAs>) -> Result<PathBuf, Error> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let failed =
        |what: &str, path: &Path, e: io::Error| error(format!("flowcat-testpg: {what} {}: {e}", path.display()));
    let root = loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let root = temp.join(format!("{PREFIX}{}-{n}", std::process::id()));
        match fs::create_dir(&root) {
            Ok(()) => break root,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(failed("creating", &root, e)),
        }
    };
    let owner = root.join("owner");
    fs::write(&owner, format!("{}\n", std::process::id())).map_err(|e| failed("writing", &owner, e))?;
    let sock = root.join("sock");
    fs::create_dir(&sock).map_err(|e| failed("creating", &sock, e))?;
    for dir in [&root, &sock] {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| failed("setting the mode of", dir, e))?;
        if let Some(RunAs { uid, gid }) = run_as {
            std::os::unix::fs::chown(dir, Some(uid), Some(gid))
                .map_err(|e| failed("giving the server's user", dir, e))?;
        }
    }
    Ok(root)
}

/// initdb, then the server on a free port (another port when the one picked was taken in
/// between); answers the port, the server's pid and its exit.
#[allow(clippy::type_complexity)]
fn start_server(
    bin: &Path,
    run_as: Option<RunAs>,
    root: &Path,
) -> Result<(u16, u32, Receiver<io::Result<ExitStatus>>), Error> {
    let data = root.join("data");
    let initdb = command(run_as, &bin.join("initdb"), false)
        .arg("-D")
        .arg(&data)
        .args(["-A", "trust", "-U", USER, "--no-sync", "-E", "UTF8", "--locale=C"])
        .current_dir(root)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| error(format!("flowcat-testpg: running {}/initdb: {e}", bin.display())))?;
    if !initdb.status.success() {
        return Err(error(format!(
            "flowcat-testpg: {}/initdb -D {} failed ({}):\n{}{}",
            bin.display(),
            data.display(),
            initdb.status,
            String::from_utf8_lossy(&initdb.stdout),
            String::from_utf8_lossy(&initdb.stderr)
        )));
    }
    let log_path = root.join("server.log");
    let mut last = String::new();
    for _ in 0..PORT_ATTEMPTS {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|listener| listener.local_addr())
            .map_err(|e| error(format!("flowcat-testpg: finding a free loopback port: {e}")))?
            .port();
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| error(format!("flowcat-testpg: opening {}: {e}", log_path.display())))?;
        let log_err = log.try_clone().map_err(|e| error(format!("flowcat-testpg: {}: {e}", log_path.display())))?;
        let mut server = command(run_as, &bin.join("postgres"), true);
        server
            .arg("-D")
            .arg(&data)
            .arg("-p")
            .arg(port.to_string())
            .arg("-k")
            .arg(root.join("sock"))
            // Tests only: nothing is flushed to disk (see the crate's documentation).
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .args(["-c", "max_connections=300"])
            .current_dir(root)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        let (pid, exited) = spawn_forever(server).map_err(|e| {
            error(format!("flowcat-testpg: starting {}/postgres through setpriv (util-linux): {e}", bin.display()))
        })?;
        match wait_ready(port, &exited) {
            Ready::Accepting => return Ok((port, pid, exited)),
            Ready::Exited(status) => {
                let log = fs::read_to_string(&log_path).unwrap_or_default();
                last = format!(
                    "flowcat-testpg: the test server exited ({status}) before accepting \
                     connections on 127.0.0.1:{port}{}",
                    log_tail_note(&log_path)
                );
                let port_taken = log.contains("Address already in use") || log.contains("could not bind");
                if !port_taken {
                    break;
                }
                // Fresh log for the next attempt, so the next test of "taken" is about it.
                let _ = fs::write(&log_path, "");
            }
            Ready::TimedOut => {
                send(pid, Signal::KILL);
                let _ = exited.recv_timeout(STOP_WITHIN);
                remove_shared_memory(root);
                return Err(error(format!(
                    "flowcat-testpg: the test server did not accept connections on \
                     127.0.0.1:{port} within {} s and was killed{}",
                    READY_WITHIN.as_secs(),
                    log_tail_note(&log_path)
                )));
            }
        }
    }
    Err(error(last))
}

/// Spawns `command` from a thread that lives as long as the child: `setpriv --pdeathsig` kills
/// the child when the THREAD that spawned it ends, not the process. The thread reaps the child
/// and reports its exit.
fn spawn_forever(mut command: Command) -> io::Result<(u32, Receiver<io::Result<ExitStatus>>)> {
    let (spawned_tx, spawned) = mpsc::channel();
    let (exit_tx, exited) = mpsc::channel();
    std::thread::Builder::new().name("flowcat-testpg-server".into()).spawn(move || {
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) => {
                let _ = spawned_tx.send(Err(e));
                return;
            }
        };
        let _ = spawned_tx.send(Ok(child.id()));
        let _ = exit_tx.send(child.wait());
    })?;
    let pid = spawned.recv().map_err(|_| io::Error::other("the spawning thread ended without a word"))??;
    Ok((pid, exited))
}

enum Ready {
    Accepting,
    Exited(String),
    TimedOut,
}

fn wait_ready(port: u16, exited: &Receiver<io::Result<ExitStatus>>) -> Ready {
    let deadline = Instant::now() + READY_WITHIN;
    loop {
        match exited.try_recv() {
            Ok(Ok(status)) => return Ready::Exited(status.to_string()),
            Ok(Err(e)) => return Ready::Exited(format!("wait failed: {e}")),
            Err(mpsc::TryRecvError::Disconnected) => return Ready::Exited("gone".into()),
            Err(mpsc::TryRecvError::Empty) => {}
        }
        // A TCP connection before the server is ready is refused, or answered "starting up".
        if connect(port, "postgres", Duration::from_secs(1)).is_ok() {
            return Ready::Accepting;
        }
        if Instant::now() >= deadline {
            return Ready::TimedOut;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A sync client for `database` (not on a runtime's thread).
fn connect(port: u16, database: &str, timeout: Duration) -> Result<postgres::Client, postgres::Error> {
    postgres::Config::new()
        .host("127.0.0.1")
        .port(port)
        .user(USER)
        .dbname(database)
        .connect_timeout(timeout)
        .connect(postgres::NoTls)
}

fn send(pid: u32, signal: Signal) {
    if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        let _ = rustix::process::kill_process(pid, signal);
    }
}

fn log_tail_note(path: &Path) -> String {
    let log = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    if lines.is_empty() {
        return format!(" (the server's log, {}, is empty)", path.display());
    }
    let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
    format!("; the end of {}:\n{}", path.display(), tail.join("\n"))
}

/// Whether process `pid` runs (a zombie does not: a dead server whose parent is gone may stay
/// one where nothing reaps orphans).
fn alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next());
            !matches!(state, Some('Z' | 'X'))
        }
        Err(_) => false,
    }
}

/// The first line of a pid file, if it is a pid.
fn pid_in(path: &Path) -> Option<u32> {
    fs::read_to_string(path).ok()?.lines().next()?.trim().parse().ok()
}

/// Removes the folders of clusters whose test process and server are both gone.
fn sweep(temp: &Path) {
    let Ok(entries) = fs::read_dir(temp) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(PREFIX) {
            continue;
        }
        let dir = entry.path();
        if is_stale(&dir) {
            remove_shared_memory(&dir);
            let _ = fs::remove_dir_all(&dir);
        }
    }
}

fn is_stale(dir: &Path) -> bool {
    let pids = [pid_in(&dir.join("owner")), pid_in(&dir.join("data/postmaster.pid"))];
    if pids.iter().flatten().any(|&pid| alive(pid)) {
        return false;
    }
    if pids.iter().any(Option::is_some) {
        return true;
    }
    // Neither file: a folder another process is creating right now, or a very old leftover.
    fs::metadata(dir)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|modified| SystemTime::now().duration_since(modified).ok())
        .is_some_and(|age| age > ORPHAN_AGE)
}

/// Removes the System V shared memory segment a dead server left (its id is on line 7 of
/// `postmaster.pid`: key, then id). Postgres removes it itself on a clean shutdown; after a kill
/// it stays until removed, and the machine allows a limited number of them.
fn remove_shared_memory(root: &Path) {
    let Ok(pid_file) = fs::read_to_string(root.join("data/postmaster.pid")) else {
        return;
    };
    if pid_file.lines().next().and_then(|l| l.trim().parse().ok()).is_some_and(alive) {
        return;
    }
    let Some(id) =
        pid_file.lines().nth(6).and_then(|line| line.split_whitespace().nth(1)).and_then(|id| id.parse::<u64>().ok())
    else {
        return;
    };
    let _ = Command::new("ipcrm")
        .args(["-m", &id.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_zombie_or_missing_process_is_not_alive() {
        assert!(alive(std::process::id()));
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!alive(pid));
    }

    #[test]
    fn without_postgres_the_error_says_how_to_install_it() {
        let empty = std::env::temp_dir().join(format!("flowcat-testpg-none-{}", std::process::id()));
        fs::create_dir_all(&empty).unwrap();
        let found = find_binaries_in(Some(empty.clone().into_os_string()), &empty);
        fs::remove_dir_all(&empty).unwrap();
        let message = found.unwrap_err().to_string();
        assert!(message.contains("apt-get install postgresql"), "{message}");
    }

    #[test]
    fn the_highest_version_folder_is_chosen() {
        let root = std::env::temp_dir().join(format!("flowcat-testpg-versions-{}", std::process::id()));
        for version in ["9.6", "15", "13", "notaversion"] {
            let bin = root.join(version).join("bin");
            fs::create_dir_all(&bin).unwrap();
            fs::write(bin.join("initdb"), "").unwrap();
            fs::write(bin.join("postgres"), "").unwrap();
        }
        // A version folder without the server does not count.
        fs::create_dir_all(root.join("16/bin")).unwrap();
        fs::write(root.join("16/bin/initdb"), "").unwrap();
        let found = find_binaries_in(None, &root);
        fs::remove_dir_all(&root).unwrap();
        assert_eq!(found.unwrap(), root.join("15/bin"));
    }

    #[test]
    fn the_log_tail_keeps_the_last_lines() {
        let dir = std::env::temp_dir().join(format!("flowcat-testpg-unit-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let log = dir.join("server.log");
        let mut file = fs::File::create(&log).unwrap();
        for i in 0..100 {
            writeln!(file, "line {i}").unwrap();
        }
        let note = log_tail_note(&log);
        fs::remove_dir_all(&dir).unwrap();
        assert!(note.contains("line 99") && note.contains("line 70"), "{note}");
        assert!(!note.contains("line 69\n"), "{note}");
    }
}
