//! The receiving side of `VM_Data_Tran`: open and check each record, write to a temporary file, commit.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, SyncSender, TryRecvError};

use subtle::ConstantTimeEq;

use super::digest::{ImageDigest, leaf};
use super::pool::{Jobs, start_stages};
use super::{
    FINAL_PLAINTEXT_LEN, Fields, Header, LEN_PREFIX, RecordAad, StreamError, TAG_LEN, TEMP_PREFIX, TransferId,
    TransferKey, data_len, file_err, new_buffer, read_full, record_limit, transport,
};

/// What [`receive`] committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiveSummary {
    /// The verified header.
    pub header: Header,
    /// Image bytes written.
    pub bytes: u64,
    /// BLAKE3 of the image, recomputed here and equal to the sender's.
    pub blake3: [u8; 32],
    /// Where the image now is.
    pub path: PathBuf,
}

/// An item from the read stage, numbered in stream order (record `i` is item `i`).
enum Sealed {
    /// `buf[..len]` holds the record as it arrived (ciphertext ‖ tag);
    /// `expected` is the plaintext length the framing requires of a data record.
    Record { buf: Vec<u8>, len: usize, is_final: bool, expected: usize },
    /// The stream ended right after the final record.
    Eof,
}

/// An item from a worker.
enum Opened {
    /// `buf[..len]` holds verified image bytes; `cv` is their digest contribution.
    Data { buf: Vec<u8>, len: usize, cv: [u8; 32] },
    /// The final record verified.
    Final { blake3: [u8; 32], stated_len: u64 },
    /// Nothing follows the final record.
    Eof,
}

/// Receives `VM_Data_Tran` for transfer `expected_transfer_id` from `src`
/// and commits the image at `dest`, which must not exist.
///
/// The image is written to a temporary file in `dest`'s directory. Only
/// after the final record has verified, the recomputed BLAKE3 and length
/// match it and the stream has ended is the file fsynced, renamed to `dest`
/// without clobbering, and the directory fsynced. On any error the temporary
/// file is removed and `dest` does not exist.
///
/// Three stages: a scoped thread reads records off `src` into buffers;
/// workers (one per core this thread may use) each open a whole record in
/// place and hash its plaintext (its BLAKE3 subtree) while it is in cache;
/// the calling thread takes the records back in stream order, writes the
/// plaintext, joins the digests and calls `progress` with the image bytes
/// written so far. Errors surface in stream order too: the first record
/// where the stream diverges is the one reported.
pub fn receive<R: Read + Send>(
    key: &TransferKey,
    expected_transfer_id: &TransferId,
    mut src: R,
    dest: &Path,
    progress: &mut dyn FnMut(u64),
) -> Result<ReceiveSummary, StreamError> {
    if *expected_transfer_id != key.transfer_id {
        return Err(StreamError::KeyForOtherTransfer { key: key.transfer_id, other: *expected_transfer_id });
    }
    // Fail before gigabytes arrive; the no-clobber rename is the real guard.
    if dest.symlink_metadata().is_ok() {
        return Err(StreamError::DestinationExists(dest.to_path_buf()));
    }
    let (header, header_bytes) = Header::read_from(&mut src, expected_transfer_id)?;
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut temp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .suffix(".part")
        .tempfile_in(dir)
        .map_err(|e| file_err("creating a temporary file in", dir, e))?;
    // From here on, an early return drops `temp`, which removes the file.
    let temp_path = temp.path().to_path_buf();

    let (chunk_size, declared) = (header.chunk_size, header.image_len);
    let blake3 = std::thread::scope(|scope| {
        let header_bytes = &header_bytes;
        let (mut opened, free_tx) = start_stages(
            scope,
            ["vm-recv-read", "vm-recv-open"],
            move |buffers, free, jobs| read_records(chunk_size, declared, buffers, src, free, jobs),
            move |jobs, done| open_worker(key, header_bytes, declared, chunk_size, jobs, done),
        )?;
        let file = temp.as_file_mut();
        let mut digest = ImageDigest::new(declared, chunk_size);
        let mut written = 0u64;
        let mut stated = None;
        loop {
            match opened.next().ok_or(StreamError::Internal("open stage stopped"))?? {
                Opened::Data { buf, len, cv } => {
                    let plain = buf.get(..len).ok_or(StreamError::Internal("record layout"))?;
                    file.write_all(plain).map_err(|e| file_err("writing", &temp_path, e))?;
                    digest.push(cv);
                    written += len as u64;
                    progress(written);
                    let _ = free_tx.send(buf);
                }
                Opened::Final { blake3, stated_len } => stated = Some((blake3, stated_len)),
                Opened::Eof => {
                    let (theirs, stated_len) = stated.ok_or(StreamError::Internal("end before the final record"))?;
                    let ours = digest.finish()?;
                    if !bool::from(ours.ct_eq(&theirs)) {
                        return Err(StreamError::DigestMismatch);
                    }
                    if stated_len != declared || written != declared {
                        return Err(StreamError::LengthMismatch { declared, stated: stated_len });
                    }
                    return Ok(ours);
                }
            }
        }
    })?;

    temp.as_file().sync_all().map_err(|e| file_err("fsyncing", &temp_path, e))?;
    match temp.persist_noclobber(dest) {
        Ok(_file) => {}
        Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => {
            return Err(StreamError::DestinationExists(dest.to_path_buf()));
        }
        Err(e) => {
            return Err(StreamError::File { op: "renaming the image to", path: dest.to_path_buf(), source: e.error });
        }
    }
    if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
        // The rename may not be durable: take it back so that an error
        // always means "no image at dest".
        let _ = std::fs::remove_file(dest);
        return Err(StreamError::File { op: "fsyncing the directory", path: dir.to_path_buf(), source: e });
    }
    Ok(ReceiveSummary { header, bytes: declared, blake3, path: dest.to_path_buf() })
}

