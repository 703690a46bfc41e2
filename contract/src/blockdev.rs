//! The config block device: a raw, self-describing image that carries the contract when it is
//! too large for the kernel command line. The guest reads it straight from `/dev/ubdX` (named
//! by `hostcontract_dev=` on the command line), without mounting anything.
//!
//! # Layout
//!
//! All integers are little-endian. The image is a whole number of [`SECTOR`]-byte sectors,
//! because User-Mode Linux's ubd driver only exposes whole sectors.
//!
//! | offset | size | field                                                     |
//! |-------:|-----:|-----------------------------------------------------------|
//! |      0 |    8 | magic `HOSTCTRT` ([`MAGIC`])                              |
//! |      8 |    4 | format version, u32 = 1 ([`FORMAT_VERSION`])              |
//! |     12 |    4 | header length in bytes, u32 = 512 ([`HEADER_LEN`])        |
//! |     16 |    8 | payload length in bytes, u64 (at most [`MAX_PAYLOAD`])    |
//! |     24 |    4 | CRC-32 (IEEE) of the payload, u32                         |
//! |     28 |    4 | CRC-32 (IEEE) of header bytes 0..28, u32                  |
//! |     32 |  480 | zeros (checked: a non-zero byte means corruption)         |
//! |    512 |    n | payload: the contract's compact JSON ([`crate::to_json`]) |
//! |  512+n |  pad | zeros up to the next multiple of 512 (not checked)        |
//!
//! The magic and the version are checked before anything else, so a later format may change
//! every field after offset 12 and still be reported as "unsupported version" by this one.
//!
//! To read a device, a guest reads the first sector, asks [`header_payload_len`] how long the
//! payload is, reads [`image_len`] bytes (or simply the whole device) and calls [`decode`].

use crate::{Contract, ContractError};
use std::fmt;

/// Sector size of the image; the image length is always a multiple of it.
pub const SECTOR: usize = 512;

/// The first eight bytes of a config device.
pub const MAGIC: [u8; 8] = *b"HOSTCTRT";

/// The format version this module writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Smallest config device a host attaches: an image shorter than this is padded with zeros
/// to it (16 sectors, what the kernel's partition scan reads; the guest reads only the
/// header's payload length).
pub const MIN_DEVICE_BYTES: usize = 16 * SECTOR;

/// Length of the header: one sector.
pub const HEADER_LEN: usize = SECTOR;

/// [`HEADER_LEN`] as the header's u32 field carries it (512 fits).
const HEADER_LEN_U32: u32 = 512;
const _: () = assert!(HEADER_LEN_U32 as usize == HEADER_LEN);

/// Largest payload accepted (16 MiB): far more than any sensible contract, small enough that a
/// corrupted length cannot make the guest read or allocate without bound.
pub const MAX_PAYLOAD: usize = 16 * 1024 * 1024;

/// Bytes of the header that carry fields; the rest of the sector is zero.
const FIELDS_LEN: usize = 32;
/// The header checksum covers bytes 0..28 and is stored at 28.
const HEADER_CRC_AT: usize = 28;

/// The image for a contract: header sector, compact JSON, zero padding to a whole sector.
///
/// A contract whose JSON exceeds [`MAX_PAYLOAD`] is still written, but [`decode`] rejects it;
/// use [`encode_checked`] to find out on the host instead.
pub fn encode(c: &Contract) -> Vec<u8> {
    encode_payload(crate::to_json(c).as_bytes())
}

/// Like [`encode`], but refuses a payload larger than [`MAX_PAYLOAD`].
pub fn encode_checked(c: &Contract) -> Result<Vec<u8>, EncodeError> {
    let json = crate::to_json(c);
    if json.len() > MAX_PAYLOAD {
        return Err(EncodeError::TooLarge { len: json.len() });
    }
    Ok(encode_payload(json.as_bytes()))
}

fn encode_payload(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(image_len(payload.len()));
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&HEADER_LEN_U32.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    let header_crc = crc32fast::hash(&out);
    out.extend_from_slice(&header_crc.to_le_bytes());
    out.resize(HEADER_LEN, 0);
    out.extend_from_slice(payload);
    out.resize(image_len(payload.len()), 0);
    out
}

/// Total image length for a payload of `payload_len` bytes: the header sector plus the payload
/// rounded up to whole sectors. This is how much a guest has to read.
pub fn image_len(payload_len: usize) -> usize {
    HEADER_LEN.saturating_add(payload_len.div_ceil(SECTOR).saturating_mul(SECTOR))
}

