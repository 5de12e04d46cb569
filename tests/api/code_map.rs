//! The README's code map matches the tree: every source folder of the three crates and every
//! top-level file of `src/` and `core/src/` is named in it, and no path is the subject of two
//! rows. A folder counts as named when its path is, or when the row of its parent folder names
//! it (`session/` in the row of `core/src/lite/`). Needs no database.

use std::collections::BTreeMap;
use std::path::Path;

const ROOTS: &[&str] = &["src", "core/src", "sim/src"];

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md")
}

/// The code map's rows: first column's backticked paths → the whole row.
fn rows(readme: &str) -> Vec<(Vec<String>, String)> {
    let map = readme
        .split("## Code map")
        .nth(1)
        .expect("the README has a Code map section");
    let map = map.split("\n## ").next().unwrap_or(map);
    map.lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let first = l.split(" | ").next().unwrap_or(l);
            let paths = first
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect();
            (paths, l.to_string())
        })
        .collect()
}

/// Source folders (with a trailing `/`) and top-level `.rs` files of the crates' sources.
fn tree() -> (Vec<String>, Vec<String>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dirs = Vec::new();
    let mut files = Vec::new();
    fn walk(root: &Path, rel: &str, dirs: &mut Vec<String>) {
        for e in std::fs::read_dir(root.join(rel)).expect("source folder") {
            let e = e.expect("entry");
            if e.file_type().expect("type").is_dir() {
                let sub = format!("{rel}/{}", e.file_name().to_string_lossy());
                dirs.push(format!("{sub}/"));
                walk(root, &sub, dirs);
            }
        }
    }
    for r in ROOTS {
        walk(root, r, &mut dirs);
        if *r != "sim/src" {
            for e in std::fs::read_dir(root.join(r)).expect("source folder") {
                let name = e.expect("entry").file_name().to_string_lossy().to_string();
                if name.ends_with(".rs") && name != "lib.rs" {
                    files.push(format!("{r}/{name}"));
                }
            }
        }
    }
    (dirs, files)
}

/// What the map is missing: folders and files named nowhere in it.
fn missing(rows: &[(Vec<String>, String)], dirs: &[String], files: &[String]) -> Vec<String> {
    let named = |p: &str| rows.iter().any(|(paths, _)| paths.iter().any(|x| x == p));
    let mut out = Vec::new();
    for d in dirs {
        let trimmed = d.trim_end_matches('/');
        let (parent, name) = trimmed.rsplit_once('/').expect("nested");
        let in_parent = rows.iter().any(|(paths, row)| {
            paths.iter().any(|x| x == &format!("{parent}/")) && row.contains(&format!("`{name}/`"))
        });
        if !named(d) && !in_parent {
            out.push(d.clone());
        }
    }
    out.extend(files.iter().filter(|f| !named(f)).cloned());
    out
}

/// Paths that are the subject of more than one row.
fn twice(rows: &[(Vec<String>, String)]) -> Vec<String> {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (paths, _) in rows {
        for p in paths {
            *seen.entry(p).or_default() += 1;
        }
    }
    seen.into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(p, _)| p.to_string())
        .collect()
}

#[test]
fn code_map_names_every_folder_and_top_level_file_once() {
    // Arrange
    let readme = readme();
    let rows = rows(&readme);
    let (dirs, files) = tree();
    // Act
    let missing = missing(&rows, &dirs, &files);
    let twice = twice(&rows);
    // Assert
    assert!(
        missing.is_empty(),
        "the README's code map does not name: {missing:?}"
    );
    assert!(
        twice.is_empty(),
        "the README's code map lists these twice: {twice:?}"
    );
}

#[test]
fn code_map_check_finds_what_is_missing_or_listed_twice() {
    let rows = rows(
        "## Code map\n\n| `a/src/x/` | x, with `y/` |\n| `a/src/f.rs` | f |\n| `a/src/f.rs` | again |\n\n## Next\n| `a/src/z/` | not the map |\n",
    );
    let dirs = vec![
        "a/src/x/".to_string(),
        "a/src/x/y/".to_string(),
        "a/src/z/".to_string(),
    ];
    let files = vec!["a/src/f.rs".to_string(), "a/src/g.rs".to_string()];
    assert_eq!(
        missing(&rows, &dirs, &files),
        vec!["a/src/z/", "a/src/g.rs"]
    );
    assert_eq!(twice(&rows), vec!["a/src/f.rs"]);
}
