//! Reads the small numpy arrays Whisper ships (its mel filter bank): `.npy` and `.npz` holding
//! little-endian floats in C order, and nothing more general.

use std::io::{Cursor, Read};

use super::ModelError;

#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    /// Outermost dimension first.
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

const MAGIC: &[u8] = b"\x93NUMPY";

pub fn parse_npy(bytes: &[u8]) -> Result<NpyArray, ModelError> {
    if !bytes.starts_with(MAGIC) {
        return Err(invalid("missing .npy magic"));
    }
    let (header_len, header_start) = match bytes.get(6) {
        Some(1) => (
            bytes
                .get(8..10)
                .map(|b| usize::from(u16::from_le_bytes([b[0], b[1]]))),
            10,
        ),
        Some(2 | 3) => (
            bytes
                .get(8..12)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize),
            12,
        ),
        Some(v) => return Err(invalid(&format!("unsupported .npy version {v}"))),
        None => return Err(invalid("truncated .npy header")),
    };
    let header_end = header_len
        .and_then(|len| len.checked_add(header_start))
        .ok_or_else(|| invalid("truncated .npy header"))?;
    let header = bytes
        .get(header_start..header_end)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| invalid("truncated or non-text .npy header"))?;

    let descr = quoted(dict_value(header, "descr")?)?;
    let elem_size = match descr {
        "<f2" => 2,
        "<f4" => 4,
        "<f8" => 8,
        other => return Err(invalid(&format!("unsupported dtype {other}"))),
    };
    if dict_value(header, "fortran_order")?.starts_with("True") {
        return Err(invalid("fortran-order arrays are not supported"));
    }
    let shape = parse_shape(dict_value(header, "shape")?)?;

    let count = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| invalid("shape is too large"))?;
    let body = &bytes[header_end..];
    if Some(body.len()) != count.checked_mul(elem_size) {
        return Err(invalid(&format!(
            "{} data bytes for shape {shape:?} of {descr}",
            body.len()
        )));
    }
    let data = body
        .chunks_exact(elem_size)
        .map(|c| match c {
            [a, b] => half::f16::from_le_bytes([*a, *b]).to_f32(),
            [a, b, c, d] => f32::from_le_bytes([*a, *b, *c, *d]),
            // Whisper's filters are f32; f64 input is narrowed, which is what its loader does too.
            [a, b, c, d, e, f, g, h] => f64::from_le_bytes([*a, *b, *c, *d, *e, *f, *g, *h]) as f32,
            _ => f32::NAN,
        })
        .collect();
    Ok(NpyArray { shape, data })
}

/// Reads array `key` from an `.npz` archive held in memory.
pub fn read_npz(bytes: &[u8], key: &str) -> Result<NpyArray, ModelError> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| invalid(&format!("not an npz archive: {e}")))?;
    let member = format!("{key}.npy");
    let mut file = archive
        .by_name(&member)
        .map_err(|e| invalid(&format!("npz has no array {key}: {e}")))?;
    let mut npy = Vec::new();
    file.read_to_end(&mut npy)
        .map_err(|e| invalid(&format!("cannot read {member}: {e}")))?;
    parse_npy(&npy)
}

fn invalid(reason: &str) -> ModelError {
    ModelError::InvalidNpy(reason.to_owned())
}

/// The text after `'key':` in the header's Python dict literal.
fn dict_value<'h>(header: &'h str, key: &str) -> Result<&'h str, ModelError> {
    let quoted_key = format!("'{key}'");
    let rest = header
        .find(&quoted_key)
        .map(|i| &header[i + quoted_key.len()..])
        .ok_or_else(|| invalid(&format!("header has no {key}")))?;
    rest.trim_start()
        .strip_prefix(':')
        .map(str::trim_start)
        .ok_or_else(|| invalid(&format!("malformed {key} in header")))
}

fn quoted(value: &str) -> Result<&str, ModelError> {
    let rest = value
        .strip_prefix('\'')
        .ok_or_else(|| invalid("malformed descr in header"))?;
    rest.find('\'')
        .map(|end| &rest[..end])
        .ok_or_else(|| invalid("malformed descr in header"))
}

fn parse_shape(value: &str) -> Result<Vec<usize>, ModelError> {
    let inner = value
        .strip_prefix('(')
        .and_then(|v| v.find(')').map(|end| &v[..end]))
        .ok_or_else(|| invalid("malformed shape in header"))?;
    inner
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| {
            d.parse()
                .map_err(|_| invalid(&format!("bad dimension {d:?} in shape")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn npy(descr: &str, shape: &str, body: &[u8]) -> Vec<u8> {
        let mut header =
            format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(body);
        out
    }

    fn f32_bytes(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn parses_a_2d_f32_array() -> Result<(), ModelError> {
        let values = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0];
        let arr = parse_npy(&npy("<f4", "(2, 3)", &f32_bytes(&values)))?;
        assert_eq!(arr.shape, vec![2, 3]);
        assert_eq!(arr.data, values);
        Ok(())
    }

    #[test]
    fn parses_1d_and_scalar_shapes_and_f64() -> Result<(), ModelError> {
        let arr = parse_npy(&npy("<f4", "(2,)", &f32_bytes(&[1.5, 2.5])))?;
        assert_eq!(arr.shape, vec![2]);
        let arr = parse_npy(&npy("<f8", "()", &0.25f64.to_le_bytes()))?;
        assert!(arr.shape.is_empty());
        assert_eq!(arr.data, vec![0.25]);
        Ok(())
    }

    #[test]
    fn rejects_corrupt_input() {
        let good = npy("<f4", "(2, 3)", &f32_bytes(&[0.0; 6]));
        for len in 0..good.len() {
            assert!(parse_npy(&good[..len]).is_err(), "prefix of {len} bytes");
        }
        assert!(parse_npy(&npy("<i8", "(1,)", &[0; 8])).is_err());
        assert!(parse_npy(&npy(">f4", "(1,)", &[0; 4])).is_err());
        assert!(parse_npy(&npy("<f4", "(x,)", &[0; 4])).is_err());
        let fortran = npy("<f4", "(1,)", &[0; 4]);
        let text = String::from_utf8_lossy(&fortran).replace("False", "True ");
        assert!(parse_npy(text.as_bytes()).is_err());
        assert!(parse_npy(b"\x93NUMPY\x09\x00").is_err());
    }

    #[test]
    fn reads_arrays_from_npz() -> Result<(), Box<dyn std::error::Error>> {
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        zip.start_file("mel_2.npy", options)?;
        zip.write_all(&npy("<f4", "(2, 1)", &f32_bytes(&[7.0, 8.0])))?;
        zip.start_file("other.npy", options)?;
        zip.write_all(&npy("<f4", "(1,)", &f32_bytes(&[1.0])))?;
        let bytes = zip.finish()?.into_inner();

        let arr = read_npz(&bytes, "mel_2")?;
        assert_eq!(arr.shape, vec![2, 1]);
        assert_eq!(arr.data, vec![7.0, 8.0]);
        assert!(read_npz(&bytes, "mel_80").is_err());
        assert!(read_npz(b"not a zip", "mel_80").is_err());
        Ok(())
    }
}
