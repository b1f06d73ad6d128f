use super::send::seal_record;
use super::*;
use rand::RngCore;
use std::io::Write;
use std::net::{Shutdown, TcpListener, TcpStream};

const SK: [u8; 32] = [0x42; 32];
const ID_A: TransferId = [0xa1; 16];
const ID_B: TransferId = [0xb2; 16];
/// Small chunks keep the hostile-stream tests fast and readable.
const CHUNK: u32 = MIN_CHUNK_SIZE;

fn random_bytes(len: usize) -> Vec<u8> {
    let mut data = vec![0u8; len];
    crate::edge::rng().fill_bytes(&mut data);
    data
}

fn key(id: &TransferId) -> TransferKey {
    TransferKey::derive(&SK, id).unwrap()
}

/// A real `send` of `data` captured into bytes.
fn capture_with(session_key: &[u8; 32], id: &TransferId, chunk: u32, data: &[u8]) -> Vec<u8> {
    let key = TransferKey::derive(session_key, id).unwrap();
    let header = Header::new(*id, chunk, data.len() as u64, "vm-42.qcow2").unwrap();
    let mut wire = Vec::new();
    let summary = send(&key, &header, data, &mut wire, &mut |_| {}).unwrap();
    assert_eq!(summary.bytes, data.len() as u64);
    wire
}

fn capture(id: &TransferId, data: &[u8]) -> Vec<u8> {
    capture_with(&SK, id, CHUNK, data)
}

/// Header bytes and the records (each with its length prefix) of a captured stream.
fn split(wire: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>) {
    let name_len = wire[HEADER_FIXED_LEN - 1] as usize;
    let header_len = HEADER_FIXED_LEN + name_len;
    let mut records = Vec::new();
    let mut at = header_len;
    while at < wire.len() {
        let len = u32::from_be_bytes(wire[at..at + 4].try_into().unwrap()) as usize;
        records.push(wire[at..at + 4 + len].to_vec());
        at += 4 + len;
    }
    (wire[..header_len].to_vec(), records)
}

fn join(header: &[u8], records: &[Vec<u8>]) -> Vec<u8> {
    let mut out = header.to_vec();
    for r in records {
        out.extend_from_slice(r);
    }
    out
}

struct Received {
    result: Result<ReceiveSummary, StreamError>,
    dir: tempfile::TempDir,
    dest: PathBuf,
}

fn receive_bytes(key: &TransferKey, expected: &TransferId, wire: &[u8]) -> Received {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("vm.img");
    let result = receive(key, expected, wire, &dest, &mut |_| {});
    Received { result, dir, dest }
}

/// The stream was refused with `expected`, and nothing was left behind.
fn assert_refused(received: Received, expected: &str) -> StreamError {
    let err = match received.result {
        Ok(s) => panic!("hostile stream accepted: {s:?}"),
        Err(e) => e,
    };
    assert_eq!(err.to_string(), expected);
    assert!(!received.dest.exists(), "dest exists after a refused stream");
    let left: Vec<_> = std::fs::read_dir(received.dir.path()).unwrap().collect();
    assert!(left.is_empty(), "temporary file left behind: {left:?}");
    err
}

fn refused_by_peer(received: Received, expected: &str) {
    let err = assert_refused(received, expected);
    assert_eq!(err.fault(), Fault::PeerMisbehaved, "{err}");
    assert!(err.is_peer_misbehaviour());
}

/// 3 full chunks + 5 bytes: records 0..=3 carry data, record 4 is final.
fn three_and_a_bit() -> (Vec<u8>, Vec<u8>, Vec<Vec<u8>>) {
    let data = random_bytes(3 * CHUNK as usize + 5);
    let (header, records) = split(&capture(&ID_A, &data));
    assert_eq!(records.len(), 5);
    (data, header, records)
}

fn round_trip(chunk: u32, len: usize) {
    let data = random_bytes(len);
    let wire = capture_with(&SK, &ID_A, chunk, &data);
    let mut seen = Vec::new();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("vm.img");
    let summary = receive(&key(&ID_A), &ID_A, &wire[..], &dest, &mut |n| seen.push(n)).unwrap();
    let written = std::fs::read(&dest).unwrap();
    assert!(written == data, "image differs after round trip of {len} bytes");
    // The digest is the image's ordinary BLAKE3 (what `b3sum` prints).
    assert_eq!(summary.blake3, *blake3::hash(&data).as_bytes());
    assert_eq!(summary.bytes, len as u64);
    assert_eq!(summary.path, dest);
    assert_eq!(summary.header.name(), "vm-42.qcow2");
    assert_eq!(seen.last().copied().unwrap_or(0), len as u64);
    // Only the image: no temporary file left beside it.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn round_trip_sizes_around_the_chunk() {
    let c = CHUNK as usize;
    for len in [0, 1, c - 1, c, c + 1, 3 * c + 5] {
        round_trip(CHUNK, len);
    }
}

