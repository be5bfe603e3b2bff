fn main() -> std::process::ExitCode {
    use clap::Parser as _;
    cdpjob::commands::main(cdpjob::cli::Cli::parse())
}

// Rendering allocates many small strings on several threads; mimalloc is markedly faster
// than the system allocator at that and keeps the resident set flat (see README, Performance).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
