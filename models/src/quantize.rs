//! Rewrites a 16-bit ggml model with its weight matrices in ggml's q8_0 format: blocks of 32
//! values as one f16 scale and 32 signed bytes. The matrices are most of the model, so it loads
//! in about half the memory; everything whisper.cpp keeps in f32 (biases, norms, positional
//! embeddings) and the f16 convolutions stay as they are.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use super::ModelError;
use super::ggml::{self, GgmlInfo, TensorInfo};

const F16: i32 = 1;
const Q8_0: i32 = 8;
const BLOCK: usize = 32;
/// `GGML_FTYPE_MOSTLY_Q8_0`: the header's ftype for a model with q8_0 weights.
pub(super) const FTYPE_Q8_0: i32 = 7;
/// whisper.cpp reads the header's ftype as the weight type plus ggml's quantization version
/// (2) times 1000.
const QUANTIZATION_VERSION: i32 = 2 * 1000;
/// Byte offset of the ftype field: the magic and ten header fields come first.
const FTYPE_OFFSET: u64 = 4 + 10 * 4;

/// Writes `src` (an f16 model) to `dst` with every 2-D f16 tensor in q8_0. Reads and writes
/// come a tensor at a time, so `dst` needs no buffer of its own.
pub fn q8_0<W: Write>(src: &Path, mut dst: W) -> Result<W, ModelError> {
    let read_error = || ModelError::io(format!("cannot read {}", src.display()));
    let write_error = || ModelError::io("cannot write the quantized model");
    let mut input =
        File::open(src).map_err(ModelError::io(format!("cannot open {}", src.display())))?;
    let info = ggml::inspect(&mut input)?;
    if info.hparams.ftype % 1000 != F16 {
        return Err(ModelError::Convert(format!(
            "{} is not a 16-bit model (ftype {}), so it cannot be quantized",
            src.display(),
            info.hparams.ftype
        )));
    }
    let head = read_head(&mut input, &info).map_err(read_error())?;
    dst.write_all(&head).map_err(write_error())?;
    let mut data = Vec::new();
    for tensor in &info.tensors {
        data.resize(tensor.len as usize, 0);
        input
            .seek(SeekFrom::Start(tensor.offset))
            .and_then(|_| input.read_exact(&mut data))
            .map_err(read_error())?;
        let quantize = tensor.ty == F16 && tensor.dims.len() == 2 && tensor.dims[0] % BLOCK == 0;
        let quantized = quantize.then(|| q8_0_blocks(&data));
        let ty = if quantize { Q8_0 } else { tensor.ty };
        dst.write_all(&tensor_head(tensor, ty))
            .and_then(|()| dst.write_all(quantized.as_deref().unwrap_or(&data)))
            .map_err(write_error())?;
    }
    Ok(dst)
}

/// The header, mel filters and vocabulary, unchanged but for the ftype.
fn read_head(input: &mut File, info: &GgmlInfo) -> std::io::Result<Vec<u8>> {
    let end = info
        .tensors
        .first()
        .map_or(info.size, |t| t.offset - tensor_head_len(t));
    let mut head = vec![0; end as usize];
    input.seek(SeekFrom::Start(0))?;
    input.read_exact(&mut head)?;
    let at = FTYPE_OFFSET as usize;
    head[at..at + 4].copy_from_slice(&(FTYPE_Q8_0 + QUANTIZATION_VERSION).to_le_bytes());
    Ok(head)
}

fn tensor_head_len(t: &TensorInfo) -> u64 {
    (12 + 4 * t.dims.len() + t.name.len()) as u64
}

fn tensor_head(t: &TensorInfo, ty: i32) -> Vec<u8> {
    let mut head = Vec::with_capacity(tensor_head_len(t) as usize);
    head.extend_from_slice(&(t.dims.len() as i32).to_le_bytes());
    head.extend_from_slice(&(t.name.len() as i32).to_le_bytes());
    head.extend_from_slice(&ty.to_le_bytes());
    for &d in &t.dims {
        head.extend_from_slice(&(d as i32).to_le_bytes());
    }
    head.extend_from_slice(t.name.as_bytes());
    head
}

/// ggml's reference q8_0 quantizer: the scale maps the block's largest magnitude to 127.
pub fn q8_0_blocks(f16_bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(f16_bytes.len() / (2 * BLOCK) * (2 + BLOCK));
    for block in f16_bytes.chunks_exact(2 * BLOCK) {
        let mut values = [0.0f32; BLOCK];
        for (v, b) in values.iter_mut().zip(block.chunks_exact(2)) {
            *v = half::f16::from_le_bytes([b[0], b[1]]).to_f32();
        }
        let amax = values.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d == 0.0 { 0.0 } else { 1.0 / d };
        out.extend_from_slice(&half::f16::from_f32(d).to_le_bytes());
        out.extend(values.iter().map(|v| ((v * id).round() as i8) as u8));
    }
    out
}
