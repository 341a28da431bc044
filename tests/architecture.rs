//! The code against ARCHITECTURE.md: the layering of the "may depend on" column of its code
//! map, and the size limits of files and functions.
//!
//! Plain std, no parser crate: a small Rust tokenizer (comments, string, raw string, char and
//! byte literals skipped; lifetimes told apart from char literals) is enough to find module
//! paths, `mod` blocks, `#[cfg(test)]` items and function bodies.
//!
//! Layering rules, as this test reads them:
//! - every `.rs` file under `src/` belongs to the row whose path names the longest prefix of
//!   its module path (`src/x.rs`, `src/x/mod.rs` and `src/x/` are all the module `x`);
//!   `src/lib.rs` is the crate root and `src/main.rs` the binary, each matched only by itself;
//! - a row whose cell reads "same layer as `x`" shares `x`'s row: its files may refer to each
//!   other and obey `x`'s cell;
//! - a file's dependencies are the `crate::…` paths, the `super::…` and `self::…` paths
//!   (resolved against the file's module and the inline `mod` blocks around them) and the paths
//!   that start with a child module the file declares (`mod gate;` … `gate::resume`), in code,
//!   attributes and macro bodies alike; `#[cfg(test)]` modules are checked like the rest of the
//!   file. A `mod x;` declaration is no dependency by itself;
//! - a dependency goes to the row with the longest matching module-path prefix (a path through
//!   a crate-root re-export, like `crate::Error`, to its re-exported module); the file's own
//!   row is always allowed, any other row (a descendant too) only when listed;
//! - the binary may only use the library (`aiops::…`); no `crate::`, no `mod` of its own.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs;
use std::path::Path;

const FILE_LIMIT: usize = 800;
const FN_LIMIT: usize = 80;

// ------------------------------------------------------------------------------------------
// Tokens
// ------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Ident,
    Punct,
    Lifetime,
    Literal,
}

#[derive(Clone, Debug)]
struct Token {
    kind: Kind,
    text: String,
    line: usize,
}

impl Token {
    fn is(&self, text: &str) -> bool {
        self.kind != Kind::Literal && self.text == text
    }
    fn is_ident(&self) -> bool {
        self.kind == Kind::Ident
    }
}

fn is_ident_start(c: char) -> bool {
    c == '_' || c.is_alphabetic()
}

