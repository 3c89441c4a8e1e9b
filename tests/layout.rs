//! The source tree keeps the layout README and `src/lib.rs` describe: no file of `src/` imports
//! another that (through any chain) imports it back, and the arrows point inward (adapters do
//! not reach into the store, the store into a use case, a use case into a command; the domain
//! into anything but itself and the text helpers).
//!
//! "Imports" are every path a file names that starts with `crate`, `super`, `self` or one of its
//! own child modules, in `use` items, code and macro bodies alike, resolved to the file of the
//! longest module prefix it names. A module's `pub use` of its own descendants is its facade,
//! not a dependency. Parsed with `syn`, so strings and comments never count. Its own binary:
//! it reads files, not the library, and needs no harness.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::Visit;

/// A module path under the crate root (`["store", "inbox"]`); the root is `[]`.
type Module = Vec<String>;

/// Every file module of `src/` (the binary's `main.rs` aside), by module path.
fn file_modules(src: &Path) -> BTreeMap<Module, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).unwrap().with_extension("");
            let mut module: Module = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            match module.last().map(String::as_str) {
                Some("main") if module.len() == 1 => continue,
                Some("lib" | "mod") => {
                    module.pop();
                }
                _ => {}
            }
            out.insert(module, path);
        }
    }
    out
}

/// What one file imports.
struct Imports<'a> {
    files: &'a BTreeMap<Module, PathBuf>,
    /// The file's own module.
    file: Module,
    /// The module the visitor is in (the file's, or an inline `mod` inside it).
    here: Module,
    /// Inside a `#[cfg(test)]` module: counted for cycles, not for the layering rules.
    in_test: bool,
    /// Child modules declared `#[cfg(test)] mod x;`, which are test code as files.
    test_children: BTreeSet<Module>,
    /// Targets, with whether the path is in test code.
    found: BTreeSet<(Module, bool)>,
}

impl Imports<'_> {
    /// The file a path of `segments` names, if it is one of ours and not this file.
    fn resolve(&self, segments: &[String]) -> Option<Module> {
        let (first, rest) = segments.split_first()?;
        let mut full = match first.as_str() {
            "crate" => Vec::new(),
            "super" => {
                let mut m = self.here.clone();
                m.pop()?;
                m
            }
            "self" => self.here.clone(),
            child => {
                // A path from one of this module's own children (`use inbox::Inbox`).
                let mut m = self.here.clone();
                m.push(child.to_owned());
                if !self.files.keys().any(|k| k.starts_with(&m)) {
                    return None;
                }
                m
            }
        };
        let mut rest = rest;
        while let Some((s, more)) = rest.split_first() {
            if s != "super" {
                break;
            }
            full.pop()?;
            rest = more;
        }
        full.extend(rest.iter().cloned());
        self.longest(full)
    }

    /// The longest prefix of `full` that is a file module other than this file's.
    fn longest(&self, full: Module) -> Option<Module> {
        (0..=full.len())
            .rev()
            .map(|n| full[..n].to_vec())
            .find(|m| self.files.contains_key(m))
            .filter(|m| *m != self.file)
    }

    fn add(&mut self, segments: &[String], reexport: bool) {
        if let Some(target) = self.resolve(segments) {
            // A module re-exporting its own descendant is its facade, not a dependency.
            if reexport && target.starts_with(&self.file) {
                return;
            }
            self.found.insert((target, self.in_test));
        }
    }

    /// Every `a::b::c` path in a token stream (macro bodies, `macro_rules!` arms).
    fn tokens(&mut self, tokens: TokenStream) {
        let trees: Vec<TokenTree> = tokens.into_iter().collect();
        let mut i = 0;
        while i < trees.len() {
            if let TokenTree::Group(g) = &trees[i] {
                self.tokens(g.stream());
                i += 1;
                continue;
            }
            let mut segments = Vec::new();
            let mut j = i;
            while let Some(TokenTree::Ident(id)) = trees.get(j) {
                segments.push(id.to_string());
                let colons = matches!(
                    (trees.get(j + 1), trees.get(j + 2)),
                    (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b)))
                        if a.as_char() == ':' && b.as_char() == ':'
                );
                if !colons {
                    break;
                }
                j += 3;
            }
            if segments.len() > 1 {
                self.add(&segments, false);
            }
            i = j.max(i) + 1;
        }
    }
}

