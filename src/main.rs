//! The `med-crossvit` command-line tool: check and synthesize cohorts, train (with
//! cross-validation and resumable checkpoints), evaluate, predict with attention maps, import
//! checkpoints of the Python original, and time the model. The commands live in `cli/`.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    med_crossvit::runtime::keep_freed_memory();
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
