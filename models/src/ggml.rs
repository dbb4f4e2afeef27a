//! Writes whisper.cpp's ggml model files and checks the structure of existing ones.

use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};

use super::ModelError;

/// `ggml` read as a little-endian u32; the file starts with the bytes `lmgg`.
pub const MAGIC: u32 = 0x6767_6d6c;

/// The eleven header fields, in file order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hparams {
    pub n_vocab: i32,
    pub n_audio_ctx: i32,
    pub n_audio_state: i32,
    pub n_audio_head: i32,
    pub n_audio_layer: i32,
    pub n_text_ctx: i32,
    pub n_text_state: i32,
    pub n_text_head: i32,
    pub n_text_layer: i32,
    pub n_mels: i32,
    pub ftype: i32,
}

/// whisper.cpp's own threshold: the multilingual vocabulary adds language tokens.
const MULTILINGUAL_VOCAB: i32 = 51865;

impl Hparams {
    fn to_array(self) -> [i32; 11] {
        [
            self.n_vocab,
            self.n_audio_ctx,
            self.n_audio_state,
            self.n_audio_head,
            self.n_audio_layer,
            self.n_text_ctx,
            self.n_text_state,
            self.n_text_head,
            self.n_text_layer,
            self.n_mels,
            self.ftype,
        ]
    }

    fn from_array(a: [i32; 11]) -> Hparams {
        Hparams {
            n_vocab: a[0],
            n_audio_ctx: a[1],
            n_audio_state: a[2],
            n_audio_head: a[3],
            n_audio_layer: a[4],
            n_text_ctx: a[5],
            n_text_state: a[6],
            n_text_head: a[7],
            n_text_layer: a[8],
            n_mels: a[9],
            ftype: a[10],
        }
    }

    pub fn is_multilingual(&self) -> bool {
        self.n_vocab >= MULTILINGUAL_VOCAB
    }

    /// Tensors whisper.cpp loads: 7 outside the encoder blocks and 15 per block, 4 outside the
    /// decoder blocks and 24 per block (cross-attention adds 9).
    pub fn expected_tensor_count(&self) -> usize {
        let layers = |n: i32| usize::try_from(n).unwrap_or(0);
        7 + 15 * layers(self.n_audio_layer) + 4 + 24 * layers(self.n_text_layer)
    }

    /// Rejects headers no Whisper model could have, so garbage is caught before whisper.cpp
    /// tries to allocate for it.
    pub fn check(&self) -> Result<(), ModelError> {
        let in_range = |what: &str, v: i32, max: i32| {
            if (1..=max).contains(&v) {
                Ok(())
            } else {
                Err(invalid(format!("{what} {v} is out of range")))
            }
        };
        in_range("n_vocab", self.n_vocab, 1 << 20)?;
        in_range("n_audio_ctx", self.n_audio_ctx, 1 << 16)?;
        in_range("n_text_ctx", self.n_text_ctx, 1 << 16)?;
        in_range("n_audio_state", self.n_audio_state, 1 << 14)?;
        in_range("n_text_state", self.n_text_state, 1 << 14)?;
        in_range("n_audio_layer", self.n_audio_layer, 256)?;
        in_range("n_text_layer", self.n_text_layer, 256)?;
        in_range("n_audio_head", self.n_audio_head, self.n_audio_state)?;
        in_range("n_text_head", self.n_text_head, self.n_text_state)?;
        in_range("n_mels", self.n_mels, 1024)?;
        if self.n_audio_state % self.n_audio_head != 0 || self.n_text_state % self.n_text_head != 0
        {
            return Err(invalid(
                "attention heads do not divide the width".to_owned(),
            ));
        }
        // Quantized files add 1000 × the quantization version to the file type.
        if !(0..64).contains(&(self.ftype % 1000)) || self.ftype < 0 {
            return Err(invalid(format!("ftype {} is out of range", self.ftype)));
        }
        Ok(())
    }
}

/// Storage types of ggml tensors as numbered in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgmlType {
    F32 = 0,
    F16 = 1,
}

/// Elements per block and bytes per block of the ggml types a whisper.cpp model may hold.
fn type_layout(ty: i32) -> Option<(u64, u64)> {
    match ty {
        0 => Some((1, 4)),   // f32
        1 => Some((1, 2)),   // f16
        2 => Some((32, 18)), // q4_0
        3 => Some((32, 20)), // q4_1
        6 => Some((32, 22)), // q5_0
        7 => Some((32, 24)), // q5_1
        8 => Some((32, 34)), // q8_0
        _ => None,
    }
}

