//! Turns a CTranslate2 Whisper model into whisper.cpp's ggml layout: renames tensors, splits the
//! fused attention projections and picks f16 or f32 per tensor.

use std::collections::HashSet;
use std::io::Write;

use super::ModelError;
use super::ct2::{Ct2Model, DType, Variable};
use super::ggml::{Floats, GgmlType, GgmlWriter, Hparams, MelFilters};
use super::npy;

/// Reads the hyperparameters off the tensors, since CTranslate2 keeps no config of its own.
pub(crate) fn hparams(model: &Ct2Model) -> Result<Hparams, ModelError> {
    if model.spec != "WhisperSpec" {
        return Err(convert_error(format!(
            "spec {} is not a whisper model",
            model.spec
        )));
    }
    let embeddings = model.get("decoder/embeddings/weight")?;
    let audio_pos = model.get("encoder/position_encodings/encodings")?;
    let text_pos = model.get("decoder/position_encodings/encodings")?;
    let conv1 = model.get("encoder/conv1/weight")?;
    let dim = |v: &Variable, i: usize| -> Result<i32, ModelError> {
        v.shape
            .get(i)
            .and_then(|&d| i32::try_from(d).ok())
            .ok_or_else(|| convert_error(format!("{} has shape {:?}", v.name, v.shape)))
    };
    let heads = |name: &str| -> Result<i32, ModelError> {
        let n = model.scalar_int(name)?;
        i32::try_from(n).map_err(|_| convert_error(format!("{name} is {n}")))
    };
    let h = Hparams {
        n_vocab: dim(embeddings, 0)?,
        n_audio_ctx: dim(audio_pos, 0)?,
        n_audio_state: dim(audio_pos, 1)?,
        n_audio_head: heads("encoder/num_heads")?,
        n_audio_layer: layer_count(model, "encoder")?,
        n_text_ctx: dim(text_pos, 0)?,
        n_text_state: dim(embeddings, 1)?,
        n_text_head: heads("decoder/num_heads")?,
        n_text_layer: layer_count(model, "decoder")?,
        n_mels: dim(conv1, 1)?,
        ftype: 1,
    };
    h.check()?;
    Ok(h)
}

/// One more than the highest `<stack>/layer_N/` index.
fn layer_count(model: &Ct2Model, stack: &str) -> Result<i32, ModelError> {
    let prefix = format!("{stack}/layer_");
    let highest = model
        .variables()
        .iter()
        .filter_map(|v| v.name.strip_prefix(&prefix))
        .filter_map(|rest| rest.split('/').next()?.parse::<i32>().ok())
        .max()
        .ok_or_else(|| convert_error(format!("no {stack} layers")))?;
    Ok(highest + 1)
}

/// The `mel_<n>` filter bank from Whisper's `mel_filters.npz`.
pub(crate) fn mel_filters(npz: &[u8], n_mels: i32) -> Result<MelFilters, ModelError> {
    let arr = npy::read_npz(npz, &format!("mel_{n_mels}"))?;
    match arr.shape.as_slice() {
        &[rows, cols] if i32::try_from(rows) == Ok(n_mels) => Ok(MelFilters {
            rows,
            cols,
            data: arr.data,
        }),
        shape => Err(convert_error(format!(
            "mel filters have shape {shape:?}, expected {n_mels} rows"
        ))),
    }
}

/// Token byte strings from a `.tiktoken` file: `<base64> <rank>` per line, ranks in order.
pub(crate) fn parse_tiktoken(bytes: &[u8]) -> Result<Vec<Vec<u8>>, ModelError> {
    let mut tokens = Vec::new();
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let bad = |what: &str| ModelError::InvalidTokenizer(format!("line {}: {what}", i + 1));
        let mut fields = line.split(|&b| b == b' ');
        let (Some(encoded), Some(rank), None) = (fields.next(), fields.next(), fields.next())
        else {
            return Err(bad("expected two fields"));
        };
        let rank: usize = std::str::from_utf8(rank)
            .ok()
            .and_then(|r| r.parse().ok())
            .ok_or_else(|| bad("rank is not a number"))?;
        // whisper.cpp indexes tokens by position, so ranks must count up from zero.
        if rank != tokens.len() {
            return Err(bad("ranks are not consecutive"));
        }
        tokens.push(base64_decode(encoded).ok_or_else(|| bad("invalid base64"))?);
    }
    Ok(tokens)
}

