//! The import-circle check: which files of a crate's `src/` depend on which,
//! and the circles among them (its tests run it on `xtask` and `core`).
//!
//! A file depends on another when it names something of that file's module:
//!
//! - `use crate::a::b::X` (also `pub use`, so re-exports count, and use
//!   trees such as `use crate::{a::X, b::{c, Y}}`),
//! - a `crate::a::b::X` path written inline in code,
//! - `super::`/`self::` paths, in `use` or inline,
//! - in a `use`, a path starting with a module declared in the same module
//!   (`pub use json::Schema` next to `mod json;`).
//!
//! A path names the file of its longest prefix that is a module with a file
//! (`src/a/b.rs` or `src/a/b/mod.rs`, inline `mod x { }` blocks belonging to
//! their file), else the closest parent module file: `crate::a::b::X`
//! names `src/a/b.rs` if it exists, else `src/a.rs`. A `mod x;` declaration
//! alone is not a dependency, nor are other paths (they name other crates or
//! items of the same file). Items marked `#[cfg(test)]` (the `mod tests`
//! blocks, test-only files and imports) are left out. Comments and string
//! literals are skipped, so doc links do not count. `src/bin/` holds other
//! crates and is not read.
//!
//! Hand-written and dependency-free: a tokenizer and a scan for the paths
//! above, not a Rust parser. `#[path]` attributes and macros that build paths
//! are not understood.

