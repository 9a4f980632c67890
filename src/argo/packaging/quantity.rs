//! Kubernetes resource quantities (`k8s.io/apimachinery/pkg/api/resource`):
//! Go parses `100m`, `0.5`, `1024Mi` and writes them back in canonical form
//! (`100m`, `500m`, `1Gi`), keeping a string it deems canonical verbatim.

#[derive(Debug, Clone, Copy, PartialEq)]
enum Format {
    DecimalSi,
    BinarySi,
    DecimalExponent,
}

struct Parsed<'a> {
    positive: bool,
    num: &'a str,
    denom: &'a str,
    suffix: &'a str,
}

const HINT: &str = "write a quantity such as 250m, 1, 64Mi or 1G";

/// `parseQuantityString`.
fn split(s: &str) -> Result<Parsed<'_>, String> {
    let b = s.as_bytes();
    let end = b.len();
    let mut pos = 0;
    let mut positive = true;
    match b.first() {
        Some(b'-') => {
            positive = false;
            pos += 1;
        }
        Some(b'+') => pos += 1,
        _ => {}
    }
    while pos < end && b[pos] == b'0' {
        pos += 1;
    }
    if pos >= end {
        return Ok(Parsed {
            positive,
            num: "0",
            denom: "",
            suffix: "",
        });
    }
    let start = pos;
    while pos < end && b[pos].is_ascii_digit() {
        pos += 1;
    }
    let num = if pos == start { "0" } else { &s[start..pos] };
    let mut denom = "";
    if pos < end && b[pos] == b'.' {
        pos += 1;
        let start = pos;
        while pos < end && b[pos].is_ascii_digit() {
            pos += 1;
        }
        denom = &s[start..pos];
    }
    let suffix_start = pos;
    while pos < end && b"eEinumkKMGTP".contains(&b[pos]) {
        pos += 1;
    }
    if pos < end && (b[pos] == b'-' || b[pos] == b'+') {
        pos += 1;
    }
    while pos < end && b[pos].is_ascii_digit() {
        pos += 1;
    }
    if pos < end {
        return Err(format!("{s:?} is not a quantity: {HINT}"));
    }
    Ok(Parsed {
        positive,
        num,
        denom,
        suffix: &s[suffix_start..],
    })
}

/// The suffix's base, exponent and format.
fn interpret(suffix: &str) -> Option<(u32, i32, Format)> {
    let decimal = [
        ("n", -9),
        ("u", -6),
        ("m", -3),
        ("", 0),
        ("k", 3),
        ("M", 6),
        ("G", 9),
        ("T", 12),
        ("P", 15),
        ("E", 18),
    ];
    if let Some((_, e)) = decimal.iter().find(|(s, _)| *s == suffix) {
        return Some((10, *e, Format::DecimalSi));
    }
    let binary = [
        ("Ki", 10),
        ("Mi", 20),
        ("Gi", 30),
        ("Ti", 40),
        ("Pi", 50),
        ("Ei", 60),
    ];
    if let Some((_, e)) = binary.iter().find(|(s, _)| *s == suffix) {
        return Some((2, *e, Format::BinarySi));
    }
    let rest = suffix.strip_prefix(['e', 'E'])?;
    rest.parse::<i32>()
        .ok()
        .map(|e| (10, e, Format::DecimalExponent))
}

fn pow10(n: i32) -> Option<i128> {
    10i128.checked_pow(u32::try_from(n).ok()?)
}

/// `CanonicalizeBytes` of `m * 10^scale`.
fn render(mut m: i128, mut scale: i32, mut format: Format) -> Result<String, String> {
    let too_big = || "is too large".to_string();
    if m == 0 {
        return Ok("0".into());
    }
    if format == Format::BinarySi {
        let whole = if scale >= 0 {
            pow10(scale).and_then(|p| m.checked_mul(p))
        } else {
            pow10(-scale).filter(|p| m % p == 0).map(|p| m / p)
        };
        match whole {
            Some(mut v) if v.abs() >= 1024 => {
                let mut e = 0;
                while v.abs() >= 1024 && v % 1024 == 0 {
                    v /= 1024;
                    e += 1;
                }
                let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]
                    .get(e)
                    .ok_or_else(too_big)?;
                return Ok(format!("{v}{suffix}"));
            }
            _ => format = Format::DecimalSi,
        }
    }
    while m.abs() >= 10 && m % 10 == 0 {
        m /= 10;
        scale += 1;
    }
    while scale % 3 != 0 {
        m = m.checked_mul(10).ok_or_else(too_big)?;
        scale -= 1;
    }
    let suffix = match format {
        Format::DecimalExponent if scale == 0 => String::new(),
        Format::DecimalExponent => format!("e{scale}"),
        _ => match scale {
            -9 => "n",
            -6 => "u",
            -3 => "m",
            0 => "",
            3 => "k",
            6 => "M",
            9 => "G",
            12 => "T",
            15 => "P",
            18 => "E",
            _ => return Err(too_big()),
        }
        .to_string(),
    };
    Ok(format!("{m}{suffix}"))
}