/// Standard-alphabet base64, lenient about padding like Python's decoder: Whisper's
/// multilingual vocabulary has a line that is a lone `=` (the empty token).
fn base64_decode(text: &[u8]) -> Option<Vec<u8>> {
    let end = text.iter().rposition(|&c| c != b'=').map_or(0, |i| i + 1);
    let text = &text[..end];
    if text.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() / 4 * 3 + 2);
    let mut acc = 0u32;
    let mut bits = 0;
    for &c in text {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Writes the whole ggml file. Tensors go out in the order whisper.cpp's reference conversion
/// of these models used, so the output is byte-identical to it and can be pinned by checksum.
pub(crate) fn write_ggml<W: Write>(
    model: &Ct2Model,
    hparams: &Hparams,
    mel: &MelFilters,
    tokens: &[Vec<u8>],
    out: W,
) -> Result<W, ModelError> {
    let mut c = Converter {
        model,
        out: GgmlWriter::new(out, hparams, mel, tokens)?,
        used: HashSet::new(),
    };

    c.conv("encoder/conv1", "encoder.conv1")?;
    c.conv("encoder/conv2", "encoder.conv2")?;
    c.tensor(
        "encoder/position_encodings/encodings",
        "encoder.positional_embedding",
        GgmlType::F32,
    )?;
    for i in 0..hparams.n_audio_layer {
        c.block(
            &format!("encoder/layer_{i}"),
            &format!("encoder.blocks.{i}"),
            false,
        )?;
    }
    c.norm("encoder/layer_norm", "encoder.ln_post")?;

    c.tensor(
        "decoder/position_encodings/encodings",
        "decoder.positional_embedding",
        GgmlType::F32,
    )?;
    c.tensor(
        "decoder/embeddings/weight",
        "decoder.token_embedding.weight",
        GgmlType::F16,
    )?;
    for i in 0..hparams.n_text_layer {
        c.block(
            &format!("decoder/layer_{i}"),
            &format!("decoder.blocks.{i}"),
            true,
        )?;
    }
    c.norm("decoder/layer_norm", "decoder.ln")?;

    // A weight we did not map would silently be missing from the model; refuse instead.
    // Scalars are CTranslate2 settings (activation, head counts), not weights.
    if let Some(v) = model
        .variables()
        .iter()
        .find(|v| !v.is_scalar() && !c.used.contains(v.name.as_str()))
    {
        return Err(convert_error(format!("unexpected variable {}", v.name)));
    }
    let (out, written) = c.out.finish()?;
    let expected = hparams.expected_tensor_count();
    if written != expected {
        return Err(convert_error(format!(
            "wrote {written} tensors, expected {expected}"
        )));
    }
    Ok(out)
}

struct Converter<'m, W: Write> {
    model: &'m Ct2Model,
    out: GgmlWriter<W>,
    used: HashSet<&'m str>,
}

impl<'m, W: Write> Converter<'m, W> {
    fn floats(&mut self, name: &str) -> Result<(&'m Variable, Floats<'m>), ModelError> {
        let var = self.model.get(name)?;
        let bytes = self.model.data(var);
        let floats = match var.dtype {
            DType::F32 => Floats::F32(bytes),
            DType::F16 => Floats::F16(bytes),
            DType::Bf16 => Floats::Bf16(bytes),
            other => {
                return Err(convert_error(format!(
                    "{name} holds {other:?}; quantized models are not supported"
                )));
            }
        };
        self.used.insert(var.name.as_str());
        Ok((var, floats))
    }

