//! Seed derivation.
//!
//! An experiment has one root seed. Every stage derives its own seed from the root seed and the
//! stage's *name* (not its position in the file), so adding, removing or reordering stages never
//! changes the seeds of the others. Sweep points are part of the expanded stage name, so each
//! point gets its own stream; seed repeat `r` (`@seed{root + r}`) derives from root + r and the
//! name without that suffix, so the first repeat has the seeds (and cache keys) of the
//! experiment run without repeats. The derivation is SplitMix64 over the root seed
//! mixed with an FNV-1a hash of the name: both are tiny, fixed, and written out here so the
//! numbers never depend on a crate's version.

/// FNV-1a 64-bit hash of a string (stable across platforms and versions).
pub fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// One SplitMix64 step: a well-mixed 64-bit value from any 64-bit input.
pub fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The seed of the stage called `name` in an experiment with root seed `root`.
pub fn derive(root: u64, name: &str) -> u64 {
    splitmix64(root ^ splitmix64(fnv1a(name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_seeds_depend_on_name_and_root_only() {
        assert_eq!(derive(0, "dense"), derive(0, "dense"));
        assert_ne!(derive(0, "dense"), derive(1, "dense"));
        assert_ne!(derive(0, "dense"), derive(0, "ticket"));
    }
}