/// Why a contract could not be written to a config device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncodeError {
    /// The contract's JSON is larger than [`MAX_PAYLOAD`].
    TooLarge { len: usize },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::TooLarge { len } => write!(
                f,
                "the contract's JSON is {len} bytes, more than the config device's limit of \
                 {MAX_PAYLOAD} bytes (16 MiB); move large files onto a data disk"
            ),
        }
    }
}

impl std::error::Error for EncodeError {}

/// Why a config device could not be turned into a contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer bytes than the header sector.
    TooShort { len: usize },
    /// The first bytes are not [`MAGIC`]; holds up to the first eight bytes found.
    NoMagic { first: Vec<u8> },
    /// A format version this software does not read.
    UnsupportedVersion { found: u32 },
    /// The header's checksum does not match its bytes.
    HeaderChecksum { stored: u32, computed: u32 },
    /// A header length other than [`HEADER_LEN`] for this version.
    HeaderLength { found: u32 },
    /// A byte of the header after its fields (offsets 32..512) is not zero.
    ReservedNotZero { offset: usize },
    /// The header announces a payload larger than [`MAX_PAYLOAD`].
    TooLarge { announced: u64 },
    /// Fewer bytes than the header announces (header plus payload).
    Truncated { len: usize, announced: usize },
    /// The payload's checksum does not match.
    PayloadChecksum { stored: u32, computed: u32 },
    /// The payload was read intact but the contract in it was rejected.
    Contract(ContractError),
}

impl DecodeError {
    /// Each problem as its own line: the contract's validation lines, or the one error.
    pub fn lines(&self) -> Vec<String> {
        match self {
            DecodeError::Contract(e) => e.lines(),
            other => vec![other.to_string()],
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    let parts: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    parts.join(" ")
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::TooShort { len: 0 } => write!(
                f,
                "the config device is empty (0 bytes); the host must write a contract image \
                 to it"
            ),
            DecodeError::TooShort { len } => write!(
                f,
                "the config device holds {len} bytes, too few for its {HEADER_LEN}-byte \
                 header; the host must write a whole contract image to it"
            ),
            DecodeError::NoMagic { first } => {
                write!(
                    f,
                    "no host contract magic: this is not a config device (first bytes {}",
                    hex(first)
                )?;
                if first.iter().all(|b| *b == 0) {
                    write!(f, ", it looks blank")?;
                }
                write!(
                    f,
                    "; expected {} \"HOSTCTRT\"); check that {}= names the right device",
                    hex(&MAGIC),
                    crate::cmdline::DEVICE_PARAM
                )
            }
            DecodeError::UnsupportedVersion { found } => write!(
                f,
                "the config device uses format version {found}, but this guest reads only \
                 version {FORMAT_VERSION}; write it with a matching host or update the image"
            ),
            DecodeError::HeaderChecksum { stored, computed } => write!(
                f,
                "the config device's header is corrupt (checksum {computed:08x}, stored \
                 {stored:08x}); write the image again"
            ),
            DecodeError::HeaderLength { found } => write!(
                f,
                "the config device's header claims to be {found} bytes, but format version \
                 {FORMAT_VERSION} headers are {HEADER_LEN}; the device is corrupt, write the \
                 image again"
            ),
            DecodeError::ReservedNotZero { offset } => write!(
                f,
                "the config device's header has a non-zero byte at offset {offset}, where \
                 format version {FORMAT_VERSION} has only zeros; the device is corrupt, write \
                 the image again"
            ),
            DecodeError::TooLarge { announced } => write!(
                f,
                "the config device's header announces a {announced}-byte contract, more than \
                 the limit of {MAX_PAYLOAD} bytes (16 MiB)"
            ),
            DecodeError::Truncated { len, announced } => write!(
                f,
                "the config device holds {len} bytes but its header announces {announced}; \
                 the image was cut short, write it again"
            ),
            DecodeError::PayloadChecksum { stored, computed } => write!(
                f,
                "the contract on the config device is corrupt (checksum {computed:08x}, \
                 stored {stored:08x}); write the image again"
            ),
            DecodeError::Contract(e) => {
                crate::write_rejected(f, "the contract on the config device", e)
            }
        }
    }
}

