//! Closed-loop load generator: `concurrency` tasks each run one operation after another
//! for a warm-up and then a fixed measurement window. Every loop is bounded in time: no
//! operation starts after the window ends, and each one is cut off after [`OP_TIMEOUT`].

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest a single operation may take before it counts as an error.
pub const OP_TIMEOUT: Duration = Duration::from_secs(10);

/// What one side of a comparison achieved in its measurement window(s).
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Operations that succeeded and completed inside the window.
    pub ok: u64,
    /// Operations that failed (during warm-up or the window).
    pub errors: u64,
    /// Total length of the measurement window(s).
    pub window_secs: f64,
    /// The first error seen, for diagnosis.
    pub first_error: Option<String>,
    /// Latencies of the counted operations, microseconds, sorted.
    latencies_us: Vec<u64>,
}

impl Outcome {
    /// Successful operations per second of the window.
    pub fn per_sec(&self) -> f64 {
        if self.window_secs > 0.0 {
            self.ok as f64 / self.window_secs
        } else {
            0.0
        }
    }

    /// Median latency of the successful operations, microseconds.
    pub fn p50_us(&self) -> u64 {
        percentile(&self.latencies_us, 0.50)
    }

    /// 99th percentile latency, microseconds.
    pub fn p99_us(&self) -> u64 {
        percentile(&self.latencies_us, 0.99)
    }

    /// Adds another window of the same side.
    fn merge(&mut self, other: Outcome) {
        self.ok += other.ok;
        self.errors += other.errors;
        self.window_secs += other.window_secs;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.latencies_us.extend(other.latencies_us);
        self.latencies_us.sort_unstable();
    }

    /// JSON form for `target/bench/<name>.json`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "per_sec": round2(self.per_sec()),
            "ok": self.ok,
            "errors": self.errors,
            "window_secs": self.window_secs,
            "p50_ms": round2(self.p50_us() as f64 / 1000.0),
            "p99_ms": round2(self.p99_us() as f64 / 1000.0),
            "first_error": self.first_error,
        })
    }
}

/// Rounds to two decimals (keeps the JSON readable).
pub fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

#[derive(Default)]
struct TaskTally {
    ok: u64,
    errors: u64,
    latencies_us: Vec<u64>,
    first_error: Option<String>,
}

/// Nearest-rank percentile of sorted values (0 when empty).
pub(crate) fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Runs `op(worker_index)` in `concurrency` closed loops: a warm-up whose successes are
/// not counted, then the measurement window. An operation counts when it completes
/// inside the window.
pub async fn run<F, Fut>(
    concurrency: usize,
    warmup: Duration,
    window: Duration,
    op: Arc<F>,
) -> anyhow::Result<Outcome>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let start = Instant::now() + warmup;
    let end = start + window;
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..concurrency {
        let op = op.clone();
        tasks.spawn(async move {
            let mut t = TaskTally::default();
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                let r = tokio::time::timeout(OP_TIMEOUT, op(worker))
                    .await
                    .unwrap_or_else(|_| Err(format!("timed out after {OP_TIMEOUT:?}")));
                let t1 = Instant::now();
                match r {
                    Ok(()) if t1 >= start && t1 < end => {
                        t.ok += 1;
                        t.latencies_us
                            .push(u64::try_from((t1 - t0).as_micros()).unwrap_or(u64::MAX));
                    }
                    Ok(()) => {}
                    Err(e) => {
                        t.errors += 1;
                        t.first_error.get_or_insert(e);
                    }
                }
            }
            t
        });
    }
    let mut all = TaskTally::default();
    while let Some(joined) = tasks.join_next().await {
        let t = joined.map_err(|e| anyhow::anyhow!("load task failed: {e}"))?;
        all.ok += t.ok;
        all.errors += t.errors;
        all.latencies_us.extend(t.latencies_us);
        if all.first_error.is_none() {
            all.first_error = t.first_error;
        }
    }
    all.latencies_us.sort_unstable();
    Ok(Outcome {
        ok: all.ok,
        errors: all.errors,
        window_secs: window.as_secs_f64(),
        first_error: all.first_error,
        latencies_us: all.latencies_us,
    })
}

/// How two sides are measured against each other.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Client tasks, the same for both sides.
    pub concurrency: usize,
    /// Warm-up before a side's first slice.
    pub warmup: Duration,
    /// Warm-up before its later slices (connections are already up).
    pub rewarm: Duration,
    /// Total measurement window of each side.
    pub window: Duration,
    /// Slices each side's window is split into.
    pub rounds: u32,
}

/// Measures `subject` and `reference` with the same plan, in alternating slices
/// (S R, R S, S R, …) so that drifting background load on a shared machine falls on
/// both sides alike.
pub async fn alternate<S, FS, R, FR>(
    plan: Plan,
    subject: S,
    reference: R,
) -> anyhow::Result<(Outcome, Outcome)>
where
    S: Fn(usize) -> FS + Send + Sync + 'static,
    FS: Future<Output = Result<(), String>> + Send + 'static,
    R: Fn(usize) -> FR + Send + Sync + 'static,
    FR: Future<Output = Result<(), String>> + Send + 'static,
{
    let (subject, reference) = (Arc::new(subject), Arc::new(reference));
    let rounds = plan.rounds.max(1);
    let slice = plan.window / rounds;
    let (mut s_out, mut r_out) = (Outcome::default(), Outcome::default());
    for round in 0..rounds {
        let warm = if round == 0 { plan.warmup } else { plan.rewarm };
        if round % 2 == 0 {
            s_out.merge(run(plan.concurrency, warm, slice, subject.clone()).await?);
            r_out.merge(run(plan.concurrency, warm, slice, reference.clone()).await?);
        } else {
            r_out.merge(run(plan.concurrency, warm, slice, reference.clone()).await?);
            s_out.merge(run(plan.concurrency, warm, slice, subject.clone()).await?);
        }
    }
    Ok((s_out, r_out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), 50);
        assert_eq!(percentile(&v, 0.99), 99);
        assert_eq!(percentile(&[7], 0.99), 7);
        assert_eq!(percentile(&[], 0.5), 0);
    }

    #[tokio::test]
    async fn counts_only_the_window_and_stops() {
        let began = Instant::now();
        let out = run(
            2,
            Duration::from_millis(50),
            Duration::from_millis(200),
            Arc::new(|_| async {
                tokio::time::sleep(Duration::from_millis(10)).await;
                Ok(())
            }),
        )
        .await
        .expect("load runs");
        assert!(began.elapsed() < Duration::from_secs(2));
        assert!(out.ok > 0 && out.ok <= 2 * 200 / 10 + 2, "{out:?}");
        assert_eq!(out.errors, 0);
        assert!(out.p50_us() >= 10_000);
    }

    #[tokio::test]
    async fn alternate_adds_up_the_slices() {
        let plan = Plan {
            concurrency: 1,
            warmup: Duration::from_millis(20),
            rewarm: Duration::ZERO,
            window: Duration::from_millis(300),
            rounds: 3,
        };
        let (s, r) = alternate(
            plan,
            |_| async {
                tokio::time::sleep(Duration::from_millis(5)).await;
                Ok(())
            },
            |_| async { Err("refused".to_owned()) },
        )
        .await
        .expect("runs");
        assert!((s.window_secs - 0.3).abs() < 1e-6, "{s:?}");
        assert!(s.ok > 0 && s.errors == 0);
        assert_eq!(r.ok, 0);
        assert!(r.errors > 0);
        assert_eq!(r.first_error.as_deref(), Some("refused"));
    }
}
