//! `gameops lint [DIR]`: prints every finding and fails when there is one.

use std::path::Path;

/// Lints `dir`; `Err` says how many problems were found.
pub fn run(dir: &Path) -> Result<(), String> {
    let findings = crate::argo::lint::lint_dir(dir).map_err(|e| e.to_string())?;
    for f in &findings {
        println!("{f}");
    }
    if findings.is_empty() {
        println!("{}: every template is well-formed", dir.display());
        Ok(())
    } else {
        let n = findings.len();
        Err(format!(
            "{n} problem{} in {}",
            if n == 1 { "" } else { "s" },
            dir.display()
        ))
    }
}
