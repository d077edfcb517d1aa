//! Signed-request throughput of the simulator on loopback: `cargo bench -p flowcat-sim`.
//!
//! Starts the demo simulator on 127.0.0.1:0 and, at concurrency 16 and 64, sends signed
//! `GET /admin/v1/users?username=alice` over keep-alive connections for a bounded time. Each
//! request is signed once per worker and re-sent (its date stays inside the skew window), so
//! the client spends its share of the two cores on HTTP, while the server still verifies every
//! request in full.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const RUN_FOR: Duration = Duration::from_secs(4);

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let sim = common::start().await;
        for concurrency in [16, 64] {
            let (ok, failed, elapsed) = run(sim.addr(), concurrency).await;
            let rate = ok as f64 / elapsed.as_secs_f64();
            println!("concurrency {concurrency:>3}: {ok} ok, {failed} failed in {elapsed:.2?}: {rate:.0} req/s");
        }
        sim.shutdown().await;
    });
}

async fn run(addr: std::net::SocketAddr, concurrency: usize) -> (u64, u64, Duration) {
    let client = reqwest::Client::builder().no_proxy().pool_max_idle_per_host(concurrency).build().expect("client");
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (client, ok, failed) = (client.clone(), Arc::clone(&ok), Arc::clone(&failed));
        workers.push(tokio::spawn(async move {
            let date = common::now_date();
            let params = vec![("username".to_string(), "alice".to_string())];
            let canon = common::canonical(
                &date,
                "GET",
                "127.0.0.1",
                "/admin/v1/users",
                &common::params_line(&params),
                Some(b""),
                &[],
            );
            let auth = common::authorization(common::ADMIN_IKEY, common::ADMIN_SKEY, &canon, common::Sig::V5);
            let url = format!("http://{addr}/admin/v1/users?username=alice");
            while started.elapsed() < RUN_FOR {
                let sent = client.get(&url).header("Date", &date).header("Authorization", &auth).send().await;
                let good = match sent {
                    Ok(resp) => resp.status().is_success() && resp.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if good { &ok } else { &failed }.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for worker in workers {
        let _ = worker.await;
    }
    (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed), started.elapsed())
}
