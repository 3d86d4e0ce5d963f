//! The execwatch binary: everything it does is `cli`'s.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    execwatch::cli::main()
}
