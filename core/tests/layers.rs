//! The layering of `core/src` (DESIGN.md, "Products and layers"), checked on the source: a module
//! may use only modules of a lower layer (or itself). A new import that reaches up fails here.

use std::path::Path;

/// Layer of each top-level module of the crate; higher layers may use lower ones.
const LAYERS: &[(&str, u8)] = &[
    ("error", 0),
    ("kernel", 1),
    ("ipam", 1),
    ("config", 2),
    ("store", 3),
    ("base", 4),
    ("ports", 5),
    ("services", 5),
    ("peers", 6),
    ("pods", 6),
    ("node", 7),
    ("blocking", 8),
    ("lib", 9),
];

/// Root re-exports and the layer of the module they come from.
const ROOT_ITEMS: &[(&str, &str)] =
    &[("Error", "error"), ("ErrorKind", "error"), ("Result", "error"), ("SandboxSpec", "config"), ("Node", "node")];

fn layer(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

/// The first path segment of every `crate::...` reference in `src` (also inside `use crate::{..}`).
fn crate_refs(src: &str) -> Vec<String> {
    let mut out = vec![];
    let mut rest = src;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for part in group[..end].split(',') {
                let seg = part.trim().split("::").next().unwrap_or("").trim();
                if !seg.is_empty() && seg != "self" {
                    out.push(seg.to_string());
                }
            }
        } else {
            let seg: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            out.push(seg);
        }
    }
    out
}

fn module_of(src_dir: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src_dir).unwrap();
    let first = rel.components().next().unwrap().as_os_str().to_string_lossy().to_string();
    first.trim_end_matches(".rs").to_string()
}

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn no_module_imports_a_higher_layer() {
    let src_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = vec![];
    files(&src_dir, &mut all);
    let mut violations = vec![];
    for f in &all {
        let module = module_of(&src_dir, f);
        let mine = layer(&module).unwrap_or_else(|| panic!("{module} (from {}) has no layer in LAYERS", f.display()));
        let src = std::fs::read_to_string(f).unwrap();
        // Unit tests may reach anywhere.
        let src = src.split("#[cfg(test)]").next().unwrap_or("");
        // Comments (doc links included) are not imports.
        let code: String = src.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n");
        for r in crate_refs(&code) {
            let target = ROOT_ITEMS.iter().find(|(item, _)| *item == r).map(|(_, m)| m.to_string()).unwrap_or(r);
            let Some(theirs) = layer(&target) else {
                // A root re-export not listed above, or a macro path: name it so it gets a layer.
                violations.push(format!("{}: crate::{target} has no layer", f.display()));
                continue;
            };
            if target != module && theirs >= mine {
                violations.push(format!("{}: {module} (layer {mine}) uses {target} (layer {theirs})", f.display()));
            }
        }
    }
    assert!(violations.is_empty(), "layering violations:\n{}", violations.join("\n"));
}

#[test]
fn the_scanner_sees_grouped_and_plain_imports() {
    let refs = crate_refs("use crate::{a::B, c, Error};\nlet x = crate::d::e();");
    assert_eq!(refs, ["a", "c", "Error", "d"]);
}
