//! Device synchronisation and per-stage timers: the one timing interface the pipeline uses to
//! report denoise and decode time per chunk.

use std::time::{Duration, Instant};

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::DeviceError;

/// Waits until all work queued on `device` has finished.
pub fn sync(device: &Device) -> Result<(), DeviceError> {
    device
        .sync()
        .map_err(|err| DeviceError::Execution(format!("{err:?}")))
}

/// Wall-clock durations of named stages, in the order they were first recorded.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    stages: Vec<(String, Duration)>,
}

impl Timings {
    /// Adds `elapsed` to `stage`.
    pub fn add(&mut self, stage: &str, elapsed: Duration) {
        match self.stages.iter_mut().find(|(name, _)| name == stage) {
            Some((_, total)) => *total += elapsed,
            None => self.stages.push((stage.to_string(), elapsed)),
        }
    }

    /// Total time of one stage (zero if it never ran).
    pub fn get(&self, stage: &str) -> Duration {
        self.stages
            .iter()
            .find(|(name, _)| name == stage)
            .map(|(_, d)| *d)
            .unwrap_or_default()
    }

    /// Sum over all stages.
    pub fn total(&self) -> Duration {
        self.stages.iter().map(|(_, d)| *d).sum()
    }

    /// Stages in first-recorded order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Duration)> {
        self.stages.iter().map(|(n, d)| (n.as_str(), *d))
    }

    /// Adds every stage of `other` into `self`.
    pub fn merge(&mut self, other: &Timings) {
        for (name, d) in other.iter() {
            self.add(name, d);
        }
    }
}

/// Times stages on one device: each measurement synchronises the device before reading the
/// clock, so queued GPU work is charged to the stage that queued it.
#[derive(Clone, Debug)]
pub struct StageTimer {
    device: Device,
    timings: Timings,
}

impl StageTimer {
    /// A timer for `device`.
    pub fn new(device: &Device) -> Self {
        StageTimer {
            device: device.clone(),
            timings: Timings::default(),
        }
    }

    /// Runs `work`, waits for the device, and charges the elapsed time to `stage`.
    pub fn time<R>(&mut self, stage: &str, work: impl FnOnce() -> R) -> Result<R, DeviceError> {
        sync(&self.device)?;
        let start = Instant::now();
        let out = work();
        sync(&self.device)?;
        self.timings.add(stage, start.elapsed());
        Ok(out)
    }

    /// The durations so far.
    pub fn timings(&self) -> &Timings {
        &self.timings
    }

    /// Returns the durations so far and starts over.
    pub fn take(&mut self) -> Timings {
        std::mem::take(&mut self.timings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Tensor;

    #[test]
    fn stages_accumulate_in_order() {
        let mut t = Timings::default();
        t.add("denoise", Duration::from_millis(5));
        t.add("decode", Duration::from_millis(2));
        t.add("denoise", Duration::from_millis(5));
        assert_eq!(t.get("denoise"), Duration::from_millis(10));
        assert_eq!(t.get("missing"), Duration::ZERO);
        assert_eq!(t.total(), Duration::from_millis(12));
        let names: Vec<&str> = t.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["denoise", "decode"]);
    }

    #[test]
    fn timer_measures_device_work() {
        let device = Device::flex();
        let mut timer = StageTimer::new(&device);
        let sum = timer
            .time("matmul", || {
                let a = Tensor::<2>::ones([64, 64], &device);
                a.clone().matmul(a).sum().into_scalar::<f32>()
            })
            .unwrap();
        assert_eq!(sum, 64.0 * 64.0 * 64.0);
        std::thread::sleep(Duration::from_millis(1));
        timer
            .time("sleep", || std::thread::sleep(Duration::from_millis(20)))
            .unwrap();
        assert!(timer.timings().get("sleep") >= Duration::from_millis(20));
        let taken = timer.take();
        assert_eq!(taken.iter().count(), 2);
        assert_eq!(timer.timings().total(), Duration::ZERO);
    }
}