use crate::cargo::repo_root;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `cargo xtask circles [CRATE_DIR...]`: prints every circle of each crate
/// (directories relative to the repository root; default `core` and
/// `xtask`) and fails if there is one.
pub fn run(args: &[String]) -> crate::Result<ExitCode> {
    let defaults = ["core".to_string(), "xtask".to_string()];
    let crates = if args.is_empty() { &defaults[..] } else { args };
    let mut found = 0;
    for dir in crates {
        let circles = find(&repo_root().join(dir))?;
        println!("{dir}: {} import circle(s)", circles.len());
        for circle in &circles {
            println!("{circle}");
        }
        found += circles.len();
    }
    Ok(if found == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A module path inside the crate (`["store", "sqlite"]`; empty: the root).
type ModPath = Vec<String>;

/// One file's module and the paths it names (each as crate-absolute
/// segments, with the text shown in reports).
#[derive(Debug)]
struct Source {
    /// Relative to the crate directory, e.g. `src/store/mod.rs`.
    file: String,
    module: ModPath,
    refs: Vec<(ModPath, String)>,
    /// `#[cfg(test)] mod x;`: files to leave out.
    test_children: BTreeSet<String>,
}

/// The circles among the files of `crate_dir/src`, one per strongly
/// connected set of files: its files and the dependencies inside it with the
/// paths that create them, as text ready to print. Empty: no circle.
pub fn find(crate_dir: &Path) -> Result<Vec<String>, String> {
    let src = crate_dir.join("src");
    let mut files = Vec::new();
    collect_rs_files(&src, &mut files)?;
    let mut sources = Vec::new();
    for path in files {
        let rel = path.strip_prefix(&src).unwrap_or(&path);
        let Some(module) = module_of(rel) else {
            continue;
        };
        let text =
            fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        let shown = Path::new("src").join(rel).display().to_string();
        sources.push(scan(&text, shown, module));
    }
    Ok(circles(&sources))
}

/// Every `.rs` file under `dir`, except `src/bin/`.
fn collect_rs_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let entries = fs::read_dir(dir).map_err(|e| format!("listing {}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if !(path.file_name().is_some_and(|n| n == "bin") && dir.ends_with("src")) {
                collect_rs_files(&path, out)?;
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    Ok(())
}

/// The module a file under `src/` holds: `lib.rs`/`main.rs` the root,
/// `a/mod.rs` and `a.rs` module `a`, `a/b.rs` module `a::b`.
fn module_of(rel: &Path) -> Option<ModPath> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop()?;
    let stem = last.strip_suffix(".rs")?;
    if parts.is_empty() && (stem == "lib" || stem == "main") {
        return Some(Vec::new());
    }
    if stem != "mod" {
        parts.push(stem.to_string());
    }
    Some(parts)
}

// ---- tokens ----

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    /// `::`
    PathSep,
    Punct(char),
}

/// The identifiers and punctuation of Rust source, without comments,
/// literals and lifetimes.
fn tokenize(text: &str) -> Vec<Tok> {
    let chars: Vec<char> = text.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && at(i + 1) == '/' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == '"' {
            i = skip_string(&chars, i + 1);
        } else if c == '\'' {
            if at(i + 1) == '\\' {
                // A char literal with an escape: up to the closing quote.
                i += 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if at(i + 2) == '\'' {
                i += 3; // 'x'
            } else {
                // A lifetime or label.
                i += 1;
                while at(i).is_alphanumeric() || at(i) == '_' {
                    i += 1;
                }
            }
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while at(i).is_alphanumeric() || at(i) == '_' {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let raw_prefix = matches!(word.as_str(), "r" | "br" | "cr");
            if matches!(word.as_str(), "b" | "c" | "r" | "br" | "cr") && at(i) == '"' {
                i = skip_string(&chars, i + 1);
            } else if raw_prefix && at(i) == '#' {
                let hashes = (i..).take_while(|&j| at(j) == '#').count();
                if at(i + hashes) == '"' {
                    i = skip_raw_string(&chars, i + hashes + 1, hashes);
                } else {
                    // A raw identifier, r#type.
                    let start = i + 1;
                    i = start;
                    while at(i).is_alphanumeric() || at(i) == '_' {
                        i += 1;
                    }
                    toks.push(Tok::Ident(chars[start..i].iter().collect()));
                }
            } else if word == "b" && at(i) == '\'' {
                i = skip_string_until(&chars, i + 1, '\'');
            } else {
                toks.push(Tok::Ident(word));
            }
        } else if c.is_ascii_digit() {
            while at(i).is_alphanumeric() || at(i) == '_' || at(i) == '.' && at(i + 1) != '.' {
                i += 1;
            }
        } else if c == ':' && at(i + 1) == ':' {
            toks.push(Tok::PathSep);
            i += 2;
        } else {
            toks.push(Tok::Punct(c));
            i += 1;
        }
    }
    toks
}

/// Index after the closing `"` of a string whose body starts at `i`.
fn skip_string(chars: &[char], i: usize) -> usize {
    skip_string_until(chars, i, '"')
}

fn skip_string_until(chars: &[char], mut i: usize, end: char) -> usize {
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            c if c == end => return i + 1,
            _ => i += 1,
        }
    }
    i
}

/// Index after the `"###` closing a raw string with `hashes` hashes.
fn skip_raw_string(chars: &[char], mut i: usize, hashes: usize) -> usize {
    while i < chars.len() {
        if chars[i] == '"' && (1..=hashes).all(|k| chars.get(i + k) == Some(&'#')) {
            return i + 1 + hashes;
        }
        i += 1;
    }
    i
}

// ---- scanning one file ----

fn ident(tok: Option<&Tok>) -> Option<&str> {
    match tok {
        Some(Tok::Ident(s)) => Some(s),
        _ => None,
    }
}

