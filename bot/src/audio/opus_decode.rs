//! Opus decoding to 48 kHz mono with loss concealment: in-band FEC when the next packet is here,
//! packet-loss concealment otherwise. A packet libopus rejects is counted and concealed, never fatal.

use super::OPUS_RATE;

/// Longest Opus frame: 120 ms at 48 kHz.
const MAX_FRAME: usize = 5760;
/// 20 ms, the usual WebRTC frame, used for concealment until a real packet told us better.
const DEFAULT_FRAME: usize = 960;

pub struct OpusTrackDecoder {
    decoder: opus::Decoder,
    out: Vec<f32>,
    last_frame: usize,
    corrupt: u64,
    concealed: u64,
}

impl std::fmt::Debug for OpusTrackDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusTrackDecoder")
            .field("corrupt", &self.corrupt)
            .field("concealed", &self.concealed)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot create an Opus decoder: {0}")]
pub struct DecoderInitError(#[from] opus::Error);

impl OpusTrackDecoder {
    pub fn new() -> Result<Self, DecoderInitError> {
        // Mono output: libopus downmixes stereo streams itself.
        let decoder = opus::Decoder::new(OPUS_RATE, opus::Channels::Mono)?;
        Ok(Self {
            decoder,
            out: vec![0.0; MAX_FRAME],
            last_frame: DEFAULT_FRAME,
            corrupt: 0,
            concealed: 0,
        })
    }

    /// Packets libopus could not decode (each was concealed instead).
    pub fn corrupt_packets(&self) -> u64 {
        self.corrupt
    }

    /// Frames synthesised for lost or corrupt packets.
    pub fn concealed_frames(&self) -> u64 {
        self.concealed
    }

    /// Decodes one packet. An undecodable payload yields a concealed frame of the last size.
    pub fn decode(&mut self, payload: &[u8]) -> &[f32] {
        if payload.is_empty() {
            return self.conceal(None);
        }
        match self
            .decoder
            .decode_float(payload, &mut self.out[..MAX_FRAME], false)
        {
            Ok(n) if n > 0 => {
                self.last_frame = n;
                &self.out[..n]
            }
            _ => {
                self.corrupt += 1;
                self.conceal(None)
            }
        }
    }

    /// Synthesises the frame of a lost packet, from the next packet's FEC data when given.
    pub fn conceal(&mut self, fec: Option<&[u8]>) -> &[f32] {
        self.concealed += 1;
        let n = self.last_frame;
        if let Some(next) = fec
            && self
                .decoder
                .decode_float(next, &mut self.out[..n], true)
                .is_ok_and(|got| got == n)
        {
            return &self.out[..n];
        }
        match self.decoder.decode_float(&[], &mut self.out[..n], false) {
            Ok(got) if got > 0 => &self.out[..got],
            _ => {
                self.out[..n].fill(0.0);
                &self.out[..n]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone_packets(n: usize) -> Vec<Vec<u8>> {
        let mut enc = opus::Encoder::new(OPUS_RATE, opus::Channels::Mono, opus::Application::Voip)
            .expect("encoder");
        enc.set_inband_fec(true).expect("fec");
        enc.set_packet_loss_perc(10).expect("loss");
        (0..n)
            .map(|i| {
                let frame: Vec<f32> = (0..960)
                    .map(|t| {
                        ((i * 960 + t) as f32 * 440.0 * std::f32::consts::TAU / 48_000.0).sin()
                            * 0.5
                    })
                    .collect();
                enc.encode_vec_float(&frame, 4000).expect("encode")
            })
            .collect()
    }

    #[test]
    fn decodes_conceals_and_survives_garbage() {
        let packets = tone_packets(10);
        let mut dec = OpusTrackDecoder::new().expect("decoder");
        assert_eq!(dec.decode(&packets[0]).len(), 960);
        // FEC from the next packet rebuilds a lost one at full length.
        assert_eq!(dec.conceal(Some(&packets[2])).len(), 960);
        assert_eq!(dec.decode(&packets[2]).len(), 960);
        // Plain PLC.
        let plc = dec.conceal(None).to_vec();
        assert_eq!(plc.len(), 960);
        // Garbage: concealed, counted, no panic.
        assert_eq!(dec.decode(&[0xff; 3]).len(), 960);
        assert_eq!(dec.decode(&[0xfc, 0xff, 0xff, 0xff, 0xff]).len(), 960);
        assert!(dec.corrupt_packets() >= 1);
        let out = dec.decode(&packets[5]);
        assert!(
            out.iter().any(|s| s.abs() > 0.05),
            "real audio after garbage"
        );
    }
}