/// Little-endian float data in one of the encodings a converter reads.
#[derive(Debug, Clone, Copy)]
pub enum Floats<'a> {
    F32(&'a [u8]),
    F16(&'a [u8]),
    Bf16(&'a [u8]),
}

impl<'a> Floats<'a> {
    fn bytes(&self) -> &'a [u8] {
        match *self {
            Floats::F32(b) | Floats::F16(b) | Floats::Bf16(b) => b,
        }
    }

    fn elem_size(&self) -> usize {
        match self {
            Floats::F32(_) => 4,
            Floats::F16(_) | Floats::Bf16(_) => 2,
        }
    }

    pub fn len(&self) -> usize {
        self.bytes().len() / self.elem_size()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Elements `start..end`, or `None` if that is out of range.
    pub fn slice(&self, start: usize, end: usize) -> Option<Floats<'a>> {
        let es = self.elem_size();
        let bytes = self
            .bytes()
            .get(start.checked_mul(es)?..end.checked_mul(es)?)?;
        Some(match self {
            Floats::F32(_) => Floats::F32(bytes),
            Floats::F16(_) => Floats::F16(bytes),
            Floats::Bf16(_) => Floats::Bf16(bytes),
        })
    }

    pub fn iter(&self) -> impl Iterator<Item = f32> + 'a {
        let kind = *self;
        self.bytes()
            .chunks_exact(self.elem_size())
            .map(move |c| match kind {
                Floats::F32(_) => f32::from_le_bytes([c[0], c[1], c[2], c[3]]),
                Floats::F16(_) => half::f16::from_le_bytes([c[0], c[1]]).to_f32(),
                Floats::Bf16(_) => half::bf16::from_le_bytes([c[0], c[1]]).to_f32(),
            })
    }
}

/// The mel filter bank stored after the header, `rows × cols` in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub struct MelFilters {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f32>,
}

/// Writes a ggml file front to back; tensors are converted chunk by chunk as they are written.
pub struct GgmlWriter<W: Write> {
    out: W,
    scratch: Vec<u8>,
    tensors: usize,
}

impl<W: Write> GgmlWriter<W> {
    /// Writes the header, the mel filters and the vocabulary.
    pub fn new(
        mut out: W,
        hparams: &Hparams,
        mel: &MelFilters,
        tokens: &[Vec<u8>],
    ) -> Result<Self, ModelError> {
        hparams.check()?;
        if mel.rows.checked_mul(mel.cols) != Some(mel.data.len()) {
            return Err(invalid(format!(
                "mel filters hold {} values, not {} × {}",
                mel.data.len(),
                mel.rows,
                mel.cols
            )));
        }
        let mut head = Vec::with_capacity(64 + mel.data.len() * 4);
        head.extend_from_slice(&MAGIC.to_le_bytes());
        for v in hparams.to_array() {
            head.extend_from_slice(&v.to_le_bytes());
        }
        head.extend_from_slice(&to_i32(mel.rows, "mel rows")?.to_le_bytes());
        head.extend_from_slice(&to_i32(mel.cols, "mel columns")?.to_le_bytes());
        for v in &mel.data {
            head.extend_from_slice(&v.to_le_bytes());
        }
        head.extend_from_slice(&to_i32(tokens.len(), "token count")?.to_le_bytes());
        for t in tokens {
            head.extend_from_slice(&to_i32(t.len(), "token length")?.to_le_bytes());
            head.extend_from_slice(t);
        }
        out.write_all(&head).map_err(write_error)?;
        Ok(GgmlWriter {
            out,
            scratch: Vec::new(),
            tensors: 0,
        })
    }

