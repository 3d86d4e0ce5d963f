//! The execwatch binary: everything it does is `cli`'s.
#![forbid(unsafe_code)]

/// jemalloc, not glibc's malloc: an idle follower's untouched buffer pages stay out of memory
/// (13 KiB a follower instead of 19), and a warm start's million strings, allocated on one
/// thread and freed on another, no longer contend for glibc's arenas (4.4–4.9 s instead of
/// 5.2–6.9 s at 100 000 on one machine). It serves SQLite's `malloc` too (the crate's unprefixed
/// feature): a warm start's 100 000 rows are copied out of values SQLite allocated on its worker
/// thread, and freed on ours (4.4–4.6 s instead of 4.8–5.1 s). Figures in docs/performance.md.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    execwatch::cli::main()
}
