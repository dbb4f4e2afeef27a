//! Reading one speaker's track from a file: Ogg/Opus (packets kept as they are, so the replay
//! path decodes them like RTP) or WAV (any rate, mono or stereo, integer or float samples).
//! Streams from disk: a three-hour file costs no more memory than a three-second one.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// How much of an Ogg file's end is scanned for the last page, to learn its duration.
const TAIL_SCAN: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: unsupported audio file (expected Ogg/Opus or WAV)")]
    Unsupported { path: String },
    #[error("{path}: {reason}")]
    Invalid { path: String, reason: String },
}

/// One unit of a track, positioned on the track's own clock.
#[derive(Debug, Clone, PartialEq)]
pub enum FileFrame {
    /// An Opus packet starting at `pos` (48 kHz samples from the start of the file).
    Opus { pos: u64, payload: Vec<u8> },
    /// PCM at the file's rate starting at `pos` (samples at that rate).
    Pcm { pos: u64, samples: Vec<f32> },
}

pub struct AudioFile {
    path: String,
    inner: Inner,
    duration_ms: Option<u64>,
}

enum Inner {
    Ogg {
        reader: ogg::reading::PacketReader<BufReader<File>>,
        serial: u32,
        pos: u64,
        done: bool,
    },
    Wav {
        reader: hound::WavReader<BufReader<File>>,
        channels: usize,
        rate: u32,
        pos: u64,
        scale: f32,
        float: bool,
    },
}

impl std::fmt::Debug for AudioFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioFile")
            .field("path", &self.path)
            .field("duration_ms", &self.duration_ms)
            .finish()
    }
}

