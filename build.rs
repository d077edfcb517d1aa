//! Compiles the catalog (`flows/**.yaml`) and the examples (`examples/*.yaml`) into the binary:
//! `$OUT_DIR/builtin.rs` lists each file's path, relative to the workspace, with its text
//! through `include_str!`, so `flowcat` finds its flows from any folder. A flow's test cases
//! (`*.test.yaml`, `flowcat test`) are not flows and stay out.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let root = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    yaml_files(&root.join("flows"), true, &mut files);
    yaml_files(&root.join("examples"), false, &mut files);
    files.sort();
    let mut out = String::from("/// Built-in flows: (path relative to the workspace, text).\n");
    out.push_str("pub static BUILTIN: &[(&str, &str)] = &[\n");
    for file in &files {
        let rel = file.strip_prefix(&root).expect("under the workspace");
        let rel: Vec<String> = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
        let _ = writeln!(out, "    ({:?}, include_str!({:?})),", rel.join("/"), file.display().to_string());
    }
    out.push_str("];\n");
    let dest = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("builtin.rs");
    std::fs::write(dest, out).expect("OUT_DIR is writable");
    // A folder makes cargo look at every file under it, so a new or edited flow rebuilds.
    println!("cargo:rerun-if-changed=flows");
    println!("cargo:rerun-if-changed=examples");
}

fn yaml_files(dir: &Path, recurse: bool, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if recurse {
                yaml_files(&path, true, out);
            }
        } else if matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
            && !path.to_string_lossy().ends_with(".test.yaml")
            && !path.to_string_lossy().ends_with(".test.yml")
        {
            out.push(path);
        }
    }
}