    /// Writes one tensor; `shape` is outermost first (numpy order) and is stored reversed, as
    /// ggml counts dimensions from the innermost.
    pub fn write_tensor(
        &mut self,
        name: &str,
        shape: &[usize],
        ty: GgmlType,
        data: Floats<'_>,
    ) -> Result<(), ModelError> {
        if shape.is_empty() || shape.len() > 4 {
            return Err(invalid(format!(
                "tensor {name} has {} dimensions",
                shape.len()
            )));
        }
        let elements = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if elements != Some(data.len()) {
            return Err(invalid(format!(
                "tensor {name} has {} values for shape {shape:?}",
                data.len()
            )));
        }
        let mut head = Vec::with_capacity(32 + name.len());
        head.extend_from_slice(&to_i32(shape.len(), "rank")?.to_le_bytes());
        head.extend_from_slice(&to_i32(name.len(), "name length")?.to_le_bytes());
        head.extend_from_slice(&(ty as i32).to_le_bytes());
        for &d in shape.iter().rev() {
            head.extend_from_slice(&to_i32(d, "dimension")?.to_le_bytes());
        }
        head.extend_from_slice(name.as_bytes());
        self.out.write_all(&head).map_err(write_error)?;

        match (ty, data) {
            (GgmlType::F32, Floats::F32(bytes)) | (GgmlType::F16, Floats::F16(bytes)) => {
                self.out.write_all(bytes).map_err(write_error)?;
            }
            _ => {
                const CHUNK: usize = 1 << 14;
                let mut values = data.iter().peekable();
                while values.peek().is_some() {
                    self.scratch.clear();
                    for v in values.by_ref().take(CHUNK) {
                        match ty {
                            GgmlType::F32 => self.scratch.extend_from_slice(&v.to_le_bytes()),
                            GgmlType::F16 => self
                                .scratch
                                .extend_from_slice(&half::f16::from_f32(v).to_le_bytes()),
                        }
                    }
                    self.out.write_all(&self.scratch).map_err(write_error)?;
                }
            }
        }
        self.tensors += 1;
        Ok(())
    }

    /// Returns the sink and how many tensors went into it.
    pub fn finish(mut self) -> Result<(W, usize), ModelError> {
        self.out.flush().map_err(write_error)?;
        Ok((self.out, self.tensors))
    }
}

fn to_i32(v: usize, what: &str) -> Result<i32, ModelError> {
    i32::try_from(v).map_err(|_| invalid(format!("{what} {v} does not fit the format")))
}

fn write_error(source: io::Error) -> ModelError {
    ModelError::Io {
        context: "cannot write ggml file".to_owned(),
        source,
    }
}

fn invalid(reason: String) -> ModelError {
    ModelError::InvalidGgml(reason)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    /// Innermost first, as stored.
    pub dims: Vec<usize>,
    pub ty: i32,
    /// Where the tensor's data starts in the file.
    pub offset: u64,
    pub len: u64,
}

#[derive(Debug, Clone)]
pub struct GgmlInfo {
    pub hparams: Hparams,
    pub mel_rows: usize,
    pub mel_cols: usize,
    pub n_tokens: usize,
    pub tensors: Vec<TensorInfo>,
    pub size: u64,
}

/// Walks a ggml file's whole structure without reading tensor data: header plausibility, mel
/// filters, vocabulary, and every tensor header, ending exactly at the end of the file. This
/// catches truncated downloads and files that are not whisper models at all.
pub fn inspect<R: Read + Seek>(reader: R) -> Result<GgmlInfo, ModelError> {
    let mut r = Walker::new(reader)?;
    if r.u32("magic")? != MAGIC {
        return Err(invalid("wrong magic, not a ggml file".to_owned()));
    }
    let mut fields = [0i32; 11];
    for f in &mut fields {
        *f = r.i32("header")?;
    }
    let hparams = Hparams::from_array(fields);
    hparams.check()?;

    let mel_rows = r.count("mel rows", 1024)?;
    let mel_cols = r.count("mel columns", 1 << 16)?;
    if mel_rows != usize::try_from(hparams.n_mels).unwrap_or(0) {
        return Err(invalid(format!(
            "{mel_rows} mel filter rows for {} mels",
            hparams.n_mels
        )));
    }
    r.skip(4 * (mel_rows * mel_cols) as u64, "mel filters")?;

    let n_tokens = r.count("token count", usize::try_from(hparams.n_vocab).unwrap_or(0))?;
    for _ in 0..n_tokens {
        let len = r.count("token length", 1 << 10)?;
        r.skip(len as u64, "token")?;
    }

    let mut tensors = Vec::new();
    while r.pos < r.size {
        let n_dims = r.count("tensor rank", 4)?;
        let name_len = r.count("tensor name length", 1 << 10)?;
        let ty = r.i32("tensor type")?;
        let (block, block_bytes) =
            type_layout(ty).ok_or_else(|| invalid(format!("unknown tensor type {ty}")))?;
        let mut dims = Vec::with_capacity(n_dims);
        for _ in 0..n_dims {
            dims.push(r.count("tensor dimension", 1 << 28)?);
        }
        let name = r.bytes(name_len, "tensor name")?;
        let name =
            String::from_utf8(name).map_err(|_| invalid("tensor name is not utf-8".into()))?;
        if n_dims == 0 || dims.contains(&0) {
            return Err(invalid(format!("tensor {name} is empty")));
        }
        let elements = dims.iter().map(|&d| d as u64).product::<u64>();
        if elements % block != 0 {
            return Err(invalid(format!("tensor {name} is not whole blocks")));
        }
        let len = elements / block * block_bytes;
        let offset = r.pos;
        r.skip(len, &format!("tensor {name}"))?;
        tensors.push(TensorInfo {
            name,
            dims,
            ty,
            offset,
            len,
        });
    }
    Ok(GgmlInfo {
        hparams,
        mel_rows,
        mel_cols,
        n_tokens,
        tensors,
        size: r.size,
    })
}

