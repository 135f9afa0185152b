//! Learning-rate schedules.

/// The learning rate as a function of the step count.
///
/// The Gumbel-Softmax paper's official notebook starts Adam at `1e-3` and multiplies
/// the rate by `0.9` every `1000` steps: `StepDecay { initial: 1e-3, factor: 0.9,
/// every: 1000 }`.
///
/// ```
/// use gumbelgrad::optim::LearningRateSchedule;
/// let schedule = LearningRateSchedule::StepDecay { initial: 1e-3, factor: 0.9, every: 1000 };
/// assert_eq!(schedule.rate_at(999), 1e-3);
/// assert!((schedule.rate_at(1000) - 0.9e-3).abs() < 1e-15);
/// assert!((schedule.rate_at(2500) - 0.81e-3).abs() < 1e-15);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LearningRateSchedule {
    /// The same rate throughout.
    Constant(f64),
    /// `initial * factor ^ floor(step / every)`.
    StepDecay {
        /// The rate at step 0.
        initial: f64,
        /// The factor applied every `every` steps.
        factor: f64,
        /// Steps between decays (0 means never decay).
        every: u64,
    },
}

impl LearningRateSchedule {
    /// The rate to use for step number `step` (counting from 0).
    pub fn rate_at(&self, step: u64) -> f64 {
        match *self {
            LearningRateSchedule::Constant(rate) => rate,
            LearningRateSchedule::StepDecay {
                initial,
                factor,
                every,
            } => {
                if every == 0 {
                    return initial;
                }
                let decays = (step / every).min(i32::MAX as u64) as i32;
                initial * factor.powi(decays)
            }
        }
    }
}
