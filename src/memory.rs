//! Handing memory back after a large release. The binary's allocator may keep memory
//! that was freed for its own reuse: mimalloc purges it only when the thread that freed
//! it allocates again, and after a graph load that is the load's transient arrays and
//! the replaced graph, hundreds of megabytes at ten million edges (measured: a 10M-edge
//! replica's RSS 2.9 GiB, 2.3 GiB once purged). The binary says how to hand it back
//! ([`on_release`]); the library says when ([`released`]).

use std::sync::OnceLock;

static RELEASE: OnceLock<fn()> = OnceLock::new();

/// Registers what to do after a large release; the first registration holds.
pub fn on_release(release: fn()) {
    let _ = RELEASE.set(release);
}

/// A large amount of memory was just freed (a graph replaced by its load, or its
/// arrivals laid out again).
pub(crate) fn released() {
    if let Some(release) = RELEASE.get() {
        release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static CALLS: AtomicUsize = AtomicUsize::new(0);

    #[test]
    fn a_release_calls_what_the_binary_registered() {
        on_release(|| {
            CALLS.fetch_add(1, Ordering::SeqCst);
        });
        let before = CALLS.load(Ordering::SeqCst);
        released();
        assert!(CALLS.load(Ordering::SeqCst) > before);
    }
}
