//! A tiny document model rendered to both Markdown and self-contained HTML.
//!
//! The report is built once as a [`Doc`] and rendered twice, so `report.md` and `report.html`
//! always say the same thing. Inline markup is limited to what the report needs: plain text,
//! `code` and **bold** spans. Figures carry their SVG text: Markdown links to the file under
//! `figures/`, HTML inlines the `<svg>` element (no external resource, no script).

use std::fmt::Write as _;

/// A run of inline text.
#[derive(Debug, Clone, PartialEq)]
pub enum Span {
    /// Plain text.
    Text(String),
    /// Monospace code.
    Code(String),
    /// Bold text.
    Bold(String),
}

/// Plain text span.
pub fn text(s: impl Into<String>) -> Span {
    Span::Text(s.into())
}

/// Code span.
pub fn code(s: impl Into<String>) -> Span {
    Span::Code(s.into())
}

/// Bold span.
pub fn bold(s: impl Into<String>) -> Span {
    Span::Bold(s.into())
}

/// A table column: its header and whether its cells are numbers (right-aligned).
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Header text.
    pub header: String,
    /// Right-align the cells.
    pub numeric: bool,
}

/// A block of the document.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    /// A heading of level 1 to 3.
    Heading(u8, String),
    /// A paragraph.
    Para(Vec<Span>),
    /// A bullet list.
    List(Vec<Vec<Span>>),
    /// A table: columns and rows of cell texts (cells may use `code` spans via backticks in
    /// Markdown only; HTML escapes them as text).
    Table {
        /// Columns.
        columns: Vec<Column>,
        /// Rows, each as long as `columns`.
        rows: Vec<Vec<String>>,
    },
    /// A figure: Markdown shows the image at `path`, HTML inlines `svg`.
    Figure {
        /// Path of the SVG file relative to the document.
        path: String,
        /// Title above the figure.
        title: String,
        /// Caption below it.
        caption: String,
        /// The SVG document.
        svg: String,
    },
    /// A fenced code block.
    Code {
        /// Language tag (`sh`, `json`, ...).
        lang: String,
        /// Its text.
        text: String,
    },
}

/// A document: a title and blocks.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Doc {
    /// Title (the Markdown H1 and the HTML `<title>`).
    pub title: String,
    /// Content.
    pub blocks: Vec<Block>,
}

impl Doc {
    /// Appends a block.
    pub fn push(&mut self, b: Block) {
        self.blocks.push(b);
    }

    /// Renders as Markdown (CommonMark with pipe tables).
    pub fn to_markdown(&self) -> String {
        format!("# {}\n{}", self.title, self.body_markdown())
    }

    /// Renders the blocks alone as Markdown, without the title (a part of a longer page).
    pub fn body_markdown(&self) -> String {
        let mut out = String::new();
        for b in &self.blocks {
            out.push('\n');
            match b {
                Block::Heading(level, t) => {
                    let _ = writeln!(out, "{} {t}", "#".repeat(usize::from((*level).clamp(1, 6))));
                }
                Block::Para(spans) => {
                    let _ = writeln!(out, "{}", md_spans(spans));
                }
                Block::List(items) => {
                    for item in items {
                        let _ = writeln!(out, "- {}", md_spans(item));
                    }
                }
                Block::Table { columns, rows } => {
                    let cells =
                        |r: &[String]| r.iter().map(|c| md_cell(c)).collect::<Vec<_>>().join(" | ");
                    let headers: Vec<String> = columns.iter().map(|c| c.header.clone()).collect();
                    let _ = writeln!(out, "| {} |", cells(&headers));
                    let rule: Vec<&str> =
                        columns.iter().map(|c| if c.numeric { "---:" } else { "---" }).collect();
                    let _ = writeln!(out, "| {} |", rule.join(" | "));
                    for r in rows {
                        let _ = writeln!(out, "| {} |", cells(r));
                    }
                }
                Block::Figure { path, title, caption, .. } => {
                    let _ = writeln!(
                        out,
                        "![{}]({path})\n\n*{}*",
                        md_escape(title),
                        md_escape(caption)
                    );
                }
                Block::Code { lang, text } => {
                    let _ = writeln!(out, "```{lang}\n{}\n```", text.trim_end());
                }
            }
        }
        out
    }

