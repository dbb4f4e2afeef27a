//! Streaming conversion of mono audio at any rate to Whisper's 16 kHz (rubato's FFT resampler),
//! with the resampler's delay removed so sample positions keep meaning meeting time.

use super::ASR_RATE;
use rubato::audioadapter_buffers::direct::SequentialSliceOfVecs;
use rubato::{Fft, FixedSync, Resampler};

#[derive(Debug, thiserror::Error)]
pub enum ResampleError {
    #[error("unsupported sample rate {0} Hz (expected 8000 to 192000)")]
    Rate(u32),
    #[error("resampler failed: {0}")]
    Rubato(String),
}

pub struct To16k {
    inner: Option<Inner>,
}

struct Inner {
    fft: Fft<f32>,
    chunk: usize,
    pending: Vec<f32>,
    input: Vec<Vec<f32>>,
    output: Vec<Vec<f32>>,
    /// Output samples still to drop at the start (the resampler's delay).
    skip: usize,
    /// Input samples pushed, and output samples produced (after the skip): the flush needs both.
    pushed: u64,
    produced: u64,
    ratio: f64,
}

impl std::fmt::Debug for To16k {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("To16k")
            .field("passthrough", &self.inner.is_none())
            .finish()
    }
}

impl To16k {
    pub fn new(rate: u32) -> Result<Self, ResampleError> {
        if !(8_000..=192_000).contains(&rate) {
            return Err(ResampleError::Rate(rate));
        }
        if rate == ASR_RATE {
            return Ok(Self { inner: None });
        }
        let chunk = (rate / 50) as usize;
        let fft = Fft::<f32>::new(rate as usize, ASR_RATE as usize, chunk, 1, FixedSync::Input)
            .map_err(|e| ResampleError::Rubato(e.to_string()))?;
        let skip = fft.output_delay();
        let out_max = fft.output_frames_max();
        Ok(Self {
            inner: Some(Inner {
                fft,
                chunk,
                pending: Vec::with_capacity(chunk * 2),
                input: vec![vec![0.0; chunk]],
                output: vec![vec![0.0; out_max]],
                skip,
                pushed: 0,
                produced: 0,
                ratio: f64::from(ASR_RATE) / f64::from(rate),
            }),
        })
    }

    /// Appends the 16 kHz output for `samples` to `out`.
    pub fn push(&mut self, samples: &[f32], out: &mut Vec<f32>) -> Result<(), ResampleError> {
        let Some(inner) = self.inner.as_mut() else {
            out.extend_from_slice(samples);
            return Ok(());
        };
        inner.pushed += samples.len() as u64;
        inner.pending.extend_from_slice(samples);
        let mut start = 0;
        while inner.pending.len() - start >= inner.chunk {
            inner.input[0].copy_from_slice(&inner.pending[start..start + inner.chunk]);
            inner.run(out)?;
            start += inner.chunk;
        }
        inner.pending.drain(..start);
        Ok(())
    }

    /// Pushes silence through so every input sample has its output, up to the exact length.
    pub fn flush(&mut self, out: &mut Vec<f32>) -> Result<(), ResampleError> {
        let Some(inner) = self.inner.as_mut() else {
            return Ok(());
        };
        let want = (inner.pushed as f64 * inner.ratio).round() as u64;
        let mut guard = 0;
        while inner.produced < want && guard < 64 {
            let fill = inner.chunk - inner.pending.len().min(inner.chunk);
            inner.pending.extend(std::iter::repeat_n(0.0, fill));
            inner.input[0].copy_from_slice(&inner.pending[..inner.chunk]);
            inner.pending.clear();
            let before = out.len();
            inner.run(out)?;
            let excess = (inner.produced.saturating_sub(want)) as usize;
            out.truncate(out.len() - excess.min(out.len() - before));
            guard += 1;
        }
        inner.produced = 0;
        inner.pushed = 0;
        Ok(())
    }
}

impl Inner {
    fn run(&mut self, out: &mut Vec<f32>) -> Result<(), ResampleError> {
        let input = SequentialSliceOfVecs::new(&self.input, 1, self.chunk)
            .map_err(|e| ResampleError::Rubato(e.to_string()))?;
        let frames = self.output[0].len();
        let mut output = SequentialSliceOfVecs::new_mut(&mut self.output, 1, frames)
            .map_err(|e| ResampleError::Rubato(e.to_string()))?;
        let (_, produced) = self
            .fft
            .process_into_buffer(&input, &mut output, None)
            .map_err(|e| ResampleError::Rubato(e.to_string()))?;
        let drop = self.skip.min(produced);
        self.skip -= drop;
        out.extend_from_slice(&self.output[0][drop..produced]);
        self.produced += (produced - drop) as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u32, secs: f32, hz: f32) -> Vec<f32> {
        (0..(rate as f32 * secs) as usize)
            .map(|i| (i as f32 * hz * std::f32::consts::TAU / rate as f32).sin())
            .collect()
    }

    #[test]
    fn keeps_length_and_alignment_for_common_rates() {
        for rate in [48_000u32, 44_100, 22_050, 8_000] {
            let input = tone(rate, 1.0, 300.0);
            let mut r = To16k::new(rate).expect("resampler");
            let mut out = Vec::new();
            for chunk in input.chunks(777) {
                r.push(chunk, &mut out).expect("push");
            }
            r.flush(&mut out).expect("flush");
            assert!(
                (out.len() as i64 - 16_000).abs() <= 1,
                "{rate}: {} samples",
                out.len()
            );
            // A 300 Hz sine resampled without delay lines up with the ideal one.
            let ideal = tone(16_000, 1.0, 300.0);
            let err: f32 = out[2000..14_000]
                .iter()
                .zip(&ideal[2000..14_000])
                .map(|(a, b)| (a - b).abs())
                .sum::<f32>()
                / 12_000.0;
            assert!(err < 0.05, "{rate}: mean error {err}");
        }
    }

    #[test]
    fn rejects_absurd_rates() {
        assert!(To16k::new(0).is_err());
        assert!(To16k::new(1_000_000).is_err());
    }
}
