//! The revocation generation of this process: a counter bumped whenever a node
//! certificate stops being good (revoked, its node destroyed). The gateway keeps its
//! verdict on a client certificate per TLS connection ([`crate::gateway`]) and trusts it
//! only while the generation it was read under is still current, so a revocation made by
//! this process is seen by the very next request. Another replica's revocation is not
//! counted here: the verdict also expires after a few seconds, which bounds that delay.

use std::sync::atomic::{AtomicU64, Ordering};

static GENERATION: AtomicU64 = AtomicU64::new(0);

/// The current generation. Read it *before* reading a certificate's status, so a
/// revocation committed meanwhile makes the verdict stale.
pub fn generation() -> u64 {
    GENERATION.load(Ordering::Acquire)
}

/// Call after a revocation is committed (autocommit, or after the transaction): every
/// verdict read before now is stale.
pub fn bump() {
    GENERATION.fetch_add(1, Ordering::AcqRel);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bump_moves_the_generation() {
        let g = generation();
        bump();
        assert!(generation() > g);
    }
}
