//! A three-hour silent track: an empty transcript, in bounded memory and without handing
//! anything to Whisper. The test binary runs other tests at the same time, so the test runs its
//! body in a child process of the same binary, whose peak memory is its own.

use crate::common;

use parley_bot::connector::replay::Pace;

const HOURS: u64 = 3;

/// Writes an Ogg/Opus file of `frames` silent 20 ms frames without holding it in memory.
fn write_silent_opus(path: &std::path::Path, frames: u64) {
    let file = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    let mut w = ogg::writing::PacketWriter::new(file);
    let serial = 0x5eed;
    let mut head = b"OpusHead".to_vec();
    head.extend_from_slice(&[1, 1]);
    head.extend_from_slice(&312u16.to_le_bytes());
    head.extend_from_slice(&48_000u32.to_le_bytes());
    head.extend_from_slice(&[0, 0, 0]);
    w.write_packet(head, serial, ogg::writing::PacketWriteEndInfo::EndPage, 0)
        .expect("head");
    let mut tags = b"OpusTags".to_vec();
    tags.extend_from_slice(&6u32.to_le_bytes());
    tags.extend_from_slice(b"parley");
    tags.extend_from_slice(&0u32.to_le_bytes());
    w.write_packet(tags, serial, ogg::writing::PacketWriteEndInfo::EndPage, 0)
        .expect("tags");
    let mut enc =
        opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip).expect("encoder");
    let silent = enc.encode_vec_float(&[0.0; 960], 400).expect("encode");
    for i in 0..frames {
        let end = if i + 1 == frames {
            ogg::writing::PacketWriteEndInfo::EndStream
        } else if i % 50 == 49 {
            ogg::writing::PacketWriteEndInfo::EndPage
        } else {
            ogg::writing::PacketWriteEndInfo::NormalPacket
        };
        w.write_packet(silent.clone(), serial, end, (i + 1) * 960)
            .expect("packet");
    }
}

fn peak_rss_mb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM");
    line.split_whitespace()
        .nth(1)
        .and_then(|kb| kb.parse::<u64>().ok())
        .expect("kB")
        / 1024
}

/// Set in the child process that runs the test's body alone.
const CHILD: &str = "PARLEY_TEST_LONG_SILENCE_CHILD";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hours_of_silence_give_an_empty_transcript_in_bounded_memory() {
    if std::env::var_os(CHILD).is_some() {
        return replay_three_silent_hours().await;
    }
    let module = module_path!()
        .split_once("::")
        .map_or(module_path!(), |(_, m)| m);
    let name =
        format!("{module}::three_hours_of_silence_give_an_empty_transcript_in_bounded_memory");
    let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([name.as_str(), "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .output()
        .expect("run the test binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "the child failed:\n{stdout}\n{stderr}"
    );
}

async fn replay_three_silent_hours() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("quiet.opus");
    write_silent_opus(&path, HOURS * 3600 * 50);
    let (run, pool) = common::replay(
        &common::tiny_model(),
        &[path],
        Pace::Unpaced,
        common::offline(),
    )
    .await;
    assert!(run.transcript().segments.is_empty());
    assert_eq!(run.report.audio_ms / 1000, HOURS * 3600);
    assert_eq!(pool.stats().finals().decodes, 0, "silence reached Whisper");
    // Three hours at 16 kHz would be 690 MB as samples; the model and runtime need about 150.
    let peak = peak_rss_mb();
    assert!(peak < 400, "peak RSS {peak} MB");
}
