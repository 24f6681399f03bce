//! The `volley` command: see `volley --help` and the `volley_cli` crate
//! docs.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

fn main() -> std::process::ExitCode {
    volley_cli::main()
}
