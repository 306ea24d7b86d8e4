//! Buffers the Upstream encodes into, handed back when what was sent is dropped.
//!
//! A busy tick encodes megabytes: 100,000 changed transforms are 4.8 MB of component payloads,
//! then 4.8 MB of transactions that carry them to the transport. In fresh allocations these
//! land in fresh pages from the kernel, which the allocator gives back when they are freed (the
//! transactions on the transport's threads), and the page faults cost more than the encoding:
//! with one process per side (`cargo bench --bench mirror`, 100k × 100 %), the Upstream's
//! section took 4.6 to 4.9 ms a tick; 2.5 to 2.7 ms with the payloads pooled; 0.87 to 0.91 ms
//! with the transactions pooled too. Pooled, each tick writes into memory an earlier tick
//! already touched. The 10k and 10 % cases, whose buffers the allocator kept warm anyway, did
//! not move.

use std::sync::{Arc, Mutex};

use bytes::Bytes;

/// Buffers a pool keeps for reuse at most. The Upstream has two pools (payloads, transactions),
/// so an idle Upstream keeps at most 2 × 8 buffers: 16 MiB with the default 1 MiB transaction
/// limit, 64 MiB at most (see [`MAX_POOLED_CAPACITY`]). A 100k × 100 % tick uses five of each.
const MAX_POOLED: usize = 8;
/// Larger buffers (a transaction limit raised far above its 1 MiB default) are freed, not kept.
const MAX_POOLED_CAPACITY: usize = 4 << 20;

/// A pool of byte buffers: a buffer shared as [`Bytes`] comes back when the last clone drops (on
/// whichever thread that is).
#[derive(Clone, Debug, Default)]
pub(crate) struct BufferPool(Arc<Mutex<Vec<Vec<u8>>>>);

impl BufferPool {
    /// An empty buffer with room for at least `capacity` bytes: a pooled one when it is large
    /// enough (growing a smaller one would copy its stale bytes), else a new one.
    pub(crate) fn take(&self, capacity: usize) -> Vec<u8> {
        match self.0.lock().ok().and_then(|mut p| p.pop()) {
            Some(buf) if buf.capacity() >= capacity => buf,
            _ => Vec::with_capacity(capacity),
        }
    }

    /// `buf` as shareable bytes that return it to the pool once dropped.
    pub(crate) fn share(&self, buf: Vec<u8>) -> Bytes {
        Bytes::from_owner(Pooled {
            buf,
            pool: self.clone(),
        })
    }

    /// How many buffers wait for reuse.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.lock().map(|p| p.len()).unwrap_or(0)
    }
}

/// The owner of a shared pooled buffer.
struct Pooled {
    buf: Vec<u8>,
    pool: BufferPool,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let mut buf = std::mem::take(&mut self.buf);
        if buf.capacity() > MAX_POOLED_CAPACITY {
            return;
        }
        buf.clear();
        if let Ok(mut pool) = self.pool.0.lock()
            && pool.len() < MAX_POOLED
        {
            pool.push(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_returns_when_its_last_clone_drops_and_is_reused() {
        let pool = BufferPool::default();
        let mut buf = pool.take(1000);
        buf.extend_from_slice(b"hello");
        let at = buf.as_ptr();
        let bytes = pool.share(buf);
        let clone = bytes.slice(1..3);
        assert_eq!(&bytes[..], b"hello");
        drop(bytes);
        assert_eq!(pool.len(), 0, "a clone still holds it");
        assert_eq!(&clone[..], b"el");
        drop(clone);
        assert_eq!(pool.len(), 1);
        let again = pool.take(10);
        assert!(again.is_empty() && again.capacity() >= 1000);
        assert_eq!(again.as_ptr(), at, "the same memory");
        // Too small for what is asked: a new buffer, not the old one grown.
        drop(pool.share(again));
        let big = pool.take(1 << 20);
        assert!(big.capacity() >= 1 << 20);
        assert_eq!(pool.len(), 0);
    }

    #[test]
    fn the_pool_keeps_a_bounded_number_of_bounded_buffers() {
        let pool = BufferPool::default();
        let big = pool.share(Vec::with_capacity(MAX_POOLED_CAPACITY + 1));
        drop(big);
        assert_eq!(pool.len(), 0, "too large to keep");
        let many: Vec<Bytes> = (0..MAX_POOLED + 5)
            .map(|_| pool.share(pool.take(64)))
            .collect();
        drop(many);
        assert_eq!(pool.len(), MAX_POOLED);
    }
}