/// `#[cfg(test)]`.
fn is_cfg_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg") && a.parse_args::<syn::Ident>().is_ok_and(|i| i == "test")
    })
}

/// The paths of a `use` tree, each as its segments; `*` and `self` leaves name the module.
fn use_paths(tree: &syn::UseTree, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match tree {
        syn::UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            use_paths(&p.tree, prefix, out);
            prefix.pop();
        }
        syn::UseTree::Name(n) => {
            let mut p = prefix.clone();
            if n.ident != "self" {
                p.push(n.ident.to_string());
            }
            out.push(p);
        }
        syn::UseTree::Rename(r) => {
            let mut p = prefix.clone();
            if r.ident != "self" {
                p.push(r.ident.to_string());
            }
            out.push(p);
        }
        syn::UseTree::Glob(_) => out.push(prefix.clone()),
        syn::UseTree::Group(g) => {
            for t in &g.items {
                use_paths(t, prefix, out);
            }
        }
    }
}

impl<'ast> Visit<'ast> for Imports<'_> {
    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        let mut paths = Vec::new();
        use_paths(&u.tree, &mut Vec::new(), &mut paths);
        let reexport = !matches!(u.vis, syn::Visibility::Inherited);
        for p in paths {
            self.add(&p, reexport);
        }
    }

    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        let test = is_cfg_test(&m.attrs);
        match &m.content {
            Some((_, items)) => {
                let (was, saved) = (self.in_test, self.here.clone());
                self.in_test |= test;
                self.here.push(m.ident.to_string());
                for item in items {
                    self.visit_item(item);
                }
                self.here = saved;
                self.in_test = was;
            }
            None if test => {
                let mut child = self.here.clone();
                child.push(m.ident.to_string());
                self.test_children.insert(child);
            }
            None => {}
        }
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        let segments: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
        if segments.len() > 1 {
            self.add(&segments, false);
        }
        syn::visit::visit_path(self, p);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        self.tokens(m.tokens.clone());
        syn::visit::visit_macro(self, m);
    }
}

/// Each file's imports: `(target, in test code)`, and the file modules that are test code.
struct Graph {
    edges: BTreeMap<Module, BTreeSet<(Module, bool)>>,
    test_files: BTreeSet<Module>,
}

fn graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = file_modules(&src);
    let mut edges = BTreeMap::new();
    let mut test_files = BTreeSet::new();
    for (module, path) in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let parsed = syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut v = Imports {
            files: &files,
            file: module.clone(),
            here: module.clone(),
            in_test: false,
            test_children: BTreeSet::new(),
            found: BTreeSet::new(),
        };
        v.visit_file(&parsed);
        test_files.extend(v.test_children);
        edges.insert(module.clone(), v.found);
    }
    Graph { edges, test_files }
}

fn name(m: &Module) -> String {
    if m.is_empty() {
        "lib".to_owned()
    } else {
        m.join("/")
    }
}

/// A cycle through `start`, if one exists (depth first over the import edges).
fn cycle_from(graph: &BTreeMap<Module, BTreeSet<Module>>, start: &Module) -> Option<Vec<Module>> {
    let mut stack = vec![(start.clone(), vec![start.clone()])];
    let mut seen = BTreeSet::new();
    while let Some((at, path)) = stack.pop() {
        for next in graph.get(&at).into_iter().flatten() {
            if next == start {
                let mut cycle = path.clone();
                cycle.push(next.clone());
                return Some(cycle);
            }
            if seen.insert(next.clone()) {
                let mut p = path.clone();
                p.push(next.clone());
                stack.push((next.clone(), p));
            }
        }
    }
    None
}