/// Reads forward through a ggml file, never past its end.
struct Walker<R> {
    inner: BufReader<R>,
    pos: u64,
    size: u64,
}

impl<R: Read + Seek> Walker<R> {
    fn new(mut reader: R) -> Result<Self, ModelError> {
        let size = reader
            .seek(SeekFrom::End(0))
            .and_then(|size| reader.rewind().map(|()| size))
            .map_err(read_error)?;
        Ok(Walker {
            inner: BufReader::with_capacity(1 << 16, reader),
            pos: 0,
            size,
        })
    }

    fn ensure(&self, n: u64, what: &str) -> Result<(), ModelError> {
        match self.pos.checked_add(n) {
            Some(end) if end <= self.size => Ok(()),
            _ => Err(invalid(format!(
                "file ends at byte {} while reading {what}",
                self.size
            ))),
        }
    }

    fn bytes(&mut self, n: usize, what: &str) -> Result<Vec<u8>, ModelError> {
        self.ensure(n as u64, what)?;
        let mut buf = vec![0; n];
        self.inner.read_exact(&mut buf).map_err(read_error)?;
        self.pos += n as u64;
        Ok(buf)
    }

    fn skip(&mut self, n: u64, what: &str) -> Result<(), ModelError> {
        self.ensure(n, what)?;
        let delta = i64::try_from(n).map_err(|_| invalid(format!("{what} is too large")))?;
        self.inner.seek_relative(delta).map_err(read_error)?;
        self.pos += n;
        Ok(())
    }

