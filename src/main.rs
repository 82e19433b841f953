//! The `med-crossvit` command-line tool: check and synthesize cohorts (and, as the library
//! grows, train, evaluate and predict).

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
