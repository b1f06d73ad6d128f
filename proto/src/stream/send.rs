//! The sending side of `VM_Data_Tran`: read the image, hash and seal it record by record.

use std::io::{Read, Write};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, Sender, SyncSender, TryRecvError};

use super::digest::{ImageDigest, leaf};
use super::pool::{Jobs, start_stages};
use super::{
    FINAL_PLAINTEXT_LEN, Header, LEN_PREFIX, RecordAad, StreamError, TAG_LEN, TransferKey, data_len, new_buffer,
    read_full, transport,
};

/// What [`send`] sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendSummary {
    /// Image bytes sent.
    pub bytes: u64,
    /// BLAKE3 of the image, as sent in the final record.
    pub blake3: [u8; 32],
}

/// An item from the read stage, numbered by record.
enum Plain {
    /// `buf[LEN_PREFIX .. LEN_PREFIX + len]` holds the image bytes of the record.
    Data { buf: Vec<u8>, len: usize },
    /// The source is exhausted at exactly the declared length.
    End,
}

/// An item from a worker.
enum Sealed {
    /// `buf[..record_len]` is the record as it goes on the wire; `cv` its digest contribution.
    Data {
        buf: Vec<u8>,
        record_len: usize,
        len: usize,
        cv: [u8; 32],
    },
    End,
}

/// Sends `src` (exactly `header.image_len()` bytes) as `VM_Data_Tran` to `dst`.
///
/// Three stages: a scoped thread reads `src` into buffers; workers (one per
/// core this thread may use, see `pool::worker_count`) each take a whole
/// record, hash it (its BLAKE3 subtree, see `digest`) and seal it in place
/// while it is still in cache, with the length prefix before it and the tag
/// after it; the calling thread takes the records back in order, writes each
/// with one `write_all`, joins the digests and calls `progress` with the
/// image bytes sent so far. Buffers cycle between the stages, so nothing is
/// copied in user space and nothing is allocated per record.
/// `dst` is flushed at the end but not closed: the caller closes it (see the
/// module docs).
pub fn send<R: Read + Send, W: Write>(
    key: &TransferKey,
    header: &Header,
    src: R,
    mut dst: W,
    progress: &mut dyn FnMut(u64),
) -> Result<SendSummary, StreamError> {
    if header.transfer_id != key.transfer_id {
        return Err(StreamError::KeyForOtherTransfer { key: key.transfer_id, other: header.transfer_id });
    }
    if key.sealed.swap(true, Ordering::SeqCst) {
        return Err(StreamError::KeyReused);
    }
    let header_bytes = header.to_bytes();
    dst.write_all(&header_bytes).map_err(transport("writing the header"))?;
    let (chunk_size, declared) = (header.chunk_size, header.image_len);
    std::thread::scope(|scope| {
        let header_bytes = &header_bytes;
        let (mut sealed, free_tx) = start_stages(
            scope,
            ["vm-send-read", "vm-send-seal"],
            move |buffers, free, jobs| read_source(src, chunk_size, declared, buffers, free, jobs),
            move |jobs, done| seal_worker(key, header_bytes, declared, chunk_size, jobs, done),
        )?;
        let mut digest = ImageDigest::new(declared, chunk_size);
        let mut sent = 0u64;
        let mut index = 0u64;
        loop {
            match sealed.next().ok_or(StreamError::Internal("seal stage stopped"))?? {
                Sealed::Data { buf, record_len, len, cv } => {
                    let record = buf.get(..record_len).ok_or(StreamError::Internal("record layout"))?;
                    dst.write_all(record).map_err(transport("writing the stream"))?;
                    digest.push(cv);
                    index += 1;
                    sent += len as u64;
                    progress(sent);
                    // The reader may have stopped already; then the buffer is simply dropped.
                    let _ = free_tx.send(buf);
                }
                Sealed::End => {
                    let blake3 = digest.finish()?;
                    let mut buf = [0u8; LEN_PREFIX + FINAL_PLAINTEXT_LEN + TAG_LEN];
                    let (plain, _) = buf
                        .get_mut(LEN_PREFIX..)
                        .and_then(|b| b.split_first_chunk_mut::<FINAL_PLAINTEXT_LEN>())
                        .ok_or(StreamError::Internal("final record layout"))?;
                    let (hash, len) = plain.split_at_mut(32);
                    hash.copy_from_slice(&blake3);
                    len.copy_from_slice(&sent.to_be_bytes());
                    let mut aad = RecordAad::new(header_bytes);
                    let record = seal_record(key, &mut aad, index, true, &mut buf, FINAL_PLAINTEXT_LEN)?;
                    dst.write_all(record).map_err(transport("writing the stream"))?;
                    dst.flush().map_err(transport("flushing the stream"))?;
                    return Ok(SendSummary { bytes: sent, blake3 });
                }
            }
        }
    })
}

