//! A uniform sample of at most `cap` items from a stream of unknown length (reservoir sampling,
//! Li's Algorithm L): after the reservoir fills, it computes how many items to skip before the
//! next one it keeps, so a session under a flood builds only the events it will send.

/// The sample: items tagged with their arrival number, so they can be sent in order.
#[derive(Debug)]
pub(crate) struct Reservoir<T> {
    cap: usize,
    items: Vec<(u64, T)>,
    /// Items offered so far.
    seen: u64,
    /// The arrival number of the next item to keep once the reservoir is full.
    next: u64,
    w: f64,
    rng: u64,
}

impl<T> Reservoir<T> {
    pub(crate) fn new(cap: usize, seed: u64) -> Self {
        Reservoir {
            cap: cap.max(1),
            items: Vec::new(),
            seen: 0,
            next: 0,
            w: 1.0,
            rng: seed | 1,
        }
    }

    /// Items offered since the last [`take`](Self::take).
    pub(crate) fn seen(&self) -> u64 {
        self.seen
    }

    /// Offers `n` items; `make(i)` builds item `i` only when the sample keeps it.
    pub(crate) fn offer(&mut self, n: usize, mut make: impl FnMut(usize) -> T) {
        let mut i = 0usize;
        while i < n {
            if self.items.len() < self.cap {
                self.items.push((self.seen, make(i)));
                self.seen += 1;
                i += 1;
                if self.items.len() == self.cap {
                    self.w = (self.uniform().ln() / self.cap as f64).exp();
                    self.next = self.seen + self.skip();
                }
                continue;
            }
            // Jump straight to the next kept item (or past this batch).
            let ahead = (self.next - self.seen) as usize;
            if ahead >= n - i {
                self.seen += (n - i) as u64;
                return;
            }
            i += ahead;
            self.seen += ahead as u64;
            let slot = (self.random() % self.cap as u64) as usize;
            self.items[slot] = (self.seen, make(i));
            self.seen += 1;
            i += 1;
            self.w *= (self.uniform().ln() / self.cap as f64).exp();
            self.next = self.seen + self.skip();
        }
    }

    /// The sample in arrival order, and whether it left anything out; starts afresh.
    pub(crate) fn take(&mut self) -> (Vec<T>, bool) {
        let sampled = self.seen > self.items.len() as u64;
        let mut items = std::mem::take(&mut self.items);
        items.sort_by_key(|(n, _)| *n);
        self.seen = 0;
        self.w = 1.0;
        (items.into_iter().map(|(_, t)| t).collect(), sampled)
    }

    fn skip(&mut self) -> u64 {
        let u = self.uniform();
        let s = (u.ln() / (1.0 - self.w).ln()).floor();
        if s.is_finite() && s >= 0.0 {
            s.min(u64::MAX as f64 / 2.0) as u64
        } else {
            0
        }
    }

    /// xorshift64*: enough randomness for choosing which events to show.
    fn random(&mut self) -> u64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A uniform number in (0, 1).
    fn uniform(&mut self) -> f64 {
        ((self.random() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_streams_are_kept_whole_and_large_ones_sampled_uniformly_in_order() {
        let mut r = Reservoir::new(10, 7);
        r.offer(4, |i| i);
        r.offer(3, |i| 100 + i);
        assert_eq!(r.take(), (vec![0, 1, 2, 3, 100, 101, 102], false));

        // 100,000 items in batches: 500 kept, in order, spread over the whole stream, and
        // only a few thousand built.
        let mut built = 0;
        let mut counts = [0u32; 10];
        for _round in 0..20 {
            let mut r = Reservoir::new(500, 99 + _round);
            for b in 0..100 {
                r.offer(1000, |i| {
                    built += 1;
                    b * 1000 + i
                });
            }
            assert_eq!(r.seen(), 100_000);
            let (kept, sampled) = r.take();
            assert!(sampled);
            assert_eq!(kept.len(), 500);
            assert!(kept.windows(2).all(|w| w[0] < w[1]));
            for k in kept {
                counts[k / 10_000] += 1;
            }
        }
        assert!(built < 20 * 5_000, "built {built}");
        // Each tenth of the stream holds about a tenth of the sample (1,000 of 10,000).
        for c in counts {
            assert!((800..1200).contains(&c), "{counts:?}");
        }
    }
}
