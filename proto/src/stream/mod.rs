//! `VM_Data_Tran`: the VM image from the source physical server to the
//! destination physical server as a chunked streaming AEAD.
//!
//! Seed paper 000/001 ("OTP-based dynamic authentication for VM migration"),
//! operation module, step 3:
//!
//! ```text
//!  src PS                                                    dest PS
//!    │ VM_Data_Tran = E_SK(VM_Data ‖ Hash(VM_Data))             │
//!    │ ───────────────────────────────────────────────────────► │ decrypt, re-hash, compare
//! ```
//!
//! A VM image is gigabytes, so `E_SK(VM_Data ‖ Hash)` becomes a stream of
//! records, each sealed with AES-256-GCM under a key derived from the session
//! key `SK` and a per-transfer id, and a final record that carries the
//! whole-image BLAKE3 and length. The destination writes into a temporary
//! file beside the destination and commits (fsync, rename without clobbering,
//! fsync of the directory) only after the final record has verified.
//!
//! # Wire format
//!
//! ```text
//!  header (clear, bound as AAD into every record):
//!    "DBVMTRAN"            8 bytes magic
//!    0x02                  1 byte  version
//!    transfer_id           16 bytes
//!    chunk_size            u32 BE  (a power of two, 1 KiB ..= 16 MiB)
//!    image_len             u64 BE  declared image length in bytes
//!    name_len              u8      1 ..= 255
//!    name                  name_len bytes UTF-8, no '/', no NUL, not "." or ".."
//!  records, i = 0, 1, 2, …:
//!    len                   u32 BE  length of what follows (ciphertext + 16-byte tag)
//!    sealed                len bytes: AES-256-GCM(key, nonce_i, aad_i, plaintext_i) ‖ tag
//!  nonce_i = 0x00000000 ‖ i (u64 BE)              (implicit, never sent)
//!  aad_i   = header bytes ‖ i (u64 BE) ‖ final (u8)
//! ```
//!
//! Data records have `final = 0`. The chunking is fixed by the declared
//! length: data record `i` carries exactly `min(chunk_size, image_len − i·chunk_size)`
//! bytes, so every data record is full except possibly the last, and an empty
//! image has no data record at all. The record after the last data record is
//! the final record (`final = 1`), whose plaintext is
//! `BLAKE3(image) ‖ image_len (u64 BE)` (40 bytes). Nothing may follow it.
//!
//! `Hash(VM_Data)` is BLAKE3 rather than SHA-256 (version 1 of this stream)
//! so that it is computed in parallel: with a power-of-two chunk size each
//! data record is one subtree of the image's BLAKE3 tree, hashed by the
//! worker that seals or opens the record, and the subtrees are joined in
//! order (`digest.rs`). The value is the image's ordinary BLAKE3 hash, as
//! `b3sum` prints it. A sequential SHA-256 held one core per image at about
//! 1.8 GB/s on each side and was most of the transfer's CPU (issue #18).
//!
//! Because the index and the final flag are in the nonce and the AAD, and the
//! header (with the transfer id and the declared length) is in every AAD, a
//! dropped, duplicated, reordered or spliced record, a flipped bit anywhere,
//! a record from another transfer and an early "final" record all fail
//! authentication at the first record where the stream diverges; a stream
//! that stops before the final record is reported as truncated.
//!
//! # Key schedule
//!
//! `key = HKDF-SHA256(salt = none, ikm = SK, info = "dirbroker VM_Data_Tran v1" ‖ transfer_id)`,
//! 32 bytes for AES-256-GCM. Nonces are plain counters, which is sound only
//! because each transfer has its own key: a transfer id must never be used
//! for two sends. A [`TransferKey`] refuses to seal a second stream, and the
//! caller must pick a fresh random transfer id for every attempt (a retry
//! included) — see [`random_transfer_id`].
//!
//! # Framing on a connection
//!
//! The receiver reads until end of stream after the final record to make
//! sure nothing follows it, so the sender must close (or `shutdown(Write)`)
//! its side after [`send`] returns; a reply can still travel the other way
//! over a half-closed TCP connection. Set read timeouts on the socket: a
//! stalled peer stalls [`receive`].

