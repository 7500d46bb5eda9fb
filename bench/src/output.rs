//! The table on stdout and `target/bench/<name>.json`.

use crate::load::{round2, Outcome};
use std::path::PathBuf;

/// Facts about the run that every result carries.
#[derive(Clone)]
pub struct RunInfo {
    /// Smoke mode (CI): short windows, figures not meaningful.
    pub smoke: bool,
    /// `nproc`.
    pub cores: usize,
    /// Human note about the machine.
    pub machine: String,
}

impl RunInfo {
    /// Collects the machine note.
    pub fn collect(smoke: bool) -> Self {
        let cores = std::thread::available_parallelism()
            .map(std::num::NonZeroUsize::get)
            .unwrap_or(0);
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let machine = format!(
            "{cores} cores (nproc), {cpu}, {}/{}; client load, servers and references share them",
            std::env::consts::OS,
            std::env::consts::ARCH
        );
        Self {
            smoke,
            cores,
            machine,
        }
    }
}

/// One benchmark: the subject against its in-run reference.
pub struct Comparison {
    /// `B1`, `B2`.
    pub id: &'static str,
    /// What it measures, one line.
    pub title: String,
    /// Unit of the rate, e.g. `reports/s`.
    pub unit: &'static str,
    /// Parameters of the run (printed and stored).
    pub params: Vec<(&'static str, serde_json::Value)>,
    /// Label of the subject row.
    pub subject_label: &'static str,
    /// The subject.
    pub subject: Outcome,
    /// Label of the reference row.
    pub reference_label: &'static str,
    /// The reference.
    pub reference: Outcome,
    /// Minimum subject/reference ratio.
    pub min_ratio: f64,
    /// Minimum absolute rate, and the number of cores it is defined for.
    pub min_rate: Option<(f64, usize)>,
    /// Extra notes printed under the table.
    pub notes: Vec<String>,
}

impl Comparison {
    /// subject rate / reference rate.
    pub fn ratio(&self) -> f64 {
        let r = self.reference.per_sec();
        if r > 0.0 {
            self.subject.per_sec() / r
        } else {
            0.0
        }
    }

    /// Human form of the target.
    pub fn target(&self) -> String {
        let mut t = format!("≥ {:.1}× reference", self.min_ratio);
        if let Some((rate, cores)) = self.min_rate {
            t.push_str(&format!(" and ≥ {rate:.0} {} on {cores} cores", self.unit));
        }
        t
    }

    /// Why the target is missed (empty when met).
    pub fn misses(&self, run: &RunInfo) -> Vec<String> {
        let mut m = Vec::new();
        let ratio = self.ratio();
        if ratio < self.min_ratio {
            m.push(format!("ratio {ratio:.2}× < {:.1}×", self.min_ratio));
        }
        if let Some((rate, cores)) = self.min_rate {
            let got = self.subject.per_sec();
            if got < rate {
                let mut s = format!("{got:.0} {} < {rate:.0}", self.unit);
                if run.cores != cores {
                    s.push_str(&format!(
                        " (defined for {cores} cores; this machine has {})",
                        run.cores
                    ));
                }
                m.push(s);
            }
        }
        m
    }

    /// Prints the section of the table for this benchmark.
    pub fn print(&self, run: &RunInfo) {
        println!();
        println!("{} — {}", self.id, self.title);
        let params: Vec<String> = self
            .params
            .iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => format!("{k} {s}"),
                other => format!("{k} {other}"),
            })
            .collect();
        println!("  {}", params.join(", "));
        println!(
            "  {:<40} {:>12} {:>9} {:>9} {:>10} {:>7}",
            "", self.unit, "p50 ms", "p99 ms", "ok", "errors"
        );
        for (label, o) in [
            (self.subject_label, &self.subject),
            (self.reference_label, &self.reference),
        ] {
            println!(
                "  {:<40} {:>12.0} {:>9.2} {:>9.2} {:>10} {:>7}",
                label,
                o.per_sec(),
                o.p50_us() as f64 / 1000.0,
                o.p99_us() as f64 / 1000.0,
                o.ok,
                o.errors
            );
            if let Some(e) = &o.first_error {
                println!("  {:<40} first error: {e}", "");
            }
        }
        let misses = self.misses(run);
        let verdict = if misses.is_empty() {
            "MET".to_owned()
        } else {
            format!("NOT MET ({})", misses.join("; "))
        };
        println!("  ratio {:.2}×   target {}", self.ratio(), self.target());
        println!(
            "  {} {verdict}{}",
            self.id,
            if run.smoke {
                "  [smoke: not a measurement]"
            } else {
                ""
            }
        );
        if !misses.is_empty() && !run.smoke {
            println!("  target not reached: see docs/PERFORMANCE.md for the profile and why");
        }
        for n in &self.notes {
            println!("  note: {n}");
        }
    }

    /// The JSON document for `target/bench/<id>.json`.
    pub fn to_json(&self, run: &RunInfo) -> serde_json::Value {
        let misses = self.misses(run);
        let params: serde_json::Map<String, serde_json::Value> = self
            .params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        serde_json::json!({
            "id": self.id,
            "title": self.title,
            "unit": self.unit,
            "params": params,
            "subject": { "label": self.subject_label, "result": self.subject.to_json() },
            "reference": { "label": self.reference_label, "result": self.reference.to_json() },
            "ratio": round2(self.ratio()),
            "target": self.target(),
            "target_min_ratio": self.min_ratio,
            "target_min_rate": self.min_rate.map(|(r, _)| r),
            "target_cores": self.min_rate.map(|(_, c)| c),
            "met": misses.is_empty(),
            "misses": misses,
            "notes": self.notes,
            "smoke": run.smoke,
            "cores": run.cores,
            "machine": run.machine,
            "unix_time": std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        })
    }
}

/// `$CARGO_TARGET_DIR/bench`, or `<workspace root>/target/bench`.
pub fn bench_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
            root.canonicalize().unwrap_or(root).join("target")
        });
    target.join("bench")
}

/// Writes `target/bench/<name>.json`; returns its path.
pub fn write_json(name: &str, v: &serde_json::Value) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(bench_dir())?;
    let path = path(name);
    let mut text = serde_json::to_string_pretty(v)?;
    text.push('\n');
    std::fs::write(&path, text)?;
    Ok(path)
}

/// Where [`write_json`] writes `<name>.json`.
pub fn path(name: &str) -> PathBuf {
    bench_dir().join(format!("{name}.json"))
}