fn is_ident_continue(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// Rust source → tokens, with comments and the contents of literals gone.
fn tokenize(src: &str) -> Vec<Token> {
    let mut lexer = Lexer {
        c: src.chars().collect(),
        i: 0,
        line: 1,
        out: Vec::new(),
    };
    lexer.run();
    lexer.out
}

struct Lexer {
    c: Vec<char>,
    i: usize,
    line: usize,
    out: Vec<Token>,
}

impl Lexer {
    fn at(&self, offset: usize) -> Option<char> {
        self.c.get(self.i + offset).copied()
    }

    fn push(&mut self, kind: Kind, text: String, line: usize) {
        self.out.push(Token { kind, text, line });
    }

    /// Moves on by one char, counting lines.
    fn bump(&mut self) {
        if self.at(0) == Some('\n') {
            self.line += 1;
        }
        self.i += 1;
    }

    fn run(&mut self) {
        while let Some(ch) = self.at(0) {
            let line = self.line;
            if ch.is_whitespace() {
                self.bump();
            } else if ch == '/' && self.at(1) == Some('/') {
                while self.at(0).is_some_and(|c| c != '\n') {
                    self.bump();
                }
            } else if ch == '/' && self.at(1) == Some('*') {
                self.block_comment();
            } else if ch == '"' {
                self.string();
                self.push(Kind::Literal, "\"\"".into(), line);
            } else if ch == '\'' {
                self.quote(line);
            } else if is_ident_start(ch) {
                self.word(line);
            } else if ch.is_ascii_digit() {
                self.number(line);
            } else if ch == ':' && self.at(1) == Some(':') {
                self.i += 2;
                self.push(Kind::Punct, "::".into(), line);
            } else {
                self.bump();
                self.push(Kind::Punct, ch.to_string(), line);
            }
        }
    }

    fn block_comment(&mut self) {
        let mut depth = 0usize;
        while let Some(ch) = self.at(0) {
            if ch == '/' && self.at(1) == Some('*') {
                depth += 1;
                self.i += 2;
            } else if ch == '*' && self.at(1) == Some('/') {
                depth -= 1;
                self.i += 2;
                if depth == 0 {
                    return;
                }
            } else {
                self.bump();
            }
        }
    }

    /// At the opening `"` of a (byte, C) string with escapes.
    fn string(&mut self) {
        self.bump();
        while let Some(ch) = self.at(0) {
            match ch {
                '\\' => {
                    self.bump();
                    self.bump();
                }
                '"' => {
                    self.bump();
                    return;
                }
                _ => self.bump(),
            }
        }
    }

    /// At the `#`s or the `"` after a raw string's `r`; false when it is no raw string.
    fn raw_string(&mut self) -> bool {
        let mut hashes = 0;
        while self.at(hashes) == Some('#') {
            hashes += 1;
        }
        if self.at(hashes) != Some('"') {
            return false;
        }
        self.i += hashes + 1;
        while let Some(ch) = self.at(0) {
            self.bump();
            if ch == '"' && (0..hashes).all(|k| self.at(k) == Some('#')) {
                self.i += hashes;
                return true;
            }
        }
        true
    }

    /// At a `'`: a char literal (`'{'`, `'\''`, `'\u{7b}'`) or a lifetime / label (`'a`).
    fn quote(&mut self, line: usize) {
        if self.at(1) == Some('\\') {
            self.i += 3;
            while self.at(0).is_some_and(|c| c != '\'') {
                self.bump();
            }
            self.i += 1;
            self.push(Kind::Literal, "'c'".into(), line);
        } else if self.at(2) == Some('\'') {
            self.bump();
            self.bump();
            self.i += 1;
            self.push(Kind::Literal, "'c'".into(), line);
        } else if self.at(1).is_some_and(is_ident_start) {
            let start = self.i;
            self.i += 1;
            while self.at(0).is_some_and(is_ident_continue) {
                self.i += 1;
            }
            let text = self.c[start..self.i].iter().collect();
            self.push(Kind::Lifetime, text, line);
        } else {
            self.i += 1;
            self.push(Kind::Punct, "'".into(), line);
        }
    }

    /// An identifier or keyword, or the prefix of a literal (`b"…"`, `r#"…"#`, `b'x'`, `c"…"`)
    /// or of a raw identifier (`r#type`).
    fn word(&mut self, line: usize) {
        let start = self.i;
        while self.at(0).is_some_and(is_ident_continue) {
            self.i += 1;
        }
        let word: String = self.c[start..self.i].iter().collect();
        let next = self.at(0);
        match (word.as_str(), next) {
            ("b" | "c", Some('"')) => {
                self.string();
                self.push(Kind::Literal, "\"\"".into(), line);
            }
            ("b", Some('\'')) => self.quote(line),
            ("r", Some('#')) if self.at(1).is_some_and(is_ident_start) => {
                self.i += 1;
                self.word(line);
            }
            ("r" | "br" | "cr", Some('"' | '#')) => {
                if self.raw_string() {
                    self.push(Kind::Literal, "\"\"".into(), line);
                } else {
                    self.push(Kind::Ident, word, line);
                }
            }
            _ => self.push(Kind::Ident, word, line),
        }
    }

    fn number(&mut self, line: usize) {
        while self.at(0).is_some_and(is_ident_continue) {
            self.i += 1;
        }
        if self.at(0) == Some('.') && self.at(1).is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
            while self.at(0).is_some_and(is_ident_continue) {
                self.i += 1;
            }
        }
        self.push(Kind::Literal, "0".into(), line);
    }
}

/// For every `{` and `}` the index of its partner.
fn match_braces(tokens: &[Token]) -> HashMap<usize, usize> {
    let mut partner = HashMap::new();
    let mut open = Vec::new();
    for (k, t) in tokens.iter().enumerate() {
        if t.is("{") {
            open.push(k);
        } else if t.is("}")
            && let Some(o) = open.pop()
        {
            partner.insert(o, k);
            partner.insert(k, o);
        }
    }
    partner
}

/// From `tokens[k]`, the first `{` or `;` outside parentheses and brackets: where an item's
/// body starts, or where a body-less item ends.
fn item_body(tokens: &[Token], mut k: usize) -> Option<usize> {
    let mut depth = 0i32;
    while let Some(t) = tokens.get(k) {
        if t.is("(") || t.is("[") {
            depth += 1;
        } else if t.is(")") || t.is("]") {
            depth -= 1;
        } else if depth == 0 && (t.is("{") || t.is(";")) {
            return Some(k);
        }
        k += 1;
    }
    None
}

/// An item under `#[cfg(test)]`: token range (attribute to closing brace) and whether it is a
/// `mod tests { … }`.
struct TestItem {
    start: usize,
    end: usize,
    mod_tests: bool,
}

