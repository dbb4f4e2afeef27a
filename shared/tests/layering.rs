//! The workspace's layering: inside `bot` and `orchestrator`, no two top-level modules depend on
//! each other, directly or through others (the command line imports the library, never the
//! reverse). Read from the sources: a module depends on another when its code (outside test
//! modules) names `crate::other`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("source dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Each top-level module of the crate at `src` and the top-level modules it names.
fn dependencies(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    sources(src, &mut files);
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(src).expect("inside src");
        let top = rel
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .expect("name")
            .trim_end_matches(".rs")
            .to_owned();
        if top == "lib" || top == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("source");
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let named = deps.entry(top.clone()).or_default();
        for (i, _) in code.match_indices("crate::") {
            let name: String = code[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && name != top {
                named.insert(name);
            }
        }
    }
    deps
}

fn cycles(deps: &BTreeMap<String, BTreeSet<String>>) -> Vec<(String, String)> {
    let reaches = |from: &str, to: &str| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_owned()];
        while let Some(m) = todo.pop() {
            for next in deps.get(&m).into_iter().flatten() {
                if next == to {
                    return true;
                }
                if seen.insert(next.clone()) {
                    todo.push(next.clone());
                }
            }
        }
        false
    };
    let mut found = Vec::new();
    for (module, named) in deps {
        for other in named {
            if reaches(other, module) {
                found.push((module.clone(), other.clone()));
            }
        }
    }
    found
}

#[test]
fn no_two_modules_of_a_crate_depend_on_each_other() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for krate in ["bot", "orchestrator"] {
        let deps = dependencies(&workspace.join(krate).join("src"));
        assert!(deps.len() > 5, "{krate}: modules not found");
        assert_eq!(
            cycles(&deps),
            Vec::new(),
            "{krate}: modules that depend on each other"
        );
        for (module, named) in &deps {
            assert!(
                module == "cli" || !named.contains("cli"),
                "{krate}: {module} imports the command line"
            );
        }
    }
}

#[test]
fn a_cycle_is_found() {
    let deps = BTreeMap::from([
        ("a".to_owned(), BTreeSet::from(["b".to_owned()])),
        ("b".to_owned(), BTreeSet::from(["c".to_owned()])),
        ("c".to_owned(), BTreeSet::from(["a".to_owned()])),
        ("d".to_owned(), BTreeSet::from(["a".to_owned()])),
    ]);
    assert_eq!(cycles(&deps).len(), 3);
}