use crate::encoding::hex;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use aws_lc_rs::aead::{Aad, LessSafeKey, NONCE_LEN, Nonce};

mod digest;
mod pool;
mod receive;
mod send;

pub use receive::{ReceiveSummary, receive};
pub use send::{SendSummary, send};

/// First bytes of every stream.
pub const MAGIC: [u8; 8] = *b"DBVMTRAN";
/// The stream version this build speaks.
pub const VERSION: u8 = 2;
/// Plaintext bytes per data record unless the caller chooses otherwise.
/// 128 KiB, 256 KiB, 1 MiB and 4 MiB were measured end to end on loopback
/// TCP (examples/stream_bench.rs): 1 MiB was fastest (4 MiB equal within
/// noise, 256 KiB ≈ 5 % and 128 KiB ≈ 15 % slower). Chunk sizes are powers
/// of two (see `digest`).
pub const DEFAULT_CHUNK_SIZE: u32 = 1 << 20;
/// Smallest chunk size a header may declare.
pub const MIN_CHUNK_SIZE: u32 = 1 << 10;
/// Largest chunk size a header may declare. The header arrives before
/// anything is authenticated, so this bounds what an attacker can make the
/// receiver allocate: one buffer of `chunk_size + 20` bytes per record in
/// flight (at most `MAX_WORKERS + 4`, allocated as records arrive; the
/// first record that fails to open stops the transfer).
pub const MAX_CHUNK_SIZE: u32 = 16 << 20;
/// Longest image name, in bytes.
pub const MAX_NAME_LEN: usize = 255;
/// AES-GCM tag length.
pub const TAG_LEN: usize = 16;
/// Name prefix of the hidden temporary file an image is received into
/// (removed on error; a killed receiver leaves it behind for its owner to
/// clean up).
pub const TEMP_PREFIX: &str = ".dirbroker-vm-";

const KEY_LABEL: &[u8] = b"dirbroker VM_Data_Tran v1";
/// magic + version + transfer_id + chunk_size + image_len + name_len.
const HEADER_FIXED_LEN: usize = 8 + 1 + 16 + 4 + 8 + 1;
const LEN_PREFIX: usize = 4;
/// BLAKE3 ‖ u64 image length.
const FINAL_PLAINTEXT_LEN: usize = 32 + 8;

/// Identifies one transfer; bound into the key and into every record.
pub type TransferId = [u8; 16];

/// A fresh transfer id. Use a new one for every send, retries included.
pub fn random_transfer_id<R: rand::CryptoRng + ?Sized>(rng: &mut R) -> TransferId {
    let mut id = [0u8; 16];
    rng.fill_bytes(&mut id);
    id
}

/// Who is at fault for a [`StreamError`]: the project's one taxonomy. Here
/// `Unavailable` is a failed connection (retrying may help), `Local` our
/// storage or image source, `Bug` arguments that cannot work or our own bug.
pub use crate::fault::Fault;

/// What is wrong with a header's fields.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderProblem {
    /// A chunk size outside [`MIN_CHUNK_SIZE`]`..=`[`MAX_CHUNK_SIZE`].
    #[error("chunk size {0} outside {MIN_CHUNK_SIZE}..={MAX_CHUNK_SIZE}")]
    ChunkSize(u32),
    /// A chunk size that is not a power of two: records would not be
    /// subtrees of the image's BLAKE3 tree.
    #[error("chunk size {0} is not a power of two")]
    ChunkSizeNotPowerOfTwo(u32),
    /// An empty image name.
    #[error("image name is empty")]
    NameEmpty,
    /// A name longer than [`MAX_NAME_LEN`] bytes.
    #[error("image name is {0} bytes, the limit is {MAX_NAME_LEN}")]
    NameTooLong(usize),
    /// A name that is not UTF-8.
    #[error("image name is not UTF-8")]
    NameNotUtf8,
    /// A name with `/` or NUL: not a plain file name.
    #[error("image name contains '/' or NUL")]
    NameForbiddenChar,
    /// The name `.` or `..`.
    #[error("image name is \".\" or \"..\"")]
    NameDots,
}