    fn u32(&mut self, what: &str) -> Result<u32, ModelError> {
        let b = self.bytes(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn i32(&mut self, what: &str) -> Result<i32, ModelError> {
        let b = self.bytes(4, what)?;
        Ok(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// An i32 that must be in `0..=max`.
    fn count(&mut self, what: &str, max: usize) -> Result<usize, ModelError> {
        let v = self.i32(what)?;
        match usize::try_from(v) {
            Ok(n) if n <= max => Ok(n),
            _ => Err(invalid(format!("{what} {v} is out of range"))),
        }
    }
}

fn read_error(source: io::Error) -> ModelError {
    ModelError::Io {
        context: "cannot read ggml file".to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn tiny_hparams() -> Hparams {
        Hparams {
            n_vocab: 10,
            n_audio_ctx: 3,
            n_audio_state: 4,
            n_audio_head: 2,
            n_audio_layer: 1,
            n_text_ctx: 2,
            n_text_state: 4,
            n_text_head: 2,
            n_text_layer: 1,
            n_mels: 2,
            ftype: 1,
        }
    }

    fn sample_file() -> Result<Vec<u8>, ModelError> {
        let mel = MelFilters {
            rows: 2,
            cols: 3,
            data: vec![0.0, 0.5, 1.0, 1.5, 2.0, 2.5],
        };
        let tokens = vec![b"a".to_vec(), b"".to_vec(), b"hello".to_vec()];
        let mut w = GgmlWriter::new(Vec::new(), &tiny_hparams(), &mel, &tokens)?;
        let f32s: Vec<u8> = [1.0f32, -2.0, 3.5, 0.25, 8.0, 9.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        w.write_tensor("a.weight", &[2, 3], GgmlType::F16, Floats::F32(&f32s))?;
        w.write_tensor("a.bias", &[3, 1], GgmlType::F32, Floats::F32(&f32s[..12]))?;
        let (bytes, n) = w.finish()?;
        assert_eq!(n, 2);
        Ok(bytes)
    }

    #[test]
    fn header_layout_is_exact() -> Result<(), ModelError> {
        let bytes = sample_file()?;
        assert_eq!(&bytes[..4], b"lmgg");
        let word =
            |i: usize| i32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        assert_eq!(word(4), 10);
        assert_eq!(word(44), 1);
        assert_eq!((word(48), word(52)), (2, 3));
        let tokens_at = 56 + 6 * 4;
        assert_eq!(word(tokens_at), 3);
        assert_eq!(word(tokens_at + 4), 1);
        assert_eq!(bytes[tokens_at + 8], b'a');
        let first_tensor = tokens_at + 4 + 5 + 4 + 9;
        // rank 2, name length 8, type f16, dims innermost first: 3 then 2.
        assert_eq!(
            [
                word(first_tensor),
                word(first_tensor + 4),
                word(first_tensor + 8)
            ],
            [2, 8, 1]
        );
        assert_eq!([word(first_tensor + 12), word(first_tensor + 16)], [3, 2]);
        assert_eq!(&bytes[first_tensor + 20..first_tensor + 28], b"a.weight");
        let data = first_tensor + 28;
        assert_eq!(
            half::f16::from_le_bytes([bytes[data + 2], bytes[data + 3]]).to_f32(),
            -2.0
        );
        Ok(())
    }

    #[test]
    fn inspect_round_trips() -> Result<(), ModelError> {
        let bytes = sample_file()?;
        let info = inspect(Cursor::new(&bytes))?;
        assert_eq!(info.hparams, tiny_hparams());
        assert_eq!((info.mel_rows, info.mel_cols, info.n_tokens), (2, 3, 3));
        assert_eq!(info.tensors.len(), 2);
        assert_eq!(info.tensors[0].name, "a.weight");
        assert_eq!(info.tensors[0].dims, vec![3, 2]);
        assert_eq!(info.tensors[0].len, 12);
        assert_eq!(info.tensors[1].dims, vec![1, 3]);
        assert_eq!(info.tensors[1].ty, 0);
        assert_eq!(info.size, bytes.len() as u64);
        Ok(())
    }

    #[test]
    fn truncated_or_padded_files_are_rejected() -> Result<(), ModelError> {
        let bytes = sample_file()?;
        for len in 0..bytes.len() {
            // A cut exactly before a tensor looks like a complete, shorter file; the tensor
            // count check in `find_installed` catches that case.
            let first_tensor = 80 + 4 + 5 + 4 + 9;
            let ok_cut = len == first_tensor || len == bytes.len() - (12 + 8 + 6 + 12);
            let result = inspect(Cursor::new(&bytes[..len]));
            assert_eq!(result.is_ok(), ok_cut, "prefix of {len} bytes");
        }
        let mut padded = bytes;
        padded.extend_from_slice(&[0, 0]);
        assert!(inspect(Cursor::new(&padded)).is_err());
        Ok(())
    }

    #[test]
    fn wrong_magic_and_implausible_headers_are_rejected() -> Result<(), ModelError> {
        let bytes = sample_file()?;
        let mut wrong = bytes.clone();
        wrong[0] = b'x';
        let err = inspect(Cursor::new(&wrong)).err();
        assert!(err.is_some_and(|e| e.to_string().contains("magic")));

        let mut heads = bytes;
        // n_audio_head = 3 does not divide a width of 4.
        heads[16..20].copy_from_slice(&3i32.to_le_bytes());
        assert!(inspect(Cursor::new(&heads)).is_err());

        let mut h = tiny_hparams();
        h.n_text_layer = 0;
        assert!(h.check().is_err());
        Ok(())
    }

    #[test]
    fn writer_checks_shapes() {
        let mel = MelFilters {
            rows: 2,
            cols: 1,
            data: vec![0.0; 2],
        };
        let Ok(mut w) = GgmlWriter::new(Vec::new(), &tiny_hparams(), &mel, &[]) else {
            panic!("header should be writable");
        };
        let data = [0u8; 8];
        assert!(
            w.write_tensor("x", &[3], GgmlType::F32, Floats::F32(&data))
                .is_err()
        );
        assert!(
            w.write_tensor("x", &[], GgmlType::F32, Floats::F32(&data))
                .is_err()
        );
        assert!(
            w.write_tensor("x", &[2], GgmlType::F32, Floats::F32(&data))
                .is_ok()
        );
    }

    #[test]
    fn multilingual_threshold() {
        let mut h = tiny_hparams();
        h.n_vocab = 51864;
        assert!(!h.is_multilingual());
        h.n_vocab = 51865;
        assert!(h.is_multilingual());
    }
}
