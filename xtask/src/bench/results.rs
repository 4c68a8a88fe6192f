//! The block benchmark's result lines and what is computed from them. Both systems print the
//! same line, one per cell:
//!
//! ```text
//! bench-block: system=moat|linux device=virtio-blk|nvme mode=strict|pass-through
//!              workload=rand-4k|seq-128k qd=N ios=N bytes=N ns=N
//!              [overhead_ns=N] [invalidations=N] [domain=TYPE] [other=...]
//! ```
//!
//! `ns` is the guest-timed duration of the cell's `ios` requests of `bytes` in total.
//! `overhead_ns` (Linux) is the same commands timed with no read in them (process start, open,
//! seek, close): the reads took `ns - overhead_ns`. `invalidations` (Moat) is the kernel's
//! IOTLB invalidation counter (`vtd::invalidations()`) over the cell. A guest that finds a
//! problem prints `bench-block-error: ...`, which fails the run.

use std::collections::BTreeMap;

/// Which system produced a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum System {
    Moat,
    Linux,
}

/// Strict translation or the pass-through yardstick.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Mode {
    Strict,
    PassThrough,
}

impl System {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Moat => "moat",
            Self::Linux => "linux",
        }
    }
}

impl Mode {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Strict => "strict",
            Self::PassThrough => "pass-through",
        }
    }
}

/// Which measurement a line is: a device, an access pattern and a queue depth.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Cell {
    pub(crate) device: String,
    pub(crate) workload: String,
    pub(crate) queue_depth: u32,
}

/// One parsed `bench-block:` line.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Sample {
    pub(crate) system: System,
    pub(crate) mode: Mode,
    pub(crate) cell: Cell,
    pub(crate) ios: u64,
    pub(crate) bytes: u64,
    pub(crate) ns: u64,
    pub(crate) overhead_ns: Option<u64>,
    pub(crate) invalidations: Option<u64>,
    /// Every field as printed (for the JSON).
    pub(crate) fields: BTreeMap<String, String>,
    /// [`io_ns`](Self::io_ns) of every repeat this sample was chosen from (its own
    /// included), fastest first; empty for a single line.
    pub(crate) repeats: Vec<u64>,
}

impl Sample {
    /// The time the requests themselves took: `ns` less the measured overhead.
    pub(crate) fn io_ns(&self) -> u64 {
        self.ns.saturating_sub(self.overhead_ns.unwrap_or(0))
    }

    /// Requests per second over [`io_ns`](Self::io_ns) (`None` if that is 0).
    pub(crate) fn iops(&self) -> Option<f64> {
        let ns = self.io_ns();
        (ns > 0).then(|| self.ios as f64 * 1e9 / ns as f64)
    }

    /// Megabytes (10^6 bytes) per second over [`io_ns`](Self::io_ns).
    pub(crate) fn mb_per_s(&self) -> Option<f64> {
        let ns = self.io_ns();
        (ns > 0).then(|| self.bytes as f64 * 1e3 / ns as f64)
    }

    /// IOTLB invalidations per request, where counted.
    pub(crate) fn invalidations_per_io(&self) -> Option<f64> {
        Some(self.invalidations? as f64 / self.ios.max(1) as f64)
    }

    /// Slowest repeat's time over the fastest's (1.0: identical runs), with two repeats or
    /// more.
    pub(crate) fn spread(&self) -> Option<f64> {
        let (first, last) = (*self.repeats.first()?, *self.repeats.last()?);
        (self.repeats.len() > 1 && first > 0).then(|| last as f64 / first as f64)
    }
}

/// One sample per (system, mode, cell): of the repeats of each, the fastest (least
/// [`io_ns`](Sample::io_ns)), carrying every repeat's time in [`repeats`](Sample::repeats).
/// The fastest, not the median: what disturbs a run here (other work on the host's cores
/// while a guest waits, in real time, for an I/O to complete) only ever adds time, so the
/// fastest run is the closest to the cost itself; the spread says how disturbed the others
/// were. A rate is always a real run's.
pub(crate) fn fastest_of_repeats(samples: Vec<Sample>) -> Vec<Sample> {
    let mut groups: BTreeMap<(System, Mode, Cell), Vec<Sample>> = BTreeMap::new();
    for sample in samples {
        groups
            .entry((sample.system, sample.mode, sample.cell.clone()))
            .or_default()
            .push(sample);
    }
    groups
        .into_values()
        .map(|mut runs| {
            runs.sort_by_key(Sample::io_ns);
            let repeats: Vec<u64> = runs.iter().map(Sample::io_ns).collect();
            let mut fastest = runs.swap_remove(0);
            fastest.repeats = repeats;
            fastest
        })
        .collect()
}

