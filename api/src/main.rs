//! `convene`: see `convene --help`.

use std::process::ExitCode;

use clap::Parser;
use convene_api::cli::{Cli, run};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line, the whole cause chain: what failed and what to do about it.
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