    fn tensor(&mut self, src: &str, dst: &str, ty: GgmlType) -> Result<(), ModelError> {
        let (var, data) = self.floats(src)?;
        self.out.write_tensor(dst, &var.shape, ty, data)
    }

    fn norm(&mut self, src: &str, dst: &str) -> Result<(), ModelError> {
        self.tensor(
            &format!("{src}/gamma"),
            &format!("{dst}.weight"),
            GgmlType::F32,
        )?;
        self.tensor(
            &format!("{src}/beta"),
            &format!("{dst}.bias"),
            GgmlType::F32,
        )
    }

    fn linear(&mut self, src: &str, dst: &str) -> Result<(), ModelError> {
        self.tensor(
            &format!("{src}/weight"),
            &format!("{dst}.weight"),
            GgmlType::F16,
        )?;
        self.tensor(
            &format!("{src}/bias"),
            &format!("{dst}.bias"),
            GgmlType::F32,
        )
    }

    /// whisper.cpp adds the conv bias to an (n, 1) tensor, so it is stored as one.
    fn conv(&mut self, src: &str, dst: &str) -> Result<(), ModelError> {
        self.tensor(
            &format!("{src}/weight"),
            &format!("{dst}.weight"),
            GgmlType::F16,
        )?;
        let (var, data) = self.floats(&format!("{src}/bias"))?;
        let shape = [var.shape.iter().product(), 1];
        self.out
            .write_tensor(&format!("{dst}.bias"), &shape, GgmlType::F32, data)
    }

    /// Splits a projection CTranslate2 fused along the output axis into `parts`. Keys have no
    /// bias in Whisper; CTranslate2 stores zeros there, which are checked and dropped.
    fn fused(&mut self, src: &str, dst: &str, parts: &[&str]) -> Result<(), ModelError> {
        let (weight, w) = self.floats(&format!("{src}/weight"))?;
        let (bias, b) = self.floats(&format!("{src}/bias"))?;
        let n = parts.len();
        let (rows, cols) = match weight.shape.as_slice() {
            &[rows, cols] if rows % n == 0 && bias.shape == [rows] => (rows / n, cols),
            _ => {
                return Err(convert_error(format!(
                    "{src} has weight {:?} and bias {:?}, cannot split in {n}",
                    weight.shape, bias.shape
                )));
            }
        };
        for (i, part) in parts.iter().enumerate() {
            let out_of_range = || convert_error(format!("{src} is smaller than its shape"));
            let w_part = w
                .slice(i * rows * cols, (i + 1) * rows * cols)
                .ok_or_else(out_of_range)?;
            let b_part = b.slice(i * rows, (i + 1) * rows).ok_or_else(out_of_range)?;
            self.out.write_tensor(
                &format!("{dst}.{part}.weight"),
                &[rows, cols],
                GgmlType::F16,
                w_part,
            )?;
            if *part == "key" {
                if b_part.iter().any(|v| v != 0.0) {
                    return Err(convert_error(format!(
                        "{src} has a non-zero key bias, which whisper.cpp cannot represent"
                    )));
                }
            } else {
                self.out.write_tensor(
                    &format!("{dst}.{part}.bias"),
                    &[rows],
                    GgmlType::F32,
                    b_part,
                )?;
            }
        }
        Ok(())
    }