    /// Renders as one self-contained HTML page: inline CSS, inline SVG figures, no script and
    /// no external resource.
    pub fn to_html(&self) -> String {
        let mut out = String::new();
        let _ = write!(
            out,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>{}</title>\n<style>\n{CSS}</style>\n</head>\n<body>\n<h1>{}</h1>\n",
            esc(&self.title),
            esc(&self.title)
        );
        for b in &self.blocks {
            match b {
                Block::Heading(level, t) => {
                    let l = (*level).clamp(1, 6);
                    let _ = writeln!(out, "<h{l} id=\"{}\">{}</h{l}>", anchor(t), esc(t));
                }
                Block::Para(spans) => {
                    let _ = writeln!(out, "<p>{}</p>", html_spans(spans));
                }
                Block::List(items) => {
                    out.push_str("<ul>\n");
                    for item in items {
                        let _ = writeln!(out, "<li>{}</li>", html_spans(item));
                    }
                    out.push_str("</ul>\n");
                }
                Block::Table { columns, rows } => {
                    // A table wider than the page scrolls inside its own box.
                    out.push_str("<div class=\"table\">\n<table>\n<thead><tr>");
                    for c in columns {
                        let _ = write!(out, "<th>{}</th>", esc(&c.header));
                    }
                    out.push_str("</tr></thead>\n<tbody>\n");
                    for r in rows {
                        out.push_str("<tr>");
                        for (i, cell) in r.iter().enumerate() {
                            let numeric = columns.get(i).is_some_and(|c| c.numeric);
                            let class = if numeric { " class=\"num\"" } else { "" };
                            let _ = write!(out, "<td{class}>{}</td>", html_cell(cell));
                        }
                        out.push_str("</tr>\n");
                    }
                    out.push_str("</tbody>\n</table>\n</div>\n");
                }
                Block::Figure { path, title, caption, svg } => {
                    let _ = writeln!(
                        out,
                        "<figure>\n<div class=\"svg\" title=\"{}\">{}</div>\n<figcaption><strong>{}.</strong> {}</figcaption>\n</figure>",
                        esc(path),
                        inline_svg(svg),
                        esc(title),
                        esc(caption)
                    );
                }
                Block::Code { lang, text } => {
                    let _ = writeln!(
                        out,
                        "<pre><code class=\"language-{}\">{}</code></pre>",
                        esc(lang),
                        esc(text.trim_end())
                    );
                }
            }
        }
        out.push_str("</body>\n</html>\n");
        out
    }
}

const CSS: &str =
    "body { font-family: system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; \
max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1, h2, h3 { line-height: 1.2; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
div.table { overflow-x: auto; max-width: 100%; margin: 1em 0; }
table { border-collapse: collapse; font-size: 14px; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1.5em 0; }
figure .svg svg { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 14px; max-width: 760px; }
pre { background: #f6f6f6; padding: .8em; overflow-x: auto; }
code { font-family: ui-monospace, 'SFMono-Regular', Menlo, Consolas, monospace; font-size: 90%; }
";

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An HTML id for a heading: lowercase letters and digits, other runs as `-`.
fn anchor(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

/// The `<svg>` element of an SVG document (any XML declaration or doctype dropped).
fn inline_svg(svg: &str) -> &str {
    svg.find("<svg").map_or(svg, |i| &svg[i..]).trim_end()
}

/// Escapes characters Markdown would interpret in running text.
fn md_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '`') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn md_spans(spans: &[Span]) -> String {
    spans
        .iter()
        .map(|s| match s {
            Span::Text(t) => md_escape(t),
            Span::Code(t) => md_code(t),
            Span::Bold(t) => format!("**{}**", md_escape(t)),
        })
        .collect()
}

/// A code span that survives backticks inside it.
fn md_code(t: &str) -> String {
    let fence = if t.contains('`') { "`` " } else { "`" };
    let close = if t.contains('`') { " ``" } else { "`" };
    format!("{fence}{t}{close}")
}

/// A table cell: text between backticks is code; `|` is escaped everywhere.
fn md_cell(c: &str) -> String {
    c.replace('|', "\\|")
}

/// The cells of one row of a Markdown table as [`Doc::body_markdown`] writes it (`| a | b |`),
/// `\|` read back as `|`; `None` for a line that is not such a row.
pub fn md_row_cells(line: &str) -> Option<Vec<String>> {
    let inner = line.strip_prefix("| ")?.strip_suffix(" |")?;
    let mut cells = vec![String::new()];
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                cells.last_mut()?.push('|');
                chars.next();
            }
            ' ' if chars.peek() == Some(&'|') => {
                chars.next();
                if chars.next() != Some(' ') {
                    return None;
                }
                cells.push(String::new());
            }
            c => cells.last_mut()?.push(c),
        }
    }
    Some(cells)
}

