//! Block buffers, recycled: every block received is copied out of its
//! reader's buffer (`conn::own_block`) and every block uploaded is read
//! from the disk into a buffer of its own ([`crate::storage::Storage`]'s
//! `read_block`), one 16 KiB allocation a block, 65,536 a GiB each way.
//! Freed on another thread than the one that allocated them (the writer
//! task, the storage job), glibc gave their pages back to the kernel and
//! faulted fresh zeroed ones in for the next: measured with `perf` on a
//! 256 MiB seed, page faults, page clearing, unmapping and `memset` of the
//! zeroed buffers took ~17% of the seeder's CPU (~4.5% of a leecher's).
//! A buffer is now handed out as a [`Bytes`] whose owner puts it back in a
//! small shared pool when the last reference drops, so the same pages
//! serve block after block and are never zeroed again.

use std::sync::Mutex;

use bytes::Bytes;
use swarm_wire::peer::BLOCK_LEN;

/// Free buffers the pool keeps at most (a buffer freed when it is full is
/// released): 128 × 16 KiB = 2 MiB, as much as the verify backlog holds.
/// Blocks in use are not counted here: they are bounded where they are
/// held (the verify backlog, the peer channels, the send buffers).
pub const BLOCK_POOL_MAX: usize = 128;

static POOL: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// A buffer of `len` bytes (contents unspecified: the caller overwrites all
/// of them). Full-size blocks come from the pool when it has one.
pub(crate) fn buffer(len: usize) -> Vec<u8> {
    if len == BLOCK_LEN as usize
        && let Some(v) = POOL.lock().unwrap_or_else(|e| e.into_inner()).pop()
    {
        return v;
    }
    vec![0; len]
}

/// `data` as a [`Bytes`] that returns its buffer to the pool when dropped.
pub(crate) fn freeze(data: Vec<u8>) -> Bytes {
    Bytes::from_owner(Pooled(data))
}

/// A copy of `data` in a pooled buffer.
pub(crate) fn copy_of(data: &[u8]) -> Bytes {
    let mut v = buffer(data.len());
    v.copy_from_slice(data);
    freeze(v)
}

struct Pooled(Vec<u8>);

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if self.0.len() == BLOCK_LEN as usize {
            let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
            if pool.len() < BLOCK_POOL_MAX {
                pool.push(std::mem::take(&mut self.0));
            }
        }
    }
}

/// Free buffers in the pool now.
pub fn pooled() -> usize {
    POOL.lock().unwrap_or_else(|e| e.into_inner()).len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_block_is_reused_and_the_pool_is_bounded() {
        // Other tests in this binary use the pool too: count only our own
        // buffers by their addresses.
        let blocks: Vec<Bytes> = (0..BLOCK_POOL_MAX + 10)
            .map(|i| copy_of(&vec![i as u8; BLOCK_LEN as usize]))
            .collect();
        for (i, b) in blocks.iter().enumerate() {
            assert_eq!(b.len(), BLOCK_LEN as usize);
            assert!(b.iter().all(|&x| x == i as u8));
        }
        let addrs: Vec<usize> = blocks.iter().map(|b| b.as_ptr() as usize).collect();
        let clone = blocks[0].clone();
        drop(blocks);
        assert!(pooled() <= BLOCK_POOL_MAX);
        // The first block is still referenced: it is not handed out again.
        let again = copy_of(&vec![0xAB; BLOCK_LEN as usize]);
        assert_ne!(again.as_ptr(), clone.as_ptr());
        assert!(clone.iter().all(|&x| x == 0));
        assert!(again.iter().all(|&x| x == 0xAB));
        // A freed one is (the pool held some of ours).
        assert!(addrs.contains(&(again.as_ptr() as usize)));
        // A short block (a piece's last) is never pooled or taken from it.
        let short = copy_of(&[7; 100]);
        assert_eq!(&short[..], &[7; 100][..]);
    }
}