/// Why a send or receive failed, and where.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    // --- the peer misbehaved -------------------------------------------
    /// The stream does not start with [`MAGIC`].
    #[error("not a dirbroker VM transfer stream (bad magic)")]
    BadMagic,
    /// The stream ended inside the header.
    #[error("stream ended inside the header (truncated)")]
    HeaderTruncated,
    /// A header field out of bounds.
    #[error("malformed header: {0}")]
    BadHeader(HeaderProblem),
    /// The header names another transfer than the receiver expects.
    #[error("header is for transfer {}, expected transfer {}", hex(got), hex(expected))]
    WrongTransfer {
        /// The transfer the receiver expects.
        expected: TransferId,
        /// The transfer the header names.
        got: TransferId,
    },
    /// A length prefix above `chunk_size + TAG_LEN`, refused before the record is read.
    #[error("record {record}: record length {len} exceeds the limit {limit}")]
    RecordTooLong {
        /// Index of the record.
        record: u64,
        /// The length prefix.
        len: u32,
        /// The largest length the chunk size allows.
        limit: u32,
    },
    /// A length prefix shorter than the tag.
    #[error("record {record}: record length {len} is shorter than the {TAG_LEN}-byte tag")]
    RecordTooShort {
        /// Index of the record.
        record: u64,
        /// The length prefix.
        len: u32,
    },
    /// A record that does not open: tampered, dropped, duplicated, reordered, from another
    /// transfer, or a final record where a data record is due (or the reverse).
    #[error("record {record}: authentication failed (tampered, reordered or from another transfer)")]
    AuthenticationFailed {
        /// Index the record was expected at.
        record: u64,
    },
    /// The stream ended right after the header.
    #[error("stream ended after the header without any record (truncated)")]
    NoRecords,
    /// The stream ended between records, before the final record.
    #[error("stream ended after record {last} without the final record (truncated)")]
    Truncated {
        /// Index of the last complete record.
        last: u64,
    },
    /// The stream ended inside a record or its length prefix.
    #[error("stream ended inside record {record} (truncated)")]
    TruncatedInRecord {
        /// Index of the record.
        record: u64,
    },
    /// A data record that opened but breaks the chunk framing: only a holder of the key can send one.
    #[error("record {record}: carries {got} bytes where the chunk framing requires {expected}")]
    ChunkLength {
        /// Index of the record.
        record: u64,
        /// Plaintext bytes it carries.
        got: usize,
        /// Plaintext bytes the framing requires.
        expected: usize,
    },
    /// A final record whose plaintext is not `BLAKE3 ‖ image_len` (40 bytes).
    #[error("record {record}: the final record carries {got} bytes, expected {FINAL_PLAINTEXT_LEN}")]
    FinalRecordMalformed {
        /// Index of the final record.
        record: u64,
        /// Plaintext bytes it carries.
        got: usize,
    },
    /// The final record states another length than the header declared.
    #[error("image length mismatch: header declared {declared} bytes, final record states {stated}")]
    LengthMismatch {
        /// The header's `image_len`.
        declared: u64,
        /// The length in the final record.
        stated: u64,
    },
    /// The BLAKE3 recomputed here differs from the final record's.
    #[error("image digest mismatch")]
    DigestMismatch,
    /// Bytes follow the final record.
    #[error("bytes after the final record (record {record})")]
    TrailingBytes {
        /// Index of the final record.
        record: u64,
    },

    // --- the peer is incompatible --------------------------------------
    /// A stream version other than [`VERSION`].
    #[error("unsupported stream version {0} (this build speaks {VERSION})")]
    UnsupportedVersion(u8),

    // --- the connection failed -----------------------------------------
    /// Reading or writing the connection failed.
    #[error("{op}: {source}")]
    Transport {
        /// What was being done.
        op: &'static str,
        /// The I/O error.
        #[source]
        source: io::Error,
    },

    // --- local storage / source ----------------------------------------
    /// The destination exists, before the transfer or since it began; it is left untouched.
    #[error("destination exists: {}", .0.display())]
    DestinationExists(PathBuf),
    /// A local file operation failed: the temporary file, the rename, an fsync.
    #[error("{op} {}: {source}", path.display())]
    File {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A pipeline thread could not start.
    #[error("starting a pipeline thread: {0}")]
    Spawn(#[source] io::Error),
    /// Reading the image source failed.
    #[error("reading the image source: {0}")]
    Source(#[source] io::Error),
    /// The image source ended before the declared length.
    #[error("the image source ended after {actual} bytes but the header declares {declared}")]
    SourceShorter {
        /// The header's `image_len`.
        declared: u64,
        /// Bytes the source held.
        actual: u64,
    },
    /// The image source holds more than the declared length.
    #[error("the image source holds more than the {declared} bytes the header declares")]
    SourceLonger {
        /// The header's `image_len`.
        declared: u64,
    },

    // --- caller mistakes -----------------------------------------------
    /// [`Header::new`] was given fields a receiver would refuse.
    #[error("invalid header: {0}")]
    InvalidHeader(HeaderProblem),
    /// The key was derived for another transfer than the one asked for.
    #[error("the transfer key was derived for transfer {}, not {}", hex(key), hex(other))]
    KeyForOtherTransfer {
        /// The transfer the key was derived for.
        key: TransferId,
        /// The transfer asked for: the header's, or the id the receiver expects.
        other: TransferId,
    },
    /// A [`TransferKey`] asked to seal a second stream: counter nonces would repeat.
    #[error("this transfer key has already sealed a stream; derive a new key with a fresh transfer id")]
    KeyReused,

    // --- our bug ---------------------------------------------------------
    /// An invariant of this module broke, or the crypto backend failed: our bug.
    #[error("internal error: {0}")]
    Internal(&'static str),
}

impl StreamError {
    /// Who is at fault.
    pub fn fault(&self) -> Fault {
        use StreamError as E;
        match self {
            E::BadMagic
            | E::HeaderTruncated
            | E::BadHeader(_)
            | E::WrongTransfer { .. }
            | E::RecordTooLong { .. }
            | E::RecordTooShort { .. }
            | E::AuthenticationFailed { .. }
            | E::NoRecords
            | E::Truncated { .. }
            | E::TruncatedInRecord { .. }
            | E::ChunkLength { .. }
            | E::FinalRecordMalformed { .. }
            | E::LengthMismatch { .. }
            | E::DigestMismatch
            | E::TrailingBytes { .. } => Fault::PeerMisbehaved,
            E::UnsupportedVersion(_) => Fault::PeerIncompatible,
            E::Transport { .. } => Fault::Unavailable,
            E::DestinationExists(_)
            | E::File { .. }
            | E::Spawn(_)
            | E::Source(_)
            | E::SourceShorter { .. }
            | E::SourceLonger { .. } => Fault::Local,
            E::InvalidHeader(_) | E::KeyForOtherTransfer { .. } | E::KeyReused => Fault::Bug,
            E::Internal(_) => Fault::Bug,
        }
    }

    /// True when the peer sent a wrong stream: log it as a security event.
    pub fn is_peer_misbehaviour(&self) -> bool {
        self.fault() == Fault::PeerMisbehaved
    }
}

fn transport(op: &'static str) -> impl FnOnce(io::Error) -> StreamError {
    move |source| StreamError::Transport { op, source }
}

fn file_err(op: &'static str, path: &Path, source: io::Error) -> StreamError {
    StreamError::File { op, path: path.to_path_buf(), source }
}

/// The AES-256-GCM key of one transfer.
pub struct TransferKey {
    aead: LessSafeKey,
    transfer_id: TransferId,
    /// Set by the first [`send`]: counter nonces must never repeat under one key.
    sealed: AtomicBool,
}

impl std::fmt::Debug for TransferKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransferKey").field("transfer_id", &hex(&self.transfer_id)).finish_non_exhaustive()
    }
}

impl TransferKey {
    /// Derives the key of transfer `transfer_id` from the session key `SK`
    /// that the two data centers agreed (and handed to their physical
    /// servers under TOTP).
    ///
    /// Fails only if the crypto backend does, which would be a bug.
    pub fn derive(session_key: &[u8; 32], transfer_id: &TransferId) -> Result<TransferKey, StreamError> {
        let okm = crate::crypto::hkdf32(session_key, &[], &[KEY_LABEL, transfer_id])
            .map_err(|_| StreamError::Internal("HKDF expand"))?;
        let aead =
            crate::crypto::aes256gcm(okm.as_ref()).map_err(|_| StreamError::Internal("AES-256-GCM key setup"))?;
        Ok(TransferKey { aead, transfer_id: *transfer_id, sealed: AtomicBool::new(false) })
    }

    /// The transfer this key belongs to.
    pub fn transfer_id(&self) -> &TransferId {
        &self.transfer_id
    }

    fn seal(
        &self,
        aad: &mut RecordAad,
        index: u64,
        is_final: bool,
        in_out: &mut [u8],
    ) -> Result<[u8; TAG_LEN], StreamError> {
        let tag = self
            .aead
            .seal_in_place_separate_tag(nonce(index), Aad::from(aad.for_record(index, is_final)), in_out)
            .map_err(|_| StreamError::Internal("AES-256-GCM seal"))?;
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Opens `sealed` (ciphertext ‖ tag) in place; returns the plaintext length.
    fn open(&self, aad: &mut RecordAad, index: u64, is_final: bool, sealed: &mut [u8]) -> Result<usize, StreamError> {
        let failed = StreamError::AuthenticationFailed { record: index };
        let ct_len = sealed.len().checked_sub(TAG_LEN).ok_or(StreamError::Internal("record shorter than tag"))?;
        let (ciphertext, tag) = sealed.split_at_mut_checked(ct_len).ok_or(StreamError::Internal("record split"))?;
        self.aead
            .open_in_place_separate_tag(nonce(index), Aad::from(aad.for_record(index, is_final)), tag, ciphertext)
            .map_err(|_| failed)?;
        Ok(ct_len)
    }
}

fn nonce(index: u64) -> Nonce {
    let mut n = [0u8; NONCE_LEN];
    for (dst, src) in n.iter_mut().skip(NONCE_LEN - 8).zip(index.to_be_bytes()) {
        *dst = src;
    }
    Nonce::assume_unique_for_key(n)
}

/// `header bytes ‖ index ‖ final`, rebuilt in place for every record.
struct RecordAad {
    buf: Vec<u8>,
    header_len: usize,
}

impl RecordAad {
    fn new(header: &[u8]) -> RecordAad {
        let mut buf = Vec::with_capacity(header.len() + 9);
        buf.extend_from_slice(header);
        RecordAad { buf, header_len: header.len() }
    }

    fn for_record(&mut self, index: u64, is_final: bool) -> &[u8] {
        self.buf.truncate(self.header_len);
        self.buf.extend_from_slice(&index.to_be_bytes());
        self.buf.push(u8::from(is_final));
        &self.buf
    }
}

/// The clear header of a transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    transfer_id: TransferId,
    chunk_size: u32,
    image_len: u64,
    name: String,
}

impl Header {
    /// A header for sending `image_len` bytes called `name` (informational:
    /// the receiver chooses its own destination path).
    pub fn new(transfer_id: TransferId, chunk_size: u32, image_len: u64, name: &str) -> Result<Header, StreamError> {
        check_chunk_size(chunk_size).map_err(StreamError::InvalidHeader)?;
        check_name(name.as_bytes()).map_err(StreamError::InvalidHeader)?;
        Ok(Header { transfer_id, chunk_size, image_len, name: name.to_owned() })
    }

    /// The transfer this header is for.
    pub fn transfer_id(&self) -> &TransferId {
        &self.transfer_id
    }

    /// Plaintext bytes per data record.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// The declared image length.
    pub fn image_len(&self) -> u64 {
        self.image_len
    }

    /// The image name the sender gave (informational).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The header exactly as it travels (and as it is bound into every record).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_FIXED_LEN + self.name.len());
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&self.transfer_id);
        out.extend_from_slice(&self.chunk_size.to_be_bytes());
        out.extend_from_slice(&self.image_len.to_be_bytes());
        // check_name bounds the name to 255 bytes.
        out.push(u8::try_from(self.name.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(self.name.as_bytes());
        out
    }

    /// Reads and checks a header; returns it with its exact bytes.
    fn read_from<R: Read>(src: &mut R, expected: &TransferId) -> Result<(Header, Vec<u8>), StreamError> {
        let mut fixed = [0u8; HEADER_FIXED_LEN];
        let (start, rest) = fixed.split_at_mut(9);
        read_exact_or(src, start, StreamError::HeaderTruncated)?;
        let (magic, version) = start.split_at(8);
        if magic != MAGIC {
            return Err(StreamError::BadMagic);
        }
        if version != [VERSION] {
            return Err(StreamError::UnsupportedVersion(version.first().copied().unwrap_or(0)));
        }
        read_exact_or(src, rest, StreamError::HeaderTruncated)?;
        let mut fields = Fields(rest);
        let transfer_id: TransferId = fields.take()?;
        let chunk_size = u32::from_be_bytes(fields.take()?);
        let image_len = u64::from_be_bytes(fields.take()?);
        let [name_len] = fields.take()?;
        if transfer_id != *expected {
            return Err(StreamError::WrongTransfer { expected: *expected, got: transfer_id });
        }
        check_chunk_size(chunk_size).map_err(StreamError::BadHeader)?;
        let mut name = vec![0u8; usize::from(name_len)];
        read_exact_or(src, &mut name, StreamError::HeaderTruncated)?;
        check_name(&name).map_err(StreamError::BadHeader)?;
        let name = String::from_utf8(name).map_err(|_| StreamError::BadHeader(HeaderProblem::NameNotUtf8))?;
        let header = Header { transfer_id, chunk_size, image_len, name };
        let bytes = header.to_bytes();
        Ok((header, bytes))
    }
}

/// Splits fixed-size fields off a byte slice without panicking.
struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], StreamError> {
        let (head, tail) = self.0.split_first_chunk::<N>().ok_or(StreamError::Internal("header field"))?;
        self.0 = tail;
        Ok(*head)
    }
}