fn test_items(tokens: &[Token], braces: &HashMap<usize, usize>) -> Vec<TestItem> {
    const CFG_TEST: [&str; 7] = ["#", "[", "cfg", "(", "test", ")", "]"];
    let mut items = Vec::new();
    for start in 0..tokens.len() {
        let is_cfg_test = tokens.len() >= start + CFG_TEST.len()
            && CFG_TEST.iter().zip(&tokens[start..]).all(|(s, t)| t.is(s));
        if !is_cfg_test {
            continue;
        }
        let mut k = start + CFG_TEST.len();
        // Further attributes of the same item.
        while tokens.get(k).is_some_and(|t| t.is("#"))
            && tokens.get(k + 1).is_some_and(|t| t.is("["))
        {
            let mut depth = 0;
            while let Some(t) = tokens.get(k) {
                k += 1;
                if t.is("[") {
                    depth += 1;
                } else if t.is("]") {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
            }
        }
        let Some(body) = item_body(tokens, k) else {
            continue;
        };
        let end = if tokens[body].is("{") {
            braces.get(&body).copied().unwrap_or(body)
        } else {
            body
        };
        let mod_tests = tokens[k..body]
            .windows(2)
            .any(|w| w[0].is("mod") && w[1].is("tests"));
        items.push(TestItem {
            start,
            end,
            mod_tests,
        });
    }
    items
}

// ------------------------------------------------------------------------------------------
// Sizes
// ------------------------------------------------------------------------------------------

/// Lines of a file, not counting a `#[cfg(test)] mod tests { … }` that ends it; whether such a
/// block was left out.
fn counted_lines(source: &str) -> (usize, bool) {
    let tokens = tokenize(source);
    let braces = match_braces(&tokens);
    let trailing = test_items(&tokens, &braces)
        .into_iter()
        .find(|item| item.mod_tests && item.end + 1 == tokens.len());
    match trailing {
        Some(item) => (tokens[item.start].line - 1, true),
        None => (source.lines().count(), false),
    }
}

fn file_offender(path: &str, source: &str) -> Option<String> {
    if path.ends_with("/tests.rs") {
        return None;
    }
    let (lines, without_tests) = counted_lines(source);
    (lines > FILE_LIMIT).then(|| {
        let note = if without_tests {
            ", not counting its tests module"
        } else {
            ""
        };
        format!("{path} is {lines} lines (limit {FILE_LIMIT}{note})")
    })
}

#[derive(Debug, PartialEq, Eq)]
struct Function {
    name: String,
    line: usize,
    lines: usize,
}

/// Every function with a body outside `#[cfg(test)]` items: from the line of `fn name` to the
/// line of its closing brace.
fn functions(source: &str) -> Vec<Function> {
    let tokens = tokenize(source);
    let braces = match_braces(&tokens);
    let tests = test_items(&tokens, &braces);
    let mut found = Vec::new();
    for (k, t) in tokens.iter().enumerate() {
        if !t.is("fn")
            || tests
                .iter()
                .any(|item| (item.start..=item.end).contains(&k))
        {
            continue;
        }
        let Some(name) = tokens.get(k + 1).filter(|n| n.is_ident()) else {
            continue;
        };
        let Some(body) = item_body(&tokens, k + 2) else {
            continue;
        };
        let Some(&close) = braces.get(&body).filter(|_| tokens[body].is("{")) else {
            continue;
        };
        found.push(Function {
            name: name.text.clone(),
            line: name.line,
            lines: tokens[close].line - name.line + 1,
        });
    }
    found
}

fn function_offenders(path: &str, source: &str) -> Vec<String> {
    if path.ends_with("/tests.rs") {
        return Vec::new();
    }
    functions(source)
        .into_iter()
        .filter(|f| f.lines > FN_LIMIT)
        .map(|f| {
            format!(
                "{path}:{} fn {} is {} lines (limit {FN_LIMIT})",
                f.line, f.name, f.lines
            )
        })
        .collect()
}

// ------------------------------------------------------------------------------------------
// Module paths in a file
// ------------------------------------------------------------------------------------------

/// What a file is in the crate.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Unit {
    /// `src/lib.rs`.
    Root,
    /// `src/main.rs`: the binary crate, which reaches the library as `aiops::`.
    Binary,
    Module(Vec<String>),
}

fn unit_of(path: &str) -> Option<Unit> {
    let rest = path.strip_prefix("src/")?;
    match rest {
        "lib.rs" => return Some(Unit::Root),
        "main.rs" => return Some(Unit::Binary),
        _ => {}
    }
    let rest = rest
        .strip_suffix(".rs")
        .or_else(|| rest.strip_suffix('/'))?;
    let mut segments: Vec<String> = rest.split('/').map(str::to_string).collect();
    if segments.last().is_some_and(|s| s == "mod") {
        segments.pop();
    }
    (!segments.is_empty() && segments.iter().all(|s| !s.is_empty()))
        .then_some(Unit::Module(segments))
}

/// A module path named in a file.
#[derive(Clone, Debug)]
struct Reference {
    /// As written, groups expanded: `crate::approvals::Decision`, `super::party`, `mod cli`.
    written: String,
    /// From the library's root; `None` when it leaves the library (`crate::` in the binary,
    /// `super::` above the root, a `mod` of the binary).
    resolved: Option<Vec<String>>,
    /// Whether it is (part of) a `use` declaration.
    in_use: bool,
}

