//! The engine's background work: the flusher, maintenance (retention and compaction), the
//! writer lease's renewal, and the KMS key refresher.

use super::*;

impl Engine {
    pub(super) fn start_background(&self) {
        let flusher = {
            let engine = self.clone();
            let mut stop = self.inner.shutdown.subscribe();
            let tick = (self.inner.config.flush_age / 2)
                .clamp(Duration::from_millis(50), Duration::from_secs(1));
            tokio::spawn(async move {
                // After a failed flush (object store down), wait longer before each retry
                // instead of re-encoding everything every tick.
                let mut backoff = Duration::ZERO;
                let mut retry_at = tokio::time::Instant::now();
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(tick) => {}
                        _ = engine.inner.flush_notify.notified() => {}
                        _ = stop.changed() => break,
                    }
                    if tokio::time::Instant::now() < retry_at || !engine.needs_flush() {
                        continue;
                    }
                    match engine.flush().await {
                        Ok(()) => backoff = Duration::ZERO,
                        Err(e) => {
                            backoff = (backoff * 2)
                                .clamp(Duration::from_secs(1), Duration::from_secs(30));
                            tracing::warn!(error = %e, retry_in = ?backoff, "flush failed; will retry");
                        }
                    }
                    retry_at = tokio::time::Instant::now() + backoff;
                }
            })
        };
        let maintainer = {
            let engine = self.clone();
            let mut stop = self.inner.shutdown.subscribe();
            let every = self
                .inner
                .config
                .maintenance_interval
                .max(Duration::from_millis(100));
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(every) => {}
                        _ = engine.inner.maintain_notify.notified() => {}
                        _ = stop.changed() => break,
                    }
                    if let Err(e) = engine.maintain().await {
                        tracing::warn!(error = %e, "maintenance failed; will retry");
                    }
                }
            })
        };
        let renewer = {
            let engine = self.clone();
            let mut stop = self.inner.shutdown.subscribe();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(LEASE_RENEW) => {}
                        _ = stop.changed() => break,
                    }
                    if engine.check_writable().is_err() {
                        // A fenced node lets its lease lapse, so another can take over.
                        break;
                    }
                    if engine.inner.awaiting_store.load(Ordering::Acquire) {
                        engine.take_late_lease().await;
                        continue;
                    }
                    let mut lease = engine.inner.lease.lock().await;
                    let Some(l) = lease.as_mut() else { break };
                    if let Err(reason) = l.renew(&engine.inner.store).await {
                        tracing::error!("{reason}");
                        lease.take();
                        engine.fence(reason);
                        break;
                    }
                }
            })
        };
        let mut tasks = vec![flusher, maintainer, renewer];
        if let Some(every) = self.kms_refresh_every() {
            let engine = self.clone();
            let mut stop = self.inner.shutdown.subscribe();
            tasks.push(tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(every) => {}
                        _ = stop.changed() => break,
                    }
                    engine.refresh_kms_keys().await;
                }
            }));
        }
        self.inner.tasks.lock().unwrap().extend(tasks);
    }
}
