//! Mutation-based fuzzing of every parser of user files, on the stable toolchain
//! (`make fuzz`; `docs/fuzzing.md`).
//!
//! ```text
//! cargo run --release --example fuzz -- [--seconds N] [--timeout S] [--seed S] [--out DIR] [TARGET...]
//! ```
//!
//! A supervisor runs one worker process per target. The worker mutates the target's seeds,
//! writes each input to its work folder and parses it in-process: a panic (caught) or an
//! allocation past the budget is saved to `DIR/crashes/TARGET/` with a `.txt` beside it. What
//! cannot be caught in-process (an abort on a refused allocation, a stack overflow, a hang
//! past `--timeout`) kills or stalls the worker: the supervisor saves the input it was on and
//! starts a new worker for the rest of the time.

#[path = "../tests/it/support/fuzz/mod.rs"]
mod fuzz_support;

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use fuzz_support::{Campaign, Outcome};

#[global_allocator]
static ALLOC: fuzz_support::alloc::Counting = fuzz_support::alloc::Counting;

const TARGETS: [&str; 15] = [
    "cohort",
    "signatures",
    "splits",
    "config",
    "weights",
    "normalization",
    "labels",
    "h5",
    "pt",
    "gdc-sheet",
    "gdc-clinical",
    "gdc-star",
    "torch",
    "torch-args",
    "all",
];

struct Options {
    seconds: u64,
    timeout: u64,
    seed: u64,
    out: PathBuf,
    targets: Vec<String>,
    worker: bool,
    replay: Vec<PathBuf>,
}

fn parse_options() -> Options {
    let mut options = Options {
        seconds: std::env::var("FUZZ_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(90),
        timeout: 20,
        seed: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(1),
        out: PathBuf::from("target/fuzz"),
        targets: Vec::new(),
        worker: false,
        replay: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .unwrap_or_else(|| usage(&format!("{name} needs a value")))
        };
        match arg.as_str() {
            "--seconds" => options.seconds = number(&value("--seconds")),
            "--timeout" => options.timeout = number(&value("--timeout")),
            "--seed" => options.seed = number(&value("--seed")),
            "--out" => options.out = PathBuf::from(value("--out")),
            "--worker" => options.worker = true,
            "--replay" => options.replay.push(PathBuf::from(value("--replay"))),
            "-h" | "--help" => usage(""),
            name if TARGETS.contains(&name) => options.targets.push(name.to_string()),
            // More files to replay, as a shell glob after `--replay` gives them.
            file if !options.replay.is_empty() && Path::new(file).is_file() => {
                options.replay.push(PathBuf::from(file))
            }
            other => usage(&format!("unknown argument `{other}`")),
        }
    }
    if options.targets.is_empty() || options.targets.iter().any(|t| t == "all") {
        options.targets = TARGETS[..TARGETS.len() - 1]
            .iter()
            .map(|t| t.to_string())
            .collect();
    }
    options
}

fn number(s: &str) -> u64 {
    s.parse()
        .unwrap_or_else(|_| usage(&format!("`{s}` is not a number")))
}

fn usage(problem: &str) -> ! {
    if !problem.is_empty() {
        eprintln!("fuzz: {problem}");
    }
    eprintln!(
        "usage: fuzz [--seconds N per target (env FUZZ_SECONDS)] [--timeout S per input] \
         [--seed S] [--out DIR] [TARGET...]\n       fuzz --replay FILE... TARGET   (runs the \
         target's parser on each file, prints the outcome and time)\ntargets: {}",
        TARGETS.join(", ")
    );
    std::process::exit(2)
}

fn root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::current_dir().expect("a working directory"))
}

fn extension(file: &str) -> &str {
    Path::new(file)
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("bin")
}

fn hash(text: &str) -> u64 {
    // FNV-1a: a stable name for a finding's class across runs.
    text.bytes().fold(0xCBF2_9CE4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01B3)
    })
}

/// Saves a finding once per class: `KIND-HASH.EXT` and `KIND-HASH.txt` (what happened).
fn save_finding(dir: &Path, kind: &str, class: &str, ext: &str, input: &[u8], note: &str) {
    let _ = std::fs::create_dir_all(dir);
    let stem = format!("{kind}-{:016x}", hash(class));
    let path = dir.join(format!("{stem}.{ext}"));
    if path.exists() {
        return;
    }
    let _ = std::fs::write(&path, input);
    let _ = std::fs::write(dir.join(format!("{stem}.txt")), format!("{note}\n"));
}