    fn block(&mut self, src: &str, dst: &str, cross: bool) -> Result<(), ModelError> {
        self.norm(
            &format!("{src}/self_attention/layer_norm"),
            &format!("{dst}.attn_ln"),
        )?;
        self.fused(
            &format!("{src}/self_attention/linear_0"),
            &format!("{dst}.attn"),
            &["query", "key", "value"],
        )?;
        self.linear(
            &format!("{src}/self_attention/linear_1"),
            &format!("{dst}.attn.out"),
        )?;
        if cross {
            self.norm(
                &format!("{src}/attention/layer_norm"),
                &format!("{dst}.cross_attn_ln"),
            )?;
            self.linear(
                &format!("{src}/attention/linear_0"),
                &format!("{dst}.cross_attn.query"),
            )?;
            self.fused(
                &format!("{src}/attention/linear_1"),
                &format!("{dst}.cross_attn"),
                &["key", "value"],
            )?;
            self.linear(
                &format!("{src}/attention/linear_2"),
                &format!("{dst}.cross_attn.out"),
            )?;
        }
        self.norm(&format!("{src}/ffn/layer_norm"), &format!("{dst}.mlp_ln"))?;
        self.linear(&format!("{src}/ffn/linear_0"), &format!("{dst}.mlp.0"))?;
        self.linear(&format!("{src}/ffn/linear_1"), &format!("{dst}.mlp.2"))
    }
}