impl std::error::Error for DecodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DecodeError::Contract(e) => Some(e),
            _ => None,
        }
    }
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let b: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_le_bytes(b))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    let b: [u8; 8] = bytes.get(at..at.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_le_bytes(b))
}

/// Checked header fields.
struct Header {
    payload_len: usize,
    payload_crc: u32,
}

fn parse_header(bytes: &[u8]) -> Result<Header, DecodeError> {
    let too_short = || DecodeError::TooShort { len: bytes.len() };
    match bytes.get(..MAGIC.len()) {
        Some(m) if m == MAGIC => {}
        Some(m) => return Err(DecodeError::NoMagic { first: m.to_vec() }),
        // Shorter than the magic: a prefix of it is short, anything else foreign.
        None if MAGIC.starts_with(bytes) => return Err(too_short()),
        None => {
            return Err(DecodeError::NoMagic {
                first: bytes.to_vec(),
            })
        }
    }
    let version = u32_at(bytes, 8).ok_or_else(too_short)?;
    if version != FORMAT_VERSION {
        return Err(DecodeError::UnsupportedVersion { found: version });
    }
    let header = bytes.get(..HEADER_LEN).ok_or_else(too_short)?;
    let (fields, reserved) = header.split_at_checked(FIELDS_LEN).ok_or_else(too_short)?;
    let stored = u32_at(fields, HEADER_CRC_AT).ok_or_else(too_short)?;
    let computed = crc32fast::hash(fields.get(..HEADER_CRC_AT).ok_or_else(too_short)?);
    if stored != computed {
        return Err(DecodeError::HeaderChecksum { stored, computed });
    }
    let header_len = u32_at(fields, 12).ok_or_else(too_short)?;
    if header_len as usize != HEADER_LEN {
        return Err(DecodeError::HeaderLength { found: header_len });
    }
    if let Some(i) = reserved.iter().position(|b| *b != 0) {
        return Err(DecodeError::ReservedNotZero {
            offset: FIELDS_LEN + i,
        });
    }
    let announced = u64_at(fields, 16).ok_or_else(too_short)?;
    let payload_len = usize::try_from(announced)
        .ok()
        .filter(|n| *n <= MAX_PAYLOAD)
        .ok_or(DecodeError::TooLarge { announced })?;
    let payload_crc = u32_at(fields, 24).ok_or_else(too_short)?;
    Ok(Header {
        payload_len,
        payload_crc,
    })
}

/// The payload length announced by a header, after checking the magic, the version, the
/// header checksum and that the rest of the header is zero. `header` is the first sector of
/// the device (at least [`HEADER_LEN`] bytes; more are ignored). The guest then reads
/// [`image_len`]`(n)` bytes from the start of the device.
pub fn header_payload_len(header: &[u8]) -> Result<usize, DecodeError> {
    parse_header(header).map(|h| h.payload_len)
}

