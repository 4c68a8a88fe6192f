//! Running many scenarios, a bounded number at a time, and reporting each as it finishes.
//!
//! QEMU under TCG is CPU-bound, so running more instances than cores only makes each one slower
//! and closer to its timeout; the caller chooses the bound. Worker threads take scenarios from a
//! shared queue and send results back over a channel; only the calling thread prints, so lines
//! and failure blocks never interleave.

use std::collections::VecDeque;
use std::fmt;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crate::command_line;
use crate::process::{self, RunResult};
use crate::scenario::{After, During, Scenario, check};

/// The result of [`run_all`]: which scenarios passed and which failed, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "the report says whether the scenarios passed"]
pub struct Report {
    /// Names of the scenarios that passed.
    pub passed: Vec<String>,
    /// Names of the scenarios that failed, could not run, or never reported.
    pub failed: Vec<String>,
    /// Wall-clock time for the whole batch.
    pub elapsed: Duration,
}

impl Report {
    /// True if every scenario passed and there was at least one: an empty run proves nothing,
    /// and is most likely a filter or a configuration that selected nothing.
    pub fn is_success(&self) -> bool {
        self.failed.is_empty() && !self.passed.is_empty()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{} passed, {} failed in {:.1} s",
            self.passed.len(),
            self.failed.len(),
            self.elapsed.as_secs_f64()
        )?;
        if !self.failed.is_empty() {
            write!(formatter, "; failed: {}", self.failed.join(", "))?;
        }
        if self.passed.is_empty() && self.failed.is_empty() {
            formatter.write_str(" (no scenarios ran, which counts as a failure)")?;
        }
        Ok(())
    }
}

/// Runs `scenarios` with at most `parallel` commands at once (0 counts as 1), printing to
/// stdout one line per finished scenario, `PASS name (1.2 s)` or `FAIL name: reason`, followed
/// for a failure by its command line, stderr and full serial log. `Report`'s `Display` is a
/// one-line summary for the end.
pub fn run_all(scenarios: Vec<Scenario>, parallel: usize) -> Report {
    run_all_with_output(scenarios, parallel, &mut io::stdout())
}

/// [`run_all`], printing to `output` instead of stdout. Errors writing to `output` are ignored:
/// they do not change which scenarios passed.
pub fn run_all_with_output<W: Write>(
    scenarios: Vec<Scenario>,
    parallel: usize,
    output: &mut W,
) -> Report {
    let started = Instant::now();
    let names: Vec<String> = scenarios
        .iter()
        .map(|scenario| scenario.name.clone())
        .collect();
    let workers = parallel.clamp(1, scenarios.len().max(1));
    let queue = Arc::new(Mutex::new(
        scenarios.into_iter().enumerate().collect::<VecDeque<_>>(),
    ));
    let (results, finished) = mpsc::channel();

    let mut spawned = 0;
    for worker in 0..workers {
        let queue = Arc::clone(&queue);
        let results = results.clone();
        let spawn = thread::Builder::new()
            .name(format!("moat-tests-worker-{worker}"))
            .spawn(move || work(&queue, &results));
        if spawn.is_ok() {
            spawned += 1;
        }
    }
    if spawned == 0 {
        // No thread could be started: run everything here, one at a time.
        work(&queue, &results);
    }
    // The workers hold the remaining senders; the loop below ends when the last one exits.
    drop(results);

    let mut verdicts: Vec<Option<bool>> = vec![None; names.len()];
    for done in finished {
        let _ = output.write_all(describe(&done).as_bytes());
        let _ = output.flush();
        if let Some(verdict) = verdicts.get_mut(done.index) {
            *verdict = Some(done.verdict.is_ok());
        }
    }

    let mut report = Report {
        passed: Vec::new(),
        failed: Vec::new(),
        elapsed: Duration::ZERO,
    };
    for (name, verdict) in names.into_iter().zip(verdicts) {
        match verdict {
            Some(true) => report.passed.push(name),
            Some(false) => report.failed.push(name),
            None => {
                // A worker panicked (a harness bug): the scenario counts as failed, loudly.
                let _ = writeln!(
                    output,
                    "FAIL {name}: no result (a harness worker thread panicked)"
                );
                report.failed.push(name);
            }
        }
    }
    report.elapsed = started.elapsed();
    report
}

/// One finished scenario, sent from a worker to the printing thread.
struct Finished {
    /// Position in the caller's list, to keep the report in order.
    index: usize,
    name: String,
    command_line: String,
    /// The run, or why it could not be started or supervised.
    run: io::Result<RunResult>,
    /// `Ok` for a pass, otherwise the reason for the failure.
    verdict: Result<(), String>,
}

