//! Rewrites a 16-bit ggml model with its weight matrices in ggml's q8_0 format: blocks of 32
//! values as one f16 scale and 32 signed bytes. The matrices are most of the model, so it loads
//! in about half the memory; everything whisper.cpp keeps in f32 (biases, norms, positional
//! embeddings) and the f16 convolutions stay as they are.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use super::ModelError;
use super::ggml::{self, GgmlInfo, TensorInfo};

const F16: i32 = 1;
const Q8_0: i32 = 8;
const BLOCK: usize = 32;
/// `GGML_FTYPE_MOSTLY_Q8_0`, plus ggml's quantization version 2 times its factor 1000, as
/// whisper.cpp reads the header's ftype.
pub(super) const FTYPE_Q8_0: i32 = 7 + 2 * 1000;
/// Byte offset of the ftype field: the magic and ten header fields come first.
const FTYPE_OFFSET: u64 = 4 + 10 * 4;

/// Writes `src` (an f16 model) to `dst` with every 2-D f16 tensor in q8_0.
pub fn q8_0<W: Write>(src: &Path, dst: W) -> Result<W, ModelError> {
    let open = || File::open(src).map_err(ModelError::io(format!("cannot open {}", src.display())));
    let info = ggml::inspect(open()?)?;
    if info.hparams.ftype % 1000 != F16 {
        return Err(ModelError::Convert(format!(
            "{} is not a 16-bit model (ftype {}), so it cannot be quantized",
            src.display(),
            info.hparams.ftype
        )));
    }
    let mut input = BufReader::new(open()?);
    let mut out = BufWriter::new(dst);
    copy_head(&mut input, &mut out, &info)?;
    let mut data = Vec::new();
    for tensor in &info.tensors {
        input
            .seek(SeekFrom::Start(tensor.offset))
            .map_err(read_error(src))?;
        data.resize(tensor.len as usize, 0);
        input.read_exact(&mut data).map_err(read_error(src))?;
        let quantize = tensor.ty == F16 && tensor.dims.len() == 2 && tensor.dims[0] % BLOCK == 0;
        write_tensor_head(&mut out, tensor, if quantize { Q8_0 } else { tensor.ty })?;
        if quantize {
            out.write_all(&q8_0_blocks(&data)).map_err(write_error)?;
        } else {
            out.write_all(&data).map_err(write_error)?;
        }
    }
    out.into_inner().map_err(|e| write_error(e.into_error()))
}

/// The header, mel filters and vocabulary, unchanged but for the ftype.
fn copy_head<R: Read + Seek, W: Write>(
    input: &mut R,
    out: &mut W,
    info: &GgmlInfo,
) -> Result<(), ModelError> {
    let end = info
        .tensors
        .first()
        .map_or(info.size, |t| t.offset - tensor_head_len(t));
    let mut head = vec![0; end as usize];
    input.seek(SeekFrom::Start(0)).map_err(read_io)?;
    input.read_exact(&mut head).map_err(read_io)?;
    let at = FTYPE_OFFSET as usize;
    head[at..at + 4].copy_from_slice(&FTYPE_Q8_0.to_le_bytes());
    out.write_all(&head).map_err(write_error)
}

fn tensor_head_len(t: &TensorInfo) -> u64 {
    (12 + 4 * t.dims.len() + t.name.len()) as u64
}

fn write_tensor_head<W: Write>(out: &mut W, t: &TensorInfo, ty: i32) -> Result<(), ModelError> {
    let mut head = Vec::with_capacity(tensor_head_len(t) as usize);
    head.extend_from_slice(&(t.dims.len() as i32).to_le_bytes());
    head.extend_from_slice(&(t.name.len() as i32).to_le_bytes());
    head.extend_from_slice(&ty.to_le_bytes());
    for &d in &t.dims {
        head.extend_from_slice(&(d as i32).to_le_bytes());
    }
    head.extend_from_slice(t.name.as_bytes());
    out.write_all(&head).map_err(write_error)
}

/// ggml's reference q8_0 quantizer: the scale maps the block's largest magnitude to 127.
pub fn q8_0_blocks(f16_bytes: &[u8]) -> Vec<u8> {
    let values: Vec<f32> = f16_bytes
        .chunks_exact(2)
        .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
        .collect();
    let mut out = Vec::with_capacity(values.len() / BLOCK * (2 + BLOCK));
    for block in values.chunks_exact(BLOCK) {
        let amax = block.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d == 0.0 { 0.0 } else { 1.0 / d };
        out.extend_from_slice(&half::f16::from_f32(d).to_le_bytes());
        out.extend(block.iter().map(|v| ((v * id).round() as i8) as u8));
    }
    out
}

fn read_error(path: &Path) -> impl FnOnce(std::io::Error) -> ModelError {
    ModelError::io(format!("cannot read {}", path.display()))
}

fn read_io(source: std::io::Error) -> ModelError {
    ModelError::Io {
        context: "cannot read the model's header".into(),
        source,
    }
}

fn write_error(source: std::io::Error) -> ModelError {
    ModelError::Io {
        context: "cannot write the quantized model".into(),
        source,
    }
}