/// A worker of [`send`]: hashes and seals data records in place; the item
/// number is the record index.
fn seal_worker(
    key: &TransferKey,
    header_bytes: &[u8],
    declared: u64,
    chunk_size: u32,
    jobs: &Jobs<Result<Plain, StreamError>>,
    done: &Sender<(u64, Result<Sealed, StreamError>)>,
) {
    let mut aad = RecordAad::new(header_bytes);
    while let Some((index, item)) = jobs.next() {
        let out = match item {
            Ok(Plain::Data { mut buf, len }) => {
                match buf.get(LEN_PREFIX..LEN_PREFIX + len).map(|plain| leaf(declared, chunk_size, index, plain)) {
                    None => Err(StreamError::Internal("record layout")),
                    Some(cv) => seal_record(key, &mut aad, index, false, &mut buf, len)
                        .map(<[u8]>::len)
                        .map(|record_len| Sealed::Data { buf, record_len, len, cv }),
                }
            }
            Ok(Plain::End) => Ok(Sealed::End),
            Err(e) => Err(e),
        };
        if done.send((index, out)).is_err() {
            return;
        }
    }
}

/// Seals `buf[LEN_PREFIX .. LEN_PREFIX + len]` in place, writes the length
/// prefix before it and the tag after it, and returns the whole record.
pub(super) fn seal_record<'b>(
    key: &TransferKey,
    aad: &mut RecordAad,
    index: u64,
    is_final: bool,
    buf: &'b mut [u8],
    len: usize,
) -> Result<&'b [u8], StreamError> {
    let record = buf.get_mut(..LEN_PREFIX + len + TAG_LEN).ok_or(StreamError::Internal("record layout"))?;
    let (prefix, rest) = record.split_first_chunk_mut::<LEN_PREFIX>().ok_or(StreamError::Internal("record layout"))?;
    let (plain, tag) = rest.split_at_mut_checked(len).ok_or(StreamError::Internal("record layout"))?;
    let sealed_len = u32::try_from(len + TAG_LEN).map_err(|_| StreamError::Internal("record length"))?;
    *prefix = sealed_len.to_be_bytes();
    tag.copy_from_slice(&key.seal(aad, index, is_final, plain)?);
    Ok(record)
}

/// Read stage of [`send`]: fills buffers with exactly the declared number
/// of bytes and checks that the source ends there. Items are numbered by
/// record; the last one is `End` or the error that stopped the stage.
fn read_source<R: Read>(
    mut src: R,
    chunk_size: u32,
    declared: u64,
    buffers: usize,
    free: &Receiver<Vec<u8>>,
    jobs: &SyncSender<(u64, Result<Plain, StreamError>)>,
) {
    let mut remaining = declared;
    let mut made = 0usize;
    let mut index = 0u64;
    loop {
        if remaining == 0 {
            let end = match read_full(&mut src, &mut [0u8; 1]) {
                Ok(0) => Ok(Plain::End),
                Ok(_) => Err(StreamError::SourceLonger { declared }),
                Err(e) => Err(StreamError::Source(e)),
            };
            let _ = jobs.send((index, end));
            return;
        }
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
        let want = data_len(chunk_size, remaining);
        let step = match buf.get_mut(LEN_PREFIX..LEN_PREFIX + want) {
            None => Err(StreamError::Internal("buffer too small")),
            Some(chunk) => match read_full(&mut src, chunk) {
                Err(e) => Err(StreamError::Source(e)),
                Ok(n) if n < want => {
                    Err(StreamError::SourceShorter { declared, actual: declared - remaining + n as u64 })
                }
                Ok(_) => {
                    remaining -= want as u64;
                    Ok(Plain::Data { buf, len: want })
                }
            },
        };
        let failed = step.is_err();
        if jobs.send((index, step)).is_err() || failed {
            return;
        }
        index += 1;
    }
}
