//! A small seeded generator for what a plugin draws from its configuration's seed (weight
//! initialisation, sampling), the same on every platform; the test kit's `Rng` builds on it.

/// SplitMix64 (Steele, Lea and Flood), with uniform and Box-Muller normal draws.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in the open interval (0, 1): never 0, so its logarithm is finite.
    pub fn open_unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A standard normal draw (Box-Muller on two open-interval uniforms).
    pub fn normal(&mut self) -> f32 {
        let (u, v) = (self.open_unit(), self.open_unit());
        ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values_and_ranges() {
        // The reference sequence of splitmix64 from seed 0.
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        let mut r = SplitMix64::new(9);
        for _ in 0..1000 {
            let (o, u) = (r.open_unit(), r.unit());
            assert!(o > 0.0 && o < 1.0 && (0.0..1.0).contains(&u));
            assert!(r.normal().is_finite());
        }
    }
}
