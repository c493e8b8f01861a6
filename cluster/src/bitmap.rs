//! The allocation bitmap both allocators share: one bit per node CIDR or service IP, scanned a
//! 64-bit word at a time so finding a free entry in a million-entry range costs a few hundred
//! word reads at worst, not a million bit tests.

/// A fixed-length bit set that counts its set bits.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Bitmap {
    words: Vec<u64>,
    len: u64,
    ones: u64,
}

impl std::fmt::Debug for Bitmap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A million-bit dump helps nobody; the counts are what a reader needs.
        write!(f, "Bitmap {{ len: {}, ones: {} }}", self.len, self.ones)
    }
}

fn words_for(len: u64) -> usize {
    len.div_ceil(64) as usize
}

impl Bitmap {
    pub(crate) fn new(len: u64) -> Bitmap {
        Bitmap { words: vec![0; words_for(len)], len, ones: 0 }
    }

    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    pub(crate) fn ones(&self) -> u64 {
        self.ones
    }

    pub(crate) fn get(&self, i: u64) -> bool {
        debug_assert!(i < self.len);
        self.words[(i / 64) as usize] >> (i % 64) & 1 == 1
    }

    /// Set bit `i`; returns false when it was set already.
    pub(crate) fn set(&mut self, i: u64) -> bool {
        debug_assert!(i < self.len);
        let word = &mut self.words[(i / 64) as usize];
        let bit = 1u64 << (i % 64);
        if *word & bit != 0 {
            return false;
        }
        *word |= bit;
        self.ones += 1;
        true
    }

    /// Clear bit `i`; returns false when it was clear already.
    pub(crate) fn clear(&mut self, i: u64) -> bool {
        debug_assert!(i < self.len);
        let word = &mut self.words[(i / 64) as usize];
        let bit = 1u64 << (i % 64);
        if *word & bit == 0 {
            return false;
        }
        *word &= !bit;
        self.ones -= 1;
        true
    }

    /// The lowest clear bit in `from..to` (`to` is clamped to the length).
    pub(crate) fn find_clear(&self, from: u64, to: u64) -> Option<u64> {
        self.find(from, to, true)
    }

    /// The lowest set bit in `from..to` (`to` is clamped to the length).
    pub(crate) fn find_set(&self, from: u64, to: u64) -> Option<u64> {
        self.find(from, to, false)
    }

    fn find(&self, from: u64, to: u64, clear: bool) -> Option<u64> {
        let to = to.min(self.len);
        if from >= to {
            return None;
        }
        let flip = if clear { u64::MAX } else { 0 };
        let last = ((to - 1) / 64) as usize;
        let mut w = (from / 64) as usize;
        let mut word = (self.words[w] ^ flip) & (u64::MAX << (from % 64));
        loop {
            if w == last {
                let tail = to - last as u64 * 64;
                if tail < 64 {
                    word &= (1u64 << tail) - 1;
                }
                return (word != 0).then(|| w as u64 * 64 + u64::from(word.trailing_zeros()));
            }
            if word != 0 {
                return Some(w as u64 * 64 + u64::from(word.trailing_zeros()));
            }
            w += 1;
            word = self.words[w] ^ flip;
        }
    }

    /// Number of set bits in `from..len`.
    pub(crate) fn count_from(&self, from: u64) -> u64 {
        if from >= self.len {
            return 0;
        }
        let w = (from / 64) as usize;
        let head = u64::from((self.words[w] & (u64::MAX << (from % 64))).count_ones());
        head + self.words[w + 1..].iter().map(|x| u64::from(x.count_ones())).sum::<u64>()
    }

    /// Change the length. Growing adds clear bits; the caller makes sure no set bit lies at or
    /// beyond a shrunk length.
    pub(crate) fn resize(&mut self, len: u64) {
        debug_assert!(len >= self.len || self.count_from(len) == 0);
        self.words.resize(words_for(len), 0);
        self.len = len;
        if len % 64 != 0 {
            if let Some(last) = self.words.last_mut() {
                *last &= (1u64 << (len % 64)) - 1;
            }
        }
    }