/// The HTML of a table cell: text between backticks becomes `<code>`.
fn html_cell(c: &str) -> String {
    let parts: Vec<&str> = c.split('`').collect();
    if parts.len() < 3 || parts.len().is_multiple_of(2) {
        return esc(c);
    }
    parts
        .iter()
        .enumerate()
        .map(|(i, p)| if i % 2 == 1 { format!("<code>{}</code>", esc(p)) } else { esc(p) })
        .collect()
}

fn html_spans(spans: &[Span]) -> String {
    spans
        .iter()
        .map(|s| match s {
            Span::Text(t) => esc(t),
            Span::Code(t) => format!("<code>{}</code>", esc(t)),
            Span::Bold(t) => format!("<strong>{}</strong>", esc(t)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Doc {
        let mut d = Doc { title: "run <a>".into(), blocks: Vec::new() };
        d.push(Block::Heading(2, "Arms & more".into()));
        d.push(Block::Para(vec![text("a_b "), code("x|y"), text(" "), bold("5×")]));
        d.push(Block::Table {
            columns: vec![
                Column { header: "arm".into(), numeric: false },
                Column { header: "t".into(), numeric: true },
            ],
            rows: vec![vec!["`dense`".into(), "1|2".into()]],
        });
        d.push(Block::Figure {
            path: "figures/a.svg".into(),
            title: "A".into(),
            caption: "c".into(),
            svg:
                "<?xml version=\"1.0\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\"><rect/></svg>\n"
                    .into(),
        });
        d.push(Block::Code { lang: "sh".into(), text: "ticketlab run 'a b'\n".into() });
        d
    }

    #[test]
    fn table_rows_read_back_as_written() {
        let rows = vec![
            vec!["`a`".to_string(), "x | y".into(), String::new(), "**holds** (all)".into()],
            vec!["1,500 (all 3)".to_string(), "b".into(), "c".into(), "d".into()],
        ];
        let columns = ["w", "x", "y", "z"].map(|h| Column { header: h.into(), numeric: false });
        let table = Doc {
            title: String::new(),
            blocks: vec![Block::Table { columns: columns.to_vec(), rows: rows.clone() }],
        };
        let read: Vec<Vec<String>> =
            table.body_markdown().lines().skip(3).filter_map(md_row_cells).collect();
        assert_eq!(read, rows);
        assert_eq!(md_row_cells("## heading"), None);
        assert_eq!(md_row_cells("| a |b |"), None);
    }

    #[test]
    fn markdown_escapes_and_aligns() {
        let md = sample().to_markdown();
        assert!(md.starts_with("# run <a>\n"));
        assert!(md.contains("## Arms & more"));
        assert!(md.contains("a\\_b `x|y` **5×**"), "{md}");
        assert!(md.contains("| --- | ---: |"));
        assert!(md.contains("| `dense` | 1\\|2 |"));
        assert!(md.contains("![A](figures/a.svg)"));
        assert!(md.contains("```sh\nticketlab run 'a b'\n```"));
    }

    #[test]
    fn html_is_escaped_and_inlines_svg() {
        let html = sample().to_html();
        assert!(html.contains("<title>run &lt;a&gt;</title>"));
        assert!(html.contains("<h2 id=\"arms-more\">Arms &amp; more</h2>"));
        assert!(html.contains("<td><code>dense</code></td><td class=\"num\">1|2</td>"));
        assert!(html.contains("<div class=\"svg\" title=\"figures/a.svg\"><svg xmlns"), "{html}");
        assert!(!html.contains("<?xml"));
        assert!(!html.contains("<script"));
        assert!(html.contains("ticketlab run &#39;a b&#39;"));
    }
}
