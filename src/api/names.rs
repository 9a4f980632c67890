//! Kubernetes object names: the DNS-1123 rules kube-apiserver applies
//! (`k8s.io/apimachinery/pkg/util/validation`), with its messages.

/// Why `name` is not a DNS-1123 subdomain, if it is not one.
pub fn dns_subdomain_error(name: &str) -> Option<String> {
    const MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
    if name.len() > 253 {
        return Some("must be no more than 253 characters".into());
    }
    let label_ok = |l: &str| {
        let b = l.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
    };
    if name.split('.').all(label_ok) {
        None
    } else {
        Some(MSG.into())
    }
}

/// Why `name` is not a DNS-1123 label (namespaces), if it is not one.
pub fn dns_label_error(name: &str) -> Option<String> {
    if name.len() > 63 || name.contains('.') || dns_subdomain_error(name).is_some() {
        Some("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')".into())
    } else {
        None
    }
}
