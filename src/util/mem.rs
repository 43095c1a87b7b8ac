//! Memory between the batches of a long run. glibc keeps memory freed by
//! worker threads in per-thread arenas and hands it back to the kernel only
//! when asked: after a batch of a large mirror's pages and fetch rows is
//! dropped, the process would otherwise keep its high-water mark for the
//! rest of the run. Elsewhere this does nothing.
//!
//! Also what the process has used so far (peak memory, cpu), for the
//! `-v` stage laps.

/// Arenas glibc may keep (its default is eight per core): the transfer and
/// render pools run many threads, and each arena's fragments add to the
/// peak; four cost no measurable time here (100,000-file build: 11.2 s and
/// 165 MiB with the default, 11.1 s and 148 MiB with four).
const ARENAS: libc::c_int = 4;

/// Set up the allocator for a long run (call once, before any thread).
pub fn init() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, ARENAS);
    }
}

/// Give freed heap memory back to the kernel: mimalloc's `mi_collect`
/// for the binary (whose global allocator it is), glibc's `malloc_trim`
/// for whatever else the library's callers allocate with.
pub fn release() {
    // SAFETY: mi_collect only returns the free pages of mimalloc's own
    // heaps; it frees no memory in use, and is a no-op for memory it never
    // handed out.
    unsafe {
        libmimalloc_sys::mi_collect(true);
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it
    // takes the arena locks itself and frees no memory in use.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The process's peak resident set so far, in KiB, when the OS says.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The process's cpu so far (user, system seconds, every thread), when
/// the OS says.
pub fn cpu_seconds() -> Option<(f64, f64)> {
    // SAFETY: an all-zero rusage is a valid value for getrusage to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable rusage.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return None;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Some((secs(usage.ru_utime), secs(usage.ru_stime)))
}
