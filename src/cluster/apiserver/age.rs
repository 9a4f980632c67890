//! Ages as kube-apiserver prints them in Tables (`duration.HumanDuration`),
//! for every printer: resources' columns and pods' rows.

use jiff::Timestamp;
use serde_json::Value;

/// Formats a duration as Kubernetes does (`duration.HumanDuration`):
/// `27s`, `2m18s`, `15m`, `3h5m`, `2d4h`, `3y`.
///
/// ```
/// use gameops::cluster::apiserver::age::human_duration;
///
/// assert_eq!(human_duration(138), "2m18s");
/// assert_eq!(human_duration(27), "27s");
/// ```
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    // `2m` and `3m5s`: the smaller unit shows only when it is not zero.
    let two = |a: i64, big: &str, b: i64, small: &str| {
        if b == 0 {
            format!("{a}{big}")
        } else {
            format!("{a}{big}{b}{small}")
        }
    };
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        return two(minutes, "m", seconds % 60, "s");
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        return two(hours, "h", minutes % 60, "m");
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        return two(hours / 24, "d", hours % 24, "h");
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        return two(hours / 24 / 365, "y", (hours / 24) % 365, "d");
    }
    format!("{}y", hours / 24 / 365)
}

/// The age of an RFC 3339 timestamp, or `<unknown>`.
pub fn age(value: Option<&Value>, now: Timestamp) -> Value {
    match value
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<Timestamp>().ok())
    {
        Some(t) => Value::String(human_duration(now.duration_since(t).as_secs())),
        None => Value::String("<unknown>".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_format_like_kubectl() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (27, "27s"),
            (119, "119s"),
            (138, "2m18s"),
            (180, "3m"),
            (900, "15m"),
            (3 * 3600 + 300, "3h5m"),
            (10 * 3600, "10h"),
            (2 * 86400 + 4 * 3600, "2d4h"),
            (30 * 86400, "30d"),
            (3 * 365 * 86400, "3y"),
        ];
        for (s, want) in cases {
            assert_eq!(human_duration(s), want, "{s}");
        }
    }
}
