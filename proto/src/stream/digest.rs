//! `Hash(VM_Data)`: BLAKE3 of the image, computed record by record on the
//! workers that seal or open the records, and joined in order.
//!
//! BLAKE3 is a binary tree over 1 KiB chunks whose left subtrees are always
//! complete. With a chunk size that is a power of two (checked in the
//! header), data record `i` covers exactly one subtree of that tree: its
//! chaining value depends only on its own bytes and its offset
//! `i · chunk_size`, so the records are hashed in parallel, and joining
//! their chaining values in order costs one compression per record. The
//! root is the standard BLAKE3 hash of the whole image, the value `b3sum`
//! prints.

use blake3::hazmat::{ChainingValue, HasherExt, Mode, merge_subtrees_non_root, merge_subtrees_root};

use super::StreamError;

/// What the digest of data record `index` contributes: its subtree's
/// chaining value, or, when the image is a single record, the root itself.
pub(super) fn leaf(image_len: u64, chunk_size: u32, index: u64, data: &[u8]) -> ChainingValue {
    let mut hasher = blake3::Hasher::new();
    if image_len <= u64::from(chunk_size) {
        hasher.update(data);
        return *hasher.finalize().as_bytes();
    }
    // A multiple of the power-of-two chunk size: the start of a subtree at
    // least that large, and `data` is at most that large (the record's
    // length is checked against the framing before it is hashed).
    hasher.set_input_offset(index.saturating_mul(u64::from(chunk_size)));
    hasher.update(data);
    hasher.finalize_non_root()
}

/// Joins the records' [`leaf`] values, given in record order, into the root.
#[derive(Debug)]
pub(super) struct ImageDigest {
    /// Roots of complete subtrees not yet joined, left to right.
    stack: Vec<ChainingValue>,
    pushed: u64,
    leaves: u64,
}

impl ImageDigest {
    pub(super) fn new(image_len: u64, chunk_size: u32) -> ImageDigest {
        ImageDigest { stack: Vec::with_capacity(64), pushed: 0, leaves: image_len.div_ceil(u64::from(chunk_size)) }
    }

    /// Adds the next record's value. A complete subtree is joined as soon as
    /// its right half arrives; the last record's value waits for [`finish`],
    /// because only the topmost join is a root.
    ///
    /// [`finish`]: ImageDigest::finish
    pub(super) fn push(&mut self, mut cv: ChainingValue) {
        self.pushed += 1;
        if self.pushed < self.leaves {
            let mut total = self.pushed;
            while total & 1 == 0 {
                let Some(left) = self.stack.pop() else { break };
                cv = merge_subtrees_non_root(&left, &cv, Mode::Hash);
                total >>= 1;
            }
        }
        self.stack.push(cv);
    }

    /// The BLAKE3 hash of the image.
    pub(super) fn finish(mut self) -> Result<[u8; 32], StreamError> {
        if self.pushed != self.leaves {
            return Err(StreamError::Internal("image digest: record count"));
        }
        if self.leaves == 0 {
            return Ok(*blake3::hash(&[]).as_bytes());
        }
        let mut right = self.stack.pop().ok_or(StreamError::Internal("image digest: empty"))?;
        while let Some(left) = self.stack.pop() {
            if self.stack.is_empty() {
                return Ok(*merge_subtrees_root(&left, &right, Mode::Hash).as_bytes());
            }
            right = merge_subtrees_non_root(&left, &right, Mode::Hash);
        }
        // One record: its leaf value is already the root.
        Ok(right)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree_hash(data: &[u8], chunk: u32) -> [u8; 32] {
        let mut digest = ImageDigest::new(data.len() as u64, chunk);
        for (i, part) in data.chunks(chunk as usize).enumerate() {
            digest.push(leaf(data.len() as u64, chunk, i as u64, part));
        }
        digest.finish().unwrap()
    }

    #[test]
    fn equals_blake3_of_the_whole_image() {
        let mut data = vec![0u8; 70 * 1024 + 3];
        for (i, b) in data.iter_mut().enumerate() {
            *b = (i * 7 + i / 251) as u8;
        }
        for chunk in [1024u32, 2048, 4096, 16384] {
            let c = chunk as usize;
            for len in
                [0, 1, 1023, 1024, 1025, c, c + 1, 2 * c, 3 * c + 5, 4 * c, 5 * c - 1, 7 * c, 8 * c + 1, 13 * c + 7]
            {
                let Some(image) = data.get(..len) else { continue };
                assert_eq!(
                    tree_hash(image, chunk),
                    *blake3::hash(image).as_bytes(),
                    "len {len}, chunk {chunk}: not the BLAKE3 of the image"
                );
            }
        }
    }

    #[test]
    fn a_missing_record_is_our_bug_not_a_digest() {
        let mut digest = ImageDigest::new(3000, 1024);
        digest.push(leaf(3000, 1024, 0, &[0u8; 1024]));
        assert!(matches!(digest.finish(), Err(StreamError::Internal(_))));
    }
}
