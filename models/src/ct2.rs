//! Reads CTranslate2 `model.bin` files, the format faster-whisper models are shipped in.

use std::collections::HashMap;
use std::ops::Range;

use super::ModelError;

/// Older binary versions laid out names and types differently; only this one is understood.
pub const SUPPORTED_VERSION: u32 = 6;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    F32,
    I8,
    I16,
    I32,
    F16,
    Bf16,
}

impl DType {
    pub fn from_code(code: u8) -> Option<DType> {
        match code {
            0 => Some(DType::F32),
            1 => Some(DType::I8),
            2 => Some(DType::I16),
            3 => Some(DType::I32),
            4 => Some(DType::F16),
            5 => Some(DType::Bf16),
            _ => None,
        }
    }

    pub fn code(self) -> u8 {
        match self {
            DType::F32 => 0,
            DType::I8 => 1,
            DType::I16 => 2,
            DType::I32 => 3,
            DType::F16 => 4,
            DType::Bf16 => 5,
        }
    }

    pub fn size(self) -> usize {
        match self {
            DType::I8 => 1,
            DType::I16 | DType::F16 | DType::Bf16 => 2,
            DType::F32 | DType::I32 => 4,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Variable {
    pub name: String,
    /// Outermost dimension first, as CTranslate2 and numpy write it.
    pub shape: Vec<usize>,
    pub dtype: DType,
    range: Range<usize>,
}

impl Variable {
    pub fn is_scalar(&self) -> bool {
        self.shape.is_empty()
    }
}

/// A parsed `model.bin`. Variables point into the file's bytes, which stay in one buffer.
#[derive(Debug)]
pub struct Ct2Model {
    pub version: u32,
    pub spec: String,
    pub revision: u32,
    variables: Vec<Variable>,
    by_name: HashMap<String, usize>,
    aliases: HashMap<String, String>,
    data: Vec<u8>,
}

impl Ct2Model {
    pub fn parse(data: Vec<u8>) -> Result<Ct2Model, ModelError> {
        let mut r = Reader::new(&data);
        let version = r.u32("binary version")?;
        if version != SUPPORTED_VERSION {
            return Err(invalid(format!(
                "unsupported binary version {version} (expected {SUPPORTED_VERSION})"
            )));
        }
        let spec = r.string("spec name")?;
        let revision = r.u32("spec revision")?;
        let count = r.u32("variable count")?;
        let mut variables = Vec::new();
        let mut by_name = HashMap::new();
        for _ in 0..count {
            let name = r.string("variable name")?;
            let rank = r.u8("rank")?;
            let mut shape = Vec::with_capacity(usize::from(rank));
            for _ in 0..rank {
                shape.push(r.u32("shape")? as usize);
            }
            let code = r.u8("dtype")?;
            let dtype = DType::from_code(code)
                .ok_or_else(|| invalid(format!("variable {name} has unknown dtype {code}")))?;
            let byte_count = r.u32("byte count")? as usize;
            let expected = shape
                .iter()
                .try_fold(dtype.size(), |acc, &d| acc.checked_mul(d));
            if expected != Some(byte_count) {
                return Err(invalid(format!(
                    "variable {name} has {byte_count} bytes, its shape {shape:?} needs {}",
                    expected.map_or_else(|| "more".to_owned(), |n| n.to_string())
                )));
            }
            let start = r.pos;
            r.skip(byte_count, &name)?;
            if by_name.insert(name.clone(), variables.len()).is_some() {
                return Err(invalid(format!("variable {name} appears twice")));
            }
            variables.push(Variable {
                name,
                shape,
                dtype,
                range: start..start + byte_count,
            });
        }
        let alias_count = r.u32("alias count")?;
        let mut aliases = HashMap::new();
        for _ in 0..alias_count {
            let alias = r.string("alias")?;
            let target = r.string("alias target")?;
            aliases.insert(alias, target);
        }
        if r.pos != data.len() {
            return Err(invalid(format!(
                "{} unexpected bytes after the aliases",
                data.len() - r.pos
            )));
        }
        Ok(Ct2Model {
            version,
            spec,
            revision,
            variables,
            by_name,
            aliases,
            data,
        })
    }

    /// Reads the binary version and spec name from the start of a file, to tell a CTranslate2
    /// model from other files without loading it.
    pub fn peek(prefix: &[u8]) -> Option<(u32, String)> {
        let mut r = Reader::new(prefix);
        let version = r.u32("binary version").ok()?;
        let spec = r.string("spec name").ok()?;
        Some((version, spec))
    }

    pub fn variables(&self) -> &[Variable] {
        &self.variables
    }

    /// Looks a variable up by name, following one level of aliasing.
    pub fn get(&self, name: &str) -> Result<&Variable, ModelError> {
        let resolved = self.aliases.get(name).map_or(name, String::as_str);
        self.by_name
            .get(resolved)
            .and_then(|&i| self.variables.get(i))
            .ok_or_else(|| invalid(format!("missing variable {name}")))
    }

    pub fn data(&self, var: &Variable) -> &[u8] {
        // Ranges were checked against this buffer when parsing; an empty slice is only possible
        // for a variable from another model, which is a caller bug and still not a panic.
        self.data.get(var.range.clone()).unwrap_or_default()
    }

    /// Reads an integer scalar such as `encoder/num_heads`.
    pub fn scalar_int(&self, name: &str) -> Result<i64, ModelError> {
        let var = self.get(name)?;
        let bytes = self.data(var);
        let value = match (var.shape.as_slice(), var.dtype, bytes) {
            ([], DType::I8, [a]) => i64::from(i8::from_le_bytes([*a])),
            ([], DType::I16, [a, b]) => i64::from(i16::from_le_bytes([*a, *b])),
            ([], DType::I32, [a, b, c, d]) => i64::from(i32::from_le_bytes([*a, *b, *c, *d])),
            _ => {
                return Err(invalid(format!(
                    "variable {name} is not an integer scalar ({:?} {:?})",
                    var.dtype, var.shape
                )));
            }
        };
        Ok(value)
    }
}

fn invalid(reason: String) -> ModelError {
    ModelError::InvalidCt2(reason)
}

/// A bounds-checked little-endian cursor: every read of a corrupt file ends in an error.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], ModelError> {
        let end = self.pos.checked_add(n);
        match end.and_then(|end| self.buf.get(self.pos..end)) {
            Some(bytes) => {
                self.pos += n;
                Ok(bytes)
            }
            None => Err(invalid(format!(
                "file ends at byte {} while reading {what}",
                self.buf.len()
            ))),
        }
    }

    fn skip(&mut self, n: usize, what: &str) -> Result<(), ModelError> {
        self.take(n, what).map(|_| ())
    }

    fn u8(&mut self, what: &str) -> Result<u8, ModelError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &str) -> Result<u16, ModelError> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: &str) -> Result<u32, ModelError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A u16 length that counts a trailing NUL, then the bytes.
    fn string(&mut self, what: &str) -> Result<String, ModelError> {
        let len = usize::from(self.u16(what)?);
        let bytes = self.take(len, what)?;
        let text = match bytes.split_last() {
            Some((&0, text)) => text,
            _ => return Err(invalid(format!("{what} is not nul-terminated"))),
        };
        String::from_utf8(text.to_vec()).map_err(|_| invalid(format!("{what} is not utf-8")))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a `model.bin` in memory, for tests here and in the converter.
    #[derive(Default)]
    pub(crate) struct Ct2Builder {
        vars: Vec<(String, Vec<usize>, DType, Vec<u8>)>,
        aliases: Vec<(String, String)>,
    }

    fn put_string(out: &mut Vec<u8>, s: &str) {
        let len = u16::try_from(s.len() + 1).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(s.as_bytes());
        out.push(0);
    }

    impl Ct2Builder {
        pub(crate) fn var(&mut self, name: &str, shape: &[usize], dtype: DType, data: Vec<u8>) {
            self.vars
                .push((name.to_owned(), shape.to_vec(), dtype, data));
        }

        pub(crate) fn f16(&mut self, name: &str, shape: &[usize], values: &[f32]) {
            let data = values
                .iter()
                .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
                .collect();
            self.var(name, shape, DType::F16, data);
        }

        pub(crate) fn f32(&mut self, name: &str, shape: &[usize], values: &[f32]) {
            let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            self.var(name, shape, DType::F32, data);
        }

        pub(crate) fn i16(&mut self, name: &str, value: i16) {
            self.var(name, &[], DType::I16, value.to_le_bytes().to_vec());
        }

        pub(crate) fn alias(&mut self, alias: &str, target: &str) {
            self.aliases.push((alias.to_owned(), target.to_owned()));
        }

        pub(crate) fn build(&self) -> Vec<u8> {
            let mut out = Vec::new();
            out.extend_from_slice(&SUPPORTED_VERSION.to_le_bytes());
            put_string(&mut out, "WhisperSpec");
            out.extend_from_slice(&3u32.to_le_bytes());
            out.extend_from_slice(&(self.vars.len() as u32).to_le_bytes());
            for (name, shape, dtype, data) in &self.vars {
                put_string(&mut out, name);
                out.push(shape.len() as u8);
                for d in shape {
                    out.extend_from_slice(&(*d as u32).to_le_bytes());
                }
                out.push(dtype.code());
                out.extend_from_slice(&(data.len() as u32).to_le_bytes());
                out.extend_from_slice(data);
            }
            out.extend_from_slice(&(self.aliases.len() as u32).to_le_bytes());
            for (a, t) in &self.aliases {
                put_string(&mut out, a);
                put_string(&mut out, t);
            }
            out
        }
    }

    fn sample() -> Vec<u8> {
        let mut b = Ct2Builder::default();
        b.i16("encoder/num_heads", 6);
        b.f16(
            "decoder/embeddings/weight",
            &[3, 2],
            &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        );
        b.f32("encoder/layer_norm/gamma", &[2], &[0.5, -0.5]);
        b.alias("decoder/projection/weight", "decoder/embeddings/weight");
        b.build()
    }

    #[test]
    fn parses_header_variables_and_aliases() -> Result<(), ModelError> {
        let model = Ct2Model::parse(sample())?;
        assert_eq!(model.version, 6);
        assert_eq!(model.spec, "WhisperSpec");
        assert_eq!(model.revision, 3);
        assert_eq!(model.variables().len(), 3);
        assert_eq!(model.scalar_int("encoder/num_heads")?, 6);
        let emb = model.get("decoder/projection/weight")?;
        assert_eq!(emb.name, "decoder/embeddings/weight");
        assert_eq!(emb.shape, vec![3, 2]);
        assert_eq!(emb.dtype, DType::F16);
        assert_eq!(model.data(emb).len(), 12);
        let gamma = model.get("encoder/layer_norm/gamma")?;
        assert_eq!(model.data(gamma), &[0, 0, 0, 63, 0, 0, 0, 191]);
        assert!(model.get("nope").is_err());
        assert!(model.scalar_int("encoder/layer_norm/gamma").is_err());
        Ok(())
    }

    #[test]
    fn peek_reads_spec_name() {
        let bytes = sample();
        assert_eq!(
            Ct2Model::peek(&bytes[..40]),
            Some((6, "WhisperSpec".to_owned()))
        );
        assert_eq!(Ct2Model::peek(b"lmgg\0\0"), None);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = sample();
        for len in 0..bytes.len() {
            let err = Ct2Model::parse(bytes[..len].to_vec());
            assert!(
                matches!(err, Err(ModelError::InvalidCt2(_))),
                "prefix of {len} bytes"
            );
        }
    }

    #[test]
    fn rejects_bad_version_dtype_size_and_trailing_bytes() {
        let good = sample();

        let mut v = good.clone();
        v[0] = 5;
        assert!(Ct2Model::parse(v).is_err());

        let mut b = Ct2Builder::default();
        b.var("x", &[1], DType::F32, vec![0; 4]);
        let mut bad_dtype = b.build();
        // name: 4-byte header + u16 + "x\0", rank byte, one u32 dim, then the dtype byte.
        let dtype_at = 4 + 2 + 12 + 4 + 4 + 2 + 2 + 1 + 4;
        assert_eq!(bad_dtype[dtype_at], 0);
        bad_dtype[dtype_at] = 9;
        assert!(Ct2Model::parse(bad_dtype).is_err());

        let mut b = Ct2Builder::default();
        b.var("x", &[2], DType::F32, vec![0; 4]);
        assert!(Ct2Model::parse(b.build()).is_err());

        let mut trailing = good;
        trailing.push(0);
        assert!(Ct2Model::parse(trailing).is_err());
    }

    #[test]
    fn huge_counts_do_not_allocate_or_panic() {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&SUPPORTED_VERSION.to_le_bytes());
        put_string(&mut bytes, "WhisperSpec");
        bytes.extend_from_slice(&1u32.to_le_bytes());
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(Ct2Model::parse(bytes).is_err());
    }
}