/// Walks a file's tokens, keeping track of the inline `mod` blocks around each token.
struct Scopes {
    /// The file's module path.
    base: Vec<String>,
    /// Inline modules: name and the index of the closing brace.
    open: Vec<(String, usize)>,
}

impl Scopes {
    fn at(&mut self, tokens: &[Token], braces: &HashMap<usize, usize>, k: usize) {
        while self.open.last().is_some_and(|(_, close)| *close < k) {
            self.open.pop();
        }
        let opens_mod =
            k >= 2 && tokens[k].is("{") && tokens[k - 2].is("mod") && tokens[k - 1].is_ident();
        if opens_mod && let Some(&close) = braces.get(&k) {
            self.open.push((tokens[k - 1].text.clone(), close));
        }
    }

    fn current(&self) -> Vec<String> {
        let mut path = self.base.clone();
        path.extend(self.open.iter().map(|(name, _)| name.clone()));
        path
    }
}

/// The modules declared (`mod x;`, `mod x { … }`) in each module of a file: the module's path,
/// the declared name; for paths that start with a child module.
fn declared_modules(
    tokens: &[Token],
    braces: &HashMap<usize, usize>,
    module: &[String],
) -> BTreeSet<(Vec<String>, String)> {
    let mut children = BTreeSet::new();
    let mut scopes = Scopes {
        base: module.to_vec(),
        open: Vec::new(),
    };
    for k in 0..tokens.len() {
        scopes.at(tokens, braces, k);
        let declares = tokens[k].is("mod")
            && tokens.get(k + 1).is_some_and(Token::is_ident)
            && tokens.get(k + 2).is_some_and(|t| t.is(";") || t.is("{"));
        if declares {
            children.insert((scopes.current(), tokens[k + 1].text.clone()));
        }
    }
    children
}

/// Every module path a file names; `module` is the file's module path (empty for the crate
/// root and for the binary).
fn references(source: &str, module: &[String], binary: bool) -> Vec<Reference> {
    let tokens = tokenize(source);
    let braces = match_braces(&tokens);
    let children = declared_modules(&tokens, &braces, module);
    let mut found: Vec<Reference> = children
        .iter()
        .filter(|(scope, _)| binary && scope.is_empty())
        .map(|(_, name)| Reference {
            written: format!("mod {name}"),
            resolved: None,
            in_use: false,
        })
        .collect();

    let mut scopes = Scopes {
        base: module.to_vec(),
        open: Vec::new(),
    };
    let mut k = 0;
    while k < tokens.len() {
        scopes.at(&tokens, &braces, k);
        let t = &tokens[k];
        let starts_path = t.is_ident()
            && tokens.get(k + 1).is_some_and(|n| n.is("::"))
            && !(k > 0 && (tokens[k - 1].is("::") || tokens[k - 1].is(".")));
        if !starts_path {
            k += 1;
            continue;
        }
        let current = scopes.current();
        let in_use = k > 0 && tokens[k - 1].is("use");
        let mut next = k + 1;
        let base: Option<Vec<String>> = match t.text.as_str() {
            "crate" => (!binary).then(Vec::new),
            "aiops" if binary => Some(Vec::new()),
            "self" => (!binary).then(|| current.clone()),
            "super" => {
                let mut path = Some(current.clone());
                let mut ups = 1;
                while tokens.get(next + 1).is_some_and(|t| t.is("super")) {
                    ups += 1;
                    next += 2;
                }
                for _ in 0..ups {
                    path = path.and_then(|mut p| p.pop().map(|_| p));
                }
                path.filter(|_| !binary)
            }
            name if children.contains(&(current.clone(), name.to_string())) => {
                let mut path = current.clone();
                path.push(name.to_string());
                (!binary).then_some(path)
            }
            _ => {
                k += 1;
                continue;
            }
        };
        let written: Vec<String> = tokens[k..next]
            .iter()
            .step_by(2)
            .map(|t| t.text.clone())
            .collect();
        let mut paths = Vec::new();
        k = path_tail(&tokens, &braces, next, written.join("::"), base, &mut paths);
        found.extend(paths.into_iter().map(|(written, resolved)| Reference {
            written,
            resolved,
            in_use,
        }));
    }
    found
}

type Expanded = Vec<(String, Option<Vec<String>>)>;

