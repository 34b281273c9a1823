//! The replay guard under concurrency: TOTP steps accepted per second when many logins
//! record their step at once (each must be on disk, `synchronous = FULL`, before its
//! Accept). Run with `cargo bench --bench steps`.

use std::sync::Arc;
use std::time::Instant;

use portvakt::factor::totp::{Algorithm, TotpSecret};
use portvakt::store::{Store, StoreKey};

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key_path = dir.path().join("key");
    StoreKey::generate()
        .unwrap()
        .write_new_file(&key_path)
        .unwrap();
    let store = Store::open(
        &dir.path().join("db"),
        &StoreKey::from_file(&key_path).unwrap(),
    )
    .unwrap();
    let users = 2_000usize;
    let secret =
        TotpSecret::from_base32("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", 6, 30, Algorithm::Sha1)
            .unwrap();
    let csv: Vec<_> = (0..users)
        .map(|i| portvakt::store::TotpImport {
            line: i + 1,
            name: format!("u{i}"),
            secret: secret.clone(),
        })
        .collect();
    store
        .import_totp(&csv, portvakt::store::ImportMode::AllOrNothing)
        .unwrap();
    for threads in [1usize, 16, 64] {
        let store = Arc::new(store.clone());
        let per_thread = users / threads;
        let started = Instant::now();
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for i in 0..per_thread {
                        let user = format!("u{}", t * per_thread + i);
                        assert!(
                            store
                                .accept_totp_step(&user, 1_000 + threads as u64)
                                .unwrap()
                        );
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let n = per_thread * threads;
        let secs = started.elapsed().as_secs_f64();
        println!(
            "{threads:>3} concurrent callers: {n} steps in {secs:.2} s = {:.0} steps/s",
            n as f64 / secs
        );
    }
}
