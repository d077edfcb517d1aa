//! `validate --format github`: diagnostics as GitHub Actions workflow commands, so that a CI job
//! shows each problem as an annotation on the line of the flow file it is about.

use flowcat_engine::Diagnostic;

/// `::error file=F,line=L,col=C,endLine=…,endColumn=…,title=T::message` (or `::warning`), one line.
pub fn annotation(d: &Diagnostic) -> String {
    let command = if d.is_error() { "error" } else { "warning" };
    let mut props = vec![format!("file={}", property(&d.source.path))];
    if let Some(span) = d.span {
        props.push(format!("line={},col={}", span.start.line, span.start.col));
        props.push(format!("endLine={},endColumn={}", span.end.line, span.end.col));
    }
    props.push(format!("title={}", property(&format!("flowcat {}", d.code))));
    let mut text = d.message.clone();
    for extra in [d.label.clone(), d.help.as_ref().map(|h| format!("help: {h}"))].into_iter().flatten() {
        text.push('\n');
        text.push_str(&extra);
    }
    format!("::{command} {}::{}", props.join(","), data(&text))
}

/// GitHub's escaping of a command's message: `%`, CR and LF.
fn data(text: &str) -> String {
    text.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

/// GitHub's escaping of a property value: as [`data`], plus `:` and `,`.
fn property(text: &str) -> String {
    data(text).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_follows_github() {
        assert_eq!(data("100% done\r\nnext"), "100%25 done%0D%0Anext");
        assert_eq!(property("a:b,c%\n"), "a%3Ab%2Cc%25%0A");
    }
}
