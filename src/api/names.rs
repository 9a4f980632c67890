//! Kubernetes object names: the DNS-1123 rules kube-apiserver applies
//! (`k8s.io/apimachinery/pkg/util/validation`), with its messages.

/// Why `name` is not a DNS-1123 subdomain, if it is not one.
pub fn dns_subdomain_error(name: &str) -> Option<String> {
    const MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
    if name.len() > 253 {
        return Some("must be no more than 253 characters".into());
    }
    if is_dns1123_subdomain(name) {
        None
    } else {
        Some(MSG.into())
    }
}

/// apimachinery's `dns1123SubdomainRegexp`, length aside: labels of
/// lowercase alphanumerics and `-` joined by `.`, each starting and ending
/// alphanumeric.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    s.split('.').all(|label| {
        edged(label, |c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-'
        })
    })
}

/// apimachinery's `qualifiedNameRegexp`: alphanumeric at both ends, `-`,
/// `_`, `.` inside.
pub fn is_qualified_name_part(s: &str) -> bool {
    edged(s, |c| {
        c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.')
    })
}

/// Whether `s` is not empty, starts and ends alphanumeric, and has only
/// bytes `inner` allows.
fn edged(s: &str, inner: impl Fn(u8) -> bool) -> bool {
    let b = s.as_bytes();
    matches!((b.first(), b.last()), (Some(f), Some(l)) if f.is_ascii_alphanumeric() && l.is_ascii_alphanumeric())
        && b.iter().all(|c| inner(*c))
}

/// apimachinery's `IsValidLabelValue` as a yes or no: empty, or a
/// qualified name part of at most 63 characters.
pub fn is_label_value(v: &str) -> bool {
    v.is_empty() || (v.len() <= 63 && is_qualified_name_part(v))
}

/// Why `name` is not a DNS-1123 label (namespaces), if it is not one.
pub fn dns_label_error(name: &str) -> Option<String> {
    if name.len() > 63 || name.contains('.') || dns_subdomain_error(name).is_some() {
        Some("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')".into())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Strings the regexps of apimachinery's util/validation/validation.go
    /// accept and refuse.
    #[test]
    fn the_patterns_accept_what_apimachinery_accepts() {
        for ok in ["a", "ab", "a-b", "a.b", "1.a-2", "example.com"] {
            assert!(is_dns1123_subdomain(ok), "{ok}");
        }
        for bad in ["", "A", "a.", ".a", "a..b", "-a", "a-", "a_b"] {
            assert!(!is_dns1123_subdomain(bad), "{bad}");
        }
        for ok in ["a", "A", "a-b_c.d", "MyName", "123-abc"] {
            assert!(is_qualified_name_part(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "_a", "a.", "a/b", "a b"] {
            assert!(!is_qualified_name_part(bad), "{bad}");
        }
        assert!(is_label_value(""));
        assert!(is_label_value(&"a".repeat(63)));
        assert!(!is_label_value(&"a".repeat(64)));
        assert!(!is_label_value("-a"));
    }
}
