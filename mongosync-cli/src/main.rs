//! `mongosync`: continuously syncs one MongoDB cluster into another, driven over HTTP.

use std::process::ExitCode;

use mongosync_cli::config::{Config, Parsed};

fn main() -> ExitCode {
    let config = match Config::parse(std::env::args_os()) {
        Ok(Parsed::Run(c)) => c,
        Ok(Parsed::Print(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("mongosync: error: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mongosync: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(mongosync_cli::command::run(*config))
}