/// Read stage of [`receive`]: reads record after record with the framing
/// the declared length fixes, and after the final record makes sure the
/// stream ends. The last item is `Eof` or the error that stopped the stage.
fn read_records<R: Read>(
    chunk_size: u32,
    declared: u64,
    buffers: usize,
    mut src: R,
    free: &Receiver<Vec<u8>>,
    jobs: &SyncSender<(u64, Result<Sealed, StreamError>)>,
) {
    let mut remaining = declared;
    let mut made = 0usize;
    let mut index = 0u64;
    loop {
        let is_final = remaining == 0;
        let mut buf = match free.try_recv() {
            Ok(buf) => buf,
            Err(TryRecvError::Empty) if made < buffers => {
                made += 1;
                new_buffer(chunk_size)
            }
            // The writing stage stopped (its error is what the caller sees).
            Err(TryRecvError::Disconnected) => return,
            Err(TryRecvError::Empty) => match free.recv() {
                Ok(buf) => buf,
                Err(_) => return,
            },
        };
        let expected = data_len(chunk_size, remaining);
        let step = read_record(chunk_size, index, &mut src, &mut buf).map(|len| Sealed::Record {
            buf,
            len,
            is_final,
            expected,
        });
        let failed = step.is_err();
        if jobs.send((index, step)).is_err() || failed {
            return;
        }
        index += 1;
        if is_final {
            let end = match read_full(&mut src, &mut [0u8; 1]).map_err(transport("reading the stream")) {
                Ok(0) => Ok(Sealed::Eof),
                Ok(_) => Err(StreamError::TrailingBytes { record: index - 1 }),
                Err(e) => Err(e),
            };
            let _ = jobs.send((index, end));
            return;
        }
        // Fixed by the declared length; a record that carries another length fails in its worker.
        remaining -= expected as u64;
    }
}

