//! TensorBoard event files, written directly: TFRecord framing (length, masked CRC-32C of the
//! length, payload, masked CRC-32C of the payload) around hand-encoded `tensorflow.Event`
//! protobufs carrying scalar summaries. Only the handful of fields TensorBoard needs:
//! Event{wall_time = 1 (double), step = 2 (int64), file_version = 3 (string),
//! summary = 5 (Summary{value = 1 (Value{tag = 1 (string), simple_value = 2 (float)})})}.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::TrainError;

pub struct EventWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl EventWriter {
    /// Creates `events.out.tfevents.<unix seconds>.<host>` in `dir` and writes the version event.
    pub fn create(dir: &Path) -> Result<Self, TrainError> {
        std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
        let now = wall_time();
        let host = std::fs::read_to_string("/etc/hostname").unwrap_or_else(|_| "localhost".into());
        let name = format!("events.out.tfevents.{}.{}", now as u64, host.trim());
        let path = dir.join(name);
        let file = File::create(&path).map_err(|e| TrainError::io(&path, e))?;
        let mut writer = Self {
            path,
            out: BufWriter::new(file),
        };
        let mut event = Vec::new();
        put_f64(&mut event, 1, now);
        put_bytes(&mut event, 3, b"brain.Event:2");
        writer.record(&event)?;
        Ok(writer)
    }

    /// Appends one event with scalar values at `step`.
    pub fn scalars(&mut self, step: u64, values: &[(&str, f64)]) -> Result<(), TrainError> {
        let mut summary = Vec::new();
        for (tag, value) in values {
            let mut v = Vec::new();
            put_bytes(&mut v, 1, tag.as_bytes());
            put_f32(&mut v, 2, *value as f32);
            put_bytes(&mut summary, 1, &v);
        }
        let mut event = Vec::new();
        put_f64(&mut event, 1, wall_time());
        put_varint_field(&mut event, 2, step);
        put_bytes(&mut event, 5, &summary);
        self.record(&event)
    }

    /// Flushes buffered events so TensorBoard (and a crash) sees them.
    pub fn flush(&mut self) -> Result<(), TrainError> {
        self.out.flush().map_err(|e| TrainError::io(&self.path, e))
    }

    fn record(&mut self, payload: &[u8]) -> Result<(), TrainError> {
        let len = (payload.len() as u64).to_le_bytes();
        let mut frame = Vec::with_capacity(payload.len() + 16);
        frame.extend_from_slice(&len);
        frame.extend_from_slice(&masked_crc(&len).to_le_bytes());
        frame.extend_from_slice(payload);
        frame.extend_from_slice(&masked_crc(payload).to_le_bytes());
        self.out
            .write_all(&frame)
            .map_err(|e| TrainError::io(&self.path, e))
    }
}

fn wall_time() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_varint_field(out: &mut Vec<u8>, field: u64, v: u64) {
    put_varint(out, field << 3);
    put_varint(out, v);
}

