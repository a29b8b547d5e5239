//! Source positions of keys and values in a YAML experiment file.
//!
//! `serde_yaml` builds values without positions, and its underlying event parser is not part
//! of its public interface. Diagnostics need the line and column of a key such as
//! `stages.mask.with.rate`, so this module scans the text itself. It understands the subset of
//! YAML that experiment files are written in (block and flow mappings and sequences, plain and
//! quoted scalars, block scalars, comments).
//!
//! The scan runs *before* `serde_yaml` parses the text (so that a duplicate key reported by
//! `serde_yaml` can be shown at both of its places), and therefore also on text that is not
//! valid YAML. It never reports syntax errors, which are `serde_yaml`'s to report: when it
//! meets something it does not follow it stops recording, and callers fall back to the nearest
//! enclosing key. Its work is bounded: every loop draws on a step budget, and mappings and lists
//! nested more than [`MAX_DEPTH`] levels deep stop the scan (see [`Locations::too_deep`]) before
//! the recursion goes further, so neither the stack nor the key paths, which are copied per
//! level, can grow with the input.

use std::collections::HashMap;

use crate::ast::Span;

pub use crate::MAX_NESTING as MAX_DEPTH;

/// Where a key and its value were written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loc {
    /// The key (absent for sequence items).
    pub key: Option<Span>,
    /// The value.
    pub value: Span,
}

/// Positions of every key path found, e.g. `["stages", "mask", "with", "rate"]`; sequence items
/// are addressed by their index (`["plugins", "0"]`).
#[derive(Debug, Default)]
pub struct Locations {
    map: HashMap<Vec<String>, Loc>,
    duplicates: Vec<(Vec<String>, Span, Span)>,
    too_deep: Option<usize>,
}

impl Locations {
    /// Scans `text`.
    pub fn scan(text: &str) -> Self {
        let mut s = Scanner {
            src: text.as_bytes(),
            pos: 0,
            out: HashMap::new(),
            duplicates: Vec::new(),
            steps: 0,
            depth: 0,
            too_deep: None,
        };
        s.document();
        Locations { map: s.out, duplicates: s.duplicates, too_deep: s.too_deep }
    }

    /// Where the first mapping or list nested more than [`MAX_DEPTH`] levels deep starts, if
    /// the text has one (the scan stopped there).
    pub fn too_deep(&self) -> Option<usize> {
        self.too_deep
    }

    /// Keys written twice in the same mapping: the path, the first key and the second.
    pub fn duplicates(&self) -> &[(Vec<String>, Span, Span)] {
        &self.duplicates
    }

    /// The location recorded for `path`.
    pub fn get(&self, path: &[&str]) -> Option<Loc> {
        let key: Vec<String> = path.iter().map(|s| s.to_string()).collect();
        self.map.get(&key).copied()
    }

    /// The span of the key at `path`, or of the nearest enclosing key that was found.
    pub fn key(&self, path: &[&str]) -> Span {
        for n in (1..=path.len()).rev() {
            if let Some(loc) = self.get(&path[..n]) {
                return loc.key.unwrap_or(loc.value);
            }
        }
        Span::point(0)
    }

    /// The span of the value at `path`, or of the nearest enclosing key that was found.
    pub fn value(&self, path: &[&str]) -> Span {
        match self.get(path) {
            Some(loc) => loc.value,
            None => self.key(path),
        }
    }
}

struct Scanner<'a> {
    src: &'a [u8],
    pos: usize,
    out: HashMap<Vec<String>, Loc>,
    duplicates: Vec<(Vec<String>, Span, Span)>,
    /// A bound on work, so that unexpected input can never make the scan loop forever.
    steps: usize,
    /// Mappings and lists open around the current position.
    depth: usize,
    /// Where a collection nested deeper than [`MAX_DEPTH`] starts; once set, the scan stops.
    too_deep: Option<usize>,
}