/// Reads one file's module declarations and the paths it names.
fn scan(text: &str, file: String, module: ModPath) -> Source {
    let toks = tokenize(text);
    let children = declared_modules(&toks);
    let mut source = Source {
        file,
        module: module.clone(),
        refs: Vec::new(),
        test_children: BTreeSet::new(),
    };
    // Inline `mod x { }` blocks: (module path, brace depth inside it).
    let mut scopes: Vec<(ModPath, usize)> = vec![(module, 0)];
    let mut depth = 0usize;
    let mut cfg_test = false;
    let mut i = 0;
    while i < toks.len() {
        let current = scopes.last().map(|s| s.0.clone()).unwrap_or_default();
        match &toks[i] {
            Tok::Punct('#') => {
                // An attribute: `#[...]` or `#![...]`.
                let mut j = i + 1;
                if toks.get(j) == Some(&Tok::Punct('!')) {
                    j += 1;
                }
                if toks.get(j) == Some(&Tok::Punct('[')) {
                    let end = matching(&toks, j);
                    if is_cfg_test(&toks[j + 1..end.min(toks.len())]) {
                        cfg_test = true;
                    }
                    i = end + 1;
                    continue;
                }
                i += 1;
            }
            Tok::Ident(word) if cfg_test && word != "pub" => {
                // Skip the test-only item; remember a test-only child file.
                if word == "mod" {
                    if let (Some(name), Some(Tok::Punct(';'))) =
                        (ident(toks.get(i + 1)), toks.get(i + 2))
                    {
                        source.test_children.insert(name.to_string());
                    }
                }
                i = item_end(&toks, i);
                cfg_test = false;
            }
            Tok::Ident(word) if word == "mod" => {
                let name = ident(toks.get(i + 1)).map(str::to_string);
                match (name, toks.get(i + 2)) {
                    (Some(_), Some(Tok::Punct(';'))) => i += 3,
                    (Some(name), Some(Tok::Punct('{'))) => {
                        depth += 1;
                        let mut inner = current.clone();
                        inner.push(name);
                        scopes.push((inner, depth));
                        i += 3;
                    }
                    _ => i += 1,
                }
            }
            Tok::Ident(word) if word == "use" => {
                let end = (i..toks.len())
                    .find(|&j| toks[j] == Tok::Punct(';'))
                    .unwrap_or(toks.len());
                let mut paths = Vec::new();
                use_tree(&toks[i + 1..end], &[], &mut paths);
                for written in paths {
                    let relative_child = written.first().is_some_and(|first| {
                        !matches!(first.as_str(), "crate" | "super" | "self")
                            && children.contains(first.as_str())
                    });
                    let absolute = if relative_child {
                        Some(current.iter().cloned().chain(written.clone()).collect())
                    } else {
                        absolute(&current, &written)
                    };
                    if let Some(path) = absolute {
                        source.refs.push((path, written.join("::")));
                    }
                }
                i = end + 1;
            }
            Tok::Ident(word)
                if matches!(word.as_str(), "crate" | "super" | "self")
                    && toks.get(i + 1) == Some(&Tok::PathSep)
                    && !(i > 0 && toks[i - 1] == Tok::PathSep) =>
            {
                let mut written = vec![word.clone()];
                let mut j = i + 1;
                while toks.get(j) == Some(&Tok::PathSep) {
                    match ident(toks.get(j + 1)) {
                        Some(seg) => {
                            written.push(seg.to_string());
                            j += 2;
                        }
                        None => break,
                    }
                }
                if let Some(path) = absolute(&current, &written) {
                    source.refs.push((path, written.join("::")));
                }
                i = j;
            }
            Tok::Punct('{') => {
                depth += 1;
                i += 1;
            }
            Tok::Punct('}') => {
                if scopes.len() > 1 && scopes.last().is_some_and(|s| s.1 == depth) {
                    scopes.pop();
                }
                depth = depth.saturating_sub(1);
                i += 1;
            }
            _ => i += 1,
        }
    }
    source
}

/// The names declared by `mod x;` or `mod x {` anywhere in the file (for
/// relative `use` paths; approximate: not per inline module).
fn declared_modules(toks: &[Tok]) -> BTreeSet<&str> {
    toks.windows(2)
        .filter(|w| w[0] == Tok::Ident("mod".into()))
        .filter_map(|w| ident(Some(&w[1])))
        .collect()
}

/// Whether attribute tokens are exactly `cfg(test)`.
fn is_cfg_test(attr: &[Tok]) -> bool {
    attr == [
        Tok::Ident("cfg".into()),
        Tok::Punct('('),
        Tok::Ident("test".into()),
        Tok::Punct(')'),
    ]
}