/// Continues a path at `tokens[k]` (a `::` or its end): more segments, a `{…}` group (nested
/// ones too), a `*`; returns the index after the path.
fn path_tail(
    tokens: &[Token],
    braces: &HashMap<usize, usize>,
    mut k: usize,
    mut written: String,
    mut resolved: Option<Vec<String>>,
    out: &mut Expanded,
) -> usize {
    while tokens.get(k).is_some_and(|t| t.is("::")) {
        let Some(next) = tokens.get(k + 1) else { break };
        if next.is("{") {
            let close = braces.get(&(k + 1)).copied().unwrap_or(tokens.len() - 1);
            let mut j = k + 2;
            while j < close {
                let item = &tokens[j];
                if item.is("self") {
                    out.push((written.clone(), resolved.clone()));
                    j += 1;
                } else if item.is("*") {
                    out.push((format!("{written}::*"), resolved.clone()));
                    j += 1;
                } else if item.is_ident() && !item.is("as") {
                    let mut inner = resolved.clone();
                    if let Some(p) = inner.as_mut() {
                        p.push(item.text.clone());
                    }
                    j = path_tail(
                        tokens,
                        braces,
                        j + 1,
                        format!("{written}::{}", item.text),
                        inner,
                        out,
                    );
                } else {
                    j += if item.is("as") { 2 } else { 1 };
                }
            }
            return close + 1;
        }
        if next.is("*") {
            out.push((format!("{written}::*"), resolved));
            return k + 2;
        }
        if !next.is_ident() {
            break;
        }
        written = format!("{written}::{}", next.text);
        if let Some(p) = resolved.as_mut() {
            p.push(next.text.clone());
        }
        k += 2;
    }
    out.push((written, resolved));
    k
}

// ------------------------------------------------------------------------------------------
// The code map
// ------------------------------------------------------------------------------------------

#[derive(Debug)]
struct Row {
    /// Line in ARCHITECTURE.md.
    line: usize,
    units: Vec<Unit>,
    /// The "may depend on" cell's module paths.
    deps: Vec<String>,
    /// "same layer as `x`".
    same_as: Option<String>,
}

impl Row {
    fn name(&self) -> String {
        let names: Vec<String> = self
            .units
            .iter()
            .filter_map(|u| match u {
                Unit::Module(p) => Some(p.join("::")),
                Unit::Root => Some("crate root".to_string()),
                Unit::Binary => None,
            })
            .collect();
        if names.is_empty() {
            "the binary".to_string()
        } else {
            names.join(", ")
        }
    }
}

/// The code map read from ARCHITECTURE.md, with its allowed graph between layers (rows that
/// are no "same layer as" of another).
struct CodeMap {
    rows: Vec<Row>,
    /// Module path → row.
    modules: HashMap<Vec<String>, usize>,
    /// Row → the row that is its layer.
    layer: Vec<usize>,
    /// Layer → the layers it may depend on.
    allowed: HashMap<usize, BTreeSet<usize>>,
}

fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    inner.split('|').map(|c| c.trim().to_string()).collect()
}

