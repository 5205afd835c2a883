//! The runtime background work runs on: subscription delivery, export tasks and metric filters.
//! Its threads run below the request path's CPU priority, so that on a saturated machine ingest
//! keeps its pace and background work catches up after (every position it works from is durable,
//! so lagging loses nothing; `/metrics` shows the lag).

use std::sync::OnceLock;

static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();

/// The process's background runtime, started on first use with threads at `nice` (0-19).
pub fn runtime(nice: i32) -> tokio::runtime::Handle {
    RUNTIME
        .get_or_init(|| {
            let nice = nice.clamp(0, 19);
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(std::thread::available_parallelism().map_or(2, |n| n.get()))
                .thread_name("logwell-background")
                .enable_all()
                .on_thread_start(move || lower_priority(nice))
                .build()
                .expect("the background runtime starts")
        })
        .handle()
        .clone()
}

/// Lowers the calling thread's CPU priority (on Linux, nice is per thread).
fn lower_priority(nice: i32) {
    #[cfg(target_os = "linux")]
    if nice > 0 {
        // SAFETY: plain syscalls on the calling thread's own id; no memory is shared.
        let rc = unsafe {
            let tid = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice)
        };
        if rc != 0 {
            tracing::warn!(
                nice,
                error = %std::io::Error::last_os_error(),
                "cannot lower the background threads' priority"
            );
        }
    }
}
