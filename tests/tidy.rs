//! Tidy checks that keep the code base honest, run by `cargo test`:
//!
//! - in the core, `unsafe` appears only under `crates/volley/src/sys/`;
//! - every `unsafe` block, `unsafe impl` and `syscall!` call in library
//!   code has a `// SAFETY:` comment just above it, every `unsafe fn` a
//!   `# Safety` section;
//! - the other library crates forbid `unsafe` outright;
//! - every library source file opens with a `//!` module doc;
//! - library code (outside `#[cfg(test)]` modules) has no `.unwrap()`.

use std::fs;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ lives in the workspace root").to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Library sources of every crate under `crates/`.
fn library_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for krate in fs::read_dir(root().join("crates")).expect("crates/").flatten() {
        rust_files(&krate.path().join("src"), &mut files);
    }
    assert!(files.len() > 10, "found only {} library files: is the layout right?", files.len());
    files
}

/// The lines of `text` before its `#[cfg(test)]` module, numbered from 1,
/// with comments kept (the SAFETY check needs them).
fn code_lines(text: &str) -> Vec<(usize, &str)> {
    text.lines().enumerate().take_while(|(_, l)| l.trim() != "#[cfg(test)]").map(|(i, l)| (i + 1, l)).collect()
}

fn is_comment(line: &str) -> bool {
    let t = line.trim_start();
    t.starts_with("//")
}

/// Strips a `// ...` trailing comment and string literals, roughly, so a
/// word in a comment or a message does not count as code.
fn code_part(line: &str) -> String {
    let mut out = String::new();
    let mut in_str = false;
    let mut prev = ' ';
    for c in line.chars() {
        if c == '"' && prev != '\\' {
            in_str = !in_str;
            continue;
        }
        if !in_str {
            if c == '/' && prev == '/' {
                out.pop();
                break;
            }
            out.push(c);
        }
        prev = c;
    }
    out
}

fn has_word(code: &str, word: &str) -> bool {
    code.match_indices(word).any(|(i, _)| {
        let before = code[..i].chars().next_back();
        let after = code[i + word.len()..].chars().next();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
            && !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

#[test]
fn unsafe_lives_only_in_the_core_sys_module() {
    let sys = root().join("crates/volley/src/sys");
    let mut offenders = Vec::new();
    for file in library_files() {
        if file.starts_with(&sys) {
            continue;
        }
        let text = fs::read_to_string(&file).unwrap_or_default();
        for (n, line) in text.lines().enumerate() {
            if is_comment(line) {
                continue;
            }
            let code = code_part(line);
            if has_word(&code, "unsafe") && !code.contains("unsafe_code") && !code.contains("unsafe_op_in_unsafe_fn") {
                offenders.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(offenders.is_empty(), "unsafe outside crates/volley/src/sys/:\n{}", offenders.join("\n"));
}

#[test]
fn every_unsafe_site_has_a_safety_comment() {
    let mut missing = Vec::new();
    let mut sites = 0;
    for file in library_files() {
        let text = fs::read_to_string(&file).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if is_comment(line) {
                continue;
            }
            let code = code_part(line);
            let block = code.contains("unsafe {") || code.contains("unsafe impl");
            let call = code.contains("syscall!(") && !code.contains("macro_rules");
            let func = code.contains("unsafe fn");
            if !(block || call || func) {
                continue;
            }
            sites += 1;
            // Look back over the comment / attribute lines right above, and
            // up to a few code lines of the same statement.
            let window = &lines[i.saturating_sub(12)..i];
            let ok = if func {
                window.iter().any(|l| l.contains("# Safety"))
            } else {
                line.contains("SAFETY:") || window.iter().any(|l| l.contains("// SAFETY:"))
            };
            if !ok {
                missing.push(format!("{}:{}: {}", file.display(), i + 1, line.trim()));
            }
        }
    }
    println!("{sites} unsafe sites checked");
    assert!(sites > 10, "suspiciously few unsafe sites: {sites}");
    assert!(missing.is_empty(), "unsafe without a SAFETY comment:\n{}", missing.join("\n"));
}

#[test]
fn other_crates_forbid_unsafe_and_the_core_denies_unsafe_op_in_unsafe_fn() {
    let core = fs::read_to_string(root().join("crates/volley/src/lib.rs")).expect("core lib.rs");
    assert!(core.contains("#![deny(missing_docs, unsafe_op_in_unsafe_fn)]"));
    for krate in fs::read_dir(root().join("crates")).expect("crates/").flatten() {
        let name = krate.file_name().to_string_lossy().into_owned();
        if name == "volley" {
            continue;
        }
        let src = krate.path().join("src");
        let root_file = ["lib.rs", "main.rs"].iter().map(|f| src.join(f)).find(|p| p.exists());
        let Some(root_file) = root_file else { panic!("{name}: no lib.rs or main.rs") };
        let text = fs::read_to_string(&root_file).unwrap_or_default();
        assert!(text.contains("#![forbid(unsafe_code)]"), "{} lacks #![forbid(unsafe_code)]", root_file.display());
    }
}

#[test]
fn every_library_file_starts_with_a_module_doc() {
    let bad: Vec<String> = library_files()
        .into_iter()
        .filter(|f| !fs::read_to_string(f).unwrap_or_default().trim_start().starts_with("//!"))
        .map(|f| f.display().to_string())
        .collect();
    assert!(bad.is_empty(), "files without a //! doc:\n{}", bad.join("\n"));
}

#[test]
fn library_code_does_not_unwrap() {
    let mut offenders = Vec::new();
    for file in library_files() {
        // Binaries may unwrap at the top level; libraries may not.
        if file.ends_with("main.rs") || file.components().any(|c| c.as_os_str() == "bin") {
            continue;
        }
        let text = fs::read_to_string(&file).unwrap_or_default();
        for (n, line) in code_lines(&text) {
            if is_comment(line) {
                continue;
            }
            if code_part(line).contains(".unwrap()") {
                offenders.push(format!("{}:{n}: {}", file.display(), line.trim()));
            }
        }
    }
    assert!(offenders.is_empty(), "unwrap() in library code:\n{}", offenders.join("\n"));
}
