//! A notice template: text with `{placeholder}`s (`{{` and `}}` for the
//! braces themselves), checked once, at start.

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Piece {
    Text(String),
    Field(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Template(pub(super) Vec<Piece>);

impl Template {
    /// Parses `text`; a placeholder is one of `names` (its index is kept).
    pub(super) fn parse(text: &str, names: &[&str]) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(i) = rest.find(['{', '}']) {
            literal.push_str(&rest[..i]);
            let tail = &rest[i..];
            if tail.starts_with("{{") || tail.starts_with("}}") {
                literal.push_str(&tail[..1]);
                rest = &tail[2..];
                continue;
            }
            if tail.starts_with('}') {
                return Err("a lone `}` (write `}}` for a brace)".into());
            }
            let Some(end) = tail.find('}') else {
                return Err("a `{` that is never closed (write `{{` for a brace)".into());
            };
            let name = &tail[1..end];
            let Some(index) = names.iter().position(|n| *n == name) else {
                return Err(format!(
                    "unknown placeholder {{{name}}}; the placeholders are {}",
                    names
                        .iter()
                        .map(|n| format!("{{{n}}}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            };
            if !literal.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut literal)));
            }
            pieces.push(Piece::Field(index));
            rest = &tail[end + 1..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        if pieces
            .iter()
            .all(|p| matches!(p, Piece::Text(t) if t.trim().is_empty()))
        {
            return Err("it is empty".into());
        }
        Ok(Self(pieces))
    }

    /// The text with each placeholder replaced by `values[index]`.
    pub(super) fn render(&self, values: &[String]) -> String {
        let mut out = String::new();
        for piece in &self.0 {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Field(i) => out.push_str(values.get(*i).map_or("", String::as_str)),
            }
        }
        out
    }

    /// The longest it can render to, in bytes, given each placeholder's
    /// longest value.
    pub(super) fn max_len(&self, longest: &[usize]) -> usize {
        self.0
            .iter()
            .map(|p| match p {
                Piece::Text(t) => t.len(),
                Piece::Field(i) => longest.get(*i).copied().unwrap_or(0),
            })
            .sum()
    }
}
