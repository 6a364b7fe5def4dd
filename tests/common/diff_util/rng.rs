//! The seeded PRNG of the generators: SplitMix64, with the helpers that draw
//! picks, small blobs and batch lengths.

/// SplitMix64: tiny, seedable, identical on every platform.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: usize, den: usize) -> bool {
        self.below(den) < num
    }

    pub fn pick<T: Clone>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())].clone()
    }

    pub fn bool(&mut self) -> bool {
        self.next_u64() & 1 == 1
    }

    /// A small byte string (often empty, values from a tiny alphabet so that
    /// equal values occur).
    pub fn blob(&mut self) -> Vec<u8> {
        let len = self.pick(&[0usize, 0, 1, 1, 2, 3, 5]);
        (0..len).map(|_| self.pick(&[0u8, 1, 2, 255])).collect()
    }

    /// Length of a generated batch: usually 0..=4, rarely large (crossing
    /// SqliteStore's chunk sizes of 100/190/500/900 rows, with duplicates).
    pub fn batch_len(&mut self) -> usize {
        if self.chance(1, 40) {
            self.pick(&[101usize, 191, 250, 950])
        } else {
            self.below(5)
        }
    }
}
