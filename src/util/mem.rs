//! Memory between the batches of a long run. glibc keeps memory freed by
//! worker threads in per-thread arenas and hands it back to the kernel only
//! when asked: after a batch of a large mirror's pages and fetch rows is
//! dropped, the process would otherwise keep its high-water mark for the
//! rest of the run. Elsewhere this does nothing.

/// Give freed heap memory back to the kernel (glibc's `malloc_trim`).
pub fn release() {
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