/// Reads record `index` (length prefix, then ciphertext ‖ tag) into `buf`;
/// returns the length of what follows the prefix.
fn read_record<R: Read>(chunk_size: u32, index: u64, src: &mut R, buf: &mut [u8]) -> Result<usize, StreamError> {
    let mut prefix = [0u8; LEN_PREFIX];
    match read_full(src, &mut prefix).map_err(transport("reading the stream"))? {
        0 if index == 0 => return Err(StreamError::NoRecords),
        0 => return Err(StreamError::Truncated { last: index - 1 }),
        LEN_PREFIX => {}
        _ => return Err(StreamError::TruncatedInRecord { record: index }),
    }
    let len = u32::from_be_bytes(prefix);
    let limit = record_limit(chunk_size);
    if len > limit {
        // Checked before reading: the buffers were sized for `limit`, nothing is allocated.
        return Err(StreamError::RecordTooLong { record: index, len, limit });
    }
    if (len as usize) < TAG_LEN {
        return Err(StreamError::RecordTooShort { record: index, len });
    }
    let sealed = buf.get_mut(..len as usize).ok_or(StreamError::Internal("buffer too small"))?;
    if read_full(src, sealed).map_err(transport("reading the stream"))? != sealed.len() {
        return Err(StreamError::TruncatedInRecord { record: index });
    }
    Ok(len as usize)
}

/// A worker of [`receive`]: opens records in place, checks data records
/// against the chunk framing and hashes them, parses the final record.
fn open_worker(
    key: &TransferKey,
    header_bytes: &[u8],
    declared: u64,
    chunk_size: u32,
    jobs: &Jobs<Result<Sealed, StreamError>>,
    done: &Sender<(u64, Result<Opened, StreamError>)>,
) {
    let mut aad = RecordAad::new(header_bytes);
    while let Some((index, item)) = jobs.next() {
        let out = match item {
            Ok(Sealed::Record { buf, len, is_final, expected }) => {
                let record = Record { index, is_final, expected, buf, len };
                open_record(key, &mut aad, declared, chunk_size, record)
            }
            Ok(Sealed::Eof) => Ok(Opened::Eof),
            Err(e) => Err(e),
        };
        if done.send((index, out)).is_err() {
            return;
        }
    }
}

/// A record as the read stage handed it to a worker.
struct Record {
    index: u64,
    is_final: bool,
    /// Plaintext bytes the framing requires (data records).
    expected: usize,
    /// `buf[..len]` is ciphertext ‖ tag.
    buf: Vec<u8>,
    len: usize,
}

/// Opens a record in place: a data record is checked against the chunk
/// framing and hashed, the final record is parsed.
fn open_record(
    key: &TransferKey,
    aad: &mut RecordAad,
    declared: u64,
    chunk_size: u32,
    record: Record,
) -> Result<Opened, StreamError> {
    let Record { index, is_final, expected, mut buf, len } = record;
    let sealed = buf.get_mut(..len).ok_or(StreamError::Internal("record layout"))?;
    let got = key.open(aad, index, is_final, sealed)?;
    let plain = sealed.get(..got).ok_or(StreamError::Internal("record layout"))?;
    if is_final {
        return final_record(index, plain);
    }
    // Only a holder of the key can get here with a wrong length.
    if got != expected {
        return Err(StreamError::ChunkLength { record: index, got, expected });
    }
    let cv = leaf(declared, chunk_size, index, plain);
    Ok(Opened::Data { buf, len: got, cv })
}

/// Parses the final record's plaintext.
fn final_record(index: u64, plain: &[u8]) -> Result<Opened, StreamError> {
    let fields: &[u8; FINAL_PLAINTEXT_LEN] =
        plain.try_into().map_err(|_| StreamError::FinalRecordMalformed { record: index, got: plain.len() })?;
    let mut fields = Fields(fields);
    let blake3: [u8; 32] = fields.take()?;
    let stated_len = u64::from_be_bytes(fields.take()?);
    Ok(Opened::Final { blake3, stated_len })
}