/// Takes scenarios from `queue` until it is empty, sending each result to `results`.
fn work(queue: &Mutex<VecDeque<(usize, Scenario)>>, results: &Sender<Finished>) {
    loop {
        let next = queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front();
        let Some((index, scenario)) = next else {
            return;
        };
        if results.send(execute(index, scenario)).is_err() {
            // Nobody is listening any more; stop taking work.
            return;
        }
    }
}

/// Runs one scenario and judges its result.
fn execute(index: usize, scenario: Scenario) -> Finished {
    let Scenario {
        name,
        command,
        timeout,
        expect,
        after,
        during,
    } = scenario;
    let command_line = command_line::render(&command);
    let peer = during.map(|During(step)| start_during(step, Instant::now() + timeout));
    let run = process::run(command, timeout);
    let verdict = match &run {
        Ok(result) => check(&expect, result).map_err(|mismatch| mismatch.to_string()),
        Err(error) => Err(format!("could not run the command: {error}")),
    };
    let verdict = match (verdict, peer.map(finish_during)) {
        (Ok(()), Some(Err(why))) => Err(format!("host side during the run failed: {why}")),
        (Err(run), Some(Err(why))) => Err(format!("{run}; host side during the run: {why}")),
        (verdict, _) => verdict,
    };
    let verdict = match (verdict, after) {
        (Ok(()), Some(After(host_check))) => {
            host_check().map_err(|why| format!("host check after the run failed: {why}"))
        }
        (verdict, _) => verdict,
    };
    Finished {
        index,
        name,
        command_line,
        run,
        verdict,
    }
}

/// How long a host step may overrun the run's deadline before the harness stops waiting.
// TIMEOUT: a step checks its deadline between socket operations that time out in seconds.
const DURING_GRACE: Duration = Duration::from_secs(15);

/// A host step running on its own thread, and when it must have answered.
type Peer = (mpsc::Receiver<Result<(), String>>, Instant);

/// Starts a host step on its own thread.
fn start_during(
    step: Box<dyn FnOnce(Instant) -> Result<(), String> + Send>,
    deadline: Instant,
) -> Peer {
    let (done, result) = mpsc::channel();
    let spawned = thread::Builder::new()
        .name("moat-tests-host-step".into())
        .spawn(move || {
            let _ = done.send(step(deadline));
        });
    if let Err(error) = spawned {
        let (done, failed) = mpsc::channel();
        let _ = done.send(Err(format!("cannot start the host step: {error}")));
        return (failed, deadline);
    }
    (result, deadline)
}

/// The host step's result; an error if it did not answer by its deadline plus a grace.
fn finish_during((result, deadline): Peer) -> Result<(), String> {
    let budget = (deadline + DURING_GRACE).saturating_duration_since(Instant::now());
    match result.recv_timeout(budget) {
        Ok(outcome) => outcome,
        Err(mpsc::RecvTimeoutError::Timeout) => {
            Err("the host step did not finish by the run's deadline".into())
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => Err("the host step panicked".into()),
    }
}

/// The text printed for one finished scenario: one line for a pass, a delimited block for a
/// failure with everything needed to understand and reproduce it.
fn describe(done: &Finished) -> String {
    let name = &done.name;
    let seconds = match &done.run {
        Ok(result) => result.elapsed.as_secs_f64(),
        Err(_) => 0.0,
    };
    let reason = match &done.verdict {
        Ok(()) => return format!("PASS {name} ({seconds:.1} s)\n"),
        Err(reason) => reason,
    };
    let mut text = format!("FAIL {name}: {reason}\n");
    let mut section = |title: &str, body: &str| {
        let _ = writeln!(text, "==== {name}: {title} ====");
        text.push_str(body);
        if !body.is_empty() && !body.ends_with('\n') {
            text.push('\n');
        }
    };
    section("command", &format!("{}\n", done.command_line));
    if let Ok(result) = &done.run {
        section(
            &format!("outcome after {seconds:.1} s"),
            &format!("{}\n", result.outcome),
        );
        section(
            &format!("QEMU stderr ({} bytes)", result.stderr.len()),
            &result.stderr,
        );
        section(
            &format!("serial log ({} bytes)", result.serial.len()),
            &result.serial,
        );
    }
    let _ = writeln!(text, "==== {name}: end ====");
    text
}

#[cfg(test)]
mod tests;
