//! Whether raw bytes are a well-formed encoding of a catalog key or value
//! type, checked before redb decodes them: redb's `from_bytes` trusts its
//! input (a short integer, a string that is not UTF-8, a bad tuple length
//! prefix make it panic, which under `panic = "abort"` is a crash). Used on
//! bytes that come from outside redb's own pages: journal records.
//!
//! The layouts are redb's: fixed-width integers little-endian; `&str` UTF-8;
//! `&[u8]` anything; `bool` one byte 0 or 1; `()` no bytes. A tuple with a
//! variable-width element starts with the length (redb's varint: one byte
//! up to 253, 254 + u16, 255 + u32) of each variable-width element but the
//! last, then the elements; the last takes the rest. A tuple of fixed-width
//! elements is their concatenation.

/// A catalog key or value type whose encoding can be checked.
pub(crate) trait Shape {
    /// The encoded width, if fixed.
    const FIXED: Option<usize>;

    /// Whether `bytes` is exactly one encoded value.
    fn well_formed(bytes: &[u8]) -> bool;
}

macro_rules! fixed_int {
    ($($t:ty),*) => {$(
        impl Shape for $t {
            const FIXED: Option<usize> = Some(size_of::<$t>());
            fn well_formed(bytes: &[u8]) -> bool {
                bytes.len() == size_of::<$t>()
            }
        }
    )*};
}

fixed_int!(i32, u32, u64);

impl Shape for &str {
    const FIXED: Option<usize> = None;
    fn well_formed(bytes: &[u8]) -> bool {
        std::str::from_utf8(bytes).is_ok()
    }
}

impl Shape for &[u8] {
    const FIXED: Option<usize> = None;
    fn well_formed(_: &[u8]) -> bool {
        true
    }
}

impl Shape for bool {
    const FIXED: Option<usize> = Some(1);
    fn well_formed(bytes: &[u8]) -> bool {
        matches!(bytes, [0] | [1])
    }
}

impl Shape for () {
    const FIXED: Option<usize> = Some(0);
    fn well_formed(bytes: &[u8]) -> bool {
        bytes.is_empty()
    }
}

/// Reads one of redb's tuple length prefixes from the front of `data`.
fn varint_len(data: &mut &[u8]) -> Option<usize> {
    let (&first, rest) = data.split_first()?;
    let (len, rest) = match first {
        0..=253 => (first as usize, rest),
        254 => {
            let (n, rest) = rest.split_first_chunk::<2>()?;
            (u16::from_le_bytes(*n) as usize, rest)
        }
        255 => {
            let (n, rest) = rest.split_first_chunk::<4>()?;
            (u32::from_le_bytes(*n) as usize, rest)
        }
    };
    *data = rest;
    Some(len)
}

/// Splits `n` bytes off the front of `data`.
fn take<'a>(data: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    let (head, rest) = data.split_at_checked(n)?;
    *data = rest;
    Some(head)
}

macro_rules! tuple_shape {
    ($($t:ident),+ ; $last:ident) => {
        impl<$($t: Shape,)+ $last: Shape> Shape for ($($t,)+ $last) {
            const FIXED: Option<usize> = {
                let mut sum = 0;
                let mut all = true;
                $( match $t::FIXED { Some(w) => sum += w, None => all = false } )+
                match $last::FIXED { Some(w) => sum += w, None => all = false }
                if all { Some(sum) } else { None }
            };

            fn well_formed(bytes: &[u8]) -> bool {
                let mut data = bytes;
                let fixed = Self::FIXED.is_some();
                // The length prefixes, in element order.
                let mut lens = Vec::new();
                if !fixed {
                    $(
                        if $t::FIXED.is_none() {
                            match varint_len(&mut data) {
                                Some(n) => lens.push(n),
                                None => return false,
                            }
                        }
                    )+
                }
                let mut lens = lens.into_iter();
                $(
                    let len = match $t::FIXED {
                        Some(w) => w,
                        None => match lens.next() {
                            Some(n) => n,
                            None => return false,
                        },
                    };
                    match take(&mut data, len) {
                        Some(element) if $t::well_formed(element) => {}
                        _ => return false,
                    }
                )+
                match $last::FIXED {
                    Some(w) if data.len() != w => false,
                    _ => $last::well_formed(data),
                }
            }
        }
    };
}

tuple_shape!(A; B);
tuple_shape!(A, B; C);
tuple_shape!(A, B, C; D);

#[cfg(test)]
mod tests {
    use redb::Value;

    use super::Shape;

    fn encoded<T: Value>(v: &T::SelfType<'_>) -> Vec<u8> {
        T::as_bytes(v).as_ref().to_vec()
    }

    #[test]
    fn what_redb_encodes_is_well_formed() {
        let long = "x".repeat(70_000);
        for s in ["", "a", "ß", &"y".repeat(300), &long] {
            let k = encoded::<(i32, &str)>(&(7, s));
            assert!(<(i32, &str)>::well_formed(&k), "{}", s.len());
            let k = encoded::<(i32, &str, &str)>(&(-1, s, "tail"));
            assert!(<(i32, &str, &str)>::well_formed(&k));
            let k = encoded::<(i32, &str, &str, &str)>(&(i32::MAX, "c", s, ""));
            assert!(<(i32, &str, &str, &str)>::well_formed(&k));
            let k = encoded::<(i32, &str, &[u8])>(&(0, s, &[0xff, 0][..]));
            assert!(<(i32, &str, &[u8])>::well_formed(&k));
        }
        assert!(<(i32, u32)>::well_formed(&encoded::<(i32, u32)>(&(1, 2))));
        assert!(bool::well_formed(&encoded::<bool>(&true)));
        assert!(<()>::well_formed(&encoded::<()>(&())));
    }

    #[test]
    fn malformed_bytes_are_refused_without_panicking() {
        let good = encoded::<(i32, &str, &str)>(&(7, "abc", "def"));
        // Every truncation of a good key, and of a fixed one.
        for n in 0..good.len() {
            let _ = <(i32, &str, &str)>::well_formed(&good[..n]);
        }
        assert!(!<(i32, u32)>::well_formed(&[0; 7]));
        assert!(!<(i32, u32)>::well_formed(&[0; 9]));
        assert!(!<(i32, &str)>::well_formed(&[0; 3]));
        // The length prefixes come first: one past the end, one cut short,
        // and a string that is not UTF-8.
        assert!(<(i32, &str, &str)>::well_formed(&[1, 0, 0, 0, 0, b'a']));
        assert!(!<(i32, &str, &str)>::well_formed(&[200, 0, 0, 0, 0, b'a']));
        assert!(!<(i32, &str, &str)>::well_formed(&[255, 1]));
        assert!(!<(i32, &str)>::well_formed(&[0, 0, 0, 0, 0xff, 0xfe]));
        assert!(!bool::well_formed(&[2]));
        assert!(!<()>::well_formed(&[0]));
    }
}