/// The worker: fuzzes one target until the time is up, one line to stdout per input.
fn worker(options: &Options) {
    let name = &options.targets[0];
    let work = options.out.join("work");
    let targets = fuzz_support::targets(&work, &root());
    let target = targets
        .iter()
        .find(|t| t.name == name.as_str())
        .expect("a known target");
    let crashes = options.out.join("crashes").join(target.name);
    let ext = extension(target.file);
    let mut campaign = Campaign::new(target, options.seed);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let _ = writeln!(out, "P {}", target.input_path().display());
    let end = Instant::now() + Duration::from_secs(options.seconds);
    while Instant::now() < end {
        let _ = writeln!(out, "B");
        let _ = out.flush();
        let (input, outcome) = campaign.step();
        let line = match &outcome {
            Outcome::Ok(_) => "E ok".to_string(),
            Outcome::Err(_) => "E err".to_string(),
            Outcome::Panic(message) => {
                let backtrace = fuzz_support::last_backtrace();
                let location = message.rsplit(" at ").next().unwrap_or(message);
                let class = match fuzz_support::first_project_frame(&backtrace) {
                    Some(frame) if location.contains("/rustc/") => frame,
                    _ => location.to_string(),
                };
                let note = format!("{message}\n\n{backtrace}");
                save_finding(&crashes, "panic", &class, ext, &input, &note);
                format!("E panic {class}")
            }
            Outcome::OverAlloc { peak, budget } => {
                let note = format!(
                    "allocated {peak} bytes (budget {budget}) for a {} byte input",
                    input.len()
                );
                save_finding(&crashes, "overalloc", "overalloc", ext, &input, &note);
                format!("E overalloc {peak} {budget}")
            }
        };
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(out, "DONE");
    let _ = out.flush();
}

#[derive(Default)]
struct Tally {
    tried: u64,
    ok: u64,
    err: u64,
    workers: u64,
    stalls: u64,
    findings: BTreeMap<String, u64>,
}

/// The supervisor: one worker per target at a time, restarted after an abort or a hang.
fn supervise(options: &Options) {
    let exe = std::env::current_exe().expect("the harness's own path");
    let mut summary = Vec::new();
    println!(
        "fuzzing {} for {} s each (per-input timeout {} s, seed {}), findings in {}",
        options.targets.join(", "),
        options.seconds,
        options.timeout,
        options.seed,
        options.out.join("crashes").display()
    );
    for name in &options.targets {
        let mut tally = Tally::default();
        let start = Instant::now();
        let total = Duration::from_secs(options.seconds);
        let mut seen = HashSet::new();
        while start.elapsed() < total {
            let left = (total - start.elapsed()).as_secs().max(1);
            tally.workers += 1;
            let mut child = Command::new(&exe)
                .args(["--worker", name, "--seconds", &left.to_string()])
                .args(["--seed", &(options.seed + tally.workers * 7919).to_string()])
                .arg("--out")
                .arg(&options.out)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("a worker process");
            let (send, receive) = mpsc::channel();
            let stdout = child.stdout.take().expect("piped");
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if send.send(line).is_err() {
                        break;
                    }
                }
            });
            let mut stderr = child.stderr.take().expect("piped");
            let stderr = std::thread::spawn(move || {
                let mut text = String::new();
                let _ = stderr.read_to_string(&mut text);
                text
            });
            let mut input_path = None;
            let mut in_input = false;
            let mut done = false;
            let mut hung = false;
            // Setting up the targets takes a while before the first input.
            let mut wait = Duration::from_secs(options.timeout.max(120));
            loop {
                match receive.recv_timeout(wait) {
                    Ok(line) => {
                        wait = Duration::from_secs(options.timeout);
                        let mut words = line.splitn(3, ' ');
                        match words.next() {
                            Some("P") => input_path = words.next().map(PathBuf::from),
                            Some("B") => in_input = true,
                            Some("E") => {
                                in_input = false;
                                tally.tried += 1;
                                match words.next() {
                                    Some("ok") => tally.ok += 1,
                                    Some("err") => tally.err += 1,
                                    Some(kind) => {
                                        let class = format!(
                                            "{kind} {}",
                                            if kind == "panic" {
                                                words.next().unwrap_or("")
                                            } else {
                                                ""
                                            }
                                        );
                                        if seen.insert(class.clone()) {
                                            println!("  [{name}] new finding: {class}");
                                        }
                                        *tally.findings.entry(class).or_default() += 1;
                                    }
                                    None => {}
                                }
                            }
                            Some("DONE") => done = true,
                            _ => {}
                        }
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        hung = true;
                        let _ = child.kill();
                        break;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            }
            let status = child.wait().expect("the worker's status");
            let stderr = stderr.join().unwrap_or_default();
            if done && status.success() {
                break;
            }
            // The worker died or hung on the input it was parsing: keep that input. A hang is
            // confirmed by a second run alone, so that a stall of the machine (two cores shared
            // with builds) is not reported as one.
            let kind = if hung {
                match &input_path {
                    Some(path) if !hangs_again(&exe, name, path, options) => "stall",
                    _ => "hang",
                }
            } else if stderr.contains("memory allocation of") {
                "abort-alloc"
            } else if stderr.contains("stack overflow") {
                "stack-overflow"
            } else {
                "abort"
            };
            tally.tried += 1;
            if kind == "stall" {
                tally.stalls += 1;
                println!(
                    "  [{name}] a worker printed nothing for {} s, but its input ran normally \
                     alone: machine load, not a finding",
                    options.timeout
                );
                continue;
            }
            let tail: String = stderr
                .lines()
                .rev()
                .take(20)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n");
            if let (Some(path), true) = (&input_path, in_input || hung)
                && let Ok(input) = std::fs::read(path)
            {
                let crashes = options.out.join("crashes").join(name);
                let ext = extension(&path.to_string_lossy()).to_string();
                let frame = fuzz_support::first_project_frame(&stderr);
                let class = format!("{kind} {}", frame.unwrap_or_default());
                let note = format!("{kind} ({status}) on a {} byte input\n{tail}", input.len());
                save_finding(&crashes, kind, &class, &ext, &input, &note);
            }
            if seen.insert(kind.to_string()) {
                println!("  [{name}] new finding: {kind} ({status}); stderr tail:\n{tail}");
            }
            *tally.findings.entry(kind.to_string()).or_default() += 1;
        }
        let findings: u64 = tally.findings.values().sum();
        let line = format!(
            "{name:>13}: {:>8} inputs ({} ok, {} typed errors), {} findings in {} classes{}",
            tally.tried,
            tally.ok,
            tally.err,
            findings,
            tally.findings.len(),
            if tally.workers > 1 {
                format!(", {} workers restarted", tally.workers - 1)
            } else {
                String::new()
            } + &if tally.stalls > 0 {
                format!(" ({} after a stall)", tally.stalls)
            } else {
                String::new()
            }
        );
        println!("{line}");
        for (class, count) in &tally.findings {
            println!("{:>15} {count} × {class}", "");
        }
        summary.push((line, tally.findings));
    }
    println!("\nsummary:");
    let mut any = false;
    for (line, findings) in &summary {
        println!("{line}");
        any |= !findings.is_empty();
    }
    if any {
        println!(
            "findings saved in {}",
            options.out.join("crashes").display()
        );
        std::process::exit(1);
    }
}

