//! `campus-content api` and `campus-content worker inspect|cache|inbox|index`.

use std::process::ExitCode;

/// mimalloc instead of glibc's malloc: in the coupon issue benchmark glibc's malloc and free
/// (arena locks, `malloc_consolidate`) were a quarter of the API process's CPU. Built without
/// transparent huge pages (feature `no_thp`): with them every process of the content bench held
/// 7–14 MiB more.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = campus_common::run::parse::<campus_content::cli::Cli>();
    campus_common::run::block_on(cli.run())
}