fn backticked(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// Parses the "## Code map" table; problems of the table itself go to `problems`.
fn parse_code_map(markdown: &str, problems: &mut Vec<String>) -> CodeMap {
    let mut in_section = false;
    let mut header: Option<(usize, usize)> = None;
    let mut rows = Vec::new();
    for (n, line) in markdown.lines().enumerate() {
        let line_no = n + 1;
        if line.starts_with("## ") {
            in_section = line.trim() == "## Code map";
            continue;
        }
        if !in_section || !line.trim_start().starts_with('|') {
            continue;
        }
        let cells = cells(line);
        let Some((path_col, deps_col)) = header else {
            let find = |name: &str| cells.iter().position(|c| c == name);
            match (find("path"), find("may depend on")) {
                (Some(p), Some(d)) => header = Some((p, d)),
                _ => problems.push(format!(
                    "ARCHITECTURE.md:{line_no}: the code map's header has no \"path\" or no \"may depend on\" column"
                )),
            }
            continue;
        };
        if cells
            .iter()
            .all(|c| c.chars().all(|ch| ch == '-' || ch == ':'))
        {
            continue;
        }
        let units: Vec<Unit> = cells
            .get(path_col)
            .map(|c| backticked(c).iter().filter_map(|p| unit_of(p)).collect())
            .unwrap_or_default();
        if units.is_empty() {
            continue;
        }
        let cell = cells.get(deps_col).cloned().unwrap_or_default();
        let names = backticked(&cell);
        let (deps, same_as) = if cell.starts_with("same layer as") {
            (Vec::new(), names.first().cloned())
        } else {
            (names, None)
        };
        if cell.is_empty() || (same_as.is_none() && deps.is_empty() && cell != "—") {
            problems.push(format!(
                "ARCHITECTURE.md:{line_no}: the \"may depend on\" cell names no module (write — for none)"
            ));
        }
        rows.push(Row {
            line: line_no,
            units,
            deps,
            same_as,
        });
    }
    if header.is_none() {
        problems.push(
            "ARCHITECTURE.md: no \"## Code map\" table with a \"may depend on\" column".into(),
        );
    }
    build_code_map(rows, problems)
}

fn build_code_map(rows: Vec<Row>, problems: &mut Vec<String>) -> CodeMap {
    let mut modules = HashMap::new();
    for (r, row) in rows.iter().enumerate() {
        for unit in &row.units {
            if let Unit::Module(path) = unit
                && let Some(other) = modules.insert(path.clone(), r)
            {
                problems.push(format!(
                    "ARCHITECTURE.md:{}: `{}` has a row already (line {})",
                    row.line,
                    path.join("::"),
                    rows[other].line
                ));
            }
        }
        if row.units.contains(&Unit::Root) && row.units.len() > 1 {
            problems.push(format!(
                "ARCHITECTURE.md:{}: give `src/lib.rs` a row of its own",
                row.line
            ));
        }
    }
    let lookup = |name: &str, row: &Row, problems: &mut Vec<String>| -> Option<usize> {
        let path: Vec<String> = name.split("::").map(str::to_string).collect();
        let found = modules.get(&path).copied();
        if found.is_none() {
            problems.push(format!(
                "ARCHITECTURE.md:{}: `{name}` names a module that has no row",
                row.line
            ));
        }
        found
    };
    let mut layer: Vec<usize> = (0..rows.len()).collect();
    for (r, row) in rows.iter().enumerate() {
        if let Some(name) = &row.same_as
            && let Some(target) = lookup(name, row, problems)
        {
            if rows[target].same_as.is_some() {
                problems.push(format!(
                    "ARCHITECTURE.md:{}: `{name}` is itself \"same layer as\" another row; name that one",
                    row.line
                ));
            } else {
                layer[r] = target;
            }
        }
    }
    let mut allowed: HashMap<usize, BTreeSet<usize>> = HashMap::new();
    for (r, row) in rows.iter().enumerate() {
        let mut set = BTreeSet::new();
        for name in &row.deps {
            if let Some(target) = lookup(name, row, problems)
                && layer[target] != layer[r]
            {
                set.insert(layer[target]);
            }
        }
        allowed.entry(layer[r]).or_default().extend(set);
    }
    let map = CodeMap {
        rows,
        modules,
        layer,
        allowed,
    };
    for cycle in map.cycles() {
        let names: Vec<String> = cycle.iter().map(|&r| map.rows[r].name()).collect();
        problems.push(format!(
            "ARCHITECTURE.md: the allowed graph has a cycle: {}",
            names.join(" → ")
        ));
    }
    map
}

impl CodeMap {
    /// Cycles of the allowed graph, each from its smallest row back to it.
    fn cycles(&self) -> BTreeSet<Vec<usize>> {
        fn visit(
            map: &CodeMap,
            r: usize,
            stack: &mut Vec<usize>,
            done: &mut HashSet<usize>,
            found: &mut BTreeSet<Vec<usize>>,
        ) {
            if let Some(at) = stack.iter().position(|&s| s == r) {
                let mut cycle: Vec<usize> = stack[at..].to_vec();
                let min = (0..cycle.len()).min_by_key(|&i| cycle[i]).unwrap_or(0);
                cycle.rotate_left(min);
                cycle.push(cycle[0]);
                found.insert(cycle);
                return;
            }
            if !done.insert(r) {
                return;
            }
            stack.push(r);
            for &next in map.allowed.get(&r).into_iter().flatten() {
                visit(map, next, stack, done, found);
            }
            stack.pop();
        }
        let mut found = BTreeSet::new();
        let mut done = HashSet::new();
        let mut layers: Vec<usize> = self.allowed.keys().copied().collect();
        layers.sort_unstable();
        for r in layers {
            visit(self, r, &mut Vec::new(), &mut done, &mut found);
        }
        found
    }

    /// The row that covers a module path: the longest matching prefix.
    fn row_of(&self, path: &[String]) -> Option<usize> {
        (1..=path.len())
            .rev()
            .find_map(|n| self.modules.get(&path[..n]).copied())
    }

    fn row_of_unit(&self, unit: &Unit) -> Option<usize> {
        match unit {
            Unit::Module(path) => self.row_of(path),
            _ => self.rows.iter().position(|row| row.units.contains(unit)),
        }
    }

    /// "store may depend on model, error, config"
    fn rule(&self, file_unit: &Unit, row: usize) -> String {
        let layer = self.layer[row];
        let subject = match file_unit {
            Unit::Binary => "the binary".to_string(),
            _ if layer != row => self.rows[layer].name(),
            Unit::Module(path) => {
                let n = (1..=path.len())
                    .rev()
                    .find(|&n| self.modules.contains_key(&path[..n]))
                    .unwrap_or(0);
                path[..n].join("::")
            }
            Unit::Root => self.rows[row].name(),
        };
        let deps = &self.rows[layer].deps;
        let list = if deps.is_empty() {
            "nothing".to_string()
        } else {
            deps.join(", ")
        };
        format!("{subject} may depend on {list}")
    }
}

/// Every layering problem of `files` (path under the repository, source) against the code map
/// in `markdown`, one line each.
fn layering_problems(markdown: &str, files: &[(String, String)]) -> Vec<String> {
    let mut problems = Vec::new();
    let map = parse_code_map(markdown, &mut problems);

    // The crate root's `pub use` re-exports: `crate::Error` is `crate::error::Error`.
    let mut reexports: HashMap<String, Vec<String>> = HashMap::new();
    if let Some((_, lib)) = files.iter().find(|(path, _)| path == "src/lib.rs") {
        for reference in references(lib, &[], false) {
            if let Some(path) = reference
                .resolved
                .filter(|p| reference.in_use && p.len() > 1)
            {
                reexports.insert(path[path.len() - 1].clone(), path);
            }
        }
    }

    let mut seen = HashSet::new();
    for (path, source) in files {
        let Some(unit) = unit_of(path) else { continue };
        let Some(row) = map.row_of_unit(&unit) else {
            problems.push(format!("{path}: no row of the code map covers it"));
            continue;
        };
        let module = match &unit {
            Unit::Module(p) => p.clone(),
            _ => Vec::new(),
        };
        for reference in references(source, &module, unit == Unit::Binary) {
            let message = check(&map, &reexports, path, &unit, row, &reference);
            if let Some(message) = message.filter(|m| seen.insert(m.clone())) {
                problems.push(message);
            }
        }
    }
    problems
}

fn check(
    map: &CodeMap,
    reexports: &HashMap<String, Vec<String>>,
    path: &str,
    unit: &Unit,
    row: usize,
    reference: &Reference,
) -> Option<String> {
    let written = &reference.written;
    let Some(mut target) = reference.resolved.clone() else {
        return Some(if *unit == Unit::Binary {
            format!("{path} imports {written}: the binary may use only the library (aiops::…)")
        } else {
            format!("{path} imports {written}: it leaves the crate")
        });
    };
    let shown = if written.starts_with("crate::") || written.starts_with("aiops::") {
        written.clone()
    } else {
        format!("{written} (crate::{})", target.join("::"))
    };
    if map.row_of(&target).is_none()
        && let Some(real) = target.first().and_then(|first| reexports.get(first))
    {
        target.splice(0..1, real.iter().cloned());
    }
    let Some(target_row) = map.row_of(&target) else {
        if target.is_empty() && *unit == Unit::Root {
            return None;
        }
        return Some(format!(
            "{path} imports {shown}: no row of the code map covers it"
        ));
    };
    let (from, to) = (map.layer[row], map.layer[target_row]);
    if from == to || map.allowed.get(&from).is_some_and(|set| set.contains(&to)) {
        return None;
    }
    Some(format!("{path} imports {shown}: {}", map.rule(unit, row)))
}

// ------------------------------------------------------------------------------------------
// The repository
// ------------------------------------------------------------------------------------------

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `src/`: path relative to the repository, source; sorted.
fn sources() -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut BTreeMap<String, String>) {
        let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(root()).expect("under the repository");
                let rel = rel.to_string_lossy().replace('\\', "/");
                let source = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{rel}: {e}"));
                out.insert(rel, source);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(&root().join("src"), &mut out);
    out.into_iter().collect()
}

