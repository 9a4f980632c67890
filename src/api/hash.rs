//! The one stable hash: FNV-1a, the same across processes, builds and
//! platforms (unlike `DefaultHasher`). Revisions, call fingerprints and the
//! simulator's per-server randomness all use it.

const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a of `bytes`, starting from `state` (chain calls to hash several parts).
pub fn fnv1a_from(state: u64, bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(state, |h, b| (h ^ u64::from(*b)).wrapping_mul(PRIME))
}

/// FNV-1a of `bytes`.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    fnv1a_from(OFFSET, bytes)
}

/// FNV-1a of `parts`, each followed by a zero byte so that ("ab", "c") and
/// ("a", "bc") differ.
pub fn fnv1a_parts<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> u64 {
    parts
        .into_iter()
        .fold(OFFSET, |h, part| fnv1a_from(fnv1a_from(h, part), &[0]))
}

/// FNV-1a with a seed and MurmurHash3's finaliser (FNV alone leaves the
/// high bits poorly mixed): well spread 64-bit values for sampling.
pub fn mixed(bytes: &[u8], seed: u64) -> u64 {
    let mut h = fnv1a_from(OFFSET ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15), bytes);
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_published_test_vectors() {
        // From the FNV reference test suite (draft-eastlake-fnv).
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn parts_are_separated() {
        assert_ne!(
            fnv1a_parts([b"ab".as_slice(), b"c"]),
            fnv1a_parts([b"a".as_slice(), b"bc"])
        );
    }
}
