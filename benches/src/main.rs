//! `cairn-bench`: see `cairn-bench --help` and benches/README.md.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cairn_bench::cli::Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cairn-bench: runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(cairn_bench::cli::execute(cli)) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(errors) => {
            eprintln!("cairn-bench: {errors} operations failed");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("cairn-bench: {e}");
            ExitCode::from(2)
        }
    }
}