fn convert_error(reason: String) -> ModelError {
    ModelError::Convert(reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ct2::tests::Ct2Builder;
    use crate::ggml::{self, TensorInfo};
    use std::io::Cursor;

    const W: usize = 4; // width
    const V: usize = 10; // vocabulary
    const MELS: usize = 2;

    fn seq(n: usize, start: f32) -> Vec<f32> {
        (0..n).map(|i| start + i as f32).collect()
    }

    fn linear(b: &mut Ct2Builder, name: &str, rows: usize, cols: usize) {
        b.f16(
            &format!("{name}/weight"),
            &[rows, cols],
            &seq(rows * cols, 0.0),
        );
        b.f16(&format!("{name}/bias"), &[rows], &seq(rows, 100.0));
    }

    fn norm(b: &mut Ct2Builder, name: &str) {
        b.f16(&format!("{name}/gamma"), &[W], &[1.0; W]);
        b.f16(&format!("{name}/beta"), &[W], &[0.5; W]);
    }

    /// A one-layer Whisper in CTranslate2 layout, with a given self-attention QKV bias.
    fn tiny_whisper(qkv_bias: &[f32]) -> Ct2Builder {
        let mut b = Ct2Builder::default();
        b.var("decoder/activation", &[], DType::I8, vec![3]);
        b.i16("encoder/num_heads", 2);
        b.i16("decoder/num_heads", 2);
        b.f16("decoder/embeddings/weight", &[V, W], &seq(V * W, 0.0));
        b.f16(
            "encoder/position_encodings/encodings",
            &[3, W],
            &seq(3 * W, 0.0),
        );
        b.f16(
            "decoder/position_encodings/encodings",
            &[2, W],
            &seq(2 * W, 0.0),
        );
        b.f16(
            "encoder/conv1/weight",
            &[W, MELS, 3],
            &seq(W * MELS * 3, 0.0),
        );
        b.f16("encoder/conv1/bias", &[W], &seq(W, 0.0));
        b.f16("encoder/conv2/weight", &[W, W, 3], &seq(W * W * 3, 0.0));
        b.f16("encoder/conv2/bias", &[W], &seq(W, 0.0));
        for stack in ["encoder", "decoder"] {
            let l = format!("{stack}/layer_0");
            norm(&mut b, &format!("{l}/self_attention/layer_norm"));
            b.f16(
                &format!("{l}/self_attention/linear_0/weight"),
                &[3 * W, W],
                &seq(3 * W * W, 0.0),
            );
            b.f32(
                &format!("{l}/self_attention/linear_0/bias"),
                &[3 * W],
                qkv_bias,
            );
            linear(&mut b, &format!("{l}/self_attention/linear_1"), W, W);
            norm(&mut b, &format!("{l}/ffn/layer_norm"));
            linear(&mut b, &format!("{l}/ffn/linear_0"), 2 * W, W);
            linear(&mut b, &format!("{l}/ffn/linear_1"), W, 2 * W);
            norm(&mut b, &format!("{stack}/layer_norm"));
        }
        let l = "decoder/layer_0/attention";
        norm(&mut b, &format!("{l}/layer_norm"));
        linear(&mut b, &format!("{l}/linear_0"), W, W);
        b.f16(
            &format!("{l}/linear_1/weight"),
            &[2 * W, W],
            &seq(2 * W * W, 0.0),
        );
        let mut kv_bias = vec![0.0; W];
        kv_bias.extend(seq(W, 50.0));
        b.f16(&format!("{l}/linear_1/bias"), &[2 * W], &kv_bias);
        linear(&mut b, &format!("{l}/linear_2"), W, W);
        b.alias("decoder/projection/weight", "decoder/embeddings/weight");
        b
    }

    fn good_qkv_bias() -> Vec<f32> {
        let mut bias = seq(W, 10.0);
        bias.extend([0.0; W]);
        bias.extend(seq(W, 30.0));
        bias
    }

    fn convert(builder: &Ct2Builder) -> Result<Vec<u8>, ModelError> {
        let model = Ct2Model::parse(builder.build())?;
        let h = hparams(&model)?;
        let mel = MelFilters {
            rows: MELS,
            cols: 3,
            data: vec![0.0; MELS * 3],
        };
        let tokens = vec![b"!".to_vec(), b"hi".to_vec()];
        write_ggml(&model, &h, &mel, &tokens, Vec::new())
    }

    fn tensor<'a>(info: &'a ggml::GgmlInfo, name: &str) -> &'a TensorInfo {
        match info.tensors.iter().find(|t| t.name == name) {
            Some(t) => t,
            None => panic!("no tensor {name}"),
        }
    }

    fn values(file: &[u8], t: &TensorInfo) -> Vec<f32> {
        let start = t.offset as usize;
        let bytes = &file[start..start + t.len as usize];
        match t.ty {
            0 => Floats::F32(bytes).iter().collect(),
            _ => Floats::F16(bytes).iter().collect(),
        }
    }

    #[test]
    fn derives_hparams_from_tensors() -> Result<(), ModelError> {
        let model = Ct2Model::parse(tiny_whisper(&good_qkv_bias()).build())?;
        let h = hparams(&model)?;
        assert_eq!(
            (h.n_vocab, h.n_audio_ctx, h.n_audio_state, h.n_audio_head),
            (V as i32, 3, W as i32, 2)
        );
        assert_eq!((h.n_audio_layer, h.n_text_ctx, h.n_text_layer), (1, 2, 1));
        assert_eq!((h.n_mels, h.ftype), (MELS as i32, 1));
        Ok(())
    }

    #[test]
    fn splits_fused_attention_and_drops_zero_key_bias() -> Result<(), ModelError> {
        let file = convert(&tiny_whisper(&good_qkv_bias()))?;
        let info = ggml::inspect(Cursor::new(&file))?;
        assert_eq!(info.tensors.len(), info.hparams.expected_tensor_count());

        let q = tensor(&info, "encoder.blocks.0.attn.query.weight");
        let k = tensor(&info, "encoder.blocks.0.attn.key.weight");
        let v = tensor(&info, "encoder.blocks.0.attn.value.weight");
        assert_eq!((q.dims.clone(), q.ty), (vec![W, W], 1));
        assert_eq!(values(&file, q), seq(W * W, 0.0));
        assert_eq!(values(&file, k), seq(W * W, (W * W) as f32));
        assert_eq!(values(&file, v), seq(W * W, (2 * W * W) as f32));
        let qb = tensor(&info, "encoder.blocks.0.attn.query.bias");
        assert_eq!((qb.dims.clone(), qb.ty), (vec![W], 0));
        assert_eq!(values(&file, qb), seq(W, 10.0));
        assert_eq!(
            values(&file, tensor(&info, "encoder.blocks.0.attn.value.bias")),
            seq(W, 30.0)
        );
        assert!(!info.tensors.iter().any(|t| t.name.ends_with("key.bias")));

        let ck = tensor(&info, "decoder.blocks.0.cross_attn.key.weight");
        assert_eq!(values(&file, ck), seq(W * W, 0.0));
        assert_eq!(
            values(
                &file,
                tensor(&info, "decoder.blocks.0.cross_attn.value.bias")
            ),
            seq(W, 50.0)
        );
        Ok(())
    }

    #[test]
    fn maps_names_types_and_conv_bias_shape() -> Result<(), ModelError> {
        let file = convert(&tiny_whisper(&good_qkv_bias()))?;
        let info = ggml::inspect(Cursor::new(&file))?;
        let names: Vec<&str> = info.tensors.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            &names[..6],
            &[
                "encoder.conv1.weight",
                "encoder.conv1.bias",
                "encoder.conv2.weight",
                "encoder.conv2.bias",
                "encoder.positional_embedding",
                "encoder.blocks.0.attn_ln.weight",
            ]
        );
        assert_eq!(names.last(), Some(&"decoder.ln.bias"));
        let bias = tensor(&info, "encoder.conv1.bias");
        assert_eq!((bias.dims.clone(), bias.ty), (vec![1, W], 0));
        let conv = tensor(&info, "encoder.conv1.weight");
        assert_eq!((conv.dims.clone(), conv.ty), (vec![3, MELS, W], 1));
        let pos = tensor(&info, "encoder.positional_embedding");
        assert_eq!((pos.dims.clone(), pos.ty), (vec![W, 3], 0));
        let emb = tensor(&info, "decoder.token_embedding.weight");
        assert_eq!((emb.dims.clone(), emb.ty), (vec![W, V], 1));
        assert_eq!(
            tensor(&info, "decoder.blocks.0.mlp.2.weight").dims,
            vec![2 * W, W]
        );
        assert_eq!(tensor(&info, "decoder.blocks.0.mlp_ln.bias").ty, 0);
        assert_eq!(info.n_tokens, 2);
        Ok(())
    }

    #[test]
    fn rejects_non_zero_key_bias() {
        let mut bias = good_qkv_bias();
        bias[W + 1] = 0.5;
        let err = convert(&tiny_whisper(&bias)).err();
        assert!(err.is_some_and(|e| e.to_string().contains("key bias")));
    }

    #[test]
    fn rejects_unmapped_weights_and_missing_ones() {
        let mut b = tiny_whisper(&good_qkv_bias());
        b.f16("decoder/extra/weight", &[1], &[1.0]);
        let err = convert(&b).err();
        assert!(err.is_some_and(|e| e.to_string().contains("decoder/extra/weight")));

        let mut b = tiny_whisper(&good_qkv_bias());
        b.f16("encoder/layer_1/ffn/linear_0/bias", &[1], &[1.0]);
        assert!(convert(&b).is_err());
    }

    #[test]
    fn parses_tiktoken_and_base64() -> Result<(), ModelError> {
        let tokens = parse_tiktoken(b"IQ== 0\nIg== 1\r\naGVsbG8= 2\n= 3\nYWI 4\n")?;
        assert_eq!(
            tokens,
            vec![
                b"!".to_vec(),
                b"\"".to_vec(),
                b"hello".to_vec(),
                Vec::new(),
                b"ab".to_vec()
            ]
        );
        assert!(parse_tiktoken(b"IQ== 1\n").is_err());
        assert!(parse_tiktoken(b"I*== 0\n").is_err());
        assert!(parse_tiktoken(b"IQ==\n").is_err());
        assert_eq!(base64_decode(b"A"), None);
        assert_eq!(base64_decode(b"/+8="), Some(vec![0xff, 0xef]));
        Ok(())
    }
}
