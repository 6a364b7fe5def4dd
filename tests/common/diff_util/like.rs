//! An independent model of SQL `LIKE` (what `has_signal_state_for_user`
//! matches users with).

/// SQL `LIKE` as SQLite evaluates it (ASCII case-insensitive, `%` and `_`
/// wildcards, no escape), written independently of the crate's own.
pub fn sql_like(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'%', rest)) => (0..=text.len()).any(|i| sql_like(rest, &text[i..])),
        Some((b'_', rest)) => {
            // `_` matches one character (UTF-8 aware).
            if text.is_empty() {
                return false;
            }
            let len = utf8_len(text[0]);
            text.len() >= len && sql_like(rest, &text[len..])
        }
        Some((&c, rest)) => {
            !text.is_empty() && text[0].eq_ignore_ascii_case(&c) && sql_like(rest, &text[1..])
        }
    }
}

fn utf8_len(first: u8) -> usize {
    match first {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    }
}