fn check_chunk_size(chunk_size: u32) -> Result<(), HeaderProblem> {
    if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size) {
        Err(HeaderProblem::ChunkSize(chunk_size))
    } else if !chunk_size.is_power_of_two() {
        Err(HeaderProblem::ChunkSizeNotPowerOfTwo(chunk_size))
    } else {
        Ok(())
    }
}

fn check_name(name: &[u8]) -> Result<(), HeaderProblem> {
    if name.is_empty() {
        return Err(HeaderProblem::NameEmpty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(HeaderProblem::NameTooLong(name.len()));
    }
    if std::str::from_utf8(name).is_err() {
        return Err(HeaderProblem::NameNotUtf8);
    }
    if name.iter().any(|&b| b == b'/' || b == 0) {
        return Err(HeaderProblem::NameForbiddenChar);
    }
    if name == b"." || name == b".." {
        return Err(HeaderProblem::NameDots);
    }
    Ok(())
}

/// Reads until `buf` is full or the stream ends; returns the bytes read.
fn read_full<R: Read>(src: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while let Some(rest) = buf.get_mut(filled..) {
        if rest.is_empty() {
            break;
        }
        match src.read(rest) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn read_exact_or<R: Read>(src: &mut R, buf: &mut [u8], short: StreamError) -> Result<(), StreamError> {
    let n = read_full(src, buf).map_err(transport("reading the stream"))?;
    if n == buf.len() { Ok(()) } else { Err(short) }
}

/// Plaintext length of the next data record when `remaining` image bytes are left.
fn data_len(chunk_size: u32, remaining: u64) -> usize {
    // Bounded by chunk_size, which fits usize.
    usize::try_from(remaining.min(u64::from(chunk_size))).unwrap_or(0)
}

fn record_limit(chunk_size: u32) -> u32 {
    // MAX_CHUNK_SIZE + TAG_LEN fits u32.
    chunk_size.saturating_add(TAG_LEN as u32)
}

fn new_buffer(chunk_size: u32) -> Vec<u8> {
    vec![0u8; LEN_PREFIX + chunk_size as usize + TAG_LEN]
}

#[cfg(test)]
mod tests;