fn fail_with(what: &str, problems: &[String]) {
    assert!(
        problems.is_empty(),
        "{} {what}:\n{}\n",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn layering_follows_the_code_map() {
    let markdown = fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let problems = layering_problems(&markdown, &sources());
    fail_with(
        "layering problems (ARCHITECTURE.md, \"## Code map\", column \"may depend on\")",
        &problems,
    );
}

#[test]
fn files_are_at_most_800_lines() {
    let problems: Vec<String> = sources()
        .iter()
        .filter_map(|(path, src)| file_offender(path, src))
        .collect();
    fail_with("files over the size limit", &problems);
}

#[test]
fn functions_are_at_most_80_lines() {
    let problems: Vec<String> = sources()
        .iter()
        .flat_map(|(path, src)| function_offenders(path, src))
        .collect();
    fail_with("functions over the size limit", &problems);
}

// ------------------------------------------------------------------------------------------
// The checker itself
// ------------------------------------------------------------------------------------------

const FAKE_MAP: &str = "\
# Architecture

## Code map

| path | what it is | may depend on | what it must never do |
|---|---|---|---|
| `src/lib.rs` | the root | `error` | |
| `src/store/` | SQL | `model` | |
| `src/store/fancy.rs` | SQL, fancier | same layer as `store` | |
| `src/model/`, `src/records.rs` | types | `error` | |
| `src/error.rs` | the error | — | |
| `src/approvals.rs` | decisions | `store`, `model`, `error` | |
| `migrations/` | schema | | |

## Next section
| `src/nothing.rs` | not part of the map | `nothing` | |
";

fn fake_files(store_x: &str) -> Vec<(String, String)> {
    [
        (
            "src/lib.rs",
            "pub mod approvals;\npub mod error;\npub mod store;\npub use error::{Error, Result};\n",
        ),
        (
            "src/error.rs",
            "pub enum Error {}\npub type Result<T> = std::result::Result<T, Error>;\n",
        ),
        (
            "src/store/mod.rs",
            "mod fancy;\nmod x;\npub struct Store;\nfn f() { fancy::g() }\n",
        ),
        (
            "src/store/fancy.rs",
            "pub fn g() { let _ = super::Store; }\n",
        ),
        ("src/store/x.rs", store_x),
        ("src/records.rs", "use crate::error::Result;\n"),
        (
            "src/approvals.rs",
            "use crate::store::Store;\npub enum Decision { Approve }\n",
        ),
    ]
    .into_iter()
    .map(|(p, s)| (p.to_string(), s.to_string()))
    .collect()
}

#[test]
fn checker_reports_an_import_outside_the_row() {
    let store_x = r##"//! crate::approvals::Decision in a doc comment is no import.
use super::{Store, fancy::g};
use crate::records::{self, Row as _};
/* use crate::approvals::Decision; in a block comment /* nested */ neither */
use crate::approvals::Decision;
const TEXT: &str = "crate::approvals::Decision";
const RAW: &str = r#"crate::approvals::Decision "# ;
fn f<'a>(s: &'a str) -> char { let _ = (s, TEXT, RAW, crate::model::Id); '{' }
#[cfg(test)]
mod tests {
    use super::super::Store;
}
"##;
    let problems = layering_problems(FAKE_MAP, &fake_files(store_x));
    assert_eq!(
        problems,
        ["src/store/x.rs imports crate::approvals::Decision: store may depend on model"],
        "exactly the one import outside the row"
    );

    // An inline path and a nested group are imports too; the tests module obeys its file's row.
    let store_x = "fn f() -> crate::Result<()> { crate::approvals::Decision::Approve; }\n\
                   #[cfg(test)]\nmod tests {\n    use crate::{error::Error, approvals::{Decision, self}};\n}\n";
    let problems = layering_problems(FAKE_MAP, &fake_files(store_x));
    assert_eq!(
        problems,
        [
            "src/store/x.rs imports crate::Result: store may depend on model",
            "src/store/x.rs imports crate::approvals::Decision::Approve: store may depend on model",
            "src/store/x.rs imports crate::error::Error: store may depend on model",
            "src/store/x.rs imports crate::approvals::Decision: store may depend on model",
            "src/store/x.rs imports crate::approvals: store may depend on model",
        ]
    );
}

#[test]
fn checker_reports_a_broken_table() {
    let map = FAKE_MAP
        .replace("| SQL | `model` |", "| SQL | `model`, `approvals` |")
        .replace("| types | `error` |", "| types | `error`, `nowhere` |");
    let mut files = fake_files("");
    files.push(("src/unmapped.rs".into(), String::new()));
    let problems = layering_problems(&map, &files);
    assert_eq!(
        problems,
        [
            "ARCHITECTURE.md:10: `nowhere` names a module that has no row",
            "ARCHITECTURE.md: the allowed graph has a cycle: store → approvals → store",
            "src/unmapped.rs: no row of the code map covers it",
        ]
    );
}

#[test]
fn function_scanner_skips_literals_and_comments() {
    let source = r###"fn braces_in_literals() {
    let open = "{ not a block \" {";
    let raw = r#"}" still a string {"#;
    let c = '{';
    let e = '\'';
    // }
    /* { */
}

fn lifetimes<'a>(s: &'a str) -> &'a str {
    s
}