impl Scanner<'_> {
    fn peek(&self) -> u8 {
        self.src.get(self.pos).copied().unwrap_or(0)
    }

    fn at(&self, i: usize) -> u8 {
        self.src.get(i).copied().unwrap_or(0)
    }

    fn budget(&mut self) -> bool {
        self.steps += 1;
        self.steps < 1_000_000 && self.too_deep.is_none()
    }

    /// Enters a collection starting at `at`: false (and the scan stops) when it would be nested
    /// more than [`MAX_DEPTH`] levels deep. Every `true` must be paired with [`Scanner::leave`].
    fn enter(&mut self, at: usize) -> bool {
        if self.too_deep.is_some() {
            return false;
        }
        if self.depth >= MAX_DEPTH {
            self.too_deep = Some(at);
            return false;
        }
        self.depth += 1;
        true
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    fn record(&mut self, path: &[String], key: Option<Span>, value: Span) {
        match self.out.get(path) {
            Some(first) => {
                if let (Some(a), Some(b)) = (first.key, key)
                    && a != b
                {
                    self.duplicates.push((path.to_vec(), a, b));
                }
            }
            None => {
                self.out.insert(path.to_vec(), Loc { key, value });
            }
        }
    }

    fn line_start(&self, pos: usize) -> usize {
        self.src[..pos.min(self.src.len())].iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1)
    }

    fn line_end(&self, pos: usize) -> usize {
        self.src[pos.min(self.src.len())..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(self.src.len(), |i| pos + i)
    }

    fn column(&self, pos: usize) -> usize {
        pos - self.line_start(pos)
    }

    /// The first content (not blank, not comment-only) line at or after the line holding
    /// `pos`: the position of its first non-space byte and its indentation.
    fn next_content(&self, pos: usize) -> Option<(usize, usize)> {
        let mut ls = self.line_start(pos);
        while ls < self.src.len() {
            let mut i = ls;
            while self.at(i) == b' ' {
                i += 1;
            }
            let c = self.at(i);
            if c != b'\n' && c != b'#' && c != b'\r' && c != 0 {
                return Some((i, i - ls));
            }
            ls = self.line_end(i) + 1;
        }
        None
    }

    /// The first content line after the line holding `pos`.
    fn next_line_content(&self, pos: usize) -> Option<(usize, usize)> {
        let end = self.line_end(pos);
        if end >= self.src.len() { None } else { self.next_content(end + 1) }
    }

    fn document(&mut self) {
        let Some((mut start, mut indent)) = self.next_content(0) else { return };
        if self.src[start..].starts_with(b"---") {
            match self.next_line_content(start) {
                Some(next) => (start, indent) = next,
                None => return,
            }
        }
        self.pos = start;
        let end = self.block_node(&[], start, indent);
        self.record(&[], None, Span::new(start, end));
    }

    /// A node starting at `start` (the first byte of its content) whose lines are indented
    /// `indent`; returns its end.
    fn block_node(&mut self, path: &[String], start: usize, indent: usize) -> usize {
        self.pos = start;
        let seq = self.is_seq_item(start);
        if !seq && self.key_end(start).is_none() {
            return self.inline_value(path, start, indent.saturating_sub(1));
        }
        if !self.enter(start) {
            return start;
        }
        let end = if seq { self.block_seq(path, indent) } else { self.block_map(path, indent) };
        self.leave();
        end
    }

    fn is_seq_item(&self, pos: usize) -> bool {
        self.at(pos) == b'-' && matches!(self.at(pos + 1), b' ' | b'\n' | b'\r' | 0)
    }

    /// If a mapping key starts at `pos`: the end of the key text and the position of its `:`.
    fn key_end(&self, pos: usize) -> Option<(usize, usize)> {
        let c = self.at(pos);
        if matches!(c, b'{' | b'[' | b'#' | b'|' | b'>') || self.is_seq_item(pos) {
            return None;
        }
        if c == b'"' || c == b'\'' {
            let end = self.quoted_end(pos);
            let mut i = end;
            while self.at(i) == b' ' {
                i += 1;
            }
            return (self.at(i) == b':').then_some((end, i));
        }
        let eol = self.line_end(pos);
        let mut i = pos;
        while i < eol {
            let b = self.at(i);
            if b == b':' && matches!(self.at(i + 1), b' ' | b'\n' | b'\r' | 0) {
                let mut end = i;
                while end > pos && self.at(end - 1) == b' ' {
                    end -= 1;
                }
                return Some((end, i));
            }
            if b == b'#' && i > pos && self.at(i - 1) == b' ' {
                return None;
            }
            i += 1;
        }
        None
    }

    /// The position after a quoted scalar starting at `pos`.
    fn quoted_end(&self, pos: usize) -> usize {
        let q = self.at(pos);
        let mut i = pos + 1;
        while i < self.src.len() {
            let b = self.src[i];
            if q == b'"' && b == b'\\' {
                i += 2;
                continue;
            }
            if b == q {
                if q == b'\'' && self.at(i + 1) == b'\'' {
                    i += 2;
                    continue;
                }
                return i + 1;
            }
            i += 1;
        }
        self.src.len()
    }

    fn key_text(&self, start: usize, end: usize) -> String {
        let raw = String::from_utf8_lossy(&self.src[start..end]).into_owned();
        match raw.as_bytes().first() {
            Some(b'"') => serde_json::from_str::<String>(&raw)
                .unwrap_or_else(|_| raw.trim_matches('"').to_string()),
            Some(b'\'') => {
                let inner = raw.strip_prefix('\'').unwrap_or(&raw);
                inner.strip_suffix('\'').unwrap_or(inner).replace("''", "'")
            }
            _ => raw,
        }
    }

    fn block_map(&mut self, path: &[String], indent: usize) -> usize {
        let mut end = self.pos;
        while self.budget() {
            let start = self.pos;
            let Some((key_end, colon)) = self.key_end(start) else { break };
            let key = self.key_text(start, key_end);
            let mut child = path.to_vec();
            child.push(key);
            let key_span = Span::new(start, key_end);
            let value_end = self.after_colon(&child, key_span, colon + 1, indent);
            end = end.max(value_end);
            match self.next_line_content(value_end) {
                Some((next, ind)) if ind == indent && next > start && !self.is_seq_item(next) => {
                    self.pos = next
                }
                _ => break,
            }
        }
        end
    }

    /// The value after a key's colon at `pos` in a block mapping indented `indent`; records
    /// it and returns its end.
    fn after_colon(&mut self, path: &[String], key: Span, mut pos: usize, indent: usize) -> usize {
        while self.at(pos) == b' ' {
            pos += 1;
        }
        let c = self.at(pos);
        let rest_empty = matches!(c, b'\n' | b'\r' | b'#' | 0);
        if rest_empty {
            if let Some((next, ind)) = self.next_line_content(pos)
                && (ind > indent || (ind == indent && self.is_seq_item(next)))
            {
                let end = self.block_node(path, next, ind);
                self.record(path, Some(key), Span::new(next, end));
                return end;
            }
            self.record(path, Some(key), Span::point(pos));
            return pos;
        }
        let end = self.inline_value(path, pos, indent);
        self.record(path, Some(key), Span::new(pos, end));
        end
    }

    /// A value starting on the current line at `pos` (flow collection, quoted, block or plain
    /// scalar) belonging to a node indented `indent`; returns its end.
    fn inline_value(&mut self, path: &[String], pos: usize, indent: usize) -> usize {
        match self.at(pos) {
            b'{' | b'[' => {
                self.pos = pos;
                self.flow(path)
            }
            b'"' | b'\'' => self.quoted_end(pos),
            b'|' | b'>' => {
                let mut end = self.line_end(pos);
                while let Some((next, ind)) = self.next_line_content(end) {
                    if ind <= indent || !self.budget() {
                        break;
                    }
                    end = self.line_end(next);
                }
                end
            }
            _ => {
                let mut end = self.plain_end(pos);
                while let Some((next, ind)) = self.next_line_content(end) {
                    if ind <= indent || !self.budget() {
                        break;
                    }
                    end = self.plain_end(next);
                }
                end
            }
        }
    }

    /// End of a plain scalar on one line: before a comment or the line end, trailing spaces
    /// removed.
    fn plain_end(&self, pos: usize) -> usize {
        let eol = self.line_end(pos);
        let mut i = pos;
        while i < eol {
            if self.at(i) == b'#' && i > pos && self.at(i - 1) == b' ' {
                break;
            }
            i += 1;
        }
        while i > pos && matches!(self.at(i - 1), b' ' | b'\r') {
            i -= 1;
        }
        i
    }

    fn block_seq(&mut self, path: &[String], indent: usize) -> usize {
        let mut end = self.pos;
        let mut index = 0usize;
        while self.budget() && self.is_seq_item(self.pos) {
            let dash = self.pos;
            let mut child = path.to_vec();
            child.push(index.to_string());
            let mut pos = dash + 1;
            while self.at(pos) == b' ' {
                pos += 1;
            }
            let item_end = if matches!(self.at(pos), b'\n' | b'\r' | b'#' | 0) {
                match self.next_line_content(pos) {
                    Some((next, ind)) if ind > indent => self.block_node(&child, next, ind),
                    _ => pos,
                }
            } else {
                let col = self.column(pos);
                self.block_node(&child, pos, col)
            };
            let start = if item_end > pos { pos } else { dash };
            self.record(&child, None, Span::new(start, item_end.max(start)));
            end = end.max(item_end);
            index += 1;
            match self.next_line_content(item_end) {
                Some((next, ind)) if ind == indent && next > dash => self.pos = next,
                _ => break,
            }
        }
        end
    }

    fn skip_flow_space(&mut self) {
        while self.pos < self.src.len() {
            match self.peek() {
                b' ' | b'\n' | b'\r' | b'\t' => self.pos += 1,
                b'#' => self.pos = self.line_end(self.pos),
                _ => break,
            }
        }
    }

    /// A flow collection or scalar at `self.pos`; returns its end.
    fn flow(&mut self, path: &[String]) -> usize {
        match self.peek() {
            b'{' | b'[' => {
                if !self.enter(self.pos) {
                    return self.pos;
                }
                let end =
                    if self.peek() == b'{' { self.flow_map(path) } else { self.flow_seq(path) };
                self.leave();
                end
            }
            b'"' | b'\'' => {
                self.pos = self.quoted_end(self.pos);
                self.pos
            }
            _ => {
                let start = self.pos;
                while self.pos < self.src.len()
                    && !matches!(self.peek(), b',' | b']' | b'}' | b'\n' | b'\r')
                {
                    if self.peek() == b'#' && self.pos > start && self.at(self.pos - 1) == b' ' {
                        break;
                    }
                    self.pos += 1;
                }
                let mut end = self.pos;
                while end > start && self.at(end - 1) == b' ' {
                    end -= 1;
                }
                end
            }
        }
    }

    fn flow_map(&mut self, path: &[String]) -> usize {
        self.pos += 1;
        while self.budget() {
            self.skip_flow_space();
            match self.peek() {
                0 => return self.pos,
                b'}' => {
                    self.pos += 1;
                    return self.pos;
                }
                b',' => {
                    self.pos += 1;
                    continue;
                }
                _ => {}
            }
            let key_start = self.pos;
            let key_end = if matches!(self.peek(), b'"' | b'\'') {
                self.quoted_end(key_start)
            } else {
                let mut i = key_start;
                while i < self.src.len() && !matches!(self.at(i), b',' | b'}' | b'\n') {
                    if self.at(i) == b':'
                        && matches!(
                            self.at(i + 1),
                            b' ' | b'\n' | b'\r' | b',' | b'}' | b'[' | b'{' | b'"'
                        )
                    {
                        break;
                    }
                    i += 1;
                }
                while i > key_start && self.at(i - 1) == b' ' {
                    i -= 1;
                }
                i
            };
            let mut child = path.to_vec();
            child.push(self.key_text(key_start, key_end));
            let key = Span::new(key_start, key_end);
            self.pos = key_end;
            while self.peek() == b' ' {
                self.pos += 1;
            }
            if self.peek() == b':' {
                self.pos += 1;
                self.skip_flow_space();
                if matches!(self.peek(), b',' | b'}') {
                    self.record(&child, Some(key), Span::point(self.pos));
                } else {
                    let start = self.pos;
                    let end = self.flow(&child);
                    self.record(&child, Some(key), Span::new(start, end));
                }
            } else {
                self.record(&child, Some(key), Span::point(key_end));
            }
            if self.pos == key_start {
                self.pos += 1;
            }
        }
        self.pos
    }

    fn flow_seq(&mut self, path: &[String]) -> usize {
        self.pos += 1;
        let mut index = 0usize;
        while self.budget() {
            self.skip_flow_space();
            match self.peek() {
                0 => return self.pos,
                b']' => {
                    self.pos += 1;
                    return self.pos;
                }
                b',' => {
                    self.pos += 1;
                    continue;
                }
                _ => {}
            }
            let mut child = path.to_vec();
            child.push(index.to_string());
            let start = self.pos;
            let end = self.flow(&child);
            self.record(&child, None, Span::new(start, end));
            index += 1;
            if self.pos == start {
                self.pos += 1;
            }
        }
        self.pos
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_at(src: &str, span: Span) -> &str {
        &src[span.start..span.end]
    }

    #[test]
    fn finds_block_and_flow_keys() {
        let src = "name: q # c\nstages:\n  data: { kind: dataset, with: { op: add, p: 23 } }\n  mask:\n    kind: prune\n    with:\n      rate: 0.6\n    inputs: { runs: [a, \"b\"] }\nplugins:\n  - x.so\n  - 'y.so'\n";
        let l = Locations::scan(src);
        assert_eq!(text_at(src, l.key(&["name"])), "name");
        assert_eq!(text_at(src, l.value(&["name"])), "q");
        assert_eq!(text_at(src, l.value(&["stages", "data", "with", "p"])), "23");
        assert_eq!(text_at(src, l.key(&["stages", "data", "with", "op"])), "op");
        assert_eq!(text_at(src, l.value(&["stages", "mask", "with", "rate"])), "0.6");
        assert_eq!(text_at(src, l.value(&["stages", "mask", "inputs", "runs", "1"])), "\"b\"");
        assert_eq!(text_at(src, l.value(&["plugins", "1"])), "'y.so'");
        // A missing key falls back to the nearest enclosing one.
        assert_eq!(text_at(src, l.key(&["stages", "mask", "with", "nope"])), "with");
    }

    #[test]
    fn block_scalars_and_dotted_keys() {
        let src =
            "description: >-\n  a: b\n  c\nsweep:\n  grid: { mask.rate: [0.3, 0.6] }\n  seeds: 2\n";
        let l = Locations::scan(src);
        assert_eq!(text_at(src, l.value(&["sweep", "grid", "mask.rate", "1"])), "0.6");
        assert_eq!(text_at(src, l.value(&["sweep", "seeds"])), "2");
        assert!(l.get(&["a"]).is_none());
    }
}
