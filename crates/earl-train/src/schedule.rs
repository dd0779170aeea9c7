//! Learning-rate schedule: linear warm-up, then a half cosine down to a floor — the shape of
//! HF's `cosine_with_min_lr`, which the upstream SFT script uses. Step `s` is the 0-based index
//! of the optimizer step about to run (HF steps its scheduler after the optimizer).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CosineSchedule {
    pub peak_lr: f64,
    pub min_lr: f64,
    pub warmup_steps: u64,
    pub total_steps: u64,
}

impl CosineSchedule {
    pub fn lr(&self, step: u64) -> f64 {
        if step < self.warmup_steps {
            return self.peak_lr * step as f64 / self.warmup_steps as f64;
        }
        let decay_steps = self.total_steps.saturating_sub(self.warmup_steps).max(1);
        let progress = ((step - self.warmup_steps) as f64 / decay_steps as f64).min(1.0);
        let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
        self.min_lr + (self.peak_lr - self.min_lr) * cosine
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warms_up_then_decays_to_the_floor() {
        let s = CosineSchedule {
            peak_lr: 1e-4,
            min_lr: 1e-5,
            warmup_steps: 30,
            total_steps: 130,
        };
        assert_eq!(s.lr(0), 0.0);
        assert!((s.lr(15) - 5e-5).abs() < 1e-12);
        assert!((s.lr(30) - 1e-4).abs() < 1e-12);
        assert!((s.lr(80) - 5.5e-5).abs() < 1e-12);
        assert!((s.lr(130) - 1e-5).abs() < 1e-12);
        assert!((s.lr(500) - 1e-5).abs() < 1e-12);
    }
}
