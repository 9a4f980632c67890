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
        let b = label.as_bytes();
        match (b.first(), b.last()) {
            (Some(first), Some(last)) => {
                first.is_ascii_alphanumeric()
                    && last.is_ascii_alphanumeric()
                    && b.iter()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
            }
            _ => false,
        }
    })
}

/// apimachinery's `qualifiedNameRegexp`: alphanumeric at both ends, `-`,
/// `_`, `.` inside.
pub fn is_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
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
