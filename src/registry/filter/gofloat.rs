//! Go `strconv.ParseFloat(s, 64)` and `cmp.Compare` on floats, as
//! ImagePolicy's numerical policy uses them.

use std::cmp::Ordering;

/// Go's `cmp.Compare` on floats: NaN below everything, NaNs equal, -0 == 0.
pub(super) fn go_cmp_f64(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

/// Go `strconv.underscoreOK`: underscores only between digits (or between
/// a base prefix and a digit).
fn go_underscore_ok(s: &str) -> bool {
    let b = s.as_bytes();
    let b = match b.first() {
        Some(b'+' | b'-') => &b[1..],
        _ => b,
    };
    let mut saw = b'^';
    let mut i = 0;
    let mut hex = false;
    if b.len() >= 2 && b[0] == b'0' && matches!(b[1].to_ascii_lowercase(), b'b' | b'o' | b'x') {
        i = 2;
        saw = b'0';
        hex = b[1].eq_ignore_ascii_case(&b'x');
    }
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_digit() || (hex && c.is_ascii_hexdigit()) {
            saw = b'0';
        } else if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
        } else {
            if saw == b'_' {
                return false;
            }
            saw = b'!';
        }
        i += 1;
    }
    saw != b'_'
}

/// Go `strconv.special`: `[+-]inf`, `[+-]infinity`, `nan` (any case), as
/// (value, bytes consumed).
fn go_special(s: &str) -> Option<(f64, usize)> {
    let b = s.as_bytes();
    let prefix_len = |s: &[u8], word: &[u8]| {
        s.iter()
            .zip(word)
            .take_while(|(x, y)| x.to_ascii_lowercase() == **y)
            .count()
    };
    let (sign, nsign) = match b.first()? {
        b'+' => (1.0, 1),
        b'-' => (-1.0, 1),
        b'n' | b'N' => {
            return (prefix_len(b, b"nan") == 3).then_some((f64::NAN, 3));
        }
        _ => (1.0, 0),
    };
    let mut n = prefix_len(&b[nsign..], b"infinity");
    if 3 < n && n < 8 {
        n = 3;
    }
    (n == 3 || n == 8).then_some((sign * f64::INFINITY, nsign + n))
}

/// `q * 2^e` for `q < 2^53` and a representable result (exact).
fn scale_exact(q: u64, e: i64) -> f64 {
    let pow2 = |e: i64| -> f64 {
        if e >= -1022 {
            f64::from_bits(((e + 1023) as u64) << 52)
        } else {
            f64::from_bits(1u64 << (e + 1074))
        }
    };
    // Split so neither factor over- or underflows on its own.
    let half = e / 2;
    (q as f64) * pow2(half) * pow2(e - half)
}

/// A hexadecimal mantissa `m` (with a sticky low bit) times `2^e`, rounded
/// to nearest even as an f64; `None` on overflow (Go's `ErrRange`).
fn hex_to_f64(m: u128, e: i64) -> Option<f64> {
    if m == 0 {
        return Some(0.0);
    }
    let bits = i64::from(128 - m.leading_zeros());
    let top = bits - 1 + e;
    if top > 1023 {
        return None;
    }
    let lsb = if top >= -1022 { top - 52 } else { -1074 };
    let drop = lsb - e;
    let (mut q, mut lsb) = if drop <= 0 {
        (m << (-drop) as u32, lsb)
    } else if drop >= 129 {
        (0, lsb)
    } else if drop == 128 {
        // m < 2^128: rounds to 1 only above one half ulp (2^127).
        (u128::from(m > 1u128 << 127), lsb)
    } else {
        let d = drop as u32;
        let q = m >> d;
        let rem = m & ((1u128 << d) - 1);
        let half = 1u128 << (d - 1);
        let up = rem > half || (rem == half && q & 1 == 1);
        (q + u128::from(up), lsb)
    };
    if q >= 1u128 << 53 {
        q >>= 1;
        lsb += 1;
    }
    if lsb + 52 > 1023 && q >= 1u128 << 52 {
        return None;
    }
    let f = scale_exact(q as u64, lsb);
    f.is_finite().then_some(f)
}

