//! The harness against the machine's real Postgres: servers start, databases are isolated, a
//! private server is gone after a stop, a kill or a drop, and a server never outlives its test
//! process.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use flowcat_testpg::Cluster;

/// A client for `url`. Plain tests (no runtime), so the sync client may run here.
fn client(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).unwrap_or_else(|e| panic!("connect {url}: {e}"))
}

/// Whether `pid` runs (zombies do not).
fn alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next());
        !matches!(state, Some('Z' | 'X'))
    })
}

fn wait_until_gone(pid: u32, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while alive(pid) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

#[test]
fn two_databases_are_distinct_and_usable() {
    let cluster = Cluster::shared();
    let (a, b) = (cluster.database(), cluster.database());
    assert_ne!(a, b);
    let prefix = format!("postgres://flowcat@127.0.0.1:{}/", cluster.port());
    assert!(a.starts_with(&prefix) && b.starts_with(&prefix), "{a} {b}");

    let mut in_a = client(&a);
    let name: String = in_a.query_one("SELECT current_database()", &[]).unwrap().get(0);
    assert_eq!(a, cluster.url(&name));
    in_a.batch_execute("CREATE TABLE runs (id text PRIMARY KEY); INSERT INTO runs VALUES ('r1')").unwrap();
    let count: i64 = in_a.query_one("SELECT count(*) FROM runs", &[]).unwrap().get(0);
    assert_eq!(count, 1);

    // B does not see A's table, and has its own of the same name.
    let mut in_b = client(&b);
    let missing = in_b.query("SELECT * FROM runs", &[]).unwrap_err();
    assert_eq!(missing.code(), Some(&postgres::error::SqlState::UNDEFINED_TABLE), "{missing}");
    in_b.batch_execute("CREATE TABLE runs (id text PRIMARY KEY)").unwrap();
    let count: i64 = in_b.query_one("SELECT count(*) FROM runs", &[]).unwrap().get(0);
    assert_eq!(count, 0);
}

#[test]
fn the_shared_cluster_is_one_server() {
    assert!(std::ptr::eq(Cluster::shared(), Cluster::shared()));
    let threads: Vec<_> = (0..4).map(|_| std::thread::spawn(|| Cluster::shared().server_pid())).collect();
    let pids: Vec<u32> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(pids.iter().all(|&pid| pid == pids[0]), "{pids:?}");
    assert!(alive(pids[0]));
}

#[test]
fn databases_are_created_concurrently() {
    let threads: Vec<_> =
        (0..8).map(|_| std::thread::spawn(|| [Cluster::shared().database(), Cluster::shared().database()])).collect();
    let mut urls: Vec<String> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    for url in &urls {
        let one: i32 = client(url).query_one("SELECT 1", &[]).unwrap().get(0);
        assert_eq!(one, 1);
    }
    urls.sort();
    urls.dedup();
    assert_eq!(urls.len(), 16);
}

/// The sync client panics on a runtime's thread; the harness must not, as the store's tests are
/// async.
#[test]
fn a_database_can_be_asked_for_inside_a_tokio_runtime() {
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let url = runtime.block_on(async { Cluster::shared().database() });
    let private = runtime.block_on(async { Cluster::start() }).unwrap();
    let private_url = runtime.block_on(async { private.database() });
    drop(runtime);
    for url in [url, private_url] {
        let one: i32 = client(&url).query_one("SELECT 1", &[]).unwrap().get(0);
        assert_eq!(one, 1);
    }
}

#[test]
fn a_private_cluster_is_gone_after_drop() {
    let cluster = Cluster::start().unwrap();
    let (pid, dir) = (cluster.server_pid(), cluster.dir().to_path_buf());
    assert_ne!(cluster.port(), Cluster::shared().port());
    let url = cluster.database();
    client(&url).batch_execute("CREATE TABLE t (x int); INSERT INTO t VALUES (1)").unwrap();
    // A client still connected: the fast shutdown disconnects it rather than waiting.
    let mut connected = client(&url);
    assert!(alive(pid) && dir.join("data/postmaster.pid").is_file());
    drop(cluster);
    assert!(!alive(pid), "the server (pid {pid}) outlived its cluster");
    assert!(!dir.exists(), "{} was not removed", dir.display());
    assert!(connected.query_one("SELECT 1", &[]).is_err());
}

#[test]
fn a_stopped_or_killed_server_refuses_and_stays_down() {
    let stopped = Cluster::start().unwrap();
    stopped.stop().unwrap();
    assert!(!alive(stopped.server_pid()));
    assert!(stopped.log().contains("database system is shut down"), "{}", stopped.log());
    stopped.stop().unwrap(); // again: nothing to do

    let killed = Cluster::start().unwrap();
    let url = killed.database();
    let mut connected = client(&url);
    killed.kill();
    assert!(!alive(killed.server_pid()));
    assert!(connected.query_one("SELECT 1", &[]).is_err());
    let refused = killed.try_database().unwrap_err().to_string();
    assert!(refused.contains("CREATE DATABASE"), "{refused}");
    // The server's log is quoted in the error.
    assert!(refused.contains("server.log"), "{refused}");
}

#[test]
#[should_panic(expected = "cannot be stopped")]
fn the_shared_cluster_cannot_be_stopped() {
    Cluster::shared().kill();
}

const CHILD: &str = "FLOWCAT_TESTPG_CHILD";

/// Run by `a_server_dies_with_its_test_process` in a child process. `shared`: starts the shared
/// server, says its pid and folder, and exits without any cleanup. `sweep`: starts a private
/// cluster (which sweeps the stale folders beside it) and drops it.
#[test]
fn child_process_helper() {
    match std::env::var(CHILD).as_deref() {
        Ok("shared") => {
            let cluster = Cluster::shared();
            println!("SERVER {} {}", cluster.server_pid(), cluster.dir().display());
            std::process::exit(0);
        }
        Ok("sweep") => {
            drop(Cluster::start().unwrap());
            println!("SWEPT");
        }
        _ => {}
    }
}

/// This test binary run as `child_process_helper` in `mode`, with `temp` as its temporary folder.
fn child(mode: &str, temp: &Path) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_process_helper", "--nocapture", "--test-threads=1"])
        .env(CHILD, mode)
        .env("TMPDIR", temp)
        .output()
        .unwrap();
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn a_server_dies_with_its_test_process() {
    // The children's clusters live in a folder of their own: the other tests of this binary start
    // clusters too, and each start sweeps the stale folders beside it, the child's among them.
    let temp = std::env::temp_dir().join(format!("flowcat-testpg-children-{}", std::process::id()));
    // Left behind by an earlier process of the same pid whose test failed: its stale clusters
    // are swept by the second child too.
    fs::create_dir_all(&temp).unwrap();
    let said = child("shared", &temp);
    let line = said
        .lines()
        .find_map(|l| l.split_once("SERVER ").map(|(_, rest)| rest))
        .unwrap_or_else(|| panic!("no server line: {said}"));
    let (pid, dir) = line.split_once(' ').unwrap();
    let (pid, dir): (u32, PathBuf) = (pid.parse().unwrap(), dir.into());
    assert!(dir.starts_with(&temp), "{} is not in {}", dir.display(), temp.display());
    assert!(wait_until_gone(pid, Duration::from_secs(10)), "the server (pid {pid}) outlived its test process");
    // Its folder stays behind, and the next start of a cluster sweeps it.
    assert!(dir.join("data/postmaster.pid").is_file());
    let said = child("sweep", &temp);
    assert!(said.contains("SWEPT"), "{said}");
    assert!(!dir.exists(), "{} was not swept", dir.display());
    fs::remove_dir(&temp).unwrap_or_else(|e| panic!("{} is not empty ({e}): {said}", temp.display()));
}

/// A folder whose owner is dead is swept; one whose owner runs is kept.
#[test]
fn stale_folders_are_swept_and_live_ones_kept() {
    let temp = std::env::temp_dir();
    let mut reaped = Command::new("true").spawn().unwrap();
    let dead_pid = reaped.id();
    reaped.wait().unwrap();
    let make = |name: &str, owner: u32| -> PathBuf {
        let dir = temp.join(format!("flowcat-pg-sweeptest-{name}-{}", std::process::id()));
        fs::create_dir_all(dir.join("data")).unwrap();
        fs::write(dir.join("owner"), format!("{owner}\n")).unwrap();
        dir
    };
    let dead = make("dead", dead_pid);
    let live = make("live", std::process::id());
    // A server pid file naming a dead server, and an owner that runs: kept (the owner may still
    // read the log of a server it killed).
    let killed = make("killed", std::process::id());
    fs::write(killed.join("data/postmaster.pid"), format!("{dead_pid}\n")).unwrap();
    drop(Cluster::start().unwrap());
    let kept = |dir: &Path| dir.exists();
    assert!(!kept(&dead), "{} was not swept", dead.display());
    assert!(kept(&live) && kept(&killed));
    fs::remove_dir_all(&live).unwrap();
    fs::remove_dir_all(&killed).unwrap();
}