    /// Indices of set bits in increasing order.
    pub(crate) fn iter_ones(&self) -> impl Iterator<Item = u64> + '_ {
        self.words.iter().enumerate().flat_map(|(w, &word)| {
            let mut rest = word;
            std::iter::from_fn(move || {
                if rest == 0 {
                    return None;
                }
                let bit = rest.trailing_zeros();
                rest &= rest - 1;
                Some(w as u64 * 64 + u64::from(bit))
            })
        })
    }

    /// The bits as `ceil(len / 8)` raw bytes, bit `i` in byte `i / 8` at position `i % 8`.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let n = self.len.div_ceil(8) as usize;
        let mut out = Vec::with_capacity(n);
        for word in &self.words {
            out.extend_from_slice(&word.to_le_bytes());
        }
        out.truncate(n);
        out
    }

    /// The inverse of [`Bitmap::to_bytes`]; refuses a wrong length or set padding bits.
    pub(crate) fn from_bytes(bytes: &[u8], len: u64) -> Result<Bitmap, String> {
        let expected = len.div_ceil(8);
        if bytes.len() as u64 != expected {
            return Err(format!("bitmap is {} bytes, a {len}-entry range needs {expected}", bytes.len()));
        }
        let mut words = vec![0u64; words_for(len)];
        for (word, chunk) in words.iter_mut().zip(bytes.chunks(8)) {
            let mut buf = [0u8; 8];
            buf[..chunk.len()].copy_from_slice(chunk);
            *word = u64::from_le_bytes(buf);
        }
        if len % 64 != 0 {
            if let Some(last) = words.last() {
                if last >> (len % 64) != 0 {
                    return Err("bitmap has bits set beyond the end of the range".to_owned());
                }
            }
        }
        let ones = words.iter().map(|w| u64::from(w.count_ones())).sum();
        Ok(Bitmap { words, len, ones })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    #[test]
    fn find_respects_bounds_and_word_edges() {
        let mut b = Bitmap::new(130);
        for i in 0..130 {
            if i != 63 && i != 64 && i != 129 {
                b.set(i);
            }
        }
        assert_eq!(b.find_clear(0, 130), Some(63));
        assert_eq!(b.find_clear(64, 130), Some(64));
        assert_eq!(b.find_clear(65, 130), Some(129));
        assert_eq!(b.find_clear(65, 129), None);
        assert_eq!(b.find_clear(0, 63), None);
        assert_eq!(b.find_clear(200, 300), None);
        assert_eq!(b.find_set(63, 65), None);
        assert_eq!(b.find_set(63, 66), Some(65));
        assert_eq!(b.ones(), 127);
        assert_eq!(b.count_from(64), 64);
    }

    #[test]
    fn bytes_round_trip_and_padding_is_checked() {
        let mut b = Bitmap::new(13);
        b.set(0);
        b.set(12);
        let bytes = b.to_bytes();
        assert_eq!(bytes, vec![0b0000_0001, 0b0001_0000]);
        assert_eq!(Bitmap::from_bytes(&bytes, 13).unwrap(), b);
        assert!(Bitmap::from_bytes(&[0, 0b0010_0000], 13).is_err());
        assert!(Bitmap::from_bytes(&[0], 13).is_err());
    }

    #[test]
    fn resize_keeps_bits() {
        let mut b = Bitmap::new(70);
        b.set(3);
        b.set(69);
        b.resize(1000);
        assert!(b.get(3) && b.get(69) && !b.get(70));
        assert_eq!(b.ones(), 2);
        b.clear(69);
        b.resize(5);
        assert_eq!(b.iter_ones().collect::<Vec<_>>(), vec![3]);
        assert_eq!(b.to_bytes(), vec![0b1000]);
    }

    #[test]
    fn property_find_matches_naive_scan() {
        let mut rng = SplitMix64::new(99);
        for _ in 0..300 {
            let len = 1 + rng.below(700);
            let mut b = Bitmap::new(len);
            let density = rng.below(101);
            let mut naive = vec![false; len as usize];
            for (i, bit) in naive.iter_mut().enumerate() {
                if rng.below(100) < density {
                    b.set(i as u64);
                    *bit = true;
                }
            }
            assert_eq!(b.ones(), naive.iter().filter(|x| **x).count() as u64);
            for _ in 0..20 {
                let from = rng.below(len + 2);
                let to = rng.below(len + 70);
                let want_clear = (from..to.min(len)).find(|&i| !naive[i as usize]);
                let want_set = (from..to.min(len)).find(|&i| naive[i as usize]);
                assert_eq!(b.find_clear(from, to), want_clear, "len {len} {from}..{to}");
                assert_eq!(b.find_set(from, to), want_set, "len {len} {from}..{to}");
            }
            let ones: Vec<u64> = b.iter_ones().collect();
            let want: Vec<u64> = (0..len).filter(|&i| naive[i as usize]).collect();
            assert_eq!(ones, want);
            assert_eq!(Bitmap::from_bytes(&b.to_bytes(), len).unwrap(), b);
        }
    }
}