/// Index of the bracket closing the one at `open` (`[`, `(` or `{`).
fn matching(toks: &[Tok], open: usize) -> usize {
    let mut depth = 0usize;
    for (j, tok) in toks.iter().enumerate().skip(open) {
        match tok {
            Tok::Punct('[' | '(' | '{') => depth += 1,
            Tok::Punct(']' | ')' | '}') => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return j;
                }
            }
            _ => {}
        }
    }
    toks.len()
}

/// Index after the item starting at `start`: after its `;` or its body's `}`
/// (outside brackets).
fn item_end(toks: &[Tok], start: usize) -> usize {
    let mut j = start;
    while j < toks.len() {
        match toks[j] {
            Tok::Punct(';') => return j + 1,
            Tok::Punct('{') => return matching(toks, j) + 1,
            Tok::Punct('(' | '[') => j = matching(toks, j) + 1,
            _ => j += 1,
        }
    }
    toks.len()
}

/// Expands one use tree (`a::{b, c::D as E, self}`, `a::*`) into the
/// paths it names, each as written, after `prefix`.
fn use_tree(toks: &[Tok], prefix: &[String], out: &mut Vec<Vec<String>>) {
    let mut path = prefix.to_vec();
    for (i, tok) in toks.iter().enumerate() {
        match tok {
            Tok::Ident(s) if s == "as" => break,
            // `a::{self}` names `a` itself.
            Tok::Ident(s) if s == "self" && !path.is_empty() => {}
            Tok::Ident(s) => path.push(s.clone()),
            Tok::Punct('{') => {
                let end = matching(toks, i).min(toks.len());
                for part in split_top_level(&toks[i + 1..end]) {
                    use_tree(part, &path, out);
                }
                return;
            }
            _ => {}
        }
    }
    if !path.is_empty() {
        out.push(path);
    }
}

/// Splits tokens at top-level commas.
fn split_top_level(toks: &[Tok]) -> Vec<&[Tok]> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    for (j, tok) in toks.iter().enumerate() {
        match tok {
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => depth = depth.saturating_sub(1),
            Tok::Punct(',') if depth == 0 => {
                parts.push(&toks[start..j]);
                start = j + 1;
            }
            _ => {}
        }
    }
    parts.push(&toks[start..]);
    parts.retain(|p| !p.is_empty());
    parts
}

/// A written path made crate-absolute from module `current`; `None` for
/// paths into other crates.
fn absolute(current: &[String], written: &[String]) -> Option<ModPath> {
    let (first, rest) = written.split_first()?;
    let mut base: ModPath = match first.as_str() {
        "crate" => Vec::new(),
        "self" => current.to_vec(),
        "super" => {
            let mut base = current.to_vec();
            base.pop();
            base
        }
        _ => return None,
    };
    let mut rest = rest;
    while let Some(("super", tail)) = rest.split_first().map(|(h, t)| (h.as_str(), t)) {
        base.pop();
        rest = tail;
    }
    base.extend(rest.iter().cloned());
    Some(base)
}

// ---- the graph ----