/// Every `bench-block:` line of `serial`; any `bench-block-error:` line or malformed result
/// line is an error naming it.
pub(crate) fn parse(serial: &str) -> Result<Vec<Sample>, String> {
    let mut samples = Vec::new();
    for line in serial.lines().map(str::trim_end) {
        // The kernel's log prefix (`[   1.0] INFO  test: `) may precede the marker.
        if let Some(at) = line.find("bench-block-error: ") {
            return Err(line[at..].to_string());
        }
        if let Some(at) = line.find("bench-block: ") {
            let rest = &line[at + "bench-block: ".len()..];
            samples.push(parse_line(rest).map_err(|why| format!("{why}: `{line}`"))?);
        }
    }
    Ok(samples)
}

fn parse_line(rest: &str) -> Result<Sample, String> {
    let mut fields = BTreeMap::new();
    for pair in rest.split_whitespace() {
        let (key, value) = pair
            .split_once('=')
            .ok_or(format!("`{pair}` is not key=value"))?;
        if fields.insert(key.to_string(), value.to_string()).is_some() {
            return Err(format!("{key} given twice"));
        }
    }
    let text = |key: &str| fields.get(key).cloned().ok_or(format!("no {key}="));
    let number = |key: &str| -> Result<u64, String> {
        text(key)?
            .parse()
            .map_err(|_| format!("{key} is not a whole number"))
    };
    let optional = |key: &str| -> Result<Option<u64>, String> {
        fields.get(key).map(|_| number(key)).transpose()
    };
    let system = match text("system")?.as_str() {
        "moat" => System::Moat,
        "linux" => System::Linux,
        other => return Err(format!("unknown system {other}")),
    };
    let mode = match text("mode")?.as_str() {
        "strict" => Mode::Strict,
        "pass-through" => Mode::PassThrough,
        other => return Err(format!("unknown mode {other}")),
    };
    let queue_depth = u32::try_from(number("qd")?).map_err(|_| "qd too large".to_string())?;
    let sample = Sample {
        system,
        mode,
        cell: Cell {
            device: text("device")?,
            workload: text("workload")?,
            queue_depth,
        },
        ios: number("ios")?,
        bytes: number("bytes")?,
        ns: number("ns")?,
        overhead_ns: optional("overhead_ns")?,
        invalidations: optional("invalidations")?,
        fields: BTreeMap::new(),
        repeats: Vec::new(),
    };
    if sample.ios == 0 || queue_depth == 0 {
        return Err("ios and qd must be positive".into());
    }
    Ok(Sample { fields, ..sample })
}

/// Every cell's samples, keyed by (system, mode).
pub(crate) type Grid = BTreeMap<Cell, BTreeMap<(System, Mode), Sample>>;

/// Arranges `samples` by cell; a second sample for one (cell, system, mode) is an error.
pub(crate) fn grid(samples: Vec<Sample>) -> Result<Grid, String> {
    let mut grid = Grid::new();
    for sample in samples {
        let key = (sample.system, sample.mode);
        let cell = grid.entry(sample.cell.clone()).or_default();
        if cell.contains_key(&key) {
            return Err(format!(
                "two results for {} {} {:?}",
                sample.system.name(),
                sample.mode.name(),
                sample.cell
            ));
        }
        cell.insert(key, sample);
    }
    Ok(grid)
}

/// The ratios of one cell, where both sides were measured.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Ratios {
    /// Linux's strict IOPS over its pass-through IOPS.
    pub(crate) linux_strict_to_pass: Option<f64>,
    /// Moat's strict IOPS over its pass-through IOPS (the aim: at least 0.95).
    pub(crate) moat_strict_to_pass: Option<f64>,
    /// Moat's strict IOPS over Linux's strict IOPS (the aim: at least 2).
    pub(crate) moat_to_linux_strict: Option<f64>,
    /// Moat's pass-through IOPS over Linux's.
    pub(crate) moat_to_linux_pass: Option<f64>,
}

/// The ratios of `cell`'s samples.
pub(crate) fn ratios(cell: &BTreeMap<(System, Mode), Sample>) -> Ratios {
    let iops = |system, mode| cell.get(&(system, mode)).and_then(Sample::iops);
    let ratio = |a: Option<f64>, b: Option<f64>| Some(a? / b?).filter(|r| r.is_finite());
    Ratios {
        linux_strict_to_pass: ratio(
            iops(System::Linux, Mode::Strict),
            iops(System::Linux, Mode::PassThrough),
        ),
        moat_strict_to_pass: ratio(
            iops(System::Moat, Mode::Strict),
            iops(System::Moat, Mode::PassThrough),
        ),
        moat_to_linux_strict: ratio(
            iops(System::Moat, Mode::Strict),
            iops(System::Linux, Mode::Strict),
        ),
        moat_to_linux_pass: ratio(
            iops(System::Moat, Mode::PassThrough),
            iops(System::Linux, Mode::PassThrough),
        ),
    }
}

#[cfg(test)]
#[path = "results_tests.rs"]
mod tests;
