//! Signed-request throughput of the simulator on loopback: `cargo bench -p flowcat-sim`.
//!
//! Three lookups (a user by username, a phone by number, a user by id) against two simulators in
//! the same run: the demo seed (9 users, 8 phones) and one holding 100,000 users and 100,000
//! phones, so the ratio shows whether lookups stay flat as the state grows. Each lookup is sent
//! at concurrency 64 over keep-alive connections for a bounded time; each worker signs its
//! request once and re-sends it (the date stays inside the skew window), so the client spends
//! its share of the two cores on HTTP while the server still verifies every request in full.

#[path = "../tests/common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use flowcat_sim::model::User;
use flowcat_sim::seed::{PhoneSeed, UserSeed};
use flowcat_sim::{Options, Seed, Sim, State};

const RUN_FOR: Duration = Duration::from_secs(3);
const CONCURRENCY: usize = 64;
const BIG: usize = 100_000;

/// One kind of lookup, as the path and query each worker sends.
#[derive(Debug, Clone, Copy)]
enum Lookup {
    Username,
    Number,
    UserId,
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let small = common::start().await;
        let built = Instant::now();
        let big = Sim::start_seed("127.0.0.1:0".parse().expect("addr"), &big_seed(), Options::default())
            .await
            .expect("start");
        println!("seeded {BIG} users and {BIG} phones in {:.2?}", built.elapsed());
        println!("| lookup | demo seed req/s | 100k seed req/s | ratio |");
        println!("|---|---:|---:|---:|");
        for lookup in [Lookup::Username, Lookup::Number, Lookup::UserId] {
            let (small_rate, small_failed) = rate(&small, lookup).await;
            let (big_rate, big_failed) = rate(&big, lookup).await;
            assert_eq!((small_failed, big_failed), (0, 0), "{lookup:?}: every request succeeds");
            let ratio = big_rate / small_rate * 100.0;
            println!("| {lookup:?} | {small_rate:.0} | {big_rate:.0} | {ratio:.0} % |");
        }
        small.shutdown().await;
        big.shutdown().await;
    });
}

/// A seed with `BIG` users, each with its own activated phone.
fn big_seed() -> Seed {
    let mut seed = Seed::demo();
    seed.users.clear();
    seed.phones.clear();
    for i in 0..BIG {
        let number = format!("+1555{i:07}");
        seed.phones.push(PhoneSeed {
            number: number.clone(),
            name: String::new(),
            kind: flowcat_sim::model::PhoneType::Mobile,
            platform: "google android".into(),
            activated: true,
        });
        seed.users.push(UserSeed {
            username: format!("user{i}"),
            email: format!("user{i}@example.com"),
            realname: String::new(),
            status: flowcat_sim::model::UserStatus::Active,
            phones: vec![number],
            push: flowcat_sim::model::PushBehaviour::Approve,
            push_delay_ms: 5_000,
        });
    }
    seed
}

/// The request worker `n` sends: a different user (with a phone) per worker, spread over the state.
fn request(state: &State, lookup: Lookup, n: usize) -> (String, Vec<(String, String)>) {
    let with_phones: Vec<&User> = state.users.iter().filter(|u| !u.phones.is_empty()).collect();
    let user = with_phones[n * 997 % with_phones.len()];
    match lookup {
        Lookup::Username => ("/admin/v1/users".into(), vec![("username".into(), user.username.clone())]),
        Lookup::Number => {
            let phone = state.phone(&user.phones[0]).expect("phone");
            ("/admin/v1/phones".into(), vec![("number".into(), phone.number.clone())])
        }
        Lookup::UserId => (format!("/admin/v1/users/{}", user.user_id), Vec::new()),
    }
}

/// Requests per second for one lookup, and how many failed.
async fn rate(sim: &Sim, lookup: Lookup) -> (f64, u64) {
    let state = sim.state();
    let requests: Vec<_> = (0..CONCURRENCY).map(|n| request(&state, lookup, n)).collect();
    let (ok, failed, elapsed) = run(sim.addr(), requests).await;
    (ok as f64 / elapsed.as_secs_f64(), failed)
}

async fn run(addr: SocketAddr, requests: Vec<(String, Vec<(String, String)>)>) -> (u64, u64, Duration) {
    // The workspace's reqwest has no crypto provider of its own (see flowcat-nodes): install ring's.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder().no_proxy().pool_max_idle_per_host(requests.len()).build().expect("client");
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for (path, params) in requests {
        let (client, ok, failed) = (client.clone(), Arc::clone(&ok), Arc::clone(&failed));
        workers.push(tokio::spawn(async move {
            let date = common::now_date();
            let line = common::params_line(&params);
            let canon = common::canonical(&date, "GET", "127.0.0.1", &path, &line, Some(b""), &[]);
            let auth = common::authorization(common::ADMIN_IKEY, common::ADMIN_SKEY, &canon, common::Sig::V5);
            let query = common::form_encode(&params);
            let url =
                if query.is_empty() { format!("http://{addr}{path}") } else { format!("http://{addr}{path}?{query}") };
            while started.elapsed() < RUN_FOR {
                let sent = client.get(&url).header("Date", &date).header("Authorization", &auth).send().await;
                let good = match sent {
                    Ok(resp) => resp.status().is_success() && resp.bytes().await.is_ok_and(|b| b.len() > 40),
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
