//! Where in a manifest file a finding is: the line of the field a JSON pointer names, read from
//! the YAML's block structure (keys by indentation, `- ` items in order). Best effort: a path
//! the blocks do not show (flow style, a JSON document on one line) points at the nearest line
//! that holds it, at worst the document's data key.

use crate::decode::DOCUMENT_KEYS;

/// The line (0-based) each YAML document of a file's `lines` starts on, in the order a YAML
/// parser yields them: a `---` before any content does not start an empty document.
pub fn document_starts(lines: &[&str]) -> Vec<usize> {
    let mut starts = vec![0];
    let mut content = false;
    for (i, line) in lines.iter().enumerate() {
        if line.starts_with("---") {
            if content {
                starts.push(i + 1);
                content = false;
            } else {
                *starts.last_mut().expect("one start") = i + 1;
            }
        } else if !is_blank(line) {
            content = true;
        }
    }
    starts
}

/// The line (0-based) of a file's `lines` of the field `pointer` names in the execution
/// document of the YAML document starting at line `start`; the document's start when nothing
/// nearer is found.
pub fn line_of(lines: &[&str], start: usize, pointer: Option<&str>) -> usize {
    let Some(key) = (start..lines.len()).take_while(|&i| i == start || !lines[i].starts_with("---")).find(|&i| {
        let trimmed = lines[i].trim_start();
        DOCUMENT_KEYS.iter().any(|k| trimmed.starts_with(&format!("{k}:")) || trimmed.starts_with(&format!("\"{k}\":")))
    }) else {
        return start;
    };
    let key_indent = indent(lines[key]);
    // The block scalar's lines: everything after the key that is blank or indented deeper.
    let end =
        (key + 1..lines.len()).find(|&i| !is_blank(lines[i]) && indent(lines[i]) <= key_indent).unwrap_or(lines.len());
    let block: Vec<Line> = lines[key + 1..end].iter().map(|l| Line::of(l)).collect();
    match pointer.and_then(|p| find(&block, p)) {
        Some(found) => key + 1 + found,
        None => key,
    }
}

/// One line of a block: where its key starts (after a `- `, for an item) and, for an item, its
/// dash.
struct Line<'a> {
    blank: bool,
    key_indent: usize,
    dash: Option<usize>,
    text: &'a str,
}

impl<'a> Line<'a> {
    fn of(line: &'a str) -> Self {
        let (indent, rest) = (indent(line), line.trim_start());
        let blank = is_blank(line);
        match rest.strip_prefix("- ").or_else(|| (rest == "-").then_some("")) {
            Some(after) => {
                let inner = after.len() - after.trim_start().len();
                Line { blank, key_indent: indent + 2 + inner, dash: Some(indent), text: after.trim_start() }
            }
            None => Line { blank, key_indent: indent, dash: None, text: rest },
        }
    }

    fn holds_key(&self, key: &str) -> bool {
        let quoted = format!("\"{key}\":");
        self.text.strip_prefix(key).is_some_and(|r| r.starts_with(':')) || self.text.starts_with(&quoted)
    }
}

/// The index in `block` of the line `pointer` names, or of the deepest of its parents found.
fn find(block: &[Line], pointer: &str) -> Option<usize> {
    let (mut lo, mut hi, mut parent): (usize, usize, Option<usize>) = (0, block.len(), None);
    let mut found = None;
    for segment in pointer.split('/').skip(1) {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        let deeper = |l: &Line| !l.blank && parent.is_none_or(|p| l.key_indent > p);
        let scope = || block[lo..hi].iter().enumerate().filter(|(_, l)| deeper(l)).map(|(i, l)| (lo + i, l));
        let at = match segment.parse::<usize>() {
            Ok(n) => {
                let dash = scope().filter_map(|(_, l)| l.dash).min();
                let Some(at) = scope().filter(|(_, l)| l.dash.is_some() && l.dash == dash).map(|(i, _)| i).nth(n)
                else {
                    break;
                };
                let d = dash.expect("an item");
                hi = (at + 1..hi)
                    .find(|&i| !block[i].blank && (block[i].key_indent <= d || block[i].dash.is_some_and(|x| x <= d)))
                    .unwrap_or(hi);
                lo = at;
                parent = Some(d);
                at
            }
            Err(_) => {
                let indent = scope().map(|(_, l)| l.key_indent).min();
                let Some(at) =
                    scope().find(|(_, l)| Some(l.key_indent) == indent && l.holds_key(&segment)).map(|(i, _)| i)
                else {
                    break;
                };
                let k = block[at].key_indent;
                hi = (at + 1..hi).find(|&i| !block[i].blank && block[i].key_indent <= k).unwrap_or(hi);
                lo = at + 1;
                parent = Some(k);
                at
            }
        };
        found = Some(at);
    }
    found
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

fn is_blank(line: &str) -> bool {
    let trimmed = line.trim();
    trimmed.is_empty() || trimmed.starts_with('#')
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
# two executions
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: run-1
data:
  execution.yaml: |
    apiVersion: pipelines.gitops.dev/v1alpha1
    pipeline: web
    environments:
      - name: dev
        phase: Succeeded
      - name: prod
        phase: Bogus
    phase: Running
---
apiVersion: v1
kind: ConfigMap
data:
  execution.json: '{\"phase\": 1}'
";

    #[test]
    fn documents_start_after_their_separator() {
        assert_eq!(document_starts(&FILE.lines().collect::<Vec<_>>()), [2, 17]);
        assert_eq!(document_starts(&["a: 1", "---", "b: 2"]), [0, 2]);
    }

    #[test]
    fn a_pointer_names_the_line_of_its_field() {
        let lines: Vec<&str> = FILE.lines().collect();
        let line = |pointer| line_of(&lines, 2, Some(pointer)) + 1;
        assert_eq!(line("/environments/1/phase"), 15);
        assert_eq!(line("/environments/1"), 14);
        assert_eq!(line("/environments/0/name"), 12);
        assert_eq!(line("/phase"), 16);
        assert_eq!(line("/pipeline"), 10);
        // Not there: its nearest parent; nothing at all: the data key's line.
        assert_eq!(line("/environments/7/phase"), 11);
        assert_eq!(line("/nothing"), 8);
        assert_eq!(line(""), 8);
        // A document on one line: its key.
        assert_eq!(line_of(&lines, 17, Some("/phase")) + 1, 21);
    }
}
