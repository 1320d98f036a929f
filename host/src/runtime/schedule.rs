//! The learning-rate schedule. The host owns it (plugins receive a learning
//! rate per step), so every model plugin gets the same, checkpointed schedule:
//! linear warm-up, then cosine decay to a floor, as nanoGPT does.

use serde::{Deserialize, Serialize};

/// How the learning rate evolves with the global step.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LrSchedule {
    /// Peak learning rate, reached at the end of warm-up.
    pub lr: f64,
    /// Floor the decay ends at.
    pub min_lr: f64,
    /// Steps of linear warm-up.
    pub warmup_steps: u64,
    /// Step at which the cosine decay reaches `min_lr` (0: no decay).
    pub decay_steps: u64,
}

impl Default for LrSchedule {
    fn default() -> Self {
        Self { lr: 6e-4, min_lr: 6e-5, warmup_steps: 100, decay_steps: 5000 }
    }
}

impl LrSchedule {
    /// The learning rate for `step` (0-based global step).
    pub fn lr_at(&self, step: u64) -> f64 {
        if step < self.warmup_steps {
            return self.lr * (step + 1) as f64 / (self.warmup_steps + 1) as f64;
        }
        if self.decay_steps == 0 {
            return self.lr;
        }
        if step > self.decay_steps {
            return self.min_lr;
        }
        let span = self.decay_steps.saturating_sub(self.warmup_steps).max(1) as f64;
        let ratio = (step - self.warmup_steps) as f64 / span;
        let coeff = 0.5 * (1.0 + (std::f64::consts::PI * ratio).cos());
        self.min_lr + coeff * (self.lr - self.min_lr)
    }

    /// Refuses schedules that cannot train.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(format!("lr must be a positive number, got {}", self.lr));
        }
        if !(self.min_lr.is_finite() && self.min_lr >= 0.0 && self.min_lr <= self.lr) {
            return Err(format!("min_lr must be between 0 and lr ({}), got {}", self.lr, self.min_lr));
        }
        if self.decay_steps != 0 && self.decay_steps < self.warmup_steps {
            return Err(format!(
                "decay_steps ({}) must be 0 or at least warmup_steps ({})",
                self.decay_steps, self.warmup_steps
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warms_up_then_decays_to_the_floor() {
        let s = LrSchedule { lr: 1.0, min_lr: 0.1, warmup_steps: 9, decay_steps: 109 };
        assert!((s.lr_at(0) - 0.1).abs() < 1e-12);
        assert!((s.lr_at(8) - 0.9).abs() < 1e-12);
        assert!((s.lr_at(9) - 1.0).abs() < 1e-12, "peak right after warm-up");
        assert!((s.lr_at(59) - 0.55).abs() < 1e-12, "half-way down the cosine");
        assert!((s.lr_at(109) - 0.1).abs() < 1e-12);
        assert_eq!(s.lr_at(10_000), 0.1);
        let mut last = f64::INFINITY;
        for step in 9..=109 {
            assert!(s.lr_at(step) <= last);
            last = s.lr_at(step);
        }
    }

    #[test]
    fn bad_schedules_are_refused() {
        assert!(LrSchedule { lr: 0.0, ..LrSchedule::default() }.validate().is_err());
        assert!(LrSchedule { min_lr: 1.0, lr: 0.5, ..LrSchedule::default() }.validate().is_err());
        assert!(LrSchedule { warmup_steps: 10, decay_steps: 5, ..LrSchedule::default() }.validate().is_err());
        LrSchedule::default().validate().unwrap();
    }
}
