//! This process as a replica: its name in `replicas`, and the lease it renews there.
//!
//! A run is held by the replica its row names (`runs.holder`) while that replica's lease has not
//! passed on the database's clock. A replica renews its lease every `lease / 10` on a connection
//! of its own (a busy pool never starves it). When it dies (kill -9, a lost machine) its lease
//! passes and any replica takes its runs over ([`crate::PgStore`]'s `wakeable` lists them).
//!
//! A replica that cannot renew in time fences itself: once `lease / 4` has passed since the
//! start of its last successful renewal (two renewals and a half missed) it refuses every
//! awaited entry (`lease_lost`), so it sends no write while another replica may be taking its
//! runs, which it can do only once the whole lease has passed. A write sent just before the
//! fence thus has three quarters of the lease to reach Duo before a new holder's reconcile read
//! looks for it: with the default 45 s lease, 33 s, more than a call's default 30 s timeout. Every write's transaction also checks that the run's row still names
//! this handle's claim, so a run taken over is never written by its former holder.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant};

use flowcat_engine::journal::JournalError;

use crate::pool::Conn;
use crate::schema::NOW_MS;

/// The lease, shared by the store and its heartbeat thread.
#[derive(Debug)]
pub(crate) struct Lease {
    pub name: String,
    pub length: Duration,
    /// When the last successful renewal was sent.
    renewed: Mutex<Instant>,
    /// Replicas whose lease had not passed at the last renewal (this one included).
    live: AtomicUsize,
}

impl Lease {
    /// Registers a fresh replica name with its first lease.
    pub(crate) fn register(conn: &mut Conn, length: Duration) -> Result<Arc<Lease>, JournalError> {
        let name = replica_name();
        let sent = Instant::now();
        let ms = length.as_millis() as i64;
        let live = conn.with(|c| {
            c.execute(
                &format!("INSERT INTO replicas (name, started_at, lease_until) VALUES ($1, {NOW_MS}, {NOW_MS} + $2)"),
                &[&name, &ms],
            )?;
            let n: i64 =
                c.query_one(&format!("SELECT count(*) FROM replicas WHERE lease_until > {NOW_MS}"), &[])?.get(0);
            Ok(n)
        })?;
        Ok(Arc::new(Lease { name, length, renewed: Mutex::new(sent), live: AtomicUsize::new(live.max(1) as usize) }))
    }

    /// Whether this replica may still write: its last renewal is recent enough that no other
    /// replica can have taken its runs.
    pub(crate) fn fresh(&self) -> bool {
        self.renewed.lock().unwrap_or_else(PoisonError::into_inner).elapsed() < self.length / 4
    }

    /// The replicas sharing the store now (at least 1).
    pub(crate) fn live(&self) -> usize {
        self.live.load(Ordering::Relaxed).max(1)
    }

    /// One renewal; answers whether it was renewed.
    fn renew(&self, conn: &mut Conn) -> Result<(), JournalError> {
        let sent = Instant::now();
        let ms = self.length.as_millis() as i64;
        let live = conn.with(|c| {
            // Re-registered if the row is gone (a person deleted it, or a long pause let a
            // cleanup take it): the name is this process's for its whole life.
            c.execute(
                &format!(
                    "INSERT INTO replicas (name, started_at, lease_until) VALUES ($1, {NOW_MS}, {NOW_MS} + $2)
                     ON CONFLICT (name) DO UPDATE SET lease_until = excluded.lease_until"
                ),
                &[&self.name, &ms],
            )?;
            // Replicas gone for a day are forgotten (their runs read as held by nobody already).
            c.execute(&format!("DELETE FROM replicas WHERE lease_until < {NOW_MS} - 86400000"), &[])?;
            let n: i64 =
                c.query_one(&format!("SELECT count(*) FROM replicas WHERE lease_until > {NOW_MS}"), &[])?.get(0);
            Ok(n)
        })?;
        *self.renewed.lock().unwrap_or_else(PoisonError::into_inner) = sent;
        self.live.store(live.max(1) as usize, Ordering::Relaxed);
        Ok(())
    }

    /// The end of this replica: its row goes, and so does its hold on the runs it still names
    /// (they read as interrupted at once, for another replica to take).
    fn retire(&self, conn: &mut Conn) {
        let _ = conn.with(|c| {
            c.execute("UPDATE runs SET holder = NULL WHERE holder = $1 AND status = 'running'", &[&self.name])?;
            c.execute("DELETE FROM replicas WHERE name = $1", &[&self.name])
        });
    }
}

/// The thread that renews the lease until the store closes, then retires the replica.
pub(crate) fn heartbeat(lease: Arc<Lease>, mut conn: Conn, stop: mpsc::Receiver<()>) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("flowcat-pg-lease".to_owned())
        .spawn(move || {
            let every = lease.length / 10;
            while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(every) {
                // A failed renewal is tried again at the next beat; meanwhile `fresh` turns
                // false in time and the runs stop writing.
                let _ = lease.renew(&mut conn);
            }
            lease.retire(&mut conn);
        })
        .expect("a thread for the lease")
}

/// `host-pid-random`: unique among the replicas, readable in `runs list` and the database.
fn replica_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty() && h.len() <= 64)
        .unwrap_or_else(|| "host".to_owned());
    format!("{host}-{}-{:06x}", std::process::id(), fastrand::u32(..0x100_0000))
}
