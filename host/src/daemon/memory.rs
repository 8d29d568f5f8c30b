//! How the daemon uses glibc's allocator. Its defaults suit short
//! programs: freed memory is kept for reuse, and small frees are parked in
//! "fast bins" that are merged in bulk later.

/// Set at start. Fast bins are turned off: when a jail counting
/// `maxtracked` addresses forgets an eighth of them, tens of thousands of
/// small frees land in them at once, and merging them took more than a
/// third of the jail's time (1M addresses over a cap of 100,000: 116k
/// lines/s with fast bins, 205k without; the ordinary burst is the same
/// either way, about 380k). Small frees still go through glibc's
/// per-thread cache first.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes the allocator's settings; M_MXFAST = 0
    // is a documented value (no fast bins).
    unsafe {
        libc::mallopt(libc::M_MXFAST, 0);
    }
}

/// Hand freed heap pages back to the system: glibc keeps them in the
/// thread's arena for reuse otherwise, and the daemon's resident size would
/// stay at its peak after a start (the compiled component read from the
/// cache, the filter's construction, the bans restored), a burst of
/// addresses that aged out, or a reply that listed a million bans.
pub fn give_memory_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of the allocator's own
    // arenas; it touches no live allocation.
    unsafe {
        libc::malloc_trim(0);
    }
}
