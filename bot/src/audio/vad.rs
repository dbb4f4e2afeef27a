//! Voice gate: a neural voice-activity score per 16 ms frame (earshot), smoothed with onset and
//! release hysteresis. Whisper never sees what this gate calls silence: fed silence, it invents
//! text ("Thank you for watching") and an agreement policy stops committing.

/// Samples per VAD frame at 16 kHz (16 ms), fixed by the detector.
pub const FRAME: usize = 256;

#[derive(Debug, Clone, Copy)]
pub struct VadConfig {
    /// Score at or above which a frame counts as voiced.
    pub threshold: f32,
    /// Voiced frames in a row needed to open the gate: one noisy frame is not speech.
    pub onset_frames: u32,
    /// Frames quieter than this RMS are silence whatever the network says (digital zero, hiss).
    pub min_rms: f32,
}

impl Default for VadConfig {
    fn default() -> Self {
        Self {
            threshold: 0.5,
            onset_frames: 2,
            min_rms: 0.002,
        }
    }
}

/// Per-frame decision.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Frame {
    pub voiced: bool,
    /// The frame sounds voiced but the gate is not open yet: speech may be starting again.
    pub opening: bool,
    pub score: f32,
    pub rms: f32,
}

pub struct VoiceGate {
    config: VadConfig,
    detector: Box<earshot::Detector>,
    run: u32,
    open: bool,
}

impl std::fmt::Debug for VoiceGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VoiceGate")
            .field("open", &self.open)
            .finish()
    }
}

impl VoiceGate {
    pub fn new(config: VadConfig) -> Self {
        Self {
            config,
            detector: earshot::Detector::default_boxed(),
            run: 0,
            open: false,
        }
    }

    /// Classifies one frame of exactly [`FRAME`] samples (the caller does the framing, so it
    /// knows each frame's position).
    pub fn classify(&mut self, frame: &[f32]) -> Frame {
        let rms = (frame.iter().map(|s| s * s).sum::<f32>() / frame.len().max(1) as f32).sqrt();
        let score = if frame.len() == FRAME {
            self.detector.predict_f32(frame)
        } else {
            0.0
        };
        let voiced_now = score >= self.config.threshold && rms >= self.config.min_rms;
        if voiced_now {
            self.run += 1;
            if self.run >= self.config.onset_frames {
                self.open = true;
            }
        } else {
            self.run = 0;
            self.open = false;
        }
        Frame {
            voiced: self.open,
            opening: voiced_now && !self.open,
            score,
            rms,
        }
    }

    /// Forgets history (after a discontinuity in the track).
    pub fn reset(&mut self) {
        self.detector.reset();
        self.run = 0;
        self.open = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_and_faint_noise_are_not_speech() {
        let mut gate = VoiceGate::new(VadConfig::default());
        let silence = vec![0.0f32; 16_000];
        // Deterministic white-ish noise around -50 dBFS.
        let mut x: u32 = 12345;
        let noise: Vec<f32> = (0..16_000)
            .map(|_| {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                ((x >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 0.006
            })
            .collect();
        let voiced = silence
            .chunks_exact(FRAME)
            .chain(noise.chunks_exact(FRAME))
            .filter(|f| gate.classify(f).voiced)
            .count();
        assert_eq!(
            voiced, 0,
            "{voiced} voiced frames in silence and faint noise"
        );
    }

    #[test]
    fn a_wrong_sized_frame_is_silence_not_a_panic() {
        let mut gate = VoiceGate::new(VadConfig::default());
        assert!(!gate.classify(&[0.5; 100]).voiced);
    }
}
