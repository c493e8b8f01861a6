//! The byte format allocators serialize to. Small enough to sit in one etcd value next to the
//! object it belongs to, and checked on the way in so a torn write or a foreign value is an error,
//! never a panic or a silently wrong allocator:
//!
//! ```text
//! magic (4 bytes) | version (1 byte) | section count (1 byte)
//! per section: length (u32 little-endian) | bytes
//! CRC-32/IEEE of everything before it (u32 little-endian)
//! ```
//!
//! The first section is the configuration as JSON (ranges as strings, so a human can read it in
//! a dump); each further section is one raw bitmap.

use super::ClusterError;

/// The only format version written so far; readers refuse any other.
pub(crate) const VERSION: u8 = 1;

/// More sections than any allocator writes (config plus one bitmap per family).
const MAX_SECTIONS: u8 = 8;

const HEADER: usize = 6;
const TRAILER: usize = 4;

/// Assemble sections into the framed format.
pub(crate) fn encode(magic: &[u8; 4], sections: &[&[u8]]) -> Vec<u8> {
    let body: usize = sections.iter().map(|s| 4 + s.len()).sum();
    let mut out = Vec::with_capacity(HEADER + body + TRAILER);
    out.extend_from_slice(magic);
    out.push(VERSION);
    // Callers write at most three sections, far below both u8::MAX and MAX_SECTIONS.
    out.push(sections.len() as u8);
    for s in sections {
        // Sections are at most a few MiB (capped bitmaps), far below u32::MAX.
        out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        out.extend_from_slice(s);
    }
    let crc = crc32(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Check framing, magic, version and checksum, and return the sections.
pub(crate) fn decode<'a>(bytes: &'a [u8], magic: &[u8; 4], what: &'static str) -> Result<Vec<&'a [u8]>, ClusterError> {
    let corrupt = |reason: String| ClusterError::CorruptState { what, reason };
    if bytes.len() < HEADER + TRAILER {
        return Err(corrupt(format!("{} bytes is too short to be allocator state", bytes.len())));
    }
    if &bytes[..4] != magic {
        return Err(corrupt(format!(
            "wrong magic {:02x?}, expected {:02x?} ({:?}); is this the state of another allocator?",
            &bytes[..4],
            magic,
            String::from_utf8_lossy(magic)
        )));
    }
    if bytes[4] != VERSION {
        return Err(corrupt(format!(
            "format version {} is not supported (this build reads version {VERSION})",
            bytes[4]
        )));
    }
    let (body, trailer) = bytes.split_at(bytes.len() - TRAILER);
    let stored = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
    let actual = crc32(body);
    if stored != actual {
        return Err(corrupt(format!(
            "checksum mismatch (stored {stored:08x}, computed {actual:08x}): truncated or damaged"
        )));
    }
    let count = body[5];
    if count == 0 || count > MAX_SECTIONS {
        return Err(corrupt(format!("{count} sections is not a valid layout")));
    }
    let mut rest = &body[HEADER..];
    let mut sections = Vec::with_capacity(usize::from(count));
    for i in 0..count {
        if rest.len() < 4 {
            return Err(corrupt(format!("section {i} has no length")));
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        rest = &rest[4..];
        if len > rest.len() {
            return Err(corrupt(format!("section {i} claims {len} bytes but only {} remain", rest.len())));
        }
        let (section, tail) = rest.split_at(len);
        sections.push(section);
        rest = tail;
    }
    if !rest.is_empty() {
        return Err(corrupt(format!("{} unexpected bytes after the last section", rest.len())));
    }
    Ok(sections)
}

/// CRC-32/IEEE (the zlib/Ethernet polynomial), table-driven.
pub(crate) fn crc32(data: &[u8]) -> u32 {
    static TABLE: [u32; 256] = make_table();
    let mut crc = !0u32;
    for &b in data {
        crc = TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

const fn make_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAGIC: &[u8; 4] = b"PNTS";

    #[test]
    fn crc_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn round_trip_and_rejections() {
        let bytes = encode(MAGIC, &[b"{}", &[1, 2, 3]]);
        assert_eq!(decode(&bytes, MAGIC, "test").unwrap(), vec![&b"{}"[..], &[1, 2, 3][..]]);
        assert!(decode(&bytes, b"XXXX", "test").is_err());
        assert!(decode(&bytes[..bytes.len() - 1], MAGIC, "test").is_err());
        assert!(decode(&[], MAGIC, "test").is_err());
        let mut bad = bytes.clone();
        bad[4] = 9;
        assert!(decode(&bad, MAGIC, "test").unwrap_err().to_string().contains("version 9"));
        // Every single-bit flip is caught (CRC-32 detects all of them).
        for i in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[i / 8] ^= 1 << (i % 8);
            assert!(decode(&flipped, MAGIC, "test").is_err(), "bit {i}");
        }
    }

    #[test]
    fn lying_lengths_are_refused_not_panics() {
        let mut body = MAGIC.to_vec();
        body.extend_from_slice(&[VERSION, 2, 0xff, 0xff, 0xff, 0x7f, 1]);
        let crc = crc32(&body);
        body.extend_from_slice(&crc.to_le_bytes());
        let e = decode(&body, MAGIC, "test").unwrap_err();
        assert!(e.to_string().contains("claims"), "{e}");
    }
}
