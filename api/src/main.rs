//! `convene`: see `convene --help`.

use std::process::ExitCode;

use clap::Parser;
use convene_api::cli::{Cli, run};

/// mimalloc rather than glibc's malloc: the media node allocates on every packet, and glibc's allocator was a
/// tenth of its CPU forwarding three meetings of 10.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
