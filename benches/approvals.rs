//! Memory and threads per pending push approval (issue 6: goal ≤ 1 KB per pending login,
//! no thread per pending login).
//!
//! Registers N pending approvals (default 100,000; `PORTVAKT_BENCH_N` overrides), each with
//! a task parked in `Approvals::wait`, as the RADIUS side holds a login during a push. Reports
//! the resident-set growth per pending login — table alone, and table plus parked task — the
//! thread count, and how long answering all of them takes. Linux only (`/proc/self/status`).
//!
//! Run: `cargo bench --bench approvals`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use portvakt::approval::{
    Action, ApprovalPolicy, ApprovalSettings, Approvals, Begin, LoginKey, Resolved, Status,
};

fn status_field(name: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn rss_bytes() -> u64 {
    status_field("VmRSS:") * 1024
}

fn main() {
    let n: usize = std::env::var("PORTVAKT_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(n));
}

async fn run(n: usize) {
    let policy = ApprovalPolicy {
        max_pending: n,
        number_matching: true,
        ..ApprovalPolicy::default()
    };
    let settings = ApprovalSettings {
        listen: "127.0.0.1:0".parse().unwrap(),
        public_url: "https://mfa.kommune.no".into(),
        policy: policy.clone(),
    };
    let approvals = Arc::new(Approvals::new(policy));
    let threads_before = status_field("Threads:");
    let rss_before = rss_bytes();

    let began = Instant::now();
    let mut pending = Vec::with_capacity(n);
    let mut answers = Vec::with_capacity(n);
    for i in 0..n {
        // Realistic keys: a user name, a NAS name and a Calling-Station-Id.
        let login = LoginKey {
            user: format!("user{i:06}@kommune.no"),
            nas: "192.0.2.10".parse().unwrap(),
            station: Some(format!("203.0.{}.{}", (i / 250) % 250, i % 250).into_bytes()),
        };
        let Ok(Begin::New(started)) = approvals.begin(login) else {
            panic!("begin {i} refused")
        };
        let links = settings.links(&started);
        let (number, url) = links
            .approve
            .iter()
            .find(|(n, _)| *n == started.number)
            .cloned()
            .unwrap();
        let token = url.split('/').nth_back(1).unwrap().to_owned();
        pending.push(started.id);
        answers.push((token, number));
    }
    let registered = began.elapsed();
    // The tokens are the test's (the phones'), not the server's: don't count them.
    let answers_bytes: u64 = answers.iter().map(|(t, _)| t.capacity() as u64 + 32).sum();
    let rss_table = rss_bytes()
        .saturating_sub(rss_before)
        .saturating_sub(answers_bytes);

    let wait_future =
        std::mem::size_of_val(&approvals.wait(pending[0], tokio::time::Instant::now()));
    let parked = Arc::new(AtomicUsize::new(0));
    // Plain spawned tasks, as the daemon's request tasks are (a JoinSet would add its own
    // bookkeeping per task).
    let mut waiters = Vec::with_capacity(n);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(50);
    for id in pending.drain(..) {
        let (approvals, parked) = (approvals.clone(), parked.clone());
        waiters.push(tokio::spawn(async move {
            parked.fetch_add(1, Ordering::Relaxed);
            approvals.wait(id, deadline).await
        }));
    }
    for _ in 0..10_000 {
        if parked.load(Ordering::Relaxed) == n {
            break;
        }
        tokio::task::yield_now().await;
    }
    tokio::task::yield_now().await;
    let handles_bytes = (n * std::mem::size_of::<tokio::task::JoinHandle<Status>>()) as u64;
    let rss_all = rss_bytes()
        .saturating_sub(rss_before)
        .saturating_sub(answers_bytes + handles_bytes);
    let threads = status_field("Threads:");

    let answering = Instant::now();
    for (token, number) in &answers {
        let resolved = approvals.resolve(token, Action::Approve { number: *number });
        assert!(matches!(resolved, Resolved::Approved(_)));
    }
    let mut approved = 0usize;
    for waiter in waiters {
        approved += usize::from(waiter.await.unwrap() == Status::Approved);
    }
    let answered = answering.elapsed();
    assert_eq!(approved, n);

    let per = |bytes: u64| bytes as f64 / n as f64;
    println!("pending approvals:            {n}");
    println!("registered in:                {registered:?}");
    println!("RSS per pending (table):      {:.0} bytes", per(rss_table));
    println!("RSS per pending (with task):  {:.0} bytes", per(rss_all));
    println!("size of the wait future:      {wait_future} bytes");
    println!("threads before / while held:  {threads_before} / {threads}");
    println!("approve all + wake waiters:   {answered:?}");
}