#[test]
fn round_trip_default_chunk() {
    let c = DEFAULT_CHUNK_SIZE as usize;
    round_trip(DEFAULT_CHUNK_SIZE, 3 * c + 5);
}

#[test]
fn round_trip_many_records_through_the_workers() {
    // More records than buffers and workers, so records are sealed, opened
    // and handed back out of order many times over.
    let c = CHUNK as usize;
    round_trip(CHUNK, 200 * c + 3);
    round_trip(2 * CHUNK, 64 * 2 * c);
}

#[test]
fn wire_format_is_as_documented() {
    let data = random_bytes(CHUNK as usize + 1);
    let wire = capture(&ID_A, &data);
    let (header, records) = split(&wire);
    let mut expected = b"DBVMTRAN\x02".to_vec();
    expected.extend_from_slice(&ID_A);
    expected.extend_from_slice(&CHUNK.to_be_bytes());
    expected.extend_from_slice(&(CHUNK as u64 + 1).to_be_bytes());
    expected.push(11);
    expected.extend_from_slice(b"vm-42.qcow2");
    assert_eq!(header, expected);
    let lens: Vec<usize> = records.iter().map(|r| r.len() - 4).collect();
    assert_eq!(lens, [CHUNK as usize + 16, 1 + 16, 40 + 16]);
    // Record 1 opens by hand with the documented nonce and AAD.
    let k = key(&ID_A);
    let mut sealed = records[1][4..].to_vec();
    let mut aad = header.clone();
    aad.extend_from_slice(&1u64.to_be_bytes());
    aad.push(0);
    let nonce = Nonce::assume_unique_for_key([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    let plain = k.aead.open_in_place(nonce, Aad::from(&aad), &mut sealed).unwrap();
    assert_eq!(plain, &data[CHUNK as usize..]);
}

#[test]
fn flipped_ciphertext_bit() {
    let (_, header, mut records) = three_and_a_bit();
    records[2][4 + 100] ^= 0x01;
    refused_by_peer(
        receive_bytes(&key(&ID_A), &ID_A, &join(&header, &records)),
        "record 2: authentication failed (tampered, reordered or from another transfer)",
    );
}

#[test]
fn the_first_tampered_record_is_the_one_reported() {
    // Records are opened in parallel; the error still names the first
    // record where the stream diverges, and nothing is committed.
    let data = random_bytes(40 * CHUNK as usize);
    let (header, mut records) = split(&capture(&ID_A, &data));
    for i in [29, 7, 33] {
        records[i][4 + 10] ^= 0x01;
    }
    refused_by_peer(
        receive_bytes(&key(&ID_A), &ID_A, &join(&header, &records)),
        "record 7: authentication failed (tampered, reordered or from another transfer)",
    );
    // A tampered record before a truncation: the tampering is what is reported.
    let (header, mut records) = split(&capture(&ID_A, &data));
    records[12][4 + 10] ^= 0x01;
    records.truncate(30);
    refused_by_peer(
        receive_bytes(&key(&ID_A), &ID_A, &join(&header, &records)),
        "record 12: authentication failed (tampered, reordered or from another transfer)",
    );
}

#[test]
fn flipped_tag_bit() {
    let (_, header, mut records) = three_and_a_bit();
    let last = records[1].len() - 1;
    records[1][last] ^= 0x80;
    refused_by_peer(
        receive_bytes(&key(&ID_A), &ID_A, &join(&header, &records)),
        "record 1: authentication failed (tampered, reordered or from another transfer)",
    );
}

#[test]
fn flipped_length_prefix_bit() {
    let (_, header, records) = three_and_a_bit();
    // 1040 = 0x410 → 0x400: the record is read one tag short and fails authentication.
    let mut shorter = records.clone();
    shorter[0][3] ^= 0x10;
    refused_by_peer(
        receive_bytes(&key(&ID_A), &ID_A, &join(&header, &shorter)),
        "record 0: authentication failed (tampered, reordered or from another transfer)",
    );
    // 1040 → 1041: longer than any record may be.
    let mut longer = records;
    longer[0][3] ^= 0x01;
    refused_by_peer(
        receive_bytes(&key(&ID_A), &ID_A, &join(&header, &longer)),
        "record 0: record length 1041 exceeds the limit 1040",
    );
}

#[test]
fn flipped_header_bit() {
    let (_, mut header, records) = three_and_a_bit();
    // The lowest byte of the declared length: still a well-formed header,
    // but every record's AAD now differs.
    header[HEADER_FIXED_LEN - 2] ^= 0x01;
    refused_by_peer(
        receive_bytes(&key(&ID_A), &ID_A, &join(&header, &records)),
        "record 0: authentication failed (tampered, reordered or from another transfer)",
    );
    // A flipped bit in the name: same.
    let (_, mut header, records) = three_and_a_bit();
    header[HEADER_FIXED_LEN] ^= 0x02;
    refused_by_peer(
        receive_bytes(&key(&ID_A), &ID_A, &join(&header, &records)),
        "record 0: authentication failed (tampered, reordered or from another transfer)",
    );
}

#[test]
fn flipped_final_record_bit() {
    let (_, header, mut records) = three_and_a_bit();
    records[4][4] ^= 0x01;
    refused_by_peer(
        receive_bytes(&key(&ID_A), &ID_A, &join(&header, &records)),
        "record 4: authentication failed (tampered, reordered or from another transfer)",
    );
}

#[test]
fn dropped_record() {
    let (_, header, mut records) = three_and_a_bit();
    records.remove(1);
    refused_by_peer(
        receive_bytes(&key(&ID_A), &ID_A, &join(&header, &records)),
        "record 1: authentication failed (tampered, reordered or from another transfer)",
    );
}

#[test]
fn duplicated_record() {
    let (_, header, mut records) = three_and_a_bit();
    let copy = records[1].clone();
    records.insert(2, copy);
    refused_by_peer(
        receive_bytes(&key(&ID_A), &ID_A, &join(&header, &records)),
        "record 2: authentication failed (tampered, reordered or from another transfer)",
    );
}

#[test]
fn swapped_records() {
    let (_, header, mut records) = three_and_a_bit();
    records.swap(1, 2);
    refused_by_peer(
        receive_bytes(&key(&ID_A), &ID_A, &join(&header, &records)),
        "record 1: authentication failed (tampered, reordered or from another transfer)",
    );
}

#[test]
fn final_record_moved_early() {
    let (_, header, mut records) = three_and_a_bit();
    let last = records.pop().unwrap();
    records.insert(2, last);
    refused_by_peer(
        receive_bytes(&key(&ID_A), &ID_A, &join(&header, &records)),
        "record 2: authentication failed (tampered, reordered or from another transfer)",
    );
}

#[test]
fn truncated_at_a_record_boundary() {
    let (_, header, records) = three_and_a_bit();
    refused_by_peer(
        receive_bytes(&key(&ID_A), &ID_A, &join(&header, &records[..4])),
        "stream ended after record 3 without the final record (truncated)",
    );
    refused_by_peer(
        receive_bytes(&key(&ID_A), &ID_A, &join(&header, &records[..2])),
        "stream ended after record 1 without the final record (truncated)",
    );
    refused_by_peer(
        receive_bytes(&key(&ID_A), &ID_A, &header),
        "stream ended after the header without any record (truncated)",
    );
}

#[test]
fn truncated_mid_record() {
    let (_, header, records) = three_and_a_bit();
    let mut wire = join(&header, &records[..3]);
    wire.extend_from_slice(&records[3][..10]);
    refused_by_peer(receive_bytes(&key(&ID_A), &ID_A, &wire), "stream ended inside record 3 (truncated)");
    // Inside a length prefix.
    let mut wire = join(&header, &records[..3]);
    wire.extend_from_slice(&records[3][..2]);
    refused_by_peer(receive_bytes(&key(&ID_A), &ID_A, &wire), "stream ended inside record 3 (truncated)");
    // Inside the header.
    refused_by_peer(receive_bytes(&key(&ID_A), &ID_A, &header[..20]), "stream ended inside the header (truncated)");
}

#[test]
fn extra_bytes_after_final() {
    let (_, header, records) = three_and_a_bit();
    let mut wire = join(&header, &records);
    wire.push(0);
    refused_by_peer(receive_bytes(&key(&ID_A), &ID_A, &wire), "bytes after the final record (record 4)");
    // A whole second copy of the final record, too.
    let mut wire = join(&header, &records);
    wire.extend_from_slice(&records[4]);
    refused_by_peer(receive_bytes(&key(&ID_A), &ID_A, &wire), "bytes after the final record (record 4)");
}

#[test]
fn record_from_another_transfer_spliced_in() {
    let data = random_bytes(3 * CHUNK as usize + 5);
    let (header_a, mut records_a) = split(&capture(&ID_A, &data));
    // Same session key, same image, same chunk size: only the transfer differs.
    let (_, records_b) = split(&capture(&ID_B, &data));
    records_a[1] = records_b[1].clone();
    refused_by_peer(
        receive_bytes(&key(&ID_A), &ID_A, &join(&header_a, &records_a)),
        "record 1: authentication failed (tampered, reordered or from another transfer)",
    );
}

#[test]
fn header_for_another_transfer() {
    let data = random_bytes(100);
    let wire_b = capture(&ID_B, &data);
    refused_by_peer(
        receive_bytes(&key(&ID_A), &ID_A, &wire_b),
        "header is for transfer b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2, \
         expected transfer a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1",
    );
    // Rewriting B's header to claim transfer A does not help: B's records
    // were sealed under B's key.
    let (mut header, records) = split(&wire_b);
    header[9..25].copy_from_slice(&ID_A);
    refused_by_peer(
        receive_bytes(&key(&ID_A), &ID_A, &join(&header, &records)),
        "record 0: authentication failed (tampered, reordered or from another transfer)",
    );
}

#[test]
fn wrong_session_key() {
    let data = random_bytes(2 * CHUNK as usize);
    let wire = capture_with(&[0x24; 32], &ID_A, CHUNK, &data);
    refused_by_peer(
        receive_bytes(&key(&ID_A), &ID_A, &wire),
        "record 0: authentication failed (tampered, reordered or from another transfer)",
    );
}

#[test]
fn oversized_length_prefix_is_refused_before_reading() {
    let (_, header, mut records) = three_and_a_bit();
    records[2][..4].copy_from_slice(&u32::MAX.to_be_bytes());
    // Only the prefix is needed: the receiver must not wait for 4 GiB.
    records[2].truncate(4);
    records.truncate(3);
    refused_by_peer(
        receive_bytes(&key(&ID_A), &ID_A, &join(&header, &records)),
        "record 2: record length 4294967295 exceeds the limit 1040",
    );
    let mut records = split(&capture_with(&SK, &ID_A, DEFAULT_CHUNK_SIZE, &[1, 2, 3])).1;
    records[0][..4].copy_from_slice(&u32::MAX.to_be_bytes());
    let header = split(&capture_with(&SK, &ID_A, DEFAULT_CHUNK_SIZE, &[1, 2, 3])).0;
    refused_by_peer(
        receive_bytes(&key(&ID_A), &ID_A, &join(&header, &records)),
        "record 0: record length 4294967295 exceeds the limit 1048592",
    );
}

#[test]
fn record_shorter_than_a_tag() {
    let (_, header, mut records) = three_and_a_bit();
    records[0] = vec![0, 0, 0, 3, 1, 2, 3];
    refused_by_peer(
        receive_bytes(&key(&ID_A), &ID_A, &join(&header, &records)),
        "record 0: record length 3 is shorter than the 16-byte tag",
    );
}

#[test]
fn malformed_headers() {
    let (_, header, records) = three_and_a_bit();
    let mut bad = header.clone();
    bad[0] = b'X';
    refused_by_peer(
        receive_bytes(&key(&ID_A), &ID_A, &join(&bad, &records)),
        "not a dirbroker VM transfer stream (bad magic)",
    );
    let mut bad = header.clone();
    bad[8] = 3;
    let err = assert_refused(
        receive_bytes(&key(&ID_A), &ID_A, &join(&bad, &records)),
        "unsupported stream version 3 (this build speaks 2)",
    );
    assert_eq!(err.fault(), Fault::PeerIncompatible);
    let mut bad = header.clone();
    bad[25..29].copy_from_slice(&u32::MAX.to_be_bytes());
    refused_by_peer(
        receive_bytes(&key(&ID_A), &ID_A, &join(&bad, &records)),
        "malformed header: chunk size 4294967295 outside 1024..=16777216",
    );
    let mut bad = header.clone();
    bad[25..29].copy_from_slice(&(3 * 1024u32).to_be_bytes());
    refused_by_peer(
        receive_bytes(&key(&ID_A), &ID_A, &join(&bad, &records)),
        "malformed header: chunk size 3072 is not a power of two",
    );
    let mut bad = header.clone();
    bad[HEADER_FIXED_LEN + 2] = b'/';
    refused_by_peer(
        receive_bytes(&key(&ID_A), &ID_A, &join(&bad, &records)),
        "malformed header: image name contains '/' or NUL",
    );
}

#[test]
fn destination_exists_is_left_untouched() {
    let data = random_bytes(100);
    let wire = capture(&ID_A, &data);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("vm.img");
    std::fs::write(&dest, b"someone else's image").unwrap();
    let err = receive(&key(&ID_A), &ID_A, &wire[..], &dest, &mut |_| {}).unwrap_err();
    assert_eq!(err.to_string(), format!("destination exists: {}", dest.display()));
    assert_eq!(err.fault(), Fault::Local);
    assert_eq!(std::fs::read(&dest).unwrap(), b"someone else's image");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn destination_appearing_during_the_transfer_is_not_clobbered() {
    let data = random_bytes(3 * CHUNK as usize);
    let wire = capture(&ID_A, &data);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("vm.img");
    let mut created = false;
    let err = receive(&key(&ID_A), &ID_A, &wire[..], &dest, &mut |_| {
        if !created {
            std::fs::write(&dest, b"raced in").unwrap();
            created = true;
        }
    })
    .unwrap_err();
    assert_eq!(err.to_string(), format!("destination exists: {}", dest.display()));
    assert_eq!(std::fs::read(&dest).unwrap(), b"raced in");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn sender_checks_the_source_against_the_declared_length() {
    let k = key(&ID_A);
    let header = Header::new(ID_A, CHUNK, 3000, "vm").unwrap();
    let err = send(&k, &header, &random_bytes(2000)[..], io::sink(), &mut |_| {}).unwrap_err();
    assert_eq!(err.to_string(), "the image source ended after 2000 bytes but the header declares 3000");
    assert_eq!(err.fault(), Fault::Local);

    let k = key(&ID_A);
    let mut wire = Vec::new();
    let err = send(&k, &header, &random_bytes(3001)[..], &mut wire, &mut |_| {}).unwrap_err();
    assert_eq!(err.to_string(), "the image source holds more than the 3000 bytes the header declares");
    // What went out before the error is refused as truncated.
    refused_by_peer(
        receive_bytes(&key(&ID_A), &ID_A, &wire),
        "stream ended after record 2 without the final record (truncated)",
    );
}

#[test]
fn a_key_seals_one_stream_only() {
    let k = key(&ID_A);
    let header = Header::new(ID_A, CHUNK, 3, "vm").unwrap();
    send(&k, &header, &[1u8, 2, 3][..], io::sink(), &mut |_| {}).unwrap();
    let err = send(&k, &header, &[1u8, 2, 3][..], io::sink(), &mut |_| {}).unwrap_err();
    assert!(matches!(err, StreamError::KeyReused), "{err}");
    assert_eq!(err.fault(), Fault::Bug);

    let other = Header::new(ID_B, CHUNK, 3, "vm").unwrap();
    let err = send(&key(&ID_A), &other, &[1u8, 2, 3][..], io::sink(), &mut |_| {}).unwrap_err();
    assert!(matches!(err, StreamError::KeyForOtherTransfer { .. }), "{err}");
}

#[test]
fn header_arguments_are_checked() {
    let bad = |chunk, name: &str| Header::new(ID_A, chunk, 0, name).unwrap_err().to_string();
    assert_eq!(bad(CHUNK, "a/b"), "invalid header: image name contains '/' or NUL");
    assert_eq!(bad(CHUNK, "a\0b"), "invalid header: image name contains '/' or NUL");
    assert_eq!(bad(CHUNK, ""), "invalid header: image name is empty");
    assert_eq!(bad(CHUNK, ".."), "invalid header: image name is \".\" or \"..\"");
    assert_eq!(bad(CHUNK, &"é".repeat(128)), "invalid header: image name is 256 bytes, the limit is 255");
    assert_eq!(bad(512, "vm"), "invalid header: chunk size 512 outside 1024..=16777216");
    assert_eq!(bad(1000 * 1024, "vm"), "invalid header: chunk size 1024000 is not a power of two");
    assert!(Header::new(ID_A, CHUNK, 0, &"x".repeat(255)).is_ok());
}

#[test]
fn transfer_keys_differ_per_transfer_and_session() {
    let seal = |k: &TransferKey| {
        let mut buf = [0u8; 16];
        let mut aad = RecordAad::new(b"h");
        k.seal(&mut aad, 0, false, &mut buf).unwrap()
    };
    assert_ne!(seal(&key(&ID_A)), seal(&key(&ID_B)));
    assert_ne!(seal(&key(&ID_A)), seal(&TransferKey::derive(&[0x43; 32], &ID_A).unwrap()));
    assert_eq!(seal(&key(&ID_A)), seal(&key(&ID_A)));
    assert!(!format!("{:?}", key(&ID_A)).contains("42"), "Debug must not show key material");
}

#[test]
fn over_loopback_tcp_with_half_close() {
    let data = random_bytes(5 * CHUNK as usize + 7);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("vm.img");
    let (sent, received) = std::thread::scope(|s| {
        let rx = s.spawn(|| {
            let (conn, _) = listener.accept().unwrap();
            let summary = receive(&key(&ID_A), &ID_A, &conn, &dest, &mut |_| {});
            // The reply travels back over the half-closed connection.
            (&conn).write_all(if summary.is_ok() { b"OK" } else { b"NO" }).unwrap();
            summary
        });
        let conn = TcpStream::connect(addr).unwrap();
        let header = Header::new(ID_A, CHUNK, data.len() as u64, "vm").unwrap();
        let sent = send(&key(&ID_A), &header, &data[..], &conn, &mut |_| {}).unwrap();
        conn.shutdown(Shutdown::Write).unwrap();
        let mut reply = Vec::new();
        (&conn).read_to_end(&mut reply).unwrap();
        assert_eq!(reply, b"OK");
        (sent, rx.join().unwrap().unwrap())
    });
    assert_eq!(sent.blake3, received.blake3);
    assert_eq!(std::fs::read(&dest).unwrap(), data);
}

/// A record sealed with the real key: what a misbehaving holder of the key could send.
fn sealed_record(key: &TransferKey, header: &[u8], index: u64, is_final: bool, plain: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; LEN_PREFIX + plain.len() + TAG_LEN];
    buf[LEN_PREFIX..LEN_PREFIX + plain.len()].copy_from_slice(plain);
    let mut aad = RecordAad::new(header);
    seal_record(key, &mut aad, index, is_final, &mut buf, plain.len()).unwrap().to_vec()
}

#[test]
fn the_receiver_recomputes_the_digest_and_length() {
    let (data, header, mut records) = three_and_a_bit();
    let k = key(&ID_A);
    let sha: [u8; 32] = *blake3::hash(&data).as_bytes();

    let mut wrong_digest = sha;
    wrong_digest[31] ^= 1;
    let mut plain = wrong_digest.to_vec();
    plain.extend_from_slice(&(data.len() as u64).to_be_bytes());
    records[4] = sealed_record(&k, &header, 4, true, &plain);
    refused_by_peer(receive_bytes(&k, &ID_A, &join(&header, &records)), "image digest mismatch");

    let mut plain = sha.to_vec();
    plain.extend_from_slice(&(data.len() as u64 + 1).to_be_bytes());
    records[4] = sealed_record(&k, &header, 4, true, &plain);
    refused_by_peer(
        receive_bytes(&k, &ID_A, &join(&header, &records)),
        "image length mismatch: header declared 3077 bytes, final record states 3078",
    );

    records[4] = sealed_record(&k, &header, 4, true, &sha);
    refused_by_peer(
        receive_bytes(&k, &ID_A, &join(&header, &records)),
        "record 4: the final record carries 32 bytes, expected 40",
    );
}

#[test]
fn short_data_chunk_before_the_last_is_refused() {
    let (data, header, mut records) = three_and_a_bit();
    let k = key(&ID_A);
    records[1] = sealed_record(&k, &header, 1, false, &data[CHUNK as usize..2 * CHUNK as usize - 1]);
    refused_by_peer(
        receive_bytes(&k, &ID_A, &join(&header, &records)),
        "record 1: carries 1023 bytes where the chunk framing requires 1024",
    );
}

#[test]
fn local_write_errors_name_the_file_and_clean_up() {
    let data = random_bytes(100);
    let wire = capture(&ID_A, &data);
    let err = receive(&key(&ID_A), &ID_A, &wire[..], Path::new("/nonexistent-dir/vm.img"), &mut |_| {}).unwrap_err();
    assert!(err.to_string().starts_with("creating a temporary file in /nonexistent-dir: "), "{err}");
    assert_eq!(err.fault(), Fault::Local);
}