/// The quantity as Go's `resource.Quantity` writes it after reading `s`.
pub fn canonical(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err(format!("the quantity is empty: {HINT}"));
    }
    if s == "0" {
        return Ok(s.into());
    }
    let p = split(s)?;
    let (base, exponent, format) =
        interpret(p.suffix).ok_or_else(|| format!("{s:?} has an unknown suffix: {HINT}"))?;
    let digits = p.num.len() + p.denom.len();
    let digits = i32::try_from(digits).map_err(|_| format!("{s:?} is too long"))?;
    let shifted = format!("{}{}", p.num, p.denom);
    // Go's fast path, which keeps a canonical-looking string verbatim.
    let (precision, scale, mantissa) = match format {
        Format::BinarySi if p.denom.is_empty() => (
            15 - digits - (exponent as f32 * 3.0 / 10.0) as i32 - 1,
            0,
            1i64 << exponent,
        ),
        Format::BinarySi => (-1, 0, 1),
        _ => (18 - digits, exponent, 1),
    };
    let scale = scale - (p.denom.len() as i32);
    if precision >= 0 && scale >= -9 {
        let value: i64 = shifted
            .parse()
            .map_err(|_| format!("{s:?} is not a number: {HINT}"))?;
        if let Some(result) = value.checked_mul(mantissa) {
            let result = if p.positive { result } else { -result };
            let keep = match format {
                Format::BinarySi => exponent % 10 == 0 && value & 0x07 != 0,
                _ => scale % 3 == 0 && !shifted.ends_with("000") && !shifted.starts_with('0'),
            };
            if keep {
                return Ok(s.into());
            }
            return render(i128::from(result), scale, format).map_err(|e| format!("{s:?} {e}"));
        }
    }
    // Go's exact path, rounding up to a whole nano.
    let too_big = || format!("{s:?} is too large or too precise");
    let mut m: i128 = shifted.parse().map_err(|_| too_big())?;
    if !p.positive {
        m = -m;
    }
    let mut scale = -(p.denom.len() as i32);
    if base == 10 {
        scale += exponent;
    } else {
        let factor = 1i128
            .checked_shl(u32::try_from(exponent).map_err(|_| too_big())?)
            .ok_or_else(too_big)?;
        m = m.checked_mul(factor).ok_or_else(too_big)?;
    }
    if m != 0 && scale < -9 {
        let d = pow10(-9 - scale).ok_or_else(too_big)?;
        let q = m / d;
        m = if m % d == 0 { q } else { q + m.signum() };
        scale = -9;
    }
    render(m, scale, format).map_err(|e| format!("{s:?} {e}"))
}

#[cfg(test)]
mod tests {
    use super::canonical;

    #[test]
    fn as_kubernetes_writes_them() {
        for (given, written) in [
            ("100m", "100m"),
            ("0.5", "500m"),
            ("1000m", "1"),
            ("1500m", "1500m"),
            ("1", "1"),
            ("1000", "1k"),
            ("64Mi", "64Mi"),
            ("1024Mi", "1Gi"),
            ("1Ki", "1Ki"),
            ("100Ki", "100Ki"),
            ("0.5Gi", "512Mi"),
            ("1e3", "1e3"),
            ("1.5e3", "1500"),
            ("0m", "0"),
            ("0", "0"),
            ("128M", "128M"),
            ("1G", "1G"),
            ("0.0000000001", "1n"),
            ("-1", "-1"),
        ] {
            assert_eq!(canonical(given).as_deref(), Ok(written), "{given}");
        }
        for bad in ["", "1x", "abc", "1Kb", "1e"] {
            assert!(canonical(bad).is_err(), "{bad}");
        }
    }
}