trait T { fn declared(&self); }

#[cfg(test)]
mod tests {
    fn not_counted() {}
}
"###;
    assert_eq!(
        functions(source),
        [
            Function {
                name: "braces_in_literals".into(),
                line: 1,
                lines: 8
            },
            Function {
                name: "lifetimes".into(),
                line: 10,
                lines: 3
            },
        ]
    );

    let long = format!(
        "// a long one\nfn long() {{\n{}}}\n",
        "    let _ = \"}\";\n".repeat(FN_LIMIT - 1)
    );
    assert_eq!(
        function_offenders("src/x.rs", &long),
        ["src/x.rs:2 fn long is 81 lines (limit 80)"]
    );
    assert!(function_offenders("src/x/tests.rs", &long).is_empty());
}

#[test]
fn file_size_leaves_out_a_trailing_tests_module() {
    let body = "fn f() {}\n".repeat(FILE_LIMIT);
    let with_tests = format!("{body}#[cfg(test)]\nmod tests {{\n    fn g() {{}}\n}}\n");
    assert_eq!(counted_lines(&with_tests), (FILE_LIMIT, true));
    assert_eq!(file_offender("src/x.rs", &with_tests), None);
    let over = format!("fn e() {{}}\n{with_tests}");
    assert_eq!(
        file_offender("src/x.rs", &over),
        Some("src/x.rs is 801 lines (limit 800, not counting its tests module)".to_string())
    );
    let trailing_code = format!("{with_tests}fn h() {{}}\n");
    assert_eq!(counted_lines(&trailing_code), (FILE_LIMIT + 5, false));
}