/// Whether the input at `path` still takes longer than the timeout, run again in a fresh
/// process (a copy, since the worker that follows overwrites the input file).
fn hangs_again(exe: &Path, name: &str, path: &Path, options: &Options) -> bool {
    let copy = options.out.join(format!("recheck-{name}"));
    if std::fs::copy(path, &copy).is_err() {
        return true;
    }
    let Ok(mut child) = Command::new(exe)
        .args(["--replay"])
        .arg(&copy)
        .arg(name)
        .arg("--out")
        .arg(options.out.join("recheck"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return true;
    };
    // Setting up the targets comes first: allow for it.
    let deadline = Instant::now() + Duration::from_secs(options.timeout + 60);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    true
}

/// Runs one target's parser on given files: triage of a finding.
fn replay(options: &Options) {
    let name = &options.targets[0];
    let targets = fuzz_support::targets(&options.out.join("work"), &root());
    let target = targets
        .iter()
        .find(|t| t.name == name.as_str())
        .expect("a known target");
    for file in &options.replay {
        let input =
            std::fs::read(file).unwrap_or_else(|e| usage(&format!("{}: {e}", file.display())));
        let start = Instant::now();
        let outcome = target.execute(&input);
        println!("{}: {:?} in {:?}", file.display(), outcome, start.elapsed());
        if let Outcome::Panic(_) = outcome {
            println!("{}", fuzz_support::last_backtrace());
        }
    }
}

fn main() {
    let options = parse_options();
    if !options.replay.is_empty() {
        replay(&options);
    } else if options.worker {
        worker(&options);
    } else {
        supervise(&options);
    }
}