/// The circles (strongly connected sets of two or more files) as reports.
fn circles(sources: &[Source]) -> Vec<String> {
    // Test-only files (declared `#[cfg(test)] mod x;`) are left out.
    let test_only: BTreeSet<ModPath> = sources
        .iter()
        .flat_map(|s| {
            s.test_children.iter().map(|c| {
                let mut m = s.module.clone();
                m.push(c.clone());
                m
            })
        })
        .collect();
    let live: Vec<&Source> = sources
        .iter()
        .filter(|s| !test_only.iter().any(|t| s.module.starts_with(t)))
        .collect();
    let by_module: BTreeMap<&ModPath, usize> = live
        .iter()
        .enumerate()
        .map(|(n, s)| (&s.module, n))
        .collect();
    // edges[from][to] = the paths (as written) that make `from` depend on `to`.
    let mut edges: Vec<BTreeMap<usize, BTreeSet<String>>> = vec![BTreeMap::new(); live.len()];
    for (from, source) in live.iter().enumerate() {
        for (path, written) in &source.refs {
            let to = (0..=path.len())
                .rev()
                .find_map(|n| by_module.get(&path[..n].to_vec()).copied());
            if let Some(to) = to.filter(|&to| to != from) {
                edges[from].entry(to).or_default().insert(written.clone());
            }
        }
    }
    strongly_connected(&edges)
        .into_iter()
        .filter(|set| set.len() > 1)
        .map(|set| {
            let mut files: Vec<&str> = set.iter().map(|&n| live[n].file.as_str()).collect();
            files.sort();
            let mut report = format!("import circle among {}:", files.join(", "));
            let mut lines: Vec<String> = Vec::new();
            for &from in &set {
                for (to, names) in &edges[from] {
                    if set.contains(to) {
                        let names: Vec<&str> = names.iter().map(String::as_str).collect();
                        lines.push(format!(
                            "\n  {} -> {}: {}",
                            live[from].file,
                            live[*to].file,
                            names.join(", ")
                        ));
                    }
                }
            }
            lines.sort();
            report.extend(lines);
            report
        })
        .collect()
}

