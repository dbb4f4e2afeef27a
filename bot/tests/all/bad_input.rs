//! Bad audio files give a clear error or an empty transcript, never a panic: truncated Ogg,
//! garbage, unsupported sample formats, empty files. A truncated file still yields what came
//! before the cut.

use parley_bot::audio::file::{AudioFile, FileFrame};
use parley_bot::connector::replay::{Pace, ReplayConnector};

use crate::common;

use common::testdata;

fn open_err(bytes: &[u8], name: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).expect("write");
    let tracks = ReplayConnector::discover(&[path]).expect("discover");
    match ReplayConnector::start(tracks, Pace::Unpaced, 0) {
        Ok(_) => panic!("{name} was accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn empty_garbage_and_unknown_files_are_refused_with_a_reason() {
    assert!(open_err(b"", "empty.opus").contains("the file is empty"));
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    assert!(open_err(&garbage, "garbage.opus").contains("unsupported audio file"));
    let mut fake_ogg = b"OggS".to_vec();
    fake_ogg.extend_from_slice(&garbage);
    let err = open_err(&fake_ogg, "fake.ogg");
    assert!(err.contains("fake.ogg"), "{err}");
}

#[test]
fn unsupported_wav_formats_are_refused_with_a_reason() {
    // A WAV header for 64-bit float samples, which we do not read.
    let mut wav = Vec::new();
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36u32 + 16).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&3u16.to_le_bytes()); // IEEE float
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&16_000u32.to_le_bytes());
    wav.extend_from_slice(&(16_000u32 * 8).to_le_bytes());
    wav.extend_from_slice(&8u16.to_le_bytes());
    wav.extend_from_slice(&64u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&[0; 16]);
    let err = open_err(&wav, "double.wav");
    assert!(
        err.contains("double.wav") && (err.contains("bad WAV") || err.contains("unsupported")),
        "{err}"
    );
}

#[test]
fn a_truncated_ogg_reads_up_to_the_cut_then_says_so() {
    let bytes = std::fs::read(testdata("meeting-dev/maria.opus")).expect("read");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("maria.opus");
    std::fs::write(&path, &bytes[..bytes.len() * 2 / 5 + 7]).expect("write");
    let mut file = AudioFile::open(&path).expect("the head is fine");
    let mut last = 0;
    let err = loop {
        match file.next_frame() {
            Ok(Some(FileFrame::Opus { pos, .. })) => last = pos,
            Ok(Some(FileFrame::Pcm { .. })) => unreachable!("an Opus file"),
            Ok(None) => break None,
            Err(e) => break Some(e.to_string()),
        }
    };
    // About 40 % of 94 s was read before the cut.
    assert!(last / 48 > 30_000, "only {} ms read", last / 48);
    if let Some(e) = err {
        assert!(e.contains("maria.opus") && e.contains("ends early"), "{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_track_still_transcribes_what_came_before_the_cut() {
    let bytes = std::fs::read(testdata("meeting-dev/maria.opus")).expect("read");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("maria.opus"), &bytes[..bytes.len() / 4]).expect("write");
    let (run, _pool) = common::replay(
        &common::tiny_model(),
        &[dir.path().to_path_buf()],
        Pace::Unpaced,
        common::offline(),
    )
    .await;
    let text = run
        .transcript()
        .render(parley_shared::transcript::TranscriptFormat::Txt)
        .to_lowercase();
    assert!(text.contains("billing migration"), "{text}");
}