fn put_f64(out: &mut Vec<u8>, field: u64, v: f64) {
    put_varint(out, (field << 3) | 1);
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_f32(out: &mut Vec<u8>, field: u64, v: f32) {
    put_varint(out, (field << 3) | 5);
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    put_varint(out, (field << 3) | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), bitwise: event files are small.
pub fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// TFRecord's mask, which keeps CRCs of CRC-bearing data from looking degenerate.
pub fn masked_crc(data: &[u8]) -> u32 {
    let crc = crc32c(data);
    crc.rotate_right(15).wrapping_add(0xA282_EAD8)
}

/// A scalar read back from an event file.
#[derive(Debug, Clone, PartialEq)]
pub struct Scalar {
    pub step: u64,
    pub tag: String,
    pub value: f32,
}

/// Parses an event file written by [`EventWriter`], checking both CRCs of every record.
pub fn read_scalars(path: &Path) -> Result<Vec<Scalar>, TrainError> {
    let bytes = std::fs::read(path).map_err(|e| TrainError::io(path, e))?;
    let bad = |why: &str| TrainError::Metrics(format!("{}: {why}", path.display()));
    let mut out = Vec::new();
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        if rest.len() < 12 {
            return Err(bad("truncated record header"));
        }
        let len_bytes = &rest[..8];
        let len = u64::from_le_bytes(len_bytes.try_into().map_err(|_| bad("length"))?) as usize;
        if u32::from_le_bytes(rest[8..12].try_into().map_err(|_| bad("crc"))?)
            != masked_crc(len_bytes)
        {
            return Err(bad("length CRC mismatch"));
        }
        let body = rest
            .get(12..12 + len + 4)
            .ok_or_else(|| bad("truncated record"))?;
        let (payload, crc) = body.split_at(len);
        if u32::from_le_bytes(crc.try_into().map_err(|_| bad("crc"))?) != masked_crc(payload) {
            return Err(bad("payload CRC mismatch"));
        }
        decode_event(payload, &mut out).ok_or_else(|| bad("malformed Event protobuf"))?;
        rest = &rest[12 + len + 4..];
    }
    Ok(out)
}

/// A protobuf field: number and either a varint/fixed value or a length-delimited slice.
enum Field<'a> {
    Int(u64),
    Bytes(&'a [u8]),
}

fn fields(mut buf: &[u8]) -> Option<Vec<(u64, Field<'_>)>> {
    fn varint(buf: &mut &[u8]) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = buf.split_first()?;
            *buf = rest;
            v |= u64::from(b & 0x7F) << shift;
            if b < 0x80 {
                return Some(v);
            }
        }
        None
    }
    let mut out = Vec::new();
    while !buf.is_empty() {
        let key = varint(&mut buf)?;
        let field = match key & 7 {
            0 => Field::Int(varint(&mut buf)?),
            1 => {
                let (v, rest) = buf.split_at_checked(8)?;
                buf = rest;
                Field::Int(u64::from_le_bytes(v.try_into().ok()?))
            }
            5 => {
                let (v, rest) = buf.split_at_checked(4)?;
                buf = rest;
                Field::Int(u64::from(u32::from_le_bytes(v.try_into().ok()?)))
            }
            2 => {
                let len = varint(&mut buf)? as usize;
                let (v, rest) = buf.split_at_checked(len)?;
                buf = rest;
                Field::Bytes(v)
            }
            _ => return None,
        };
        out.push((key >> 3, field));
    }
    Some(out)
}

fn decode_event(payload: &[u8], out: &mut Vec<Scalar>) -> Option<()> {
    let event = fields(payload)?;
    let step = event.iter().find_map(|(n, f)| match (n, f) {
        (2, Field::Int(v)) => Some(*v),
        _ => None,
    });
    for (n, f) in &event {
        let (5, Field::Bytes(summary)) = (n, f) else {
            continue;
        };
        for (n, f) in fields(summary)? {
            let (1, Field::Bytes(value)) = (n, f) else {
                continue;
            };
            let (mut tag, mut simple) = (None, None);
            for (n, f) in fields(value)? {
                match (n, f) {
                    (1, Field::Bytes(t)) => tag = Some(String::from_utf8(t.to_vec()).ok()?),
                    (2, Field::Int(v)) => simple = Some(f32::from_bits(v as u32)),
                    _ => {}
                }
            }
            out.push(Scalar {
                step: step.unwrap_or(0),
                tag: tag?,
                value: simple?,
            });
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn scalars_round_trip_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = EventWriter::create(dir.path()).unwrap();
        w.scalars(1, &[("train/loss", 2.5), ("train/lr", 1e-4)])
            .unwrap();
        w.scalars(2, &[("train/loss", 2.25)]).unwrap();
        w.flush().unwrap();
        let back = read_scalars(&w.path).unwrap();
        assert_eq!(back.len(), 3);
        assert_eq!(
            back[0],
            Scalar {
                step: 1,
                tag: "train/loss".into(),
                value: 2.5
            }
        );
        assert_eq!(
            back[2],
            Scalar {
                step: 2,
                tag: "train/loss".into(),
                value: 2.25
            }
        );
        // A flipped byte is caught by the CRC.
        let mut bytes = std::fs::read(&w.path).unwrap();
        let n = bytes.len();
        bytes[n - 6] ^= 1;
        std::fs::write(&w.path, bytes).unwrap();
        assert!(read_scalars(&w.path).is_err());
    }
}