/// Tarjan's strongly connected components of a graph given as adjacency
/// maps.
fn strongly_connected<V>(edges: &[BTreeMap<usize, V>]) -> Vec<Vec<usize>> {
    struct State {
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        out: Vec<Vec<usize>>,
    }
    fn visit<V>(v: usize, edges: &[BTreeMap<usize, V>], s: &mut State) {
        s.index[v] = Some(s.next);
        s.low[v] = s.next;
        s.next += 1;
        s.stack.push(v);
        s.on_stack[v] = true;
        for &w in edges[v].keys() {
            match s.index[w] {
                None => {
                    visit(w, edges, s);
                    s.low[v] = s.low[v].min(s.low[w]);
                }
                Some(iw) if s.on_stack[w] => s.low[v] = s.low[v].min(iw),
                Some(_) => {}
            }
        }
        if Some(s.low[v]) == s.index[v] {
            let mut set = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack[w] = false;
                set.push(w);
                if w == v {
                    break;
                }
            }
            set.sort();
            s.out.push(set);
        }
    }
    let n = edges.len();
    let mut state = State {
        index: vec![None; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in 0..n {
        if state.index[v].is_none() {
            visit(v, edges, &mut state);
        }
    }
    state.out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idents(text: &str) -> Vec<String> {
        tokenize(text)
            .into_iter()
            .filter_map(|t| match t {
                Tok::Ident(s) => Some(s),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn comments_literals_and_lifetimes_are_not_tokens() {
        let text = r###"
            // crate::a::X
            /* crate::b /* nested */ crate::c */
            let s = "crate::d \" crate::e";
            let r = r#"crate::f " crate::g"#;
            let b = b"crate::h";
            let c = '"'; let q = '\''; let e = '\u{1F600}';
            fn f<'a>(x: &'a str) -> &'static str { 'outer: loop { break 'outer; } }
            let n = 1.5e3 + 0x1f_u8 as f64;
            let raw = r#type;
            end
        "###;
        let words = idents(text);
        for hidden in ["crate", "nested", "outer", "static", "u", "e3", "x1f_u8"] {
            assert!(!words.iter().any(|w| w == hidden), "{hidden} in {words:?}");
        }
        assert!(words.iter().any(|w| w == "type"), "{words:?}");
        assert_eq!(words.last().map(String::as_str), Some("end"));
    }

    #[test]
    fn use_trees_expand_to_paths() {
        let toks = tokenize("crate::{a::X, b::{self, c::Y as Z}, d::*}");
        let mut out = Vec::new();
        use_tree(&toks, &[], &mut out);
        let shown: Vec<String> = out.iter().map(|p| p.join("::")).collect();
        assert_eq!(
            shown,
            ["crate::a::X", "crate::b", "crate::b::c::Y", "crate::d"]
        );
    }

    #[test]
    fn paths_resolve_from_the_current_module() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            absolute(&s(&["a", "b"]), &s(&["super", "super", "c"])),
            Some(s(&["c"]))
        );
        assert_eq!(
            absolute(&s(&["a"]), &s(&["self", "x"])),
            Some(s(&["a", "x"]))
        );
        assert_eq!(absolute(&s(&["a"]), &s(&["std", "fs"])), None);
    }

    /// A crate under a temporary directory with `files` (`src/`-relative).
    fn krate(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        for (path, text) in files {
            let path = dir.path().join("src").join(path);
            fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            fs::write(path, text).expect("write");
        }
        dir
    }

    #[test]
    fn finds_a_circle_and_names_its_files_and_paths() {
        let dir = krate(&[
            ("lib.rs", "mod a; mod b; mod c; pub use a::A;"),
            ("a.rs", "use crate::b::{B, helper};\npub struct A;"),
            (
                "b/mod.rs",
                "mod inner;\npub use inner::f;\npub struct B;\npub fn helper() {}",
            ),
            (
                "b/inner.rs",
                "pub fn f() { let _ = crate::c::LIMIT; super::super::a::A; }",
            ),
            // `crate::a::A` is only in a comment, a string and a test module.
            (
                "c.rs",
                "// crate::a::A\npub const LIMIT: &str = \"crate::a::A\";\n\
                 #[cfg(test)]\nmod tests { use crate::a::A; }",
            ),
        ]);
        let found = find(dir.path()).expect("scan");
        assert_eq!(found.len(), 1, "{found:?}");
        let report = &found[0];
        assert!(
            report.starts_with("import circle among src/a.rs, src/b/inner.rs, src/b/mod.rs:"),
            "{report}"
        );
        assert!(report.contains("src/a.rs -> src/b/mod.rs: crate::b::B, crate::b::helper"));
        assert!(report.contains("src/b/inner.rs -> src/a.rs: super::super::a::A"));
        assert!(
            report.contains("src/b/mod.rs -> src/b/inner.rs: inner::f"),
            "{report}"
        );
        assert!(!report.contains("src/c.rs"), "{report}");
    }

    #[test]
    fn re_exports_super_paths_and_test_only_code() {
        // A parent re-exporting its child, which imports from the parent.
        let dir = krate(&[
            ("main.rs", "mod s; fn main() {}"),
            ("s/mod.rs", "mod k;\npub use k::K;\npub struct T;"),
            ("s/k.rs", "use super::T;\npub struct K(T);"),
        ]);
        let found = find(dir.path()).expect("scan");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("src/s/k.rs -> src/s/mod.rs: super::T"));
        assert!(found[0].contains("src/s/mod.rs -> src/s/k.rs: k::K"));

        // No re-export, and the back reference only in test-only code:
        // no circle.
        let dir = krate(&[
            ("main.rs", "mod s; fn main() {}"),
            (
                "s/mod.rs",
                "mod k;\n#[cfg(test)]\nmod t;\npub struct T;\npub fn f() -> u8 { k::K }",
            ),
            ("s/k.rs", "use super::T;\npub const K: u8 = 1;"),
            ("s/t.rs", "use super::k::K; use crate::s::T;"),
        ]);
        assert_eq!(find(dir.path()).expect("scan"), Vec::<String>::new());
    }

    #[test]
    fn xtask_has_no_import_circle() {
        let found = find(&repo_root().join("xtask")).expect("scan");
        assert!(found.is_empty(), "\n{}", found.join("\n"));
    }

    #[test]
    fn core_has_no_import_circle() {
        let found = find(&repo_root().join("core")).expect("scan");
        assert!(found.is_empty(), "\n{}", found.join("\n"));
    }
}
