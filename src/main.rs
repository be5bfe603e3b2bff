use clap::Parser;

fn main() {
    let cli = cdpjob::cli::Cli::parse();
    let code = match cdpjob::commands::execute(cli) {
        Ok(code) => code,
        Err(e) => {
            let text = e.to_string();
            match e {
                // Job diagnostics already carry their `file:line:col:` prefix.
                cdpjob::error::Error::Job(_) => eprint!("{text}"),
                _ => eprintln!("error: {text}"),
            }
            e.exit_code()
        }
    };
    std::process::exit(code);
}

// Rendering allocates many small strings on several threads; mimalloc is markedly faster
// than the system allocator at that and keeps the resident set flat (see README, Performance).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
