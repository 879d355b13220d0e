//! Key encoding: byte order equals logical order.
//!
//! Integers are fixed-width big-endian. Strings are their UTF-8 bytes followed by the terminator
//! `00 01`; a NUL inside a string is escaped as `00 FF`. Because the terminator is smaller than
//! any content byte, a string sorts before every longer string it prefixes (`"a" < "ab"`), so
//! byte order is string order; and because no encoded string contains `00 01` before its end, a
//! prefix scan on `str(x)` finds exactly the keys whose component is `x` (not `xy`).

/// The two bytes that end every string component.
pub const TERMINATOR: [u8; 2] = [0x00, 0x01];
/// What a NUL byte inside a string becomes.
const ESCAPED_NUL: [u8; 2] = [0x00, 0xFF];

/// Builds a key from components. `KeyBuilder::new().str(user).u64(pos).build()`.
#[derive(Debug, Default, Clone)]
pub struct KeyBuilder {
    bytes: Vec<u8>,
}

impl KeyBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// A string component: escaped content, then [`TERMINATOR`].
    pub fn str(mut self, s: &str) -> Self {
        for &b in s.as_bytes() {
            if b == 0 {
                self.bytes.extend_from_slice(&ESCAPED_NUL);
            } else {
                self.bytes.push(b);
            }
        }
        self.bytes.extend_from_slice(&TERMINATOR);
        self
    }

    /// A big-endian `u64` component.
    pub fn u64(mut self, n: u64) -> Self {
        self.bytes.extend_from_slice(&n.to_be_bytes());
        self
    }

    /// Raw bytes, appended as they are (for fixed-width values such as hashes).
    pub fn raw(mut self, b: &[u8]) -> Self {
        self.bytes.extend_from_slice(b);
        self
    }

    pub fn build(self) -> Vec<u8> {
        self.bytes
    }
}

/// Reads a key back component by component, in the order it was built.
#[derive(Debug, Clone)]
pub struct KeyReader<'a> {
    rest: &'a [u8],
}

impl<'a> KeyReader<'a> {
    pub fn new(key: &'a [u8]) -> Self {
        Self { rest: key }
    }

    /// The next string component, or `None` if the key is malformed.
    pub fn str(&mut self) -> Option<String> {
        let mut out = Vec::new();
        let mut i = 0;
        loop {
            match (self.rest.get(i)?, self.rest.get(i + 1)) {
                (0, Some(0x01)) => break,
                (0, Some(0xFF)) => {
                    out.push(0);
                    i += 2;
                }
                (0, _) => return None,
                (&b, _) => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        self.rest = &self.rest[i + 2..];
        String::from_utf8(out).ok()
    }

    /// The next `u64` component, or `None` if the key is too short.
    pub fn u64(&mut self) -> Option<u64> {
        let (n, rest) = self.rest.split_first_chunk::<8>()?;
        self.rest = rest;
        Some(u64::from_be_bytes(*n))
    }

    /// Whatever is left.
    pub fn rest(&self) -> &'a [u8] {
        self.rest
    }
}

/// The smallest key greater than every key that starts with `prefix` (for exclusive range ends),
/// or `None` when no such key exists (the prefix is all `0xFF`).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_sort_numerically() {
        let values = [0u64, 1, 255, 256, 65_535, 1 << 32, u64::MAX - 1, u64::MAX];
        let keys: Vec<_> = values
            .iter()
            .map(|n| KeyBuilder::new().u64(*n).build())
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
    }

    #[test]
    fn strings_sort_like_strings_and_prefixes_come_first() {
        let words = ["", "a", "ab", "abc", "b", "ba", "z", "é"];
        let keys: Vec<_> = words
            .iter()
            .map(|w| KeyBuilder::new().str(w).u64(7).build())
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted, "byte order must match string order");
    }

    #[test]
    fn composite_keys_sort_by_first_component_then_second() {
        let a1 = KeyBuilder::new().str("@a:x").u64(2).build();
        let a2 = KeyBuilder::new().str("@a:x").u64(10).build();
        let ab = KeyBuilder::new().str("@ab:x").u64(1).build();
        assert!(a1 < a2);
        assert!(a2 < ab, "all keys of @a:x precede those of @ab:x");
    }

    #[test]
    fn reader_round_trips() {
        let key = KeyBuilder::new().str("@u:x").u64(42).str("DEV").build();
        let mut r = KeyReader::new(&key);
        assert_eq!(r.str().as_deref(), Some("@u:x"));
        assert_eq!(r.u64(), Some(42));
        assert_eq!(r.str().as_deref(), Some("DEV"));
        assert!(r.rest().is_empty());
        assert_eq!(KeyReader::new(b"no separator").str(), None);
        assert_eq!(KeyReader::new(&[1, 2]).u64(), None);
    }

    #[test]
    fn nul_bytes_are_escaped_and_keep_order_and_prefixes_exact() {
        let plain = KeyBuilder::new().str("a").build();
        let with_nul = KeyBuilder::new().str("a\0b").build();
        let longer = KeyBuilder::new().str("ab").build();
        assert!(plain < with_nul && with_nul < longer);
        assert!(
            !with_nul.starts_with(&plain),
            "a prefix scan for \"a\" must not find \"a\\0b\""
        );
        assert_eq!(KeyReader::new(&with_nul).str().as_deref(), Some("a\0b"));
    }

    #[test]
    fn prefix_end_bounds_the_prefix() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[1, 0xFF]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xFF, 0xFF]), None);
        let p = KeyBuilder::new().str("@a:x").build();
        let inside = KeyBuilder::new().str("@a:x").u64(u64::MAX).build();
        let end = prefix_end(&p).unwrap();
        assert!(inside < end);
    }
}
