//! Signing cost: median nanoseconds per `Signer::sign` for v2 and v5, plain `Instant` timing.
//!
//! `cargo bench -p flowcat-nodes --bench sign`. No harness: the number we care about is "a few
//! microseconds", not a statistically tight one, and this keeps criterion's build out of CI.

use std::hint::black_box;
use std::time::Instant;

use flowcat_nodes::duo::{Digest, Secret, SigVersion, Signer};

const SAMPLES: usize = 101;
const ITERATIONS: u32 = 2_000;
const DATE: &str = "Tue, 21 Aug 2012 17:29:18 -0000";
const HOST: &str = "api-xxxxxxxx.duosecurity.com";

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// Median over `SAMPLES` of the mean time per call within a sample of `ITERATIONS` calls.
fn median_ns(mut call: impl FnMut()) -> f64 {
    for _ in 0..ITERATIONS {
        call(); // warm-up
    }
    let mut samples: Vec<f64> = (0..SAMPLES)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..ITERATIONS {
                call();
            }
            start.elapsed().as_nanos() as f64 / f64::from(ITERATIONS)
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[SAMPLES / 2]
}

fn main() {
    let skey = "Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep";
    let get_params = pairs(&[("username", "jsmith")]);
    let post_params = pairs(&[("username", "jsmith"), ("factor", "push"), ("device", "auto"), ("async", "1")]);
    let cases = [
        ("v2 sha1", SigVersion::V2 { digest: Digest::Sha1 }),
        ("v2 sha512", SigVersion::V2 { digest: Digest::Sha512 }),
        ("v5", SigVersion::V5),
    ];
    for (name, version) in cases {
        let signer = match Signer::new("DIWJ8X6AEYOR5OMC6TQ1", Secret::new(skey), version) {
            Ok(signer) => signer,
            Err(err) => {
                eprintln!("cannot build the signer: {err}");
                std::process::exit(1);
            }
        };
        for (method, path, params) in [("GET", "/admin/v1/users", &get_params), ("POST", "/auth/v2/auth", &post_params)]
        {
            let ns = median_ns(|| {
                let signed = signer.sign(
                    black_box(method),
                    black_box(HOST),
                    black_box(path),
                    black_box(params),
                    black_box(DATE),
                    &[],
                );
                black_box(signed.is_ok());
            });
            println!("{name:>9} {method:<4} {path:<16} median {ns:>7.0} ns per sign");
        }
    }
}