/// Go `strconv.ParseFloat(s, 64)`: decimal or hexadecimal (`0x1.8p3`)
/// floats, `_` digit separators, `inf`/`infinity`/`nan`; `None` where Go
/// returns an error (syntax, or out of range).
pub(super) fn go_parse_float(s: &str) -> Option<f64> {
    if let Some((f, n)) = go_special(s) {
        return (n == s.len()).then_some(f);
    }
    let (neg, unsigned) = match s.as_bytes().first()? {
        b'+' => (false, &s[1..]),
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    let b = unsigned.as_bytes();
    let hex = b.len() > 2 && b[0] == b'0' && b[1].eq_ignore_ascii_case(&b'x');
    let m = mantissa(if hex { &b[2..] } else { b }, hex)?;
    let (exp, rest, exp_underscores) = exponent(m.rest, hex)?;
    if !rest.is_empty() || ((m.underscores || exp_underscores) && !go_underscore_ok(s)) {
        return None;
    }
    let value = if hex {
        hex_to_f64(m.mant, m.mant_exp + exp)?
    } else {
        let digits: String = s.chars().filter(|&c| c != '_').collect();
        let f: f64 = digits.parse().ok()?;
        if !f.is_finite() {
            return None;
        }
        f.abs()
    };
    Some(if neg { -value } else { value })
}

/// The digits of a float up to its exponent.
struct Mantissa<'a> {
    /// What follows them.
    rest: &'a [u8],
    /// Whether they held a `_`.
    underscores: bool,
    /// Hexadecimal only: the significant digits (with a sticky bit for the
    /// ones that do not fit) ...
    mant: u128,
    /// ... and the binary exponent they imply.
    mant_exp: i64,
}

/// Reads the digits and the one `.` of a float's mantissa (after the sign
/// and a `0x`); `None` when there is no digit.
fn mantissa(b: &[u8], hex: bool) -> Option<Mantissa<'_>> {
    let mut m = Mantissa {
        rest: &[],
        underscores: false,
        mant: 0,
        mant_exp: 0,
    };
    let (mut saw_dot, mut saw_digits) = (false, false);
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'_' {
            m.underscores = true;
        } else if c == b'.' {
            if saw_dot {
                break;
            }
            saw_dot = true;
        } else if c.is_ascii_digit() || (hex && c.is_ascii_hexdigit()) {
            saw_digits = true;
            if hex {
                let d = u128::from((c as char).to_digit(16).unwrap_or_default());
                if m.mant >> 120 == 0 {
                    m.mant = (m.mant << 4) | d;
                    m.mant_exp -= if saw_dot { 4 } else { 0 };
                } else {
                    m.mant |= u128::from(d != 0);
                    m.mant_exp += if saw_dot { 0 } else { 4 };
                }
            }
        } else {
            break;
        }
        i += 1;
    }
    m.rest = &b[i..];
    saw_digits.then_some(m)
}

/// Reads a float's exponent (`e` for decimal, `p` for hexadecimal, which
/// needs one): its value (capped, as Go's), what follows it, and whether it
/// held a `_`. `None` on a malformed exponent.
fn exponent(b: &[u8], hex: bool) -> Option<(i64, &[u8], bool)> {
    let exp_char = if hex { b'p' } else { b'e' };
    let Some(after) = b
        .split_first()
        .filter(|(c, _)| c.eq_ignore_ascii_case(&exp_char))
        .map(|(_, rest)| rest)
    else {
        return if hex { None } else { Some((0, b, false)) };
    };
    let (sign, digits) = match after.first() {
        Some(b'+') => (1, &after[1..]),
        Some(b'-') => (-1, &after[1..]),
        _ => (1, after),
    };
    if !digits.first().is_some_and(u8::is_ascii_digit) {
        return None;
    }
    let (mut exp, mut underscores, mut i) = (0i64, false, 0);
    while let Some(&c) = digits.get(i).filter(|c| c.is_ascii_digit() || **c == b'_') {
        if c == b'_' {
            underscores = true;
        } else if exp < 10_000 {
            exp = exp * 10 + i64::from(c - b'0');
        }
        i += 1;
    }
    Some((sign * exp, &digits[i..], underscores))
}