#[test]
fn no_file_imports_one_that_imports_it_back() {
    let g = graph();
    assert!(
        g.edges.len() > 50,
        "src/ was not read: {:?}",
        g.edges.keys()
    );
    let plain: BTreeMap<Module, BTreeSet<Module>> = g
        .edges
        .iter()
        .map(|(m, t)| (m.clone(), t.iter().map(|(m, _)| m.clone()).collect()))
        .collect();
    let cycles: Vec<String> = plain
        .keys()
        .filter_map(|m| cycle_from(&plain, m))
        .map(|c| c.iter().map(name).collect::<Vec<_>>().join(" -> "))
        .collect();
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

/// The arrows point inward. Test code (a `#[cfg(test)]` module or file) may reach further.
#[test]
fn imports_point_inward() {
    let g = graph();
    let top = |m: &Module| m.first().cloned().unwrap_or_default();
    let is = |m: &Module, names: &[&str]| names.contains(&top(m).as_str());
    const ADAPTERS: &[&str] = &["classifier", "ticketing", "telemetry"];
    const USE_CASES: &[&str] = &[
        "triage",
        "review",
        "audit",
        "evaluation",
        "promote",
        "worker",
    ];
    const COMMANDS: &[&str] = &["commands", "cli", "startup"];
    /// What a rule says, and whether an import `from -> to` breaks it.
    type Rule<'a> = (&'a str, &'a dyn Fn(&Module, &Module) -> bool);
    let rules: [Rule<'_>; 5] = [
        (
            "the domain imports only itself and the text helpers",
            &|from, to| is(from, &["domain"]) && !is(to, &["domain", "text"]),
        ),
        (
            "an adapter does not reach into the store (its rows are the domain's)",
            &|from, to| is(from, ADAPTERS) && is(to, &["store"]),
        ),
        (
            "the store does not import a use case, an edge or a command",
            &|from, to| {
                is(from, &["store"])
                    && (is(to, USE_CASES) || is(to, COMMANDS) || is(to, &["grpc", "http", "web"]))
            },
        ),
        (
            "an adapter or a use case does not import a command",
            &|from, to| (is(from, ADAPTERS) || is(from, USE_CASES)) && is(to, COMMANDS),
        ),
        ("only the dispatcher imports the commands", &|from, to| {
            is(to, &["commands"]) && !is(from, &["cli", "commands"])
        }),
    ];
    let mut broken = Vec::new();
    for (from, targets) in &g.edges {
        let test_file = g.test_files.iter().any(|t| from.starts_with(t));
        for (to, in_test) in targets {
            if *in_test || test_file {
                continue;
            }
            for (why, breaks) in &rules {
                if breaks(from, to) {
                    broken.push(format!("{} -> {}: {why}", name(from), name(to)));
                }
            }
        }
    }
    assert!(
        broken.is_empty(),
        "imports against the layout:\n{}",
        broken.join("\n")
    );
}

/// The checker sees what it must: a `use`, a path in code, a path in a macro body, `super`
/// chains and a child module, and leaves a facade's re-export of its child alone.
#[test]
fn the_checker_reads_each_kind_of_path() {
    let files: BTreeMap<Module, PathBuf> = [
        vec![],
        vec!["a".to_owned()],
        vec!["a".to_owned(), "child".to_owned()],
        vec!["b".to_owned()],
        vec!["c".to_owned()],
        vec!["d".to_owned()],
    ]
    .into_iter()
    .map(|m| (m, PathBuf::new()))
    .collect();
    let mut v = Imports {
        files: &files,
        file: vec!["a".to_owned()],
        here: vec!["a".to_owned()],
        in_test: false,
        test_children: BTreeSet::new(),
        found: BTreeSet::new(),
    };
    let source = r#"
        pub use child::Thing;
        use crate::b::{self, X};
        fn f() { super::c::g(); let s = "crate::d::nope"; }
        macro_rules! m { () => { crate::d::h() }; }
        #[cfg(test)]
        mod tests { use super::super::b::Y; }
    "#;
    v.visit_file(&syn::parse_file(source).unwrap());
    let found: Vec<(String, bool)> = v.found.iter().map(|(m, t)| (name(m), *t)).collect();
    assert_eq!(
        found,
        [
            ("b".to_owned(), false),
            ("b".to_owned(), true),
            ("c".to_owned(), false),
            ("d".to_owned(), false),
        ]
    );
}