/// Reads a contract from a config device image. `bytes` holds at least the header sector and
/// the payload; it may be the whole device, anything after the payload is ignored.
pub fn decode(bytes: &[u8]) -> Result<Contract, DecodeError> {
    let header = parse_header(bytes)?;
    let end = HEADER_LEN.saturating_add(header.payload_len);
    let payload = bytes.get(HEADER_LEN..end).ok_or(DecodeError::Truncated {
        len: bytes.len(),
        announced: end,
    })?;
    let computed = crc32fast::hash(payload);
    if computed != header.payload_crc {
        return Err(DecodeError::PayloadChecksum {
            stored: header.payload_crc,
            computed,
        });
    }
    crate::parse_json(payload).map_err(DecodeError::Contract)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> Contract {
        crate::parse_json(include_bytes!("../examples/minimal.json")).unwrap()
    }

    fn full() -> Contract {
        crate::parse_json(include_bytes!("../examples/full.json")).unwrap()
    }

    /// Rewrites the header checksum after a test changed a header field.
    fn reseal(img: &mut [u8]) {
        let crc = crc32fast::hash(&img[..28]);
        img[28..32].copy_from_slice(&crc.to_le_bytes());
    }

    #[test]
    fn round_trip_and_layout() {
        for c in [minimal(), full()] {
            let img = encode(&c);
            let json = crate::to_json(&c);
            assert_eq!(img.len() % SECTOR, 0);
            assert_eq!(img.len(), image_len(json.len()));
            assert_eq!(&img[..8], b"HOSTCTRT");
            assert_eq!(&img[8..12], &1u32.to_le_bytes());
            assert_eq!(&img[12..16], &512u32.to_le_bytes());
            assert_eq!(&img[16..24], &(json.len() as u64).to_le_bytes());
            assert_eq!(
                &img[24..28],
                &crc32fast::hash(json.as_bytes()).to_le_bytes()
            );
            assert_eq!(&img[28..32], &crc32fast::hash(&img[..28]).to_le_bytes());
            assert!(img[32..512].iter().all(|b| *b == 0));
            assert_eq!(&img[512..512 + json.len()], json.as_bytes());
            assert!(img[512 + json.len()..].iter().all(|b| *b == 0));
            assert_eq!(header_payload_len(&img[..SECTOR]).unwrap(), json.len());
            assert_eq!(decode(&img).unwrap(), c);
            assert_eq!(encode_checked(&c).unwrap(), img);
        }
    }

    #[test]
    fn whole_device_with_trailing_bytes() {
        let mut img = encode(&full());
        img.resize(img.len() + 10 * SECTOR, 0xAA);
        assert_eq!(decode(&img).unwrap(), full());
        // Only header and payload are needed, not the padding.
        let json_len = crate::to_json(&full()).len();
        assert_eq!(decode(&encode(&full())[..512 + json_len]).unwrap(), full());
    }

    #[test]
    fn image_lengths() {
        assert_eq!(image_len(0), 512);
        assert_eq!(image_len(1), 1024);
        assert_eq!(image_len(512), 1024);
        assert_eq!(image_len(513), 1536);
        assert_eq!(image_len(usize::MAX), usize::MAX);
    }

    #[test]
    fn short_inputs() {
        let img = encode(&minimal());
        assert_eq!(decode(&[]), Err(DecodeError::TooShort { len: 0 }));
        assert!(decode(&[]).unwrap_err().to_string().contains("empty"));
        assert_eq!(decode(b"HOST"), Err(DecodeError::TooShort { len: 4 }));
        for n in 0..512 {
            assert_eq!(
                decode(&img[..n]),
                Err(DecodeError::TooShort { len: n }),
                "{n}"
            );
        }
        let e = header_payload_len(&img[..20]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the config device holds 20 bytes, too few for its 512-byte header; the host must \
             write a whole contract image to it"
        );
    }

    #[test]
    fn truncated_payload() {
        let img = encode(&full());
        let json_len = crate::to_json(&full()).len();
        let e = decode(&img[..600]).unwrap_err();
        assert_eq!(
            e,
            DecodeError::Truncated {
                len: 600,
                announced: 512 + json_len
            }
        );
        let want = format!(
            "the config device holds 600 bytes but its header announces {}",
            512 + json_len
        );
        assert!(e.to_string().starts_with(&want), "{e}");
        // Just the header sector: enough for header_payload_len, truncated for decode.
        assert_eq!(header_payload_len(&img[..512]), Ok(json_len));
        assert!(matches!(
            decode(&img[..512]),
            Err(DecodeError::Truncated { .. })
        ));
    }

    #[test]
    fn foreign_data() {
        let e = decode(b"\x7fELF\x02\x01\x01\x00rest of an elf").unwrap_err();
        assert_eq!(
            e,
            DecodeError::NoMagic {
                first: b"\x7fELF\x02\x01\x01\x00".to_vec()
            }
        );
        let text = e.to_string();
        assert!(
            text.starts_with(
                "no host contract magic: this is not a config device (first bytes \
                 7f 45 4c 46 02 01 01 00"
            ),
            "{text}"
        );
        assert!(text.contains("hostcontract_dev"), "{text}");
        let blank = decode(&[0u8; 4096]).unwrap_err();
        assert!(blank.to_string().contains("looks blank"), "{blank}");
        // Shorter than the magic but not a prefix of it: foreign, not short.
        assert_eq!(
            decode(b"xy"),
            Err(DecodeError::NoMagic {
                first: b"xy".to_vec()
            })
        );
    }

    #[test]
    fn unsupported_version() {
        let mut img = encode(&minimal());
        img[8..12].copy_from_slice(&2u32.to_le_bytes());
        // Reported as a version problem although the old checksum no longer matches.
        let e = decode(&img).unwrap_err();
        assert_eq!(e, DecodeError::UnsupportedVersion { found: 2 });
        assert!(e.to_string().contains("format version 2"), "{e}");
        // Even when the rest of a newer header is shorter than ours.
        assert_eq!(
            decode(&img[..12]),
            Err(DecodeError::UnsupportedVersion { found: 2 })
        );
    }

    #[test]
    fn header_length() {
        let mut img = encode(&minimal());
        img[12..16].copy_from_slice(&1024u32.to_le_bytes());
        reseal(&mut img);
        assert_eq!(decode(&img), Err(DecodeError::HeaderLength { found: 1024 }));
    }

    #[test]
    fn header_checksum() {
        let mut img = encode(&minimal());
        img[17] ^= 0x01;
        let e = decode(&img).unwrap_err();
        assert!(matches!(e, DecodeError::HeaderChecksum { .. }), "{e:?}");
        assert!(e.to_string().contains("header is corrupt"), "{e}");
        let mut img = encode(&minimal());
        img[30] ^= 0x80;
        assert!(matches!(
            decode(&img),
            Err(DecodeError::HeaderChecksum { .. })
        ));
    }

    #[test]
    fn reserved_bytes_must_be_zero() {
        let mut img = encode(&minimal());
        img[300] = 1;
        let e = decode(&img).unwrap_err();
        assert_eq!(e, DecodeError::ReservedNotZero { offset: 300 });
        assert!(e.to_string().contains("offset 300"), "{e}");
    }

    #[test]
    fn too_large() {
        let mut img = encode(&minimal());
        img[16..24].copy_from_slice(&((MAX_PAYLOAD as u64) + 1).to_le_bytes());
        reseal(&mut img);
        let e = decode(&img).unwrap_err();
        assert_eq!(
            e,
            DecodeError::TooLarge {
                announced: MAX_PAYLOAD as u64 + 1
            }
        );
        assert!(e.to_string().contains("16 MiB"), "{e}");
        img[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
        reseal(&mut img);
        assert!(matches!(
            header_payload_len(&img),
            Err(DecodeError::TooLarge { .. })
        ));
        // The largest allowed length is read as a (truncated) payload, not refused.
        img[16..24].copy_from_slice(&(MAX_PAYLOAD as u64).to_le_bytes());
        reseal(&mut img);
        assert_eq!(header_payload_len(&img), Ok(MAX_PAYLOAD));
        assert!(matches!(decode(&img), Err(DecodeError::Truncated { .. })));
    }

    #[test]
    fn encode_checked_refuses_huge_contracts() {
        let mut c = minimal();
        c.extra = Some(serde_json::Value::String("x".repeat(MAX_PAYLOAD)));
        let e = encode_checked(&c).unwrap_err();
        assert!(matches!(e, EncodeError::TooLarge { .. }));
        assert!(e.to_string().contains("16 MiB"), "{e}");
        // The unchecked image is refused by the reader with the matching error.
        assert!(matches!(
            decode(&encode(&c)),
            Err(DecodeError::TooLarge { .. })
        ));
    }

    #[test]
    fn payload_checksum() {
        let mut img = encode(&full());
        img[600] ^= 0x04;
        let e = decode(&img).unwrap_err();
        assert!(matches!(e, DecodeError::PayloadChecksum { .. }), "{e:?}");
        assert!(
            e.to_string()
                .contains("contract on the config device is corrupt"),
            "{e}"
        );
    }

    #[test]
    fn contract_errors_keep_their_lines() {
        let bad = br#"{"version":1,"hostname":"-bad-","service":{"argv":["relative"]}}"#;
        let img = encode_payload(bad);
        let e = decode(&img).unwrap_err();
        let DecodeError::Contract(inner) = &e else {
            panic!("{e:?}")
        };
        assert_eq!(e.lines(), inner.lines());
        assert_eq!(e.lines().len(), 2);
        let text = e.to_string();
        for line in inner.lines() {
            assert!(text.contains(&line), "{text}");
        }
        assert!(std::error::Error::source(&e).is_some());
        assert!(matches!(
            decode(&encode_payload(b"")),
            Err(DecodeError::Contract(ContractError::Syntax(_)))
        ));
    }
    #[test]
    fn a_payload_with_a_duplicate_key_is_refused_with_its_path() {
        let json = br#"{"version":1,"hostname":"a","hostname":"b","service":{"argv":["/x"]}}"#;
        let e = decode(&encode_payload(json)).unwrap_err();
        assert!(
            e.to_string()
                .contains(r#"hostname: the key "hostname" appears twice"#),
            "{e}"
        );
    }
}