impl AudioFile {
    pub fn open(path: &Path) -> Result<Self, FileError> {
        let shown = path.display().to_string();
        let io = |source| FileError::Io {
            path: shown.clone(),
            source,
        };
        let invalid = |reason: String| FileError::Invalid {
            path: shown.clone(),
            reason,
        };
        let mut file = File::open(path).map_err(io)?;
        let mut magic = [0u8; 4];
        let got = file.read(&mut magic).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        match &magic[..got] {
            b"OggS" => {
                let duration_ms = ogg_duration_ms(&mut file).map_err(io)?;
                file.seek(SeekFrom::Start(0)).map_err(io)?;
                let mut reader = ogg::reading::PacketReader::new(BufReader::new(file));
                let head = reader
                    .read_packet()
                    .map_err(|e| invalid(format!("not a readable Ogg stream: {e}")))?;
                let head = head.ok_or_else(|| invalid("empty Ogg stream".into()))?;
                if !head.data.starts_with(b"OpusHead") || head.data.len() < 19 {
                    return Err(invalid("Ogg stream is not Opus (no OpusHead)".into()));
                }
                let channels = head.data[9];
                if channels == 0 || channels > 2 {
                    return Err(invalid(format!(
                        "Opus stream has {channels} channels; only mono and stereo are supported"
                    )));
                }
                let serial = head.stream_serial();
                Ok(Self {
                    path: shown,
                    inner: Inner::Ogg {
                        reader,
                        serial,
                        pos: 0,
                        done: false,
                    },
                    duration_ms,
                })
            }
            b"RIFF" => {
                let reader = hound::WavReader::new(BufReader::new(file))
                    .map_err(|e| invalid(format!("bad WAV file: {e}")))?;
                let spec = reader.spec();
                let float = match (spec.sample_format, spec.bits_per_sample) {
                    (hound::SampleFormat::Float, 32) => true,
                    (hound::SampleFormat::Int, 8 | 16 | 24 | 32) => false,
                    (format, bits) => {
                        return Err(invalid(format!(
                            "unsupported WAV sample format: {bits}-bit {format:?}"
                        )));
                    }
                };
                if spec.channels == 0 || !(8_000..=192_000).contains(&spec.sample_rate) {
                    return Err(invalid(format!(
                        "unsupported WAV layout: {} channels at {} Hz",
                        spec.channels, spec.sample_rate
                    )));
                }
                let duration_ms =
                    Some(u64::from(reader.duration()) * 1000 / u64::from(spec.sample_rate));
                let scale = if float {
                    1.0
                } else {
                    1.0 / (1u64 << (spec.bits_per_sample - 1)) as f32
                };
                Ok(Self {
                    path: shown,
                    inner: Inner::Wav {
                        reader,
                        channels: usize::from(spec.channels),
                        rate: spec.sample_rate,
                        pos: 0,
                        scale,
                        float,
                    },
                    duration_ms,
                })
            }
            [] => Err(invalid("the file is empty".into())),
            _ => Err(FileError::Unsupported { path: shown }),
        }
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// The sample rate of `FileFrame::Pcm` frames, or `None` for Opus (48 kHz packets).
    pub fn pcm_rate(&self) -> Option<u32> {
        match self.inner {
            Inner::Ogg { .. } => None,
            Inner::Wav { rate, .. } => Some(rate),
        }
    }

    /// Length of the track when the file says so.
    pub fn duration_ms(&self) -> Option<u64> {
        self.duration_ms
    }

    /// The next frame, `Ok(None)` at the end. A truncated or corrupt tail ends the track with an
    /// error after everything before it was returned.
    pub fn next_frame(&mut self) -> Result<Option<FileFrame>, FileError> {
        let path = &self.path;
        match &mut self.inner {
            Inner::Ogg {
                reader,
                serial,
                pos,
                done,
            } => loop {
                if *done {
                    return Ok(None);
                }
                let packet = match reader.read_packet() {
                    Ok(Some(p)) => p,
                    Ok(None) => return Ok(None),
                    Err(e) => {
                        *done = true;
                        return Err(FileError::Invalid {
                            path: path.clone(),
                            reason: format!("Ogg stream ends early: {e}"),
                        });
                    }
                };
                if packet.stream_serial() != *serial
                    || packet.data.starts_with(b"OpusTags")
                    || packet.data.is_empty()
                {
                    continue;
                }
                // A packet whose TOC libopus rejects still takes a slot; assume the usual 20 ms.
                let samples = opus::packet::get_nb_samples(&packet.data, 48_000)
                    .unwrap_or(960)
                    .clamp(120, 5760) as u64;
                let frame = FileFrame::Opus {
                    pos: *pos,
                    payload: packet.data,
                };
                *pos += samples;
                return Ok(Some(frame));
            },
            Inner::Wav {
                reader,
                channels,
                rate,
                pos,
                scale,
                float,
            } => {
                let want = (*rate / 50) as usize * *channels;
                let mut interleaved = Vec::with_capacity(want);
                let result: Result<(), hound::Error> = if *float {
                    reader
                        .samples::<f32>()
                        .take(want)
                        .try_for_each(|s| s.map(|v| interleaved.push(v)))
                } else {
                    reader
                        .samples::<i32>()
                        .take(want)
                        .try_for_each(|s| s.map(|v| interleaved.push(v as f32 * *scale)))
                };
                if let Err(e) = result {
                    return Err(FileError::Invalid {
                        path: path.clone(),
                        reason: format!("WAV data ends early: {e}"),
                    });
                }
                if interleaved.is_empty() {
                    return Ok(None);
                }
                let samples: Vec<f32> = interleaved
                    .chunks(*channels)
                    .map(|frame| frame.iter().sum::<f32>() / frame.len() as f32)
                    .collect();
                let frame = FileFrame::Pcm { pos: *pos, samples };
                if let FileFrame::Pcm { samples, .. } = &frame {
                    *pos += samples.len() as u64;
                }
                Ok(Some(frame))
            }
        }
    }
}

/// Reads the granule position of the last Ogg page: the stream's length in 48 kHz samples.
fn ogg_duration_ms(file: &mut File) -> std::io::Result<Option<u64>> {
    let len = file.seek(SeekFrom::End(0))?;
    let start = len.saturating_sub(TAIL_SCAN);
    file.seek(SeekFrom::Start(start))?;
    let mut tail = Vec::with_capacity((len - start) as usize);
    file.read_to_end(&mut tail)?;
    let Some(at) = tail.windows(4).rposition(|w| w == b"OggS") else {
        return Ok(None);
    };
    let Some(granule) = tail.get(at + 6..at + 14) else {
        return Ok(None);
    };
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(granule);
    let granule = u64::from_le_bytes(bytes);
    // -1 marks a page with no packet ending on it.
    Ok((granule != u64::MAX).then_some(granule / 48))
}

/// Decodes a whole file to 16 kHz mono through the same decoders the live path uses. Refuses
/// files longer than `max_ms` rather than filling memory.
pub fn read_16k(path: &Path, max_ms: u64) -> Result<Vec<f32>, FileError> {
    use super::jitter::{JitterConfig, RtpPacket};
    use super::track::{PcmTrack, RtpOpusTrack};
    let mut file = AudioFile::open(path)?;
    let invalid = |reason: String| FileError::Invalid {
        path: path.display().to_string(),
        reason,
    };
    if file.duration_ms().is_some_and(|d| d > max_ms) {
        return Err(invalid(format!("longer than {} s", max_ms / 1000)));
    }
    let mut chunks = Vec::new();
    let mut rtp: Option<RtpOpusTrack> = None;
    let mut pcm: Option<PcmTrack> = None;
    let mut seq = 0u16;
    while let Some(frame) = file.next_frame()? {
        match frame {
            FileFrame::Opus { pos, payload } => {
                let track = match &mut rtp {
                    Some(t) => t,
                    None => rtp.insert(
                        RtpOpusTrack::new(JitterConfig::default())
                            .map_err(|e| invalid(e.to_string()))?,
                    ),
                };
                seq = seq.wrapping_add(1);
                track.push(
                    RtpPacket {
                        seq,
                        timestamp: pos as u32,
                        payload,
                    },
                    pos / 48,
                );
                track
                    .poll(u64::MAX, &mut chunks)
                    .map_err(|e| invalid(e.to_string()))?;
            }
            FileFrame::Pcm { pos, samples } => {
                let rate = file.pcm_rate().unwrap_or(16_000);
                let track = match &mut pcm {
                    Some(t) => t,
                    None => pcm.insert(PcmTrack::new(rate).map_err(|e| invalid(e.to_string()))?),
                };
                track
                    .push(pos, &samples, &mut chunks)
                    .map_err(|e| invalid(e.to_string()))?;
            }
        }
        if chunks.iter().map(|c| c.samples.len() as u64).sum::<u64>() > super::ms_to_samples(max_ms)
        {
            return Err(invalid(format!("longer than {} s", max_ms / 1000)));
        }
    }
    if let Some(t) = &mut rtp {
        t.finish(&mut chunks).map_err(|e| invalid(e.to_string()))?;
    }
    if let Some(t) = &mut pcm {
        t.finish(&mut chunks).map_err(|e| invalid(e.to_string()))?;
    }
    let start = chunks.first().map_or(0, |c| c.start);
    let mut out = Vec::new();
    for c in chunks {
        let at = (c.start - start) as usize;
        if out.len() < at {
            out.resize(at, 0.0);
        }
        out.truncate(at);
        out.extend_from_slice(&c.samples);
    }
    Ok(out)
}
