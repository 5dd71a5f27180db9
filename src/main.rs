//! The `sunset` binary: telemetry, arguments, dispatch.

use clap::Parser;
use std::process::ExitCode;

/// See Cargo.toml: the graph load runs about twice as fast on it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

// mimalloc's own C API (linked with the allocator): frees what it holds for reuse. The
// crate's one use of `unsafe` (the library forbids it).
#[allow(unsafe_code)]
unsafe extern "C" {
    fn mi_collect(force: bool);
}

/// Hands the memory mimalloc keeps after a graph load back to the system at once (see
/// `sunset::memory`).
#[allow(unsafe_code)]
fn release_memory() {
    // SAFETY: `mi_collect` takes no pointers and may be called from any thread.
    unsafe { mi_collect(true) }
}

#[tokio::main]
async fn main() -> ExitCode {
    sunset::memory::on_release(release_memory);
    let cli = sunset::cli::Cli::parse();
    let (log, traces) = cli.telemetry_settings();
    let telemetry = sunset::telemetry::init(log, &traces);
    let code = match sunset::cli::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", describe(&e));
            ExitCode::from(2)
        }
    };
    // Sending the last spans blocks (the exporter's own thread answers).
    let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
    code
}

/// The error and its causes, each said once: an error that wraps another often repeats
/// its text (`team is required …: team is required …`).
fn describe(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}
