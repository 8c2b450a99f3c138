//! The README's quick-start examples: the `$ ` lines of its `console`
//! blocks, with the output shown under each. `just up` prints them and an
//! e2e test (crates/e2e/tests/readme_examples.rs) runs them as written, so
//! what a reader copies is what works.

/// The committed README.
pub const README: &str = include_str!("../../../README.md");

/// The section whose examples these are.
const SECTION: &str = "## Quick start";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    /// The command as written after `$ `.
    pub command: String,
    /// The lines shown under it (until a blank line or the next `$ `).
    pub output: Vec<String>,
}

/// The examples of `readme`'s quick-start section, in order.
pub fn examples(readme: &str) -> Vec<Example> {
    let mut out: Vec<Example> = Vec::new();
    let mut in_section = false;
    let mut in_console = false;
    let mut in_output = false;
    for line in readme.lines() {
        if line.starts_with("## ") {
            in_section = line.trim_end() == SECTION;
            continue;
        }
        if !in_section {
            continue;
        }
        if let Some(info) = line.strip_prefix("```") {
            in_console = !in_console && info.trim() == "console";
            in_output = false;
            continue;
        }
        if !in_console {
            continue;
        }
        if let Some(command) = line.strip_prefix("$ ") {
            out.push(Example {
                command: command.to_string(),
                output: Vec::new(),
            });
            in_output = true;
        } else if line.trim().is_empty() {
            in_output = false;
        } else if in_output && let Some(last) = out.last_mut() {
            last.output.push(line.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_outputs_of_console_blocks_in_the_quick_start() {
        let text = "# T\n## Quick start\n```sh\njust up\n```\n```console\n$ a 'x'\n{\"k\":1}\n\n$ b\nl1\nl2\n```\n## Other\n```console\n$ c\n```\n";
        assert_eq!(
            examples(text),
            [
                Example {
                    command: "a 'x'".into(),
                    output: vec!["{\"k\":1}".into()]
                },
                Example {
                    command: "b".into(),
                    output: vec!["l1".into(), "l2".into()]
                },
            ]
        );
    }

    #[test]
    fn the_committed_readme_has_examples_and_starts_with_the_path_step() {
        let examples = examples(README);
        assert!(examples.len() >= 3, "{examples:?}");
        assert!(
            examples[0].command.contains("just shell-env"),
            "a fresh shell needs the tools on PATH first: {examples:?}"
        );
        assert!(examples.iter().any(|e| e.command.starts_with("grpcurl ")));
    }
}
