//! Python's `random.seed(n)` followed by `random.shuffle(x)`, draw for draw, so that a split can
//! be the one the paper's code draws (`random.seed(seed); random.shuffle(pairs)`).
//!
//! Python seeds its Mersenne Twister (MT19937, from `rand_mt`) with `init_by_array` over the
//! 32-bit words of `abs(n)`, least significant first (`[0]` for 0). `shuffle` swaps, for `i` from
//! `len - 1` down to 1, `x[i]` with `x[j]`, `j = randbelow(i + 1)`; `randbelow(n)` takes
//! `k = n.bit_length()` bits of the next 32-bit output (`getrandbits(k)`: the output shifted right
//! by `32 - k`) until the value is below `n`.

use rand_mt::Mt;

/// The generator `random.seed(seed)` leaves.
fn seeded(seed: u64) -> Mt {
    let (low, high) = (seed as u32, (seed >> 32) as u32);
    let key: Vec<u32> = if high == 0 { vec![low] } else { vec![low, high] };
    Mt::new_with_key(key)
}

/// `random.getrandbits(k)` for `1 <= k <= 32`.
fn getrandbits(mt: &mut Mt, k: u32) -> u32 {
    mt.next_u32() >> (32 - k)
}

/// `random._randbelow(n)` for `1 <= n <= 2^32`.
fn randbelow(mt: &mut Mt, n: u64) -> u64 {
    let k = u64::BITS - n.leading_zeros();
    loop {
        let r = u64::from(getrandbits(mt, k));
        if r < n {
            return r;
        }
    }
}

/// Shuffles `items` as `random.seed(seed); random.shuffle(items)` does in Python 3 (for lists of
/// up to 2^32 items).
pub(crate) fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut mt = seeded(seed);
    for i in (1..items.len()).rev() {
        let j = randbelow(&mut mt, i as u64 + 1) as usize;
        items.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Reference values printed by CPython 3.11: `random.seed(0); [random.getrandbits(32) for _
    // in range(3)]`, and `random.shuffle(list(range(10)))` after `random.seed(0)` and
    // `random.seed(2**40 + 7)`. tests/python_split.rs compares whole splits with python3 itself.
    #[test]
    fn draws_and_shuffles_as_cpython() {
        let mut mt = seeded(0);
        let words: Vec<u32> = (0..3).map(|_| getrandbits(&mut mt, 32)).collect();
        assert_eq!(words, [3_626_764_237, 1_654_615_998, 3_255_389_356]);
        let mut x: Vec<u32> = (0..10).collect();
        shuffle(&mut x, 0);
        assert_eq!(x, [7, 8, 1, 5, 3, 4, 2, 0, 9, 6]);
        let mut x: Vec<u32> = (0..10).collect();
        shuffle(&mut x, (1 << 40) + 7);
        assert_eq!(x, [0, 5, 2, 3, 6, 1, 8, 4, 7, 9]);
    }
}
